"""Compare two results.json files value by value, leaving out what depends on the clock.

Use it to check that a change which should not alter behaviour (a refactor) leaves a run's record as it was: run the
same config before and after, then

    .venv/bin/python scripts/compare_results.py old/results.json new/results.json [--root-a DIR --root-b DIR]

Keys that hold timings, latencies, memory, costs or the environment are skipped (they differ between any two runs);
``--root-a``/``--root-b`` replace each checkout's folder in paths so the two compare. Printed: how many values were
compared, the keys skipped, and every difference (path: old vs new). Exit 0 when there is none, 1 otherwise.
Values chosen by timing (a policy check on latency, the variant selected as fastest) show up as differences.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

TIMING = re.compile(
    r"(timings_s|created_at|seconds|latency|throughput|_ms$|memory|peak_rss|cost|per_hour|environment|load_time)", re.I
)


def _norm(x: Any, root: str | None) -> Any:
    if isinstance(x, dict):
        return {k: _norm(v, root) for k, v in x.items()}
    if isinstance(x, list):
        return [_norm(v, root) for v in x]
    if isinstance(x, str) and root:
        return x.replace(root, "<root>")
    return x


def compare(a: Any, b: Any) -> tuple[int, set[str], list[tuple[str, str]]]:
    """``(values compared, keys skipped, [(path, what differs)])`` for two parsed records."""
    skipped: set[str] = set()
    diffs: list[tuple[str, str]] = []
    count = 0

    def walk(x: Any, y: Any, path: str) -> None:
        nonlocal count
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if TIMING.search(k):
                    skipped.add(k)
                elif k not in x or k not in y:
                    diffs.append((f"{path}.{k}", "missing on one side"))
                else:
                    walk(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                diffs.append((path, f"{len(x)} vs {len(y)} entries"))
                return
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{path}[{i}]")
        else:
            count += 1
            same = x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
            if not same:
                diffs.append((path, f"{x!r} vs {y!r}"))

    walk(a, b, "")
    return count, skipped, diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--root-a", default=None, help="folder of the first checkout, replaced in paths")
    parser.add_argument("--root-b", default=None, help="folder of the second checkout, replaced in paths")
    args = parser.parse_args(argv)
    a = _norm(json.loads(args.a.read_text(encoding="utf-8")), args.root_a)
    b = _norm(json.loads(args.b.read_text(encoding="utf-8")), args.root_b)
    count, skipped, diffs = compare(a, b)
    print(f"compared {count:,} values; skipped keys: {', '.join(sorted(skipped)) or 'none'}")
    for path, what in diffs:
        print(f"  {path}: {what[:200]}")
    print(f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
