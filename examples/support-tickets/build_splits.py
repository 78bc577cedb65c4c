"""Build train/validation/test/ood JSON Lines from the hand-written tickets in raw/.

raw/<intent>.jsonl holds the tickets written for each intent ({"text", "channel"}); raw/ood.jsonl holds messages
that belong to no intent. Splits are stratified by intent and channel with a fixed seed, so every run of this
script writes the same files. Ids are stable hashes of the text.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRACTIONS = {"train": 0.55, "validation": 0.15, "test": 0.30}


def _id(text: str) -> str:
    return "tk-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def main(seed: int = 13) -> None:
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted((HERE / "raw").glob("*.jsonl")):
        if path.stem == "ood":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                groups[(path.stem, row["channel"])].append(
                    {"id": _id(row["text"]), "text": row["text"], "label": path.stem, "channel": row["channel"]}
                )
    splits: dict[str, list[dict]] = {name: [] for name in FRACTIONS}
    for key in sorted(groups):
        rows = groups[key]
        rng.shuffle(rows)
        n_train = round(len(rows) * FRACTIONS["train"])
        n_val = round(len(rows) * FRACTIONS["validation"])
        splits["train"] += rows[:n_train]
        splits["validation"] += rows[n_train : n_train + n_val]
        splits["test"] += rows[n_train + n_val :]
    ood = [
        json.loads(line)
        for line in (HERE / "raw" / "ood.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    splits["ood"] = [{"id": _id(r["text"]), "text": r["text"], "channel": r["channel"]} for r in ood]
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    for name, rows in splits.items():
        rng.shuffle(rows)
        tmp = out / f".{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out / f"{name}.jsonl")
        print(f"{name}: {len(rows)} tickets")


if __name__ == "__main__":
    main()
