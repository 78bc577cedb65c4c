"""Two runs sharing one cache at once: every shared write is built once, atomically, and survives a killed writer."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from deployable.core.locks import build_once, file_lock
from deployable.evaluation.store import PredictionStore
from deployable.optimize.base import cached_or_build

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the cache's locks use fcntl")

SRC = Path(__file__).resolve().parents[1] / "src"
TIMEOUT = 120  # seconds any child may take; a deadlock fails the test instead of hanging it

# One builder of a variant artifact through cached_or_build. It waits for the `go` file so that both processes
# check the cache at the same moment, records each build in `counter`, and returns the building process's pid
# in the meta, so every caller can tell who built what it got.
BUILDER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    from deployable.optimize.base import cached_or_build

    folder, counter, go, seconds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    started = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    while not go.exists():
        time.sleep(0.005)


    def build(tmp):
        with open(counter, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        (tmp / "model.bin").write_bytes(b"half of a model")
        if started is not None:
            started.touch()
        time.sleep(seconds)
        with open(tmp / "model.bin", "ab") as fh:
            fh.write(b" and the other half")
        return {"spec": {"path": str(folder / "model.bin")}, "built_by": os.getpid()}


    print(json.dumps(cached_or_build(folder, build)))
    """
)


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _start(args: list[str], cwd: Path | None = None) -> subprocess.Popen:
    # Output to files, not pipes: a child blocked on a full pipe while holding a lock would stall the other child.
    logs = Path(tempfile.mkdtemp(prefix="deployable-test-child-"))
    with open(logs / "out", "w") as out, open(logs / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=_env(), stdout=out, stderr=err, text=True)
    proc.logs = logs  # type: ignore[attr-defined]
    return proc


def _output(proc: subprocess.Popen) -> tuple[str, str]:
    logs = proc.logs  # type: ignore[attr-defined]
    return (logs / "out").read_text(), (logs / "err").read_text()


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"a child took more than {TIMEOUT}s (deadlock?): {_output(proc)[1][-2000:]}")
    out, err = _output(proc)
    shutil.rmtree(proc.logs, ignore_errors=True)  # type: ignore[attr-defined]
    return proc.returncode, out, err


