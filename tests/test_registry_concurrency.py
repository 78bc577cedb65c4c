"""The registry under concurrent writers and SIGKILL, on SQLite and PostgreSQL: 8 processes releasing at once get 8
distinct consecutive versions; a process killed at random points of release / promote / rollback leaves a registry
that verify passes, with every command that returned success fully there."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _registry_fixtures import check_after_kill
from deployable.registry import Registry

WORKER = Path(__file__).resolve().parent / "_registry_worker.py"
KILLS_PER_BACKEND = 12


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(WORKER.parent)}


def test_eight_processes_releasing_at_once_get_eight_consecutive_versions(backend, runs, tmp_path):
    url, artifacts = backend
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "release", url, str(artifacts), str(runs["pass"]), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(8)
    ]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 8  # all connected, the schema made once
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _out, err in outs]
    numbers = sorted(int(out.split()[1]) for out, _err in outs)
    assert numbers == list(range(1, 9))
    with Registry(url, artifacts=artifacts) as reg:
        assert [v.number for v in reg.versions("tiny")] == list(range(1, 9))
        assert reg.verify() == []


def test_sigkill_at_random_points_leaves_a_consistent_registry(backend, runs, tmp_path):
    url, artifacts = backend
    run_folder = tmp_path / "run"  # the worker changes its report.html before each release: every release stores a file
    shutil.copytree(runs["pass"], run_folder)
    rng = random.Random(13)
    events, versions, kills, commands = 0, 0, 0, 0
    for i in range(KILLS_PER_BACKEND):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "loop", url, str(artifacts), str(run_folder), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        done = [line for line in out.splitlines() if line[:1] in "RPB"]
        commands += len(done)
        with Registry(url, artifacts=artifacts) as reg:
            after = check_after_kill(reg, "tiny", done, events, versions)
        assert after.problems == [] and after.lost == [], (done, after)
        events, versions = after.events, after.versions
    assert kills == KILLS_PER_BACKEND and commands > KILLS_PER_BACKEND  # kills landed among many commands
    with Registry(url, artifacts=artifacts) as reg:
        named = {f.sha256 for v in reg.versions("tiny") for f in reg.show(f"tiny@{v.number}").files}
        reg.gc(min_age_s=0)  # files of releases killed before their commit are unnamed: removed, the rest kept
        assert {p.name for _d, p in reg.artifacts.objects()} == named
        assert reg.verify() == []
