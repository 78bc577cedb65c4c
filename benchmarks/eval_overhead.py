"""Overhead of a whole ``deployable run`` over the bare forward passes it needs, on the support-tickets example.

In one process, after one warm-up run (which builds or reuses the variant artifacts: building the ONNX, INT8 and
FP16 files is not measured), alternating, several times:
  full  ``deployable.run`` of examples/support-tickets (load, scan + audit, optimize, evaluate every variant with
        robustness, attacks and OOD, the gate against the production model, the report) into a fresh run folder,
        with a cold prediction store (``use_cache=False``: every forward pass really happens) but the warm variant
        cache. Every ``forward`` call of every predictor the run makes (the source, each variant, the gate's
        baseline model) is recorded (predictor, batch, seconds, and the stage that asked: audit, optimize, evaluate,
        gate), by wrapping ``forward`` and ``__init__`` of the ``Predictor`` classes in this process only;
  bare  the same predictors loaded fresh (from their specs, timed) and the very recorded batches replayed through
        them in the same order, and nothing else (no store, no metrics, no files).
The wall time of each stage is taken by wrapping the stage entries the pipeline calls (``_prepare_and_load``;
``audit.model_outputs`` and ``audit_dataset``; ``optimize`` and ``judge_gain``; ``evaluate_variant``;
``gate.load_baseline`` and ``gate``; ``write_run_folder``); a stage's time minus its forward calls is its overhead,
shown with the model loading it includes. Time in ``run`` outside every stage (the store's setup and removal, the
run record, the gate's inputs, the run folder's rename) is shown as "between stages".

Excluded from the target, and printed apart: the audit's own model fitting, i.e. the whole of
``find_label_issues`` (the cross-validated logistic-regression probe and cleanlab), ``find_outliers`` (the
nearest-neighbour index) and ``find_poisoning`` (PCA, Ledoit-Wolf whitening, spectral signatures, k-means); they
fit models of their own on the stored features and would cost the same with no overhead at all. The rest of the
audit (duplicates, imbalance, previews) counts. Latency measurement on targets is off
(``evaluate.efficiency.enabled: false``): it is a separate, deliberate cost (timed calls in child processes), not
overhead. Model loading counts on both sides (the bare replay loads the same models). Only ``forward`` calls are
replayed; the run makes no gradient passes on this text example.

The last line printed is ``overhead ratio full/bare: R`` with
    R = (median full time - median audit model fitting time) / median bare time   (bare = loading + replay)
Target: at most 1.15. A line above it gives the same overhead read from the full runs alone,
1 + (median time outside forward - median audit model fitting) / median bare forward time, which does not depend on
the forward passes of two different runs timing alike (on a loaded 2-core machine they differ by a few percent
either way). ``--profile FILE`` also writes a cProfile of one more full run (not measured) to FILE.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_overhead.py [--repeats 3] [--profile run.prof]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import deployable
import deployable.pipeline
from deployable.config import load_config
from deployable.models import Predictor, load_predictor
from deployable.prepare import run_prepare

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"

# (module, attribute, stage): the entries ``deployable.pipeline.run`` calls, looked up by name at call time
STAGES = (
    ("deployable.pipeline", "_prepare_and_load", "load"),
    ("deployable.audit", "model_outputs", "audit"),
    ("deployable.audit", "audit_dataset", "audit"),
    ("deployable.gate", "load_baseline", "gate"),
    ("deployable.optimize", "optimize", "optimize"),
    ("deployable.evaluation", "evaluate_variant", "evaluate"),
    ("deployable.optimize", "judge_gain", "optimize"),  # after the evaluation: speed part of acceptance
    ("deployable.gate", "gate", "gate"),
    ("deployable.pipeline", "write_run_folder", "report"),
)
ORDER = ("load", "audit", "optimize", "evaluate", "gate", "report")
# the audit checks that fit models of their own (excluded from the target)
AUDIT_FITS = (
    ("deployable.audit.labels", "find_label_issues", "label issues (CV probe + cleanlab)"),
    ("deployable.audit.outliers", "find_outliers", "outliers (nearest neighbours)"),
    ("deployable.audit.poisoning", "find_poisoning", "poisoning (PCA, whitening, k-means)"),
)
PREDICTOR_MODULES = ("deployable.models.torch_models", "deployable.models.onnx_model", "deployable.optimize.student")


@dataclass
class Call:
    predictor: int  # index into Recording.specs
    batch: Any
    seconds: float
    stage: str
    part: str


@dataclass
class Recording:
    """What one full run did: forward calls, model loads, stage wall times, audit fitting times."""

    calls: list[Call] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)  # per predictor, in order of first use
    loaded_in: list[str] = field(default_factory=list)  # the stage each predictor was loaded in
    load_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # per stage
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    fit_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    built: list[str] = field(default_factory=list)  # variant artifacts built (must stay empty when measuring)
    total: float = 0.0
    labels: list[str] = field(default_factory=list)


class Recorder:
    """The one switch the wrappers look at: recording (during a full run) or pass-through (everything else)."""

    def __init__(self) -> None:
        self.rec: Recording | None = None
        self.stage: str | None = None
        self.depth = 0  # > 0 inside a wrapped forward or __init__ (inner calls pass through)
        self.index: dict[int, int] = {}  # id(predictor) -> index, for the predictors of this run
        self.alive: list[Predictor] = []  # keeps them alive (no id reuse) until the run ends
        self.entries: set[Any] = set()  # code objects of the stage entries


REC = Recorder()


def _register(predictor: Predictor) -> int:
    rec = REC.rec
    assert rec is not None
    i = REC.index.get(id(predictor))
    if i is None:
        i = REC.index[id(predictor)] = len(rec.specs)
        REC.alive.append(predictor)
        rec.specs.append(dict(predictor.spec))
        rec.loaded_in.append(predictor.__dict__.get("_bench_loaded_in", "(unknown)"))
    return i


def _qualname(frame: Any) -> str:
    return getattr(frame.f_code, "co_qualname", frame.f_code.co_name)


def _part(frame: Any) -> str:
    """Which part of the stage asked for a forward call: the function the stage entry called (its own closures
    skipped) and, when different, the nearest deployable function that called ``forward`` (``predict <split>``)."""
    chain = []
    while frame is not None and frame.f_code not in REC.entries:
        if "/deployable/" in frame.f_code.co_filename and "/deployable/models/" not in frame.f_code.co_filename:
            chain.append(frame)
        frame = frame.f_back
    if frame is None or not chain:
        return "(outside any stage entry)"
    closures = _qualname(frame) + ".<locals>."
    first = next((f for f in reversed(chain) if not _qualname(f).startswith(closures)), chain[-1])

    def name(f: Any) -> str:
        if f.f_code.co_name != "predict":
            return f.f_code.co_name
        split, perturbation = f.f_locals.get("split"), f.f_locals.get("perturbation")
        kind = f" [{perturbation.get('kind', 'perturbed')}]" if perturbation else ""
        return f"predict {getattr(split, 'name', '?')}{kind}"

    last = chain[0]
    return name(first) if last is first else f"{name(first)} ... {name(last)}"


def _wrap_forward(fn: Any) -> Any:
    @functools.wraps(fn)
    def forward(self: Predictor, batch: Any) -> Any:
        if REC.rec is None or REC.depth:
            return fn(self, batch)
        REC.depth += 1
        start = time.perf_counter()
        try:
            out = fn(self, batch)
        finally:
            REC.depth -= 1
        seconds = time.perf_counter() - start
        REC.rec.calls.append(
            Call(_register(self), batch, seconds, REC.stage or "(between stages)", _part(sys._getframe(1)))
        )
        return out

    forward._bench = True  # type: ignore[attr-defined]
    return forward


def _wrap_init(fn: Any) -> Any:
    @functools.wraps(fn)
    def __init__(self: Predictor, *args: Any, **kwargs: Any) -> None:
        if REC.rec is None or REC.depth:
            fn(self, *args, **kwargs)
            return
        REC.depth += 1
        start = time.perf_counter()
        try:
            fn(self, *args, **kwargs)
        finally:
            REC.depth -= 1
        stage = REC.stage or "(between stages)"
        REC.rec.load_seconds[stage] += time.perf_counter() - start
        self.__dict__["_bench_loaded_in"] = stage
        _register(self)  # loaded in bare too, even if it never runs

    __init__._bench = True  # type: ignore[attr-defined]
    return __init__


def patch_predictors() -> None:
    """Wrap ``forward`` and ``__init__`` of every Predictor class imported so far (call again after imports)."""
    for name in PREDICTOR_MODULES:
        with contextlib.suppress(ImportError):  # optional extras
            importlib.import_module(name)
    todo, seen = list(Predictor.__subclasses__()), set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        for attr, wrap in (("forward", _wrap_forward), ("__init__", _wrap_init)):
            fn = cls.__dict__.get(attr)
            if fn is not None and not getattr(fn, "_bench", False) and not getattr(fn, "__isabstractmethod__", False):
                setattr(cls, attr, wrap(fn))


def _wrap_stage(stage: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def entry(*args: Any, **kwargs: Any) -> Any:
        if REC.rec is None or REC.stage is not None:  # an entry inside another stage belongs to that stage
            return fn(*args, **kwargs)
        REC.stage = stage
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            REC.rec.stage_seconds[stage] += time.perf_counter() - start
            REC.stage = None

    return entry


def _wrap_fit(label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def fit(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if REC.rec is not None:
                REC.rec.fit_seconds[label] += time.perf_counter() - start

    return fit


def _wrap_build_once(fn: Any) -> Any:
    @functools.wraps(fn)
    def build_once(folder: Any, build: Any, **kwargs: Any) -> Any:
        built = fn(folder, build, **kwargs)
        if built and REC.rec is not None:
            REC.rec.built.append(Path(folder).name)
        return built

    return build_once


def patch_stages() -> None:
    for module, attr, stage in STAGES:
        mod = importlib.import_module(module)
        fn = getattr(mod, attr, None)
        if fn is None:
            print(f"  warning: no {module}.{attr}: its stage's time shows as between stages")
            continue
        REC.entries.add(fn.__code__)
        setattr(mod, attr, _wrap_stage(stage, fn))
    for module, attr, label in AUDIT_FITS:
        mod = importlib.import_module(module)
        setattr(mod, attr, _wrap_fit(label, getattr(mod, attr)))
    base = importlib.import_module("deployable.optimize.base")
    if hasattr(base, "build_once"):
        base.build_once = _wrap_build_once(base.build_once)


def full(project: Any, *, profile: str | None = None) -> Recording:
    out = Path(tempfile.mkdtemp(prefix="deployable-bench-")) / "run"
    rec = REC.rec = Recording()
    profiler = None
    gc.collect()  # the previous run's predictors (torch hooks make cycles) go before the clock starts
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    try:
        result = deployable.run(project, out, use_cache=False)
    finally:
        rec.total = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        REC.rec, REC.stage = None, None
        REC.index.clear()
        REC.alive.clear()
        shutil.rmtree(out.parent, ignore_errors=True)
    rec.labels = [_label(spec, stage, result) for spec, stage in zip(rec.specs, rec.loaded_in, strict=True)]
    return rec


def _label(spec: dict[str, Any], stage: str, result: Any) -> str:
    keys = ("type", "path", "encoder", "head")
    for v in result.variants:
        if all(v.spec.get(k) == spec.get(k) for k in keys):
            return v.name
    return "baseline" if stage == "gate" else f"{spec.get('type')} loaded in {stage}"


def bare(rec: Recording) -> tuple[float, float, list[float]]:
    """Load the run's predictors fresh and replay its forward calls in order: (total, loading, per-call seconds)."""
    gc.collect()
    start = time.perf_counter()
    predictors = [load_predictor(spec) for spec in rec.specs]
    loading = time.perf_counter() - start
    per_call = []
    for call in rec.calls:
        t = time.perf_counter()
        predictors[call.predictor].forward(call.batch)
        per_call.append(time.perf_counter() - t)
    return time.perf_counter() - start, loading, per_call


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _forward_by(rec: Recording, per_call: list[float] | None, key: Any) -> dict[Any, float]:
    """Forward seconds of a run (or, with ``per_call``, of its bare replay) summed by ``key(call)``."""
    out: dict[Any, float] = defaultdict(float)
    for i, call in enumerate(rec.calls):
        out[key(call)] += per_call[i] if per_call is not None else call.seconds
    return out


