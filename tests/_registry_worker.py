"""A process of the registry's concurrency and crash tests (run as a script, never imported by a test).

    python _registry_worker.py release URL ARTIFACTS RUN_FOLDER GO_FILE   say ready, release once GO_FILE appears
    python _registry_worker.py loop URL ARTIFACTS RUN_FOLDER SEED         release / promote / rollback until killed

Every command prints one line after it returned, flushed, so the parent knows what succeeded before the kill.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from deployable.registry import Registry


def main() -> None:
    mode, url, artifacts, run_folder, arg = sys.argv[1:6]
    reg = Registry(url, artifacts=artifacts, create=True)
    if mode == "release":
        reg.engine  # noqa: B018 - connect (and migrate) first, so the releases below start together
        print("ready", flush=True)
        while not os.path.exists(arg):
            time.sleep(0.005)
        print(f"R {reg.release(run_folder).number}", flush=True)
        return
    rng = random.Random(int(arg))
    reg.engine  # noqa: B018 - make and migrate the database before "ready"
    print("ready", flush=True)
    report = Path(run_folder) / "report.html"
    html = report.read_text(encoding="utf-8").split("\n<!-- release ")[0]
    for k in range(10**9):
        report.write_text(f"{html}\n<!-- release {arg}-{k} -->", encoding="utf-8")  # new bytes: a new file to store
        v = reg.release(Path(run_folder))
        print(f"R {v.number}", flush=True)
        target = rng.choice([None, "tiny-box", "big-box"])
        for m in reg.promote("tiny", v.number, "production", targets=[target] if target else None):
            print(f"P {m.target} {m.to_version}", flush=True)
        if rng.random() < 0.5:
            try:
                moves = reg.rollback("tiny", "production", reason="crash test", targets=["tiny-box"])
            except Exception as exc:  # nothing to roll back to yet
                print(f"E {exc}", flush=True)
                continue
            for m in moves:
                print(f"B {m.target} {m.to_version}", flush=True)


if __name__ == "__main__":
    main()
