"""What a release takes from a run folder: the chosen variant's files per target, the evidence, the monitor's
reference predictions, and the lineage. Reads only what the run wrote (results.json, the run folder, the
prediction store the run filled); computes nothing."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployable.core.errors import DeployableError
from deployable.core.hashing import hash_json
from deployable.core.records import RunResult, Variant, Verdict

EVIDENCE = ("results.json", "report.html", "model_card.md", "dataset_card.md", "rmf.md")
REFERENCE_SPLITS = ("validation", "test")


@dataclass
class Collected:
    name: str
    verdict_status: str
    targets: list[tuple[str, str, bool, list[str]]]  # target, variant, passed, failed checks
    files: list[tuple[str, str, Path]] = field(default_factory=list)  # role, relative path, file on disk
    lineage: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _check_line(c: Any) -> str:
    return f"{c.status} {c.variant or 'run'}: {c.name}: {c.message}"


def _targets(result: RunResult, verdict: Verdict) -> list[tuple[str, str, bool, list[str]]]:
    """Per target: the variant it ships, whether the gate passed it there, and the failed checks that concern it."""
    source = result.source
    failed = verdict.failed_checks()
    run_level = [c for c in failed if c.variant is None and c.critical]
    out = []
    chosen = {s.target: s for s in verdict.selections}
    for t in result.targets:
        s = chosen.get(t.name)
        variant = s.variant if s is not None else None
        if variant is not None:
            mine = [_check_line(c) for c in failed if c.variant in (None, variant)]
            out.append((t.name, variant, not run_level and verdict.passed, mine))
        else:  # nothing passed here: the source is what a forced promotion would ship
            reason = s.reason if s is not None else "the gate chose no variant"
            lines = [f"FAIL {t.name}: no variant passed ({reason})"] + [_check_line(c) for c in failed]
            out.append((t.name, source.name if source else "", False, lines))
    return out


def project_folder(result: RunResult, run_folder: Path) -> Path:
    """The folder of the run's config: the one holding its ``cache_dir``, found from the paths the run recorded
    (the source spec's ``base_dir``, then the folders above the data files and the variants' files)."""
    cache = str(result.config.get("cache_dir", ".deployable-cache"))
    candidates: list[Path] = []
    if result.source is not None and result.source.spec.get("base_dir"):
        candidates.append(Path(result.source.spec["base_dir"]))
    for p in [s.source for s in result.dataset.splits] + [f for v in result.variants for f in v.files]:
        candidates += list(Path(p).parents)
    for c in candidates:
        if c.is_absolute() and (c / cache).is_dir():
            return c
    return candidates[0] if candidates else run_folder.resolve()


def _variant_files(v: Variant, project: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """The variant's files with their paths in the version (relative to the project, or under ``external/<i>/``),
    and where each file or folder its spec names goes (so a copy can be loaded)."""
    from deployable.models.sources import PATH_KEYS

    roots = list(dict.fromkeys([*map(Path, v.files), *(Path(v.spec[k]) for k in PATH_KEYS if v.spec.get(k))]))
    out: list[tuple[str, Path]] = []
    moved: dict[str, str] = {}
    for i, root in enumerate(roots):
        if not root.exists():
            raise DeployableError(
                f"release: variant '{v.name}' names '{root}', which no longer exists",
                hint="rerun the pipeline to rebuild it, then release the new run folder",
            )
        try:
            rel_root = root.relative_to(project).as_posix()
        except ValueError:
            rel_root = f"external/{i}/{root.name}"
        moved[str(root)] = rel_root
        if root.is_dir():
            out += [(f"{rel_root}/{p.relative_to(root).as_posix()}", p) for p in sorted(root.rglob("*")) if p.is_file()]
        else:
            out.append((rel_root, root))
    moved[str(project)] = "."
    return out, moved


def _chain(result: RunResult, name: str) -> list[dict[str, Any]]:
    by_name = {v.name: v for v in result.variants}
    chain: list[dict[str, Any]] = []
    seen = set()
    while name in by_name and name not in seen:
        seen.add(name)
        v = by_name[name]
        chain.append({"name": v.name, "recipe": v.recipe, "sha256": v.sha256, "parent": v.parent})
        name = v.parent or ""
    return chain


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _reference(result: RunResult, variant: Variant, project: Path, c: Collected) -> None:
    """The stored validation and test predictions (logits, ids, penultimate features) of a shipped variant."""
    from deployable.evaluation.store import prediction_key

    store = project / str(result.config.get("cache_dir", ".deployable-cache")) / "predictions"
    try:
        ev = result.evaluation(variant.name)
    except KeyError:
        c.missing.append(f"reference predictions of {variant.name}: it was not evaluated")
        return
    sidecar = store / ev.store_key[:2] / f"{ev.store_key}.json"
    try:
        model_fp = json.loads(sidecar.read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError):
        c.missing.append(f"reference predictions of {variant.name}: the prediction store at {store} has no entry")
        return
    splits = {s.name: s.fingerprint for s in result.dataset.splits}
    for split in REFERENCE_SPLITS:
        if split not in splits:
            c.missing.append(f"{split} predictions of {variant.name}: the run has no {split} split")
            continue
        key = prediction_key(model_fp, splits[split])
        path = store / key[:2] / f"{key}.npz"
        if not path.is_file():
            c.missing.append(f"{split} predictions of {variant.name}: not in the prediction store")
            continue
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            if "features" not in z.files:
                c.missing.append(f"{split} penultimate features of {variant.name}: the model exposes none")
        c.files.append(("reference", f"{variant.name}/{split}.npz", path))


def collect(run_folder: str | Path) -> Collected:
    """Everything a release stores, read from a run folder (DeployableError when it cannot be released)."""
    folder = Path(run_folder)
    if not (folder / "results.json").is_file():
        raise DeployableError(
            f"release: {folder} is not a run folder (no results.json)",
            hint="pass the --out folder of deployable run or gate",
        )
    try:
        result = RunResult.load(folder)
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployableError(f"release: {folder}/results.json cannot be read ({exc})") from exc
    if result.verdict is None:
        raise DeployableError(
            f"release: {folder} has no gate verdict, so nothing says which variant may ship",
            hint="add a policy: section (checks or a baseline) and rerun, e.g. with deployable gate",
        )
    verdict = result.verdict
    c = Collected(name=result.name, verdict_status=verdict.status, targets=_targets(result, verdict))
    by_name = {v.name: v for v in result.variants}
    shipped = sorted({variant for _t, variant, _p, _f in c.targets if variant})
    project = project_folder(result, folder)
    moved: dict[str, dict[str, str]] = {}
    for name in shipped:
        if name not in by_name:
            raise DeployableError(f"release: the verdict chose '{name}', which results.json does not list")
        files, moved[name] = _variant_files(by_name[name], project)
        c.files += [(f"variant:{name}", rel, path) for rel, path in files]
        _reference(result, by_name[name], project, c)
    for name in EVIDENCE:
        if (folder / name).is_file():
            c.files.append(("evidence", name, folder / name))
        else:
            c.missing.append(f"evidence {name}: not in the run folder")
    for p in sorted((folder / "predictions").glob("*.parquet")):
        c.files.append(("evidence", f"predictions/{p.name}", p))
    source = result.source
    c.lineage = {
        "run": result.name,
        "run_created_at": result.created_at,
        "source_sha256": source.sha256 if source else None,
        "variants": {
            n: {"spec": by_name[n].spec, "sha256": by_name[n].sha256, "chain": _chain(result, n), "paths": moved[n]}
            for n in shipped
        },
        "config_digest": hash_json(result.config),
        "dataset_fingerprints": {s.name: s.fingerprint for s in result.dataset.splits},
        "deployable_version": result.deployable_version,
        "git_commit": _git_commit(project),
        "config_folder": str(project),
    }
    return c
