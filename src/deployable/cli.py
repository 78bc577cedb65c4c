"""The command line: parse, call the library, render, set the exit code. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployable.core.errors import DeployableError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Decide, with evidence, which version of a model may ship, to which hardware.",
)
console = Console(stderr=True)
out_console = Console()

_state: dict[str, Any] = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from deployable._version import __version__

        print(f"deployable {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    _state["debug"] = debug


def _summary(result: Any, out: Path | None) -> None:
    from deployable.report._format import kept_in_float

    table = Table(title=f"{result.name} · {result.evaluations[0].split} split, n={result.evaluations[0].quality.n}")
    table.add_column("variant", no_wrap=True)
    for col in ("accuracy", "macro-F1", "ECE", "ECE after T"):
        table.add_column(col, justify="right")
    for eff in result.evaluations[0].efficiency:
        for lat in eff.latency:
            table.add_column(f"{eff.target}\nbatch {lat.batch_size} p50", justify="right")
    status = {v.name: v.status for v in result.variants}
    kept = {v.name: f" ({k})" if (k := kept_in_float(v.recipe)) else "" for v in result.variants}
    for ev in result.evaluations:
        q, c = ev.quality, ev.calibration
        name = ev.variant + kept.get(ev.variant, "")
        if status.get(ev.variant) in ("rejected", "no gain"):
            name = f"{name} ({status[ev.variant]})"
        row = [name, f"{q.accuracy:.1%}", f"{q.macro_f1:.3f}", f"{c.ece:.3f}", f"{c.ece_after_temperature:.3f}"]
        row += [f"{lat.p50_ms:.3g} ms" for eff in ev.efficiency for lat in eff.latency]
        table.add_row(*row)
    out_console.print(table)
    worst = sorted(result.evaluations[0].slices, key=lambda s: s.accuracy.value)[:3]
    if worst:
        out_console.print(
            "weakest slices: "
            + "; ".join(
                f"{s.column}={s.value} {s.accuracy.value:.1%} [{s.accuracy.low:.1%}, {s.accuracy.high:.1%}] n={s.n}"
                for s in worst
            )
        )
    if result.audit is not None:
        counts = ", ".join(f"{n} {sev}" for sev, n in result.audit.counts.items() if n) or "no findings"
        worst = [f for f in result.audit.findings if f.severity in ("critical", "high")]
        out_console.print(
            f"audit: {counts}" + (f"; first: {worst[0].message}" if worst else ""), soft_wrap=True, markup=False
        )
    if out is not None:
        out_console.print(
            f"wrote {out}/results.json, report.html, model_card.md, dataset_card.md, rmf.md, predictions/",
            soft_wrap=True,
        )


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="deployable.yaml, or a folder holding one")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder to write")] = Path("runs/latest"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute predictions")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key: key.path=value")] = None,
    release: Annotated[
        bool, typer.Option("--release", help="release the run to the registry when the gate passes")
    ] = False,
    registry: Annotated[str | None, typer.Option("--registry", help="with --release: the registry URL")] = None,
) -> None:
    """Run the pipeline a config describes and write the run folder."""
    from deployable.config import load_config
    from deployable.pipeline import run as run_pipeline

    project = load_config(config, overrides=set_)
    if release and not project.policy.checks and project.policy.baseline is None:
        raise DeployableError(
            f"{config}: --release needs a gate verdict, but the policy: section has no checks and no baseline",
            hint="add policy.checks (e.g. ['calibration.ece <= 0.05']) or policy.baseline; see docs/gate.md",
        )
    result = run_pipeline(project, out, progress=not quiet, use_cache=not no_cache, console=console)
    _summary(result, out)
    if release:
        _release_if_passed(result, out, registry)
    _verdict(result)


def _release_if_passed(result: Any, out: Path, registry: str | None) -> None:
    if result.verdict is None or not result.verdict.passed:
        status = result.verdict.status if result.verdict is not None else "no verdict"
        out_console.print(f"not released: gate {status}", markup=False, highlight=False)
        return
    from deployable.registry import registry_of_run

    with registry_of_run(out, registry) as reg:
        v = reg.release(out)
        out_console.print(f"released {v.name} {v.number} to {reg.shown}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def optimize(
    config: Annotated[Path, typer.Argument(help="deployable.yaml with an optimize: section, or its folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder to write")] = Path("runs/latest"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Make the variants the config's optimize: section lists, evaluate each against the source, write the run."""
    from deployable.config import config_file, load_config
    from deployable.pipeline import run as run_pipeline

    config = config_file(config)  # a project folder names its deployable.yaml in the messages below
    project = load_config(config)
    if not project.optimize.recipes:
        raise DeployableError(
            f"{config}: optimize.recipes is empty, so there is nothing to optimize",
            hint="add recipes such as [onnx-fp32, onnx-fused, int8-dynamic]; see docs/config.md",
        )
    result = run_pipeline(project, out, progress=not quiet, console=console)
    _summary(result, out)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option("--model", "-m", help="model folder, .onnx or TorchScript file")],
    data: Annotated[Path, typer.Option("--data", "-d", help="labelled test file (jsonl, csv, parquet, npz)")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/adhoc"),
    model_type: Annotated[str | None, typer.Option(help="transformers | onnx | torchscript")] = None,
    validation: Annotated[Path | None, typer.Option(help="split to fit the temperature on")] = None,
    text_column: Annotated[str | None, typer.Option(help="text column (text data)")] = None,
    feature_columns: Annotated[str | None, typer.Option(help="comma-separated numeric columns (tabular)")] = None,
    label_column: Annotated[str, typer.Option()] = "label",
    labels: Annotated[str | None, typer.Option(help="comma-separated class names in logit order")] = None,
    slices: Annotated[str | None, typer.Option(help="comma-separated slice columns")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer folder for ONNX text models")] = None,
    target: Annotated[list[str] | None, typer.Option(help="built-in target, repeatable (default: all)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate a model on data given on the command line, without a config file."""
    from deployable.pipeline import evaluate as evaluate_api

    splits = {"test": str(data)}
    if validation is not None:
        splits["validation"] = str(validation)
    split_list = lambda s: [p.strip() for p in s.split(",") if p.strip()] if s else None  # noqa: E731
    options: dict[str, Any] = {
        "text_column": text_column,
        "feature_columns": split_list(feature_columns),
        "label_column": label_column,
        "labels": split_list(labels),
        "slices": split_list(slices) or [],
    }
    if tokenizer is not None:
        options["tokenizer"] = str(tokenizer)
    if target:
        options["targets"] = list(target)
    result = evaluate_api(model, splits, out=out, model_type=model_type, progress=not quiet, **options)
    _summary(result, out)


def _verdict(result: Any) -> None:
    """Print the gate's verdict (one line per chosen variant and per failed check); exit 1 when it failed."""
    v = result.verdict
    if v is None:
        return
    style = "bold green" if v.passed else "bold red"
    out_console.print(f"[{style}]gate: {v.status}[/]" + (f" (baseline: {escape(v.baseline)})" if v.baseline else ""))
    for s in v.selections:
        chosen = s.variant or "none"
        out_console.print(f"  {s.target}: {chosen} ({s.reason})", soft_wrap=True, markup=False, highlight=False)
    from deployable.gate.summary import summarize

    summary = summarize(v)
    counts = []
    if summary.warnings:
        k = len(summary.warnings)
        counts.append(f"{k} warning{'s' if k != 1 else ''}")
    undecided = summary.undecided_line()
    if undecided:
        counts.append(undecided.replace(" undecided at ", " undecided at this sample size, ", 1))
    if counts:
        out_console.print(
            f"  {'; '.join(counts)}: see the report's verdict", markup=False, highlight=False, soft_wrap=True
        )
    for line in summary.shared_lines():
        out_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    for c in v.checks:
        if c.status in ("FAIL", "ERROR"):
            out_console.print(
                f"  {c.status:5} {c.variant or 'run'}: {c.name}: {c.message}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
    if not v.passed:
        raise typer.Exit(1)


_FAIL_LEVELS = {"critical": 1, "high": 2, "medium": 3, "low": 4, "never": 0}


def _print_findings(findings: Any, limit: int = 30) -> None:
    from deployable.core.records import SEVERITIES

    order = {sev: i for i, sev in enumerate(SEVERITIES)}
    shown = sorted(findings, key=lambda f: order[f.severity])
    for f in shown[:limit]:
        where = f"{f.file} [{f.member}]" if f.file and f.member else f.file or ", ".join(f.evidence[:3])
        more = f" (+{len(f.evidence) - 3} more)" if not f.file and len(f.evidence) > 3 else ""
        out_console.print(
            f"{f.severity:8} {f.check}/{f.code}: {f.message}  [{where}{more}]",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if len(shown) > limit:
        out_console.print(f"… and {len(shown) - limit} more findings (see results.json)")


@app.command()
def audit(
    config: Annotated[Path, typer.Argument(help="deployable.yaml, or a folder holding one")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder to write")] = Path("runs/audit"),
    fail_on: Annotated[
        str, typer.Option(help="exit 1 when a finding is at least this severe: critical|high|medium|low|never")
    ] = "high",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key: key.path=value")] = None,
) -> None:
    """Scan the model files and audit the data: duplicates, leakage, label errors, imbalance, outliers, poisoning."""
    from deployable.config import load_config
    from deployable.core.records import SEVERITIES
    from deployable.pipeline import scan_and_audit

    if fail_on not in _FAIL_LEVELS:
        raise DeployableError(f"--fail-on: expected one of {', '.join(_FAIL_LEVELS)}, got '{fail_on}'")
    result = scan_and_audit(load_config(config, overrides=set_), out, progress=not quiet, console=console)
    found = result.audit
    counts = ", ".join(f"{n} {sev}" for sev, n in found.counts.items() if n) or "no findings"
    out_console.print(f"audit of {result.name}: {counts}")
    for leak in found.leakage:
        if leak.n_exact + leak.n_near:
            acc = (
                f"; accuracy {leak.accuracy:.1%} on all, {leak.accuracy_clean:.1%} without them"
                if leak.accuracy is not None and leak.accuracy_clean is not None
                else ""
            )
            out_console.print(
                f"overlap {leak.split}/{leak.against}: {leak.n_exact} exact + {leak.n_near} near of {leak.n} "
                f"({leak.rate:.1%}){acc}",
                soft_wrap=True,
            )
    _print_findings(found.findings)
    out_console.print(f"wrote {out}/results.json, report.html, dataset_card.md, rmf.md", soft_wrap=True)
    level = _FAIL_LEVELS[fail_on]
    if level and any(SEVERITIES.index(f.severity) < level for f in found.findings):
        raise typer.Exit(1)


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="model files or folders")],
) -> None:
    """Scan model files for code that runs when they are loaded. Exit 0 clean, 1 on a finding, 2 if unreadable."""
    from deployable.audit.scan import scan_paths

    report = scan_paths(paths)
    for f in report.findings:
        where = f"{f.file}" + (f" [{f.member}]" if f.member else "")
        construct = f.details.get("global") or f.code
        out_console.print(
            f"{where}: {construct}: {f.severity}: {f.message}", highlight=False, soft_wrap=True, markup=False
        )
    for path, reason in report.unreadable:
        console.print(
            f"[bold red]error:[/] {escape(str(path))}: cannot read ({escape(reason)})", highlight=False, soft_wrap=True
        )
    console.print(
        f"scanned {len(report.scanned)} model files: {len(report.findings)} findings, "
        f"{len(report.unreadable)} unreadable",
        highlight=False,
    )
    if report.unreadable:
        raise typer.Exit(2)
    if report.findings:
        raise typer.Exit(1)


@app.command()
def gate(
    config: Annotated[Path, typer.Argument(help="deployable.yaml with a policy: section, or its folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder to write")] = Path("runs/gate"),
    baseline: Annotated[
        Path | None, typer.Option(help="a previous run folder to compare with (overrides policy.baseline)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key: key.path=value")] = None,
) -> None:
    """Run the pipeline and gate the candidates: exit 0 on pass, 1 on a failed gate, 2 on a user error."""
    from deployable.config import config_file, load_config
    from deployable.pipeline import run as run_pipeline

    config = config_file(config)  # a project folder names its deployable.yaml in the messages below
    project = load_config(config, overrides=set_)
    if baseline is not None:
        policy = project.policy.model_copy(update={"baseline": _baseline_config(baseline)})
        project = project.model_copy(update={"policy": policy})
    if not project.policy.checks and project.policy.baseline is None:
        raise DeployableError(
            f"{config}: the policy: section has no checks and no baseline, so there is nothing to gate",
            hint="add policy.checks (e.g. ['calibration.ece <= 0.05']) or policy.baseline; see docs/gate.md",
        )
    result = run_pipeline(project, out, progress=not quiet, console=console)
    _summary(result, out)
    _verdict(result)


def _baseline_config(path: Path) -> Any:
    from deployable.config import BaselineConfig

    return BaselineConfig(run=str(path.resolve()))


@app.command()
def schema() -> None:
    """Print the JSON Schema of deployable.yaml."""
    from deployable.config import json_schema

    print(json.dumps(json_schema(), indent=2))


# ---------------------------------------------------------------------------------------------------------------------
# the release registry
# ---------------------------------------------------------------------------------------------------------------------

registry_app = typer.Typer(no_args_is_help=True, help="Check or clean the release registry.")
app.add_typer(registry_app, name="registry")

_RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="database URL, registry.db file or project folder; default $DEPLOYABLE_REGISTRY, else ./deployable.yaml's",
    ),
]
_ArtifactsOpt = Annotated[
    Path | None, typer.Option("--artifacts", help="the registry's artifact folder (default: beside a SQLite file)")
]


def _open(registry: str | None, artifacts: Path | None) -> Any:
    from deployable.registry import open_registry

    return open_registry(registry, artifacts=artifacts)


def _print(line: str) -> None:
    out_console.print(line, markup=False, highlight=False, soft_wrap=True)


def _moves(moves: Any) -> None:
    for m in moves:
        before = m.from_version if m.from_version is not None else "none"
        forced = " (forced)" if m.forced else ""
        _print(f"{m.alias} ({m.target}): {before} -> {m.to_version}{forced}")


@app.command()
def release(
    run_folder: Annotated[Path, typer.Argument(help="a run folder with a gate verdict (deployable run/gate --out)")],
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """Register a run's chosen variant per target, its evidence and lineage as the next version of its model."""
    from deployable.registry import registry_of_run

    with registry_of_run(run_folder, registry, artifacts=artifacts) as reg:
        v = reg.release(run_folder)
        _print(f"released {v.name} {v.number} (gate {v.verdict_status}) to {reg.shown}")
    for t in v.targets:
        _print(f"  {t.target}: {t.variant} ({'passed' if t.passed else 'did not pass'})")
    for m in v.missing:
        _print(f"  not stored: {m}")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int, typer.Argument(help="version number")],
    alias: Annotated[str, typer.Option("--alias", help="alias to move, e.g. production")],
    target: Annotated[list[str] | None, typer.Option("--target", help="target, repeatable (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="promote although the gate did not pass it")] = False,
    reason: Annotated[str, typer.Option("--reason", help="why (required with --force; recorded)")] = "",
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """Point an alias at a version for its targets; refused (exit 1) unless the gate passed it there."""
    from deployable.registry import PromotionRefused

    with _open(registry, artifacts) as reg:
        try:
            moves = reg.promote(name, version, alias, targets=target, force=force, reason=reason)
        except PromotionRefused as exc:
            console.print(f"[bold red]refused:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            for line in exc.failures:
                _print(f"  {line}")
            raise typer.Exit(1) from None
    _moves(moves)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="model name")],
    alias: Annotated[str, typer.Option("--alias", help="alias to move back")],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded in the history)")],
    target: Annotated[list[str] | None, typer.Option("--target", help="target, repeatable (default: all)")] = None,
    to: Annotated[int | None, typer.Option("--to", help="version to go to (default: the one before)")] = None,
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """Move an alias back to the version it pointed to before its last move (or --to N)."""
    with _open(registry, artifacts) as reg:
        _moves(reg.rollback(name, alias, reason=reason, targets=target, to=to))


@app.command()
def versions(
    name: Annotated[str, typer.Argument(help="model name")],
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """List a model's versions: gate verdict, variant per target, aliases."""
    with _open(registry, artifacts) as reg:
        rows = reg.versions(name)
    table = Table(title=name)
    for col in ("version", "created", "by", "gate", "targets", "aliases"):
        table.add_column(col)
    for v in rows:
        targets = ", ".join(f"{t.target}={t.variant}{'' if t.passed else ' (not passed)'}" for t in v.targets)
        table.add_row(str(v.number), v.created_at[:19], v.created_by, v.verdict_status, targets, ", ".join(v.aliases))
    out_console.print(table)


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="model name")],
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """Every alias move of a model, newest first."""
    with _open(registry, artifacts) as reg:
        moves = reg.history(name)
    for m in moves:
        before = m.from_version if m.from_version is not None else "none"
        forced = " FORCED" if m.forced else ""
        why = f" reason: {m.reason}" if m.reason else ""
        _print(
            f"{m.at[:19]} {m.user} {m.action}{forced} {m.alias} ({m.target}): {before} -> {m.to_version};{why} "
            f"evidence: {m.evidence}"
        )
    if not moves:
        _print(f"{name}: no alias was ever moved")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME@VERSION")],
    target: Annotated[str | None, typer.Option("--target", help="the target, when an alias differs per target")] = None,
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
) -> None:
    """A version: its gate verdict per target, files with their sha256, lineage and what was not stored."""
    with _open(registry, artifacts) as reg:
        v = reg.show(ref, target=target)
    _print(f"{v.name} {v.number}: gate {v.verdict_status}, released {v.created_at[:19]} by {v.created_by}")
    _print(f"  run folder: {v.run_folder}")
    if v.aliases:
        _print(f"  aliases: {', '.join(v.aliases)}")
    for t in v.targets:
        _print(f"  {t.target}: {t.variant} ({'passed' if t.passed else 'did not pass'})")
        for line in t.failed_checks:
            _print(f"    {line}")
    lin = v.lineage
    _print(f"  source sha256: {lin.get('source_sha256')}; config digest: {lin.get('config_digest')}")
    _print(f"  deployable {lin.get('deployable_version')}; git commit: {lin.get('git_commit') or 'none'}")
    for split, fp in (lin.get("dataset_fingerprints") or {}).items():
        _print(f"  data {split}: {fp}")
    for name, info in (lin.get("variants") or {}).items():
        chain = " <- ".join(f"{c['name']} ({c['recipe'].get('recipe', '?')})" for c in info.get("chain", []))
        _print(f"  variant {name}: {chain}")
    for f in v.files:
        _print(f"  {f.role} {f.path} {f.sha256} {f.size} B")
    for m in v.missing:
        _print(f"  not stored: {m}")


