"""The release registry on SQLite and PostgreSQL: release, gated promotion, per-target aliases, rollback and the
history, loading with sha256 checks, verify and gc, migrations, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from _registry_fixtures import PG_PASSWORD
from deployable.cli import main
from deployable.core.errors import DeployableError
from deployable.core.hashing import sha256_file
from deployable.core.records import RunResult
from deployable.registry import PromotionRefused, Registry


def _cli(capsys, url: str, artifacts: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--registry", url, "--artifacts", str(artifacts)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _snapshot(reg: Registry) -> tuple:
    """Every row of every table and every stored file: what 'nothing written' compares."""
    with reg.engine.connect() as conn:
        rows = tuple(
            tuple(sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).all())))
            for t in ("models", "versions", "version_targets", "version_files", "aliases", "alias_events")
        )
    files = tuple(sorted(p.name for _d, p in reg.artifacts.objects()))
    return rows, files


def test_release_promote_rollback_history_round_trip(backend, runs, capsys):
    url, artifacts = backend
    with Registry(url, artifacts=artifacts, create=True) as reg:
        v1 = reg.release(runs["pass"])
        v2 = reg.release(runs["pass"])
        assert (v1.number, v2.number) == (1, 2)
        result = RunResult.load(runs["pass"])
        assert v1.verdict_status == "PASS" and {t.target: t.variant for t in v1.targets} == {
            s.target: s.variant for s in result.verdict.selections
        }
        # the variant both targets ship, the evidence and the monitor's reference, each checked against its source
        by_path = {(f.role, f.path): f.sha256 for f in v1.files}
        assert by_path[("evidence", "results.json")] == sha256_file(runs["pass"] / "results.json")
        assert by_path[("evidence", "predictions/source.parquet")] == sha256_file(
            runs["pass"] / "predictions" / "source.parquet"
        )
        assert by_path[("variant:source", "tiny.safetensors")] == sha256_file(Path(result.source.spec["weights"]))
        assert {("reference", "source/validation.npz"), ("reference", "source/test.npz")} <= set(by_path)
        with np.load(reg.artifacts.path(by_path[("reference", "source/validation.npz")])) as z:
            assert z["features"].shape == (40, 8) and z["logits"].shape == (40, 3)
        # content-addressed: two targets share one variant and two versions share every file, stored once
        assert sorted(p.name for _d, p in reg.artifacts.objects()) == sorted(set(by_path.values()))
        lineage = v1.lineage
        assert lineage["source_sha256"] == result.source.sha256
        assert lineage["dataset_fingerprints"] == {s.name: s.fingerprint for s in result.dataset.splits}
        assert lineage["variants"]["source"]["chain"][0]["recipe"] == {"recipe": "source"}
        assert lineage["deployable_version"] == result.deployable_version and len(lineage["config_digest"]) == 64

    code, out, _ = _cli(capsys, url, artifacts, "promote", "tiny", "1", "--alias", "production")
    assert code == 0 and "production (tiny-box): none -> 1" in out and "production (big-box): none -> 1" in out
    code, out, _ = _cli(capsys, url, artifacts, "promote", "tiny", "2", "--alias", "production")
    assert code == 0 and "1 -> 2" in out
    code, out, _ = _cli(capsys, url, artifacts, "rollback", "tiny", "--alias", "production", "--reason", "p99 over SLO")
    assert code == 0 and "production (tiny-box): 2 -> 1" in out
    code, out, _ = _cli(capsys, url, artifacts, "show", "tiny@production")
    assert code == 0 and out.startswith("tiny 1: gate PASS")
    code, out, _ = _cli(capsys, url, artifacts, "history", "tiny")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 6
    assert "rollback production" in lines[0] and "2 -> 1" in lines[0] and "reason: p99 over SLO" in lines[0]
    assert all("promote" in line for line in lines[2:]) and "none -> 1" in lines[-1]
    with Registry(url, artifacts=artifacts) as reg:
        moves = reg.history("tiny")
        assert [m.to_version for m in moves] == [1, 1, 2, 2, 1, 1]
        assert moves[0].evidence == str(reg.artifacts.path(dict((f.path, f.sha256) for f in v1.files)["report.html"]))
        assert all(m.user and not m.forced for m in moves)
        assert reg.verify() == []
    code, out, _ = _cli(capsys, url, artifacts, "versions", "tiny")
    assert code == 0 and "PASS" in out
    code, out, _ = _cli(capsys, url, artifacts, "registry", "verify")
    assert code == 0 and "0 problems" in out


def test_promotion_refused_without_pass_and_the_forced_override_recorded(backend, runs, capsys):
    url, artifacts = backend
    with Registry(url, artifacts=artifacts, create=True) as reg:
        v = reg.release(runs["fail"])
        assert v.verdict_status == "FAIL" and not any(t.passed for t in v.targets)
        with pytest.raises(PromotionRefused) as info:
            reg.promote("tiny", 1, "production")
        assert any("quality.accuracy" in line for line in info.value.failures)
    code, out, err = _cli(capsys, url, artifacts, "promote", "tiny", "1", "--alias", "production")
    assert code == 1 and "did not pass the gate" in err and "FAIL source: quality.accuracy" in out
    code, _, err = _cli(capsys, url, artifacts, "promote", "tiny", "1", "--alias", "production", "--force")
    assert code == 2 and "--reason" in err
    with Registry(url, artifacts=artifacts) as reg:
        assert reg.history("tiny") == []  # refusals write nothing
    code, out, _ = _cli(
        capsys, url, artifacts, "promote", "tiny", "1", "--alias", "production", "--target", "tiny-box",
        "--force", "--reason", "hotfix, accuracy check known to be too strict",
    )  # fmt: skip
    assert code == 0 and "(forced)" in out
    with Registry(url, artifacts=artifacts) as reg:
        (move,) = reg.history("tiny")
        assert move.forced and move.target == "tiny-box" and move.reason.startswith("hotfix")
        assert reg.show("tiny@production").aliases == ("production (tiny-box)",)
    code, out, _ = _cli(capsys, url, artifacts, "history", "tiny")
    assert "promote FORCED production (tiny-box)" in out


def test_aliases_are_per_target(backend, runs, capsys):
    url, artifacts = backend
    with Registry(url, artifacts=artifacts, create=True) as reg:
        reg.release(runs["pass"])
        reg.release(runs["pass"])
        reg.promote("tiny", 1, "production")
        reg.promote("tiny", 2, "production", targets=["tiny-box"])
        assert reg.show("tiny@production", target="tiny-box").number == 2
        assert reg.show("tiny@production", target="big-box").number == 1
        with pytest.raises(DeployableError, match="different versions per target"):
            reg.show("tiny@production")
        reg.promote("tiny", 2, "staging", targets=["big-box"])
        assert reg.show("tiny@staging").number == 2
        with pytest.raises(DeployableError, match="not set for target 'tiny-box'"):
            reg.show("tiny@staging", target="tiny-box")
        (move,) = reg.rollback("tiny", "production", reason="edge p99", targets=["tiny-box"])
        assert (move.from_version, move.to_version) == (2, 1)
        assert reg.show("tiny@production").number == 1
        (move,) = reg.rollback("tiny", "production", reason="try 2 on big-box", targets=["big-box"], to=2)
        assert (move.from_version, move.to_version) == (1, 2)
    code, _, err = _cli(capsys, url, artifacts, "promote", "tiny", "1", "--alias", "production", "--target", "tiny-bx")
    assert code == 2 and "did you mean 'tiny-box'" in err


def test_load_verifies_every_file_and_refuses_a_tampered_one(backend, runs, tmp_path):
    import torch

    from deployable.models import load_predictor

    url, artifacts = backend
    result = RunResult.load(runs["pass"])
    with Registry(url, artifacts=artifacts, create=True) as reg:
        v = reg.release(runs["pass"])
        reg.promote("tiny", 1, "production")
        predictor = reg.load("tiny@production", target="tiny-box")
        x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
        expected = load_predictor(result.source.spec).forward(x).logits
        np.testing.assert_allclose(predictor.forward(x).logits, expected, rtol=1e-6)
        assert all(str(artifacts) in str(f) for f in predictor.files)  # loaded from the registry, not the project
        assert isinstance(reg.load("tiny@1", target="big-box").forward(torch.from_numpy(x).numpy()).logits, np.ndarray)
        weights = next(f for f in v.files if f.path == "tiny.safetensors")
        stored = reg.artifacts.path(weights.sha256)
        stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
        actual = sha256_file(stored)
        with pytest.raises(DeployableError) as info:
            reg.load("tiny@production", target="tiny-box")
        message = info.value.one_line()
        assert str(stored) in message and weights.sha256 in message and actual in message and "\n" not in message
        problems = reg.verify()
        assert len(problems) == 1 and all(weights.sha256 in p.message and actual in p.message for p in problems)
        stored.unlink()
        with pytest.raises(DeployableError, match="found missing"):
            reg.load("tiny@production", target="tiny-box")
        assert all("missing" in p.message for p in reg.verify())
    # the checkout that is loaded is checked too, every time
    with Registry(url, artifacts=tmp_path / "other", create=True) as reg:
        reg.release(runs["pass"])
        reg.load("tiny@1", target="tiny-box")
        (checkout,) = (tmp_path / "other" / "checkouts").glob("*/tiny.safetensors")
        checkout.write_bytes(b"not the weights")
        with pytest.raises(DeployableError, match=r"tiny\.safetensors: expected sha256"):
            reg.load("tiny@1", target="tiny-box")


def test_verify_and_gc_from_the_cli(backend, runs, capsys):
    url, artifacts = backend
    with Registry(url, artifacts=artifacts, create=True) as reg:
        v = reg.release(runs["pass"])
        named = {f.sha256 for f in v.files}
        orphan = reg.artifacts.path("ab" * 32)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"left by a release killed before its commit")
        assert reg.gc() == []  # younger than the grace period: may belong to a release in flight
    code, out, _ = _cli(capsys, url, artifacts, "registry", "gc", "--min-age", "0")
    assert code == 0 and "removed 1 unnamed file" in out and not orphan.exists()
    with Registry(url, artifacts=artifacts) as reg:
        assert {p.name for _d, p in reg.artifacts.objects()} == named
        evidence = reg.artifacts.path(next(f.sha256 for f in v.files if f.path == "rmf.md"))
    evidence.unlink()
    code, out, _ = _cli(capsys, url, artifacts, "registry", "verify")
    assert code == 1 and "rmf.md" in out and "found missing" in out and "1 problem" in out


def test_bad_input_is_one_line_exit_2_and_writes_nothing(backend, runs, capsys, tmp_path):
    url, artifacts = backend
    with Registry(url, artifacts=artifacts, create=True) as reg:
        reg.release(runs["pass"])
        reg.promote("tiny", 1, "production")
        before = _snapshot(reg)
    cases = [
        (["promote", "tiny", "7", "--alias", "production"], "has no version 7"),
        (["promote", "tyny", "1", "--alias", "production"], "did you mean 'tiny'"),
        (["promote", "tiny", "1", "--alias", "123"], "not a valid alias"),
        (["rollback", "tiny", "--alias", "prod", "--reason", "x"], "no alias 'prod'"),
        (["rollback", "tiny", "--alias", "production", "--reason", "x"], "no earlier version"),
        (["show", "tiny@canary"], "no alias 'canary'"),
        (["show", "tiny"], "not NAME@ALIAS"),
        (["history", "nope"], "no model named 'nope'"),
        (["release", str(runs["none"])], "no gate verdict"),
        (["release", str(tmp_path)], "no results.json"),
    ]
    for args, expected in cases:
        code, out, err = _cli(capsys, url, artifacts, *args)
        assert code == 2, (args, out, err)
        assert expected in err and len(err.strip().splitlines()) == 1, (args, err)
    with Registry(url, artifacts=artifacts) as reg:
        assert _snapshot(reg) == before
    # a registry that does not exist is not created by a read or by a refused release
    missing = tmp_path / "nowhere" / "registry.db"
    for args in (["versions", "tiny"], ["release", str(runs["none"])]):
        code, _, err = _cli(capsys, str(missing), tmp_path / "a", *args)
        assert code == 2 and not missing.exists() and not (tmp_path / "a").exists()


def test_an_unreachable_server_is_one_line_with_the_password_masked(capsys, tmp_path, runs):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    url = f"postgresql+psycopg://deploy:{PG_PASSWORD}@127.0.0.1:{port}/registry"
    for args in (["versions", "tiny"], ["release", str(runs["pass"])], ["registry", "verify"]):
        code, out, err = _cli(capsys, url, tmp_path / "artifacts", *args)
        assert code == 2 and "cannot open it" in err and "deploy:***@127.0.0.1" in err, err
        assert PG_PASSWORD not in out + err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "artifacts").exists()


def test_wrong_password_is_masked(postgres, capsys, tmp_path):
    url = postgres.new_database().replace(PG_PASSWORD, "wrong-password-99")
    code, out, err = _cli(capsys, url, tmp_path, "versions", "tiny")
    assert code == 2 and "wrong-password-99" not in out + err and "postgres:***@" in err


def _old_registry(url: str, artifacts: Path) -> None:
    """A registry made by a deployable whose schema stopped at revision 0001, with a version in it."""
    from deployable.registry._engine import make_engine, parse_url, upgrade

    parsed = parse_url(url)
    engine = make_engine(parsed, create=True)
    upgrade(engine, parsed, to="0001")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        conn.execute(text("INSERT INTO models (id, name, created_at) VALUES (1, 'old', '2025-01-01')"))
        conn.execute(
            text(
                "INSERT INTO versions (id, model_id, number, created_at, created_by, run_folder, verdict_status, "
                "lineage, missing) VALUES (1, 1, 1, '2025-01-01', 'someone', '/runs/old', 'PASS', '{}', '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO version_targets (version_id, target, variant, passed, failed_checks) "
                "VALUES (1, 'edge-cpu', 'source', :t, '[]')"
            ),
            {"t": True},
        )
    engine.dispose()


def test_an_older_schema_is_migrated_and_a_newer_one_refused(backend, runs):
    url, artifacts = backend
    _old_registry(url, artifacts)
    with Registry(url, artifacts=artifacts) as reg:
        (old,) = reg.versions("old")  # opening it migrated it: the history table exists now
        assert old.number == 1 and old.created_by == "someone"
        assert reg.history("old") == []
        assert reg.release(runs["pass"]).number == 1
        with reg.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(DeployableError) as info:
        Registry(url, artifacts=artifacts).versions("old")
    assert "schema is version 0099, newer than this deployable's 0002" in info.value.one_line()


def test_a_release_is_refused_when_a_variant_file_is_gone(backend, runs, tmp_path):
    import shutil

    url, artifacts = backend
    copy = tmp_path / "run"
    shutil.copytree(runs["pass"], copy)
    results = json.loads((copy / "results.json").read_text())
    results["variants"][0]["files"] = [str(tmp_path / "gone.safetensors")]
    (copy / "results.json").write_text(json.dumps(results))
    reg = Registry(url, artifacts=artifacts, create=True)
    with pytest.raises(DeployableError, match="no longer exists"):
        reg.release(copy)
    assert not artifacts.exists()
    reg.close()


def test_run_release_and_the_default_registry_beside_the_config(tabular_project: Path, capsys, monkeypatch):
    import yaml

    from _registry_fixtures import QUICK

    monkeypatch.delenv("DEPLOYABLE_REGISTRY", raising=False)
    monkeypatch.delenv("DEPLOYABLE_REGISTRY_ARTIFACTS", raising=False)
    project = tabular_project.parent
    data = yaml.safe_load(tabular_project.read_text())
    data["evaluate"].update(QUICK)
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    out = project / "runs" / "a"
    assert main(["run", str(tabular_project), "-q", "--out", str(out), "--release"]) == 2  # no policy: no verdict
    assert "--release needs a gate verdict" in capsys.readouterr().err and not out.exists()
    data["policy"] = {"checks": ["quality.accuracy >= 0"]}
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", str(tabular_project), "-q", "--out", str(out), "--release"]) == 0
    db = project / ".deployable-cache" / "registry.db"
    assert f"released tiny 1 to sqlite:///{db}" in capsys.readouterr().out
    data["policy"] = {"checks": ["quality.accuracy >= 0.999"]}
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", str(tabular_project), "-q", "--out", str(project / "runs" / "b"), "--release"]) == 1
    assert "not released: gate FAIL" in capsys.readouterr().out
    assert main(["release", str(project / "runs" / "b")]) == 0  # released by hand, to the same registry
    capsys.readouterr()
    monkeypatch.chdir(project)  # commands without --registry use the project in the working directory
    assert main(["versions", "tiny"]) == 0
    assert "FAIL" in capsys.readouterr().out
    assert main(["show", "tiny@1", "--registry", str(project)]) == 0
    assert "tiny 1: gate PASS" in capsys.readouterr().out
    monkeypatch.chdir(project / "runs")
    assert main(["versions", "tiny"]) == 2
    assert "no deployable.yaml in the working directory" in capsys.readouterr().err


def test_a_released_version_serves_as_a_gate_baseline_on_the_same_split_only(backend, runs):
    from deployable.core.records import RunResult as Run

    url, artifacts = backend
    result = Run.load(runs["pass"])
    test_fp = next(s.fingerprint for s in result.dataset.splits if s.name == "test")
    with Registry(url, artifacts=artifacts, create=True) as reg:
        reg.release(runs["pass"])
        reg.promote("tiny", 1, "production")
        folder, variant = reg.baseline("tiny@production", target="tiny-box", split="test", fingerprint=test_fp)
        assert variant == "source" and Run.load(folder).name == "tiny"
        assert sha256_file(folder / "predictions" / "source.parquet") == sha256_file(
            runs["pass"] / "predictions" / "source.parquet"
        )
        with pytest.raises(DeployableError) as info:
            reg.baseline("tiny@production", target="tiny-box", split="test", fingerprint="f" * 64)
        assert test_fp in info.value.one_line() and "f" * 64 in info.value.one_line()


def test_a_file_stored_again_is_young_again_so_gc_keeps_it_for_the_release_in_flight(tmp_path):
    import os

    from deployable.registry._artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01" * 1000)
    digest, size = store.put(source)
    assert size == 2000 and store.check(digest) is None and store.path(digest).read_bytes() == source.read_bytes()
    os.utime(store.path(digest), (0, 0))  # an unnamed file from a release killed long ago
    assert store.remove_unnamed(set(), min_age_s=3600) == [digest]
    store.put(source)
    os.utime(store.path(digest), (0, 0))
    store.put(source)  # a new release stores the same bytes; its rows are not committed yet
    assert store.remove_unnamed(set(), min_age_s=3600) == [] and store.check(digest) is None
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_files_outside_the_project_are_stored_and_loaded_from_the_copy(backend, runs, tmp_path):
    """A spec may name files outside the config's folder (an encoder in site-packages, a tokenizer folder): they are
    stored under external/<i>/ and the loaded spec points at the verified copy, never at the original."""
    import shutil

    from deployable.models import load_predictor

    url, artifacts = backend
    run = tmp_path / "run"
    shutil.copytree(runs["pass"], run)
    results = json.loads((run / "results.json").read_text())
    source = results["variants"][0]
    outside = tmp_path / "elsewhere" / "weights"
    outside.mkdir(parents=True)
    shutil.copy(source["spec"]["weights"], outside / "tiny.safetensors")
    source["spec"]["weights"] = str(outside / "tiny.safetensors")
    source["files"] = [str(outside / "tiny.safetensors"), source["files"][1]]
    (run / "results.json").write_text(json.dumps(results))
    with Registry(url, artifacts=artifacts, create=True) as reg:
        v = reg.release(run)
        paths = {f.path for f in v.files if f.role == "variant:source"}
        assert paths == {"external/0/tiny.safetensors", "tinymodel.py"}
        predictor = reg.load("tiny@1", target="tiny-box")
        (outside / "tiny.safetensors").unlink()  # the original is gone: the copy is what was loaded
        assert all(str(artifacts) in str(f) for f in predictor.files)
        x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
        expected = load_predictor(RunResult.load(runs["pass"]).source.spec).forward(x).logits
        np.testing.assert_allclose(predictor.forward(x).logits, expected, rtol=1e-6)


def test_a_run_gates_against_a_released_version_through_policy_baseline_registry(tmp_path, monkeypatch):
    """Release and promote a run, then gate a new run of the same project against ``tiny@production``: the
    comparison reads the release's stored test predictions; other test data is refused naming both fingerprints."""
    import yaml

    from _registry_fixtures import _project
    from deployable.pipeline import run

    project = tmp_path / "project"
    project.mkdir()
    config = _project(project, {"checks": ["quality.accuracy >= 0"]})
    monkeypatch.setenv("DEPLOYABLE_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("DEPLOYABLE_REGISTRY_ARTIFACTS", str(tmp_path / "artifacts"))
    first = run(config, tmp_path / "v1", progress=False)
    assert main(["release", str(tmp_path / "v1")]) == 0
    assert main(["promote", "tiny", "1", "--alias", "production"]) == 0

    data = yaml.safe_load(config.read_text())
    data["policy"] = {"baseline": {"registry": "tiny@production", "target": "big-box"}, "checks": []}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    second = run(config, tmp_path / "v2", progress=False)
    verdict = second.verdict
    assert verdict is not None and verdict.baseline == "tiny@production"
    overall = next(c for c in verdict.comparisons if c.variant == "source" and c.group == "overall")
    assert (overall.better, overall.worse) == (0, 0)  # the same model against its own released predictions
    assert overall.n == first.evaluations[0].quality.n
    assert second.config["policy"]["baseline"]["registry"] == "tiny@production"  # the run records what it named

    # the same reference on other test samples: refused before any long work, both fingerprints named
    test = project / data["data"]["splits"]["test"]
    lines = test.read_text().splitlines()
    test.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(DeployableError) as info:
        run(config, tmp_path / "v3", progress=False)
    message = info.value.one_line()
    assert "policy.baseline.registry: tiny 1 was evaluated on a 'test' split with fingerprint" in message
    assert not (tmp_path / "v3").exists()
