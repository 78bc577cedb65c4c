"""One pass down the pipeline: config -> load -> evaluate -> report. The CLI and the Python API both call this."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployable._version import __version__
from deployable.config import Project, load_config, resolve_targets
from deployable.core.errors import DeployableError
from deployable.core.records import SCHEMA_VERSION, AuditCheck, AuditResult, RunResult

if TYPE_CHECKING:
    from deployable.data import Dataset
    from deployable.evaluation import PredictionStore, Progress
    from deployable.models import Predictor


def _environment() -> dict[str, str]:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count() or 1),
    }
    import importlib.metadata as md

    for pkg in ("numpy", "torch", "transformers", "onnxruntime", "scikit-learn"):
        with contextlib.suppress(md.PackageNotFoundError):
            env[pkg] = md.version(pkg)
    return env


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from deployable.evaluation import Progress

    if not enabled:
        yield Progress(None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        yield Progress(bar)


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out`` that replaces ``out`` only when the block succeeds."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the run folder is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(
    config: str | Path | dict[str, Any] | Project,
    out: str | Path | None = None,
    *,
    progress: bool = False,
    use_cache: bool = True,
    console: Any = None,
) -> RunResult:
    """Run the pipeline for a config and (when ``out`` is given) write the run folder.

    Args:
        config: path to ``deployable.yaml``, its parsed mapping, or a :class:`Project`.
        out: run folder to write (``results.json``, ``report.html``, ``predictions/<variant>.parquet``).
        progress: show rich progress bars.
        use_cache: reuse stored predictions; False recomputes them (and overwrites the store).
        console: a rich console for prepare-step messages.

    Returns:
        The :class:`RunResult` record (what ``results.json`` holds).
    """
    from deployable.evaluation import PredictionStore, evaluate_variant
    from deployable.models import source_variant

    project = config if isinstance(config, Project) else load_config(config)
    timings: dict[str, float] = {}
    dataset, predictor, scan = _prepare_and_load(project, timings, console=console, refuse=True)
    variant = source_variant(predictor)
    targets = resolve_targets(project, os.cpu_count() or 1)

    cache_root = project.path(project.cache_dir) / "predictions"
    if not use_cache:
        cache_root = Path(tempfile.mkdtemp(prefix="deployable-nocache-"))
    store = PredictionStore(cache_root)

    def build(folder: Path | None) -> RunResult:
        with _progress(progress) as bar:
            variants = [variant]
            predictors = {variant.name: predictor}
            t = time.perf_counter()
            audit = _with_scan(_audit_stage(project, dataset, predictor, store, progress=bar), scan)
            timings["audit"] = time.perf_counter() - t
            baseline = None  # loaded before the long work, so a wrong baseline fails fast
            if project.policy.baseline is not None:
                from deployable.gate import load_baseline

                t = time.perf_counter()
                released = _released_baseline(project, dataset, targets)
                baseline = load_baseline(released, dataset, store, progress=bar)
                timings["baseline"] = time.perf_counter() - t
            if project.optimize.recipes:
                from deployable.optimize import OptimizeContext, optimize

                t = time.perf_counter()
                ctx = OptimizeContext(
                    cfg=project.optimize,
                    dataset=dataset,
                    store=store,
                    workdir=project.path(project.cache_dir) / "variants",
                    batch_size=project.evaluate.batch_size,
                    progress=bar,
                    predictors={"source": predictor},
                    held_out=(project.evaluate.test_split, project.evaluate.ood.split),
                )
                made = optimize(ctx, variant)
                variants += made
                predictors.update({v.name: ctx.predictors[v.name] for v in made})
                timings["optimize"] = time.perf_counter() - t
            t = time.perf_counter()
            evaluations = []
            reference = None
            for v in variants:
                ev = evaluate_variant(
                    v,
                    predictors[v.name],
                    dataset,
                    project.evaluate,
                    store,
                    targets=targets,
                    progress=bar,
                    predictions_dir=folder / "predictions" if folder else None,
                    reference=reference,
                    attack_source=(variants[0].name, predictors[variants[0].name]),
                )
                if reference is None:  # the source: every other variant is compared with it
                    reference = (v.name, store.get(ev.store_key).logits)
                evaluations.append(ev)
            timings["evaluate"] = time.perf_counter() - t
            if len(variants) > 1:  # speed is part of acceptance: timed now, judged now
                from deployable.optimize import judge_gain

                variants = judge_gain(variants, evaluations, project.optimize.min_gain)
        result = _record(project, dataset, timings, variants=variants, targets=targets, evaluations=evaluations,
                         audit=audit)  # fmt: skip
        if project.policy.checks or project.policy.baseline is not None:
            from deployable.gate import gate

            split = dataset.split(project.evaluate.test_split)
            correct = {ev.variant: store.get(ev.store_key).logits.argmax(axis=1) == split.labels for ev in evaluations}
            result = result.replace(
                verdict=gate(result, project.policy, baseline=baseline, split=split, correct=correct)
            )
        return result

    try:
        if out is None:
            return build(None)
        with atomic_dir(Path(out)) as folder:
            result = build(folder)
            write_run_folder(result, folder)
        return result
    finally:
        if not use_cache:
            shutil.rmtree(cache_root, ignore_errors=True)


def _released_baseline(project: Project, dataset: Dataset, targets: list[Any]) -> Project:
    """``project`` with a ``policy.baseline.registry`` version resolved to the verified copy of its stored run
    evidence (``run``) and the variant it ships to the baseline's target; unchanged for any other baseline.

    The registry comes after the gate in the pipeline, so the gate never reads it: the pipeline hands it a run
    folder, which the gate already knows how to compare with.
    """
    cfg = project.policy.baseline
    if cfg is None or cfg.registry is None:
        return project
    from deployable.registry import registry_of_project

    names = [t.name for t in targets]
    target = cfg.target or (names[0] if names else None)
    if target is None:
        raise DeployableError("policy.baseline.registry: the project has no target to choose a released variant by",
                              hint="set policy.baseline.target")  # fmt: skip
    test = dataset.split(project.evaluate.test_split)
    with registry_of_project(project) as registry:
        folder, variant = registry.baseline(cfg.registry, target=target, split=test.name, fingerprint=test.fingerprint)
    resolved = cfg.model_copy(update={"run": str(folder), "variant": variant, "registry": None, "target": None,
                                      "name": cfg.name or cfg.registry})  # fmt: skip
    return project.model_copy(update={"policy": project.policy.model_copy(update={"baseline": resolved})})


def _prepare_and_load(
    project: Project, timings: dict[str, float], *, console: Any, refuse: bool
) -> tuple[Any, Any, tuple[list[Any], list[str], AuditCheck]]:
    """Run the prepare steps, load the data, scan the model files and (unless the scan refuses them) load the model.

    Returns:
        The dataset, the predictor (None when the scan blocked it and ``refuse`` is False), and the scan's findings,
        scanned files and check.
    """
    from deployable.audit import scan_model
    from deployable.data import load_dataset
    from deployable.models import load_predictor, model_spec
    from deployable.prepare import run_prepare

    t = time.perf_counter()
    run_prepare(project, log=console)
    timings["prepare"] = time.perf_counter() - t
    t = time.perf_counter()
    dataset = load_dataset(project)
    spec = model_spec(project)
    findings, scanned, check, blocked = scan_model(spec, refuse=refuse)  # before anything unpickles the files
    predictor = None if blocked else load_predictor(spec)
    timings["load"] = time.perf_counter() - t
    return dataset, predictor, (findings, scanned, check)


def _with_scan(audit: AuditResult, scan: tuple[list[Any], list[str], AuditCheck]) -> AuditResult:
    findings, scanned, check = scan
    return audit.replace(
        findings=(*findings, *audit.findings), checks=(check, *audit.checks), scanned_files=tuple(scanned)
    )


def _record(
    project: Project,
    dataset: Any,
    timings: dict[str, float],
    *,
    variants: list[Any],
    targets: list[Any],
    evaluations: list[Any],
    audit: AuditResult,
) -> RunResult:
    """The run record (what ``results.json`` holds) of a ``run`` or an ``audit``."""
    return RunResult(
        schema_version=SCHEMA_VERSION,
        name=project.name,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        deployable_version=__version__,
        config=_public_config(project),
        dataset=dataset.info(),
        variants=tuple(variants),
        targets=tuple(targets),
        evaluations=tuple(evaluations),
        environment=_environment(),
        timings_s=timings,
        audit=audit,
    )


def _audit_stage(
    project: Project,
    dataset: Dataset,
    predictor: Predictor | None,
    store: PredictionStore,
    *,
    progress: Progress | None = None,
) -> AuditResult:
    """The data audit of a run (the model's outputs on every split come from, or go into, the store).

    ``predictor`` None audits the data alone (the model was refused by the scan).
    """
    from deployable.audit import audit_dataset, model_outputs

    if not project.audit.enabled:
        return AuditResult(
            findings=(), checks=(AuditCheck(name="data", status="skipped", reason="audit.enabled is false"),)
        )
    outputs = None
    if predictor is not None:
        outputs = model_outputs(predictor, dataset, store, batch_size=project.evaluate.batch_size, progress=progress)
    return audit_dataset(dataset, project.audit, outputs=outputs, progress=progress)


def scan_and_audit(
    config: str | Path | dict[str, Any] | Project,
    out: str | Path | None = None,
    *,
    progress: bool = False,
    console: Any = None,
) -> RunResult:
    """Scan the model files and audit the data, without optimizing or evaluating (``deployable audit``).

    A model the scan refuses is not loaded: the data is then audited alone and the scan's findings say why.
    The run folder gets ``results.json`` (with no evaluations), ``report.html`` and ``dataset_card.md``.
    """
    from deployable.evaluation import PredictionStore
    from deployable.models import source_variant

    project = config if isinstance(config, Project) else load_config(config)
    timings: dict[str, float] = {}
    dataset, predictor, scan = _prepare_and_load(project, timings, console=console, refuse=False)
    store = PredictionStore(project.path(project.cache_dir) / "predictions")
    t = time.perf_counter()
    with _progress(progress) as bar:
        found = _with_scan(_audit_stage(project, dataset, predictor, store, progress=bar), scan)
    timings["audit"] = time.perf_counter() - t
    variants = [source_variant(predictor)] if predictor is not None else []
    result = _record(project, dataset, timings, variants=variants, targets=[], evaluations=[], audit=found)
    if out is not None:
        with atomic_dir(Path(out)) as folder:
            write_run_folder(result, folder)
    return result


def write_run_folder(result: RunResult, folder: Path) -> None:
    from deployable.report import write_dataset_card, write_model_card, write_report, write_results_json, write_rmf

    write_results_json(result, folder / "results.json")
    write_report(result, folder / "report.html")
    write_dataset_card(result, folder / "dataset_card.md")
    if result.evaluations:
        write_model_card(result, folder / "model_card.md")
    write_rmf(result, folder / "rmf.md")


def _public_config(project: Project) -> dict[str, Any]:
    data = project.model_dump(mode="json")
    data.pop("base_dir", None)
    return data


def evaluate(
    model: str | Path,
    data: str | Path | dict[str, str],
    *,
    out: str | Path | None = None,
    model_type: str | None = None,
    name: str = "adhoc",
    progress: bool = False,
    **options: Any,
) -> RunResult:
    """Evaluate a model on data without a config file.

    Args:
        model: a model folder (transformers), ``.onnx``, ``.pt``/``.pts`` TorchScript file.
        data: the test file, or split name -> file.
        model_type: override the guess from ``model``'s path.
        options: other ``data`` keys (``text_column``, ``label_column``, ``labels``, ``slices``...), plus
            ``tokenizer`` for ONNX text models, ``targets`` and ``evaluate`` sections.
    """
    model_path = Path(model)
    kind = model_type or _guess_model_type(model_path)
    model_cfg: dict[str, Any] = {"type": kind, "path": str(model_path.resolve())}
    if options.get("tokenizer"):
        model_cfg["tokenizer"] = str(Path(options.pop("tokenizer")).resolve())
    splits = {"test": data} if isinstance(data, (str, Path)) else dict(data)
    splits = {k: str(Path(v).resolve()) for k, v in splits.items()}
    cfg: dict[str, Any] = {"name": name, "model": model_cfg, "data": {"splits": splits}}
    for key in ("targets", "evaluate", "cache_dir"):
        if key in options:
            cfg[key] = options.pop(key)
    cfg["data"].update({k: v for k, v in options.items() if v is not None})
    return run(load_config(cfg, base_dir=Path.cwd()), out, progress=progress)


def _guess_model_type(path: Path) -> str:
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix in {".pt", ".pts", ".jit"}:
        return "torchscript"
    if path.is_dir() and (path / "config.json").is_file():
        return "transformers"
    raise DeployableError(
        f"--model: cannot tell the model type of '{path}'", hint="pass --model-type transformers|onnx|torchscript"
    )