@registry_app.command("verify")
def registry_verify(registry: _RegistryOpt = None, artifacts: _ArtifactsOpt = None) -> None:
    """Check every row against the files: exit 1 listing each problem."""
    with _open(registry, artifacts) as reg:
        problems = reg.verify()
        shown = reg.shown
    for p in problems:
        _print(f"{p.kind}: {p.message}")
    _print(f"registry {shown}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    if problems:
        raise typer.Exit(1)


@registry_app.command("gc")
def registry_gc(
    registry: _RegistryOpt = None,
    artifacts: _ArtifactsOpt = None,
    min_age: Annotated[
        float, typer.Option("--min-age", help="keep unnamed files younger than this many seconds (a release in flight)")
    ] = 3600.0,
) -> None:
    """Remove the artifact files no row names."""
    with _open(registry, artifacts) as reg:
        removed = reg.gc(min_age_s=min_age)
    _print(f"removed {len(removed)} unnamed file{'s' if len(removed) != 1 else ''}")


def _click_exceptions() -> tuple[type[Exception], ...]:
    """click's ``ClickException`` as typer raises it: typer 0.2x bundles its own copy of click (``typer._click``), so
    ``click.ClickException`` alone does not catch its usage errors; older typer raises click's own."""
    import importlib

    found: list[type[Exception]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; a traceback only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args, prog_name="deployable", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns typer.Exit's code in non-standalone mode
            return code
    except DeployableError as exc:
        if "--debug" in args:
            console.print_exception()
        console.print(f"[bold red]error:[/] {escape(exc.one_line())}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Abort:
        return 130
    except _click_exceptions() as exc:  # usage errors are the user's: click's message and usage line, exit 2
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2) or 2)
    except Exception as exc:  # unexpected failures
        if "--debug" in args:
            raise
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