def _hidden(folder: Path) -> list[str]:
    """Temporary or set-aside entries (names starting with a dot) left in a cache folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child exited ({proc.returncode}) before starting its build: {_output(proc)[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the child never started its build")
        time.sleep(0.01)


def test_two_processes_build_a_variant_once_and_get_the_same_meta(tmp_path: Path) -> None:
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    variants, counter, go = tmp_path / "variants", tmp_path / "builds.txt", tmp_path / "go"
    folder = variants / "0123456789abcdef"
    procs = [_start([str(script), str(folder), str(counter), str(go), "1.0"]) for _ in range(2)]
    time.sleep(0.5)  # both import first; both then check the cold cache within milliseconds of each other
    go.touch()
    results = [_finish(p) for p in procs]

    for code, _, err in results:
        assert code == 0, err
    builders = counter.read_text().split()
    assert len(builders) == 1, f"built {len(builders)} times: {builders}"
    metas = [json.loads(out) for _, out, _ in results]
    assert metas[0] == metas[1] == json.loads((folder / "variant.json").read_text())
    assert metas[0]["built_by"] == int(builders[0])
    assert (folder / "model.bin").read_bytes() == b"half of a model and the other half"
    assert _hidden(variants) == [], "a temporary folder was left behind"


def test_a_killed_build_leaves_nothing_finished_and_the_next_run_rebuilds(tmp_path: Path) -> None:
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    variants, counter, go, started = tmp_path / "variants", tmp_path / "builds.txt", tmp_path / "go", tmp_path / "s"
    folder = variants / "0123456789abcdef"
    go.touch()
    proc = _start([str(script), str(folder), str(counter), str(go), "600", str(started)])
    _wait_for(started, proc)  # mid-build: half a model written, the lock held
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(TIMEOUT)
    shutil.rmtree(proc.logs, ignore_errors=True)  # type: ignore[attr-defined]

    assert not folder.exists(), "a killed build must not leave anything at the artifact's path"
    assert len(_hidden(variants)) == 1, "the killed build's temporary folder (the next build removes it)"
    # the next run is not blocked by the dead process's lock, rebuilds, and cleans up what the dead one left
    code, out, err = _finish(_start([str(script), str(folder), str(counter), str(go), "0"]))
    assert code == 0, err
    assert len(counter.read_text().split()) == 2
    assert json.loads(out)["built_by"] != proc.pid
    assert (folder / "model.bin").read_bytes() == b"half of a model and the other half"
    assert _hidden(variants) == []


def test_a_failed_build_leaves_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "variants" / "0123456789abcdef"

    def fail(tmp: Path) -> dict:
        (tmp / "model.bin").write_bytes(b"half")
        raise ValueError("export failed")

    with pytest.raises(ValueError, match="export failed"):
        cached_or_build(folder, fail)
    assert not folder.exists() and _hidden(folder.parent) == []
    meta = cached_or_build(folder, lambda tmp: {"ok": True})
    assert meta == {"ok": True} and (folder / "variant.json").is_file()
    assert cached_or_build(folder, lambda tmp: pytest.fail("rebuilt a finished artifact")) == {"ok": True}


def test_a_damaged_artifact_is_replaced_and_a_build_must_finish_it(tmp_path: Path) -> None:
    folder = tmp_path / "0123456789abcdef"
    folder.mkdir()
    (folder / "variant.json").write_text("{not json")  # e.g. written by hand, or a disk that lost the tail
    assert cached_or_build(folder, lambda tmp: {"v": 2}) == {"v": 2}
    with pytest.raises(RuntimeError, match="did not make a finished artifact"):
        build_once(tmp_path / "other", lambda tmp: None, finished=lambda f: (f / "done").is_file())
    assert not (tmp_path / "other").exists() and _hidden(tmp_path) == []


def test_a_lock_taken_twice_by_one_thread_fails_instead_of_waiting_forever(tmp_path: Path) -> None:
    with file_lock(tmp_path / "x.lock") as locked:
        assert locked
        with pytest.raises(RuntimeError, match="already locked"), file_lock(tmp_path / "x.lock"):
            pass
    with file_lock(tmp_path / "x.lock"):  # released, and takeable again
        pass


STORE_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from deployable.evaluation.store import PredictionStore

    store = PredictionStore(sys.argv[1])
    logits = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    ids = np.asarray([f"s{i}" for i in range(1000)])
    for _ in range(int(sys.argv[2])):
        store.put("ab" * 32, logits, None, ids, meta={"model": "m" * 5000, "rows": 1000})
    """
)


def test_prediction_store_readers_never_see_half_a_file(tmp_path: Path) -> None:
    script, root = tmp_path / "writer.py", tmp_path / "predictions"
    script.write_text(STORE_WRITER)
    store, key = PredictionStore(root), "ab" * 32
    procs = [_start([str(script), str(root), "40"]) for _ in range(2)]
    path = root / key[:2] / f"{key}.npz"
    reads = 0
    while any(p.poll() is None for p in procs):
        if path.is_file():
            got = store.get(key)
            assert got is not None, "a reader saw a damaged .npz"
            np.testing.assert_array_equal(got.logits[:, 0], np.arange(0, 3000, 3, dtype=np.float32))
            assert json.loads(path.with_suffix(".json").read_text())["rows"] == 1000
            reads += 1
    for p in procs:
        code, _, err = _finish(p)
        assert code == 0, err
    assert reads > 0 or store.get(key) is not None
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{key}.json", f"{key}.npz"], "temporary files left"


PREPARE_STEP = textwrap.dedent(
    """
    import os, time
    with open("prepare-runs.txt", "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    with open("made.txt", "w") as fh:
        fh.write("first half,")
        fh.flush()
        time.sleep(1.0)
        fh.write("second half")
    """
)

