"""Prepare steps: commands that make the files a run needs (train a head, write data), rerun only when stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deployable.config import PrepareStep, Project
from deployable.core.errors import DeployableError
from deployable.core.hashing import hash_json, sha256_file
from deployable.core.locks import atomic_write_text, file_lock


def _stamp_path(project: Project, step: PrepareStep) -> Path:
    return project.path(project.cache_dir) / "prepare" / f"{hash_json(step.run)[:16]}.json"


def _inputs_digest(project: Project, step: PrepareStep) -> str:
    return hash_json({"run": step.run, "inputs": {p: sha256_file(project.path(p)) for p in step.inputs}})


def is_stale(project: Project, step: PrepareStep) -> bool:
    """True when an output is missing or an input changed since the step last succeeded."""
    if any(not project.path(o).exists() for o in step.outputs):
        return True
    stamp = _stamp_path(project, step)
    if not stamp.is_file():
        return bool(step.inputs)
    return json.loads(stamp.read_text()).get("inputs") != _inputs_digest(project, step)


def run_prepare(project: Project, *, log: object = None) -> list[str]:
    """Run every stale step in the config's folder; returns the commands that ran.

    Each step is checked and run under a lock beside its stamp (``cache_dir/prepare/<step>.lock``): when two runs of
    the project start at once, one runs the step and the other waits, then finds it up to date. The check is under
    the lock too, so no run reads an output another run's command is still writing.
    """
    ran = []
    for i, step in enumerate(project.prepare):
        stamp = _stamp_path(project, step)

        def waiting(step: PrepareStep = step) -> None:
            if log is not None:
                log.print(f"[bold]prepare[/]: waiting for another run of '{' '.join(step.run)}'")  # type: ignore[attr-defined]

        with file_lock(stamp.with_suffix(".lock"), on_wait=waiting):
            if not is_stale(project, step):
                continue
            argv = [sys.executable if a == "python" else a for a in step.run]
            if log is not None:
                log.print(f"[bold]prepare[/]: {' '.join(step.run)}")  # type: ignore[attr-defined]
            proc = subprocess.run(argv, cwd=project.base_dir, check=False)
            if proc.returncode != 0:
                raise DeployableError(
                    f"prepare.{i}: '{' '.join(step.run)}' failed with exit code {proc.returncode}",
                    hint="run it by hand in the config's folder to see why",
                )
            missing = [o for o in step.outputs if not project.path(o).exists()]
            if missing:
                raise DeployableError(
                    f"prepare.{i}: '{' '.join(step.run)}' did not make {missing}",
                    hint="fix prepare.outputs or the command",
                )
            atomic_write_text(stamp, json.dumps({"inputs": _inputs_digest(project, step)}))
        ran.append(" ".join(step.run))
    return ran
