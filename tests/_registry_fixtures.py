"""Fixtures of the registry tests: real run folders made by small real runs, and a throwaway PostgreSQL cluster.

The cluster is Debian's PostgreSQL (``initdb`` under /usr/lib/postgresql/*/bin, installed by ``scripts/setup.sh
--dev`` when missing), started by the test session on 127.0.0.1 and a unix socket in a temporary folder, on a free
port, as the ``postgres`` user when the tests run as root (initdb refuses root), and stopped at the end. Each test
gets its own database. The role has a password, so the tests can check it never appears in a message.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
PG_PASSWORD = "s3cret-pw-42"
QUICK = {"robustness": {"enabled": False}, "adversarial": {"enabled": False}, "ood": {"enabled": False}}
_counter = itertools.count()


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, bindir: Path, root: Path):
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def _owner(self) -> dict:
        """Run as ``postgres`` when we are root (initdb refuses root); exec'd directly, so signals reach it."""
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile)]
        initdb += ["--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]
        subprocess.run(
            initdb,
            check=True,
            capture_output=True,
            **self._owner(),
        )
        server = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root)]
        # the cluster is thrown away: no fsync (client crashes are what the tests make, never a server crash)
        server += ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100", "-c", "fsync=off"]
        self.proc = subprocess.Popen(
            server,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "log.txt", "wb"),  # noqa: SIM115 - the server keeps it
            **self._owner(),
        )
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.root / "log.txt").read_text()) from None
                time.sleep(0.2)

    def dsn(self, db: str) -> str:
        return f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/{db}"

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        name = f"reg_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown: the cluster is deleted next
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh --dev installs it from Debian's packages)")
    pytest.importorskip("psycopg", reason='psycopg is missing: pip install "deployable[registry]"')
    root = Path(tempfile.mkdtemp(prefix="deployable-pg-"))
    os.chmod(root, 0o755)
    cluster = PostgresCluster(bindir, root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path: Path) -> tuple[str, Path]:
    """(registry URL, artifact folder) of a fresh, empty registry on each backend."""
    artifacts = tmp_path / "artifacts"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}", artifacts
    cluster = request.getfixturevalue("postgres")
    return cluster.new_database(), artifacts


def _project(folder: Path, policy: dict) -> Path:
    sys.path.insert(0, str(TESTS))
    try:
        import conftest
    finally:
        sys.path.remove(str(TESTS))
    config = conftest.tabular_project.__wrapped__(folder)
    data = yaml.safe_load(config.read_text())
    data["evaluate"].update(QUICK)
    data["policy"] = policy
    data["targets"].append({"name": "big-box", "threads": 2, "batch_sizes": [4]})
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run folders of one tiny project, made by real runs: 'pass' (gate PASS, two targets), 'fail' (a critical
    check fails), 'none' (results.json without a verdict)."""
    from deployable.pipeline import run

    root = tmp_path_factory.mktemp("registry-runs")
    project = root / "project"
    project.mkdir()
    config = _project(project, {"checks": ["quality.accuracy >= 0"]})
    out = {"pass": root / "run-pass", "fail": root / "run-fail", "none": root / "run-none"}
    run(config, out["pass"], progress=False)
    data = yaml.safe_load(config.read_text())
    data["policy"] = {"checks": ["quality.accuracy >= 0.999"]}
    failing = project / "failing.yaml"
    failing.write_text(yaml.safe_dump(data, sort_keys=False))
    run(failing, out["fail"], progress=False)
    shutil.copytree(out["pass"], out["none"])
    results = json.loads((out["none"] / "results.json").read_text())
    results["verdict"] = None
    (out["none"] / "results.json").write_text(json.dumps(results))
    return out


@dataclass
class AfterKill:
    problems: list[str]  # what verify found
    lost: list[str]  # commands that returned success but are not (fully) in the registry
    events: int  # alias moves in the registry now
    versions: int  # highest version number now


def check_after_kill(reg, name: str, done: list[str], events_before: int, versions_before: int) -> AfterKill:
    """Whether every command a killed worker reported done (``R n``, ``P target n``, ``B target n`` lines, in order)
    is fully in the registry, with at most the command in flight at the kill beyond them, and verify passes."""
    from deployable.core.errors import DeployableError

    problems = [p.message for p in reg.verify()]
    lost: list[str] = []
    try:
        versions = {v.number for v in reg.versions(name)}
        history = list(reversed(reg.history(name)))
    except DeployableError:  # killed before the first release committed
        versions, history = set(), []
    released = [int(line.split()[1]) for line in done if line.startswith("R ")]
    for n in released:
        if n not in versions:
            lost.append(f"R {n}: no such version")
            continue
        files = reg.show(f"{name}@{n}").files
        if {f.role for f in files} != {"variant:source", "evidence", "reference"} or len(files) != 10:
            lost.append(f"R {n}: {len(files)} files")
    new = sorted(n for n in versions if n > versions_before)
    if new[: len(released)] != released or len(new) - len(released) > 1:
        lost.append(f"versions {new} after releases {released}")
    seen = [f"{'P' if e.action == 'promote' else 'B'} {e.target} {e.to_version}" for e in history[events_before:]]
    moved = [line for line in done if line[:1] in "PB"]
    if seen[: len(moved)] != moved or len(seen) - len(moved) > 2:  # a promotion of both targets is one commit
        lost.append(f"moves {seen} after {moved}")
    return AfterKill(problems, lost, len(history), max(versions, default=0))