def report(recs: list[Recording], bares: list[tuple[float, float, list[float]]]) -> None:
    n, last = len(recs), recs[-1]
    stages = [s for s in ORDER if any(s in r.stage_seconds for r in recs)]
    stages += sorted({c.stage for r in recs for c in r.calls} - set(stages))
    loaded = ", ".join(f"{lab} ({s})" for lab, s in zip(last.labels, last.loaded_in, strict=True))
    print(f"predictors of the run (the stage that loaded them): {loaded}")

    def median_of(key: Any, pick: Any, bare_side: bool = False) -> float:
        return _median(
            [_forward_by(r, b[2] if bare_side else None, key).get(pick, 0.0) for r, b in zip(recs, bares, strict=True)]
        )

    def by_stage(c: Call) -> str:
        return c.stage

    def by_part(c: Call) -> tuple[str, str]:
        return c.stage, c.part

    print(f"forward calls by the stage that asked (seconds, median of {n}: in full / replayed bare):")
    for stage in stages:
        calls = [c for c in last.calls if c.stage == stage]
        if not calls:
            continue
        f, b = median_of(by_stage, stage), median_of(by_stage, stage, True)
        print(f"  {stage}: {len(calls)} calls, {sum(len(c.batch) for c in calls)} samples; {f:.2f} s / {b:.2f} s")
        for part in dict.fromkeys(c.part for c in calls):
            these = [c for c in calls if c.part == part]
            f, b = median_of(by_part, (stage, part)), median_of(by_part, (stage, part), True)
            print(f"    {part}: {len(these)} calls, {sum(len(c.batch) for c in these)} samples; {f:.2f} s / {b:.2f} s")
    per_predictor = defaultdict(float)
    for c in last.calls:
        per_predictor[last.labels[c.predictor]] += c.seconds
    print("  by predictor (last repeat): " + ", ".join(f"{k} {v:.2f} s" for k, v in per_predictor.items()))

    print(f"time outside forward passes per stage (median of {n}): wall - forward = outside (of which model loading)")
    fit = _median([sum(r.fit_seconds.values()) for r in recs])
    for stage in stages:
        wall = _median([r.stage_seconds.get(stage, 0.0) for r in recs])
        fwd = median_of(by_stage, stage)
        out = _median([r.stage_seconds.get(stage, 0.0) - _forward_by(r, None, by_stage).get(stage, 0.0) for r in recs])
        load = _median([r.load_seconds.get(stage, 0.0) for r in recs])
        line = f"  {stage}: {wall:.2f} - {fwd:.2f} = {out:.2f} s (model loading {load:.2f} s)"
        if stage == "audit":
            line += f"; of which audit model fitting {fit:.2f} s (below), the rest {out - fit:.2f} s"
        print(line)
    between = _median([r.total - sum(r.stage_seconds.values()) for r in recs])
    print(f"  between stages (store setup and removal, run record, gate inputs, folder rename): {between:.2f} s")
    outside = _median([r.total - sum(c.seconds for c in r.calls) for r in recs])
    print(f"  all outside forward: {outside:.2f} s; without the audit model fitting: {outside - fit:.2f} s")

    print(f"audit model fitting, excluded from the target (median of {n}):")
    for _, _, label in AUDIT_FITS:
        print(f"  {label}: {_median([r.fit_seconds.get(label, 0.0) for r in recs]):.2f} s")
    print(f"  total: {fit:.2f} s")

    f, b, load = _median([r.total for r in recs]), _median([x[0] for x in bares]), _median([x[1] for x in bares])
    samples = sum(len(c.batch) for c in last.calls)
    print(f"full run, {len(last.calls)} forward calls on {samples} samples (median of {n}): {f:.2f} s")
    print(f"full run minus the audit model fitting: {f - fit:.2f} s")
    print(f"bare, loading the {len(last.specs)} predictors ({load:.2f} s) + the same calls (median of {n}): {b:.2f} s")
    bare_forward = _median([sum(x[2]) for x in bares])
    print(
        f"  (less noisy reading: 1 + outside forward without the fitting / bare forward = "
        f"{1 + (outside - fit) / bare_forward:.3f}; the forward passes themselves are where the noise is)"
    )
    print("target: at most 1.15")
    print(f"overhead ratio full/bare: {(f - fit) / b:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one more full run (not measured)")
    args = parser.parse_args()
    project = load_config(CONFIG)
    run_prepare(project)
    data = project.model_dump()
    data["evaluate"]["efficiency"]["enabled"] = False
    data.pop("base_dir")
    project = load_config(data, base_dir=CONFIG.parent)
    print(
        f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f} (anything else running skews both)"
    )
    patch_stages()
    patch_predictors()
    start = time.perf_counter()
    warm = full(project)  # builds (or reuses) the variants; warms imports, files, allocator
    print(
        f"warm-up run (not measured): {time.perf_counter() - start:.1f} s, {len(warm.built)} variant artifact(s) built"
    )
    patch_predictors()  # classes first imported by the warm-up
    recs, bares = [], []
    for i in range(args.repeats):
        rec = full(project)
        if rec.built:
            print(f"  warning: repeat {i + 1} built {rec.built}: the variant cache changed under the benchmark")
        replay = bare(rec)
        recs.append(rec)
        bares.append(replay)
        fit = sum(rec.fit_seconds.values())
        print(f"repeat {i + 1}: full {rec.total:.2f} s (audit model fitting {fit:.2f} s), bare {replay[0]:.2f} s")
        for name in ORDER:
            if name not in rec.stage_seconds:
                print(f"  warning: stage '{name}' was never entered (renamed entry?): its time shows as between stages")
    if args.profile:
        full(project, profile=args.profile)
        print(f"cProfile of one more full run written to {args.profile}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    report(recs, bares)


if __name__ == "__main__":
    main()
