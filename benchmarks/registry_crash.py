"""Crash consistency of the release registry: SIGKILL at random points of release / promote / rollback, on SQLite
and on a throwaway PostgreSQL cluster.

A tiny real project is run once (gate PASS, two targets) to make the run folder every release registers. Then per
backend, ``--kills`` times: a worker forked from this process (so it starts in milliseconds, with everything
imported; it opens its own engine after the fork) releases the run (its report.html changed by a line each time,
so every release writes a new file), promotes the new version (to both targets or
one), and half the time rolls one target back, in a loop, printing a line after each command returns; it is killed
with SIGKILL at a random moment (uniform over ``--window`` seconds after it is ready), and the registry is checked:
``verify`` (every file of every row present with its sha256, every alias pointing to a version with that target,
every alias agreeing with its last recorded move), and every command the worker reported done fully there (the
version with all its files, the moves in order), with at most the command in flight at the kill beyond them.

A kill that leaves a verify problem counts as corrupt; a reported command that is missing counts as lost.
Last line: ``lost L, corrupt C of N`` (N kills over both backends).

Run: .venv/bin/python benchmarks/registry_crash.py [--kills 200] [--window 0.3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _registry_fixtures import PostgresCluster, _pg_bin, _project, check_after_kill
from deployable.registry import Registry


def _worker(url: str, artifacts: Path, run_folder: Path, seed: int, fd: int) -> None:
    """The child: release / promote / rollback until killed, one line per command that returned."""
    out = os.fdopen(fd, "w", buffering=1)
    rng = random.Random(seed)
    reg = Registry(url, artifacts=artifacts, create=True)
    reg.engine  # noqa: B018 - migrate before saying ready
    out.write("ready\n")
    report = run_folder / "report.html"
    html = report.read_text(encoding="utf-8").split("\n<!-- release ")[0]
    for k in range(10**9):
        report.write_text(f"{html}\n<!-- release {seed}-{k} -->", encoding="utf-8")  # new bytes: a new file to store
        v = reg.release(run_folder)
        out.write(f"R {v.number}\n")
        target = rng.choice([None, "tiny-box", "big-box"])
        for m in reg.promote("tiny", v.number, "production", targets=[target] if target else None):
            out.write(f"P {m.target} {m.to_version}\n")
        if rng.random() < 0.5:
            try:
                moves = reg.rollback("tiny", "production", reason="crash benchmark", targets=["tiny-box"])
            except Exception:  # nothing to roll back to yet
                continue
            for m in moves:
                out.write(f"B {m.target} {m.to_version}\n")


def _one_kill(url: str, artifacts: Path, run_folder: Path, seed: int, delay: float) -> list[str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(r)
        try:
            _worker(url, artifacts, run_folder, seed, w)
        finally:
            os._exit(1)
    os.close(w)
    reader = os.fdopen(r)
    first = reader.readline()
    if first.strip() != "ready":
        os.waitpid(pid, 0)
        raise RuntimeError(f"worker did not start: {first!r}")
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    lines = [line.strip() for line in reader.read().splitlines()]
    reader.close()
    return [line for line in lines if line[:1] in "RPB"]


def run_backend(
    name: str, url: str, artifacts: Path, run_folder: Path, kills: int, window: float
) -> tuple[int, int, int]:
    rng = random.Random(0)
    events = versions = commands = 0
    lost = corrupt = 0
    t = time.perf_counter()
    for i in range(kills):
        done = _one_kill(url, artifacts, run_folder, i, rng.uniform(0.0, window))
        commands += len(done)
        with Registry(url, artifacts=artifacts) as reg:
            after = check_after_kill(reg, "tiny", done, events, versions)
        corrupt += bool(after.problems)
        lost += len(after.lost)
        for line in after.problems + after.lost:
            print(f"  kill {i}: {line}")
        events, versions = after.events, after.versions
    with Registry(url, artifacts=artifacts) as reg:
        removed = reg.gc(min_age_s=0)
        corrupt += bool(reg.verify())
    print(
        f"{name}: {kills} kills in {time.perf_counter() - t:.1f} s, {commands} commands reported done before them, "
        f"{versions} versions and {events} alias moves in the end, gc removed {len(removed)} unnamed files; "
        f"lost {lost}, corrupt {corrupt}"
    )
    return lost, corrupt, kills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="kills per backend")
    parser.add_argument("--window", type=float, default=0.3, help="kill within this many seconds of ready")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="registry-crash-"))
    cluster = None
    totals = [0, 0, 0]
    try:
        from deployable.pipeline import run

        (root / "project").mkdir()
        config = _project(root / "project", {"checks": ["quality.accuracy >= 0"]})
        run_folder = root / "run"
        run(config, run_folder, progress=False)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{root / 'sqlite' / 'registry.db'}"
            else:
                if cluster is None:
                    bindir = _pg_bin()
                    if bindir is None:
                        raise SystemExit("PostgreSQL is not installed (scripts/setup.sh --dev installs it)")
                    pg_root = Path(tempfile.mkdtemp(prefix="registry-crash-pg-"))
                    os.chmod(pg_root, 0o755)
                    cluster = PostgresCluster(bindir, pg_root)
                    cluster.start()
                url = cluster.new_database()
            result = run_backend(backend, url, root / backend / "artifacts", run_folder, args.kills, args.window)
            totals = [a + b for a, b in zip(totals, result, strict=True)]
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"lost {totals[0]}, corrupt {totals[1]} of {totals[2]}")


if __name__ == "__main__":
    main()