PREPARE_RUNNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from deployable.config import load_config
    from deployable.prepare import run_prepare

    config, go = Path(sys.argv[1]), Path(sys.argv[2])
    project = load_config(config)
    while not go.exists():
        time.sleep(0.005)
    run_prepare(project)
    print((config.parent / "made.txt").read_text())
    """
)


def test_a_prepare_step_runs_once_while_the_other_run_waits(tabular_project: Path, tmp_path: Path) -> None:
    base = tabular_project.parent
    (base / "make.py").write_text(PREPARE_STEP)
    data = yaml.safe_load(tabular_project.read_text())
    data["prepare"] = [{"run": ["python", "make.py"], "outputs": ["made.txt"]}]  # no inputs: made once, then kept
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    runner, go = tmp_path / "prepare_runner.py", tmp_path / "go"
    runner.write_text(PREPARE_RUNNER)
    procs = [_start([str(runner), str(tabular_project), str(go)]) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    results = [_finish(p) for p in procs]

    for code, _, err in results:
        assert code == 0, err
    runs = (base / "prepare-runs.txt").read_text().split()
    assert len(runs) == 1, f"the step ran {len(runs)} times"
    assert [out.strip() for _, out, _ in results] == ["first half,second half"] * 2, "a run read a half-made output"


MAKE_TEST_SPLIT = textwrap.dedent(
    """
    import os, shutil
    with open("prepare-runs.txt", "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    shutil.copyfile("test_source.csv", "test.csv")
    """
)

# Exporting the tiny model takes a fraction of a second: two runs started together rarely build it at the same
# moment. Slowing the export (only the export: evaluation runs the module at full speed) makes them overlap.
SLOW_EXPORT = textwrap.dedent(
    """

    import time

    _forward = Tiny.forward


    def _slow_while_exported(self, x):
        if torch.onnx.is_in_onnx_export():
            time.sleep(2.0)
        return _forward(self, x)


    Tiny.forward = _slow_while_exported
    """
)

_TIMING = re.compile(r"time|timing|latency|second|created_at|duration|elapsed", re.IGNORECASE)


def _without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not _TIMING.search(k)}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_two_runs_on_a_cold_cache_exit_as_one_run_would_with_identical_results(
    tabular_project: Path, tmp_path: Path
) -> None:
    base = tabular_project.parent
    (base / "test.csv").rename(base / "test_source.csv")  # made by a prepare step, which both runs want
    (base / "make_test.py").write_text(MAKE_TEST_SPLIT)
    (base / "tinymodel.py").write_text((base / "tinymodel.py").read_text() + SLOW_EXPORT)
    data = yaml.safe_load(tabular_project.read_text())
    data["prepare"] = [
        {"run": ["python", "make_test.py"], "outputs": ["test.csv"], "inputs": ["make_test.py", "test_source.csv"]}
    ]
    data["optimize"] = {"recipes": ["onnx-fp32", "int8-dynamic"], "calibration_samples": 32}
    data["evaluate"].update(
        efficiency={"enabled": False}, robustness={"enabled": False}, adversarial={"enabled": False}
    )
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    outs = [tmp_path / "run-a", tmp_path / "run-b"]
    procs = [_start(["-m", "deployable.cli", "run", str(tabular_project), "--out", str(out)], cwd=base) for out in outs]
    results = [_finish(p) for p in procs]

    for code, out, err in results:
        assert code == 0, f"exit {code}: {out[-2000:]} {err[-2000:]}"
    first, second = (_without_timings(json.loads((out / "results.json").read_text())) for out in outs)
    assert [v["name"] for v in first["variants"]] == ["source", "onnx-fp32", "int8-dynamic"]
    assert first == second
    cache = base / ".deployable-cache"
    assert len((base / "prepare-runs.txt").read_text().split()) == 1, "the prepare step ran twice"
    assert len([p for p in (cache / "variants").iterdir() if p.is_dir()]) == 2
    assert _hidden(cache / "variants") == []
    assert not [p for p in (cache / "predictions").rglob("*") if p.name.startswith(".")], "temporary files left"
