"""Scan the files a model source points to before anything loads them, and refuse unsafe ones.

Loading a pickle runs whatever callables it names; the scan (``audit.scan``) reads the pickle's opcodes without
executing them and judges every global against an allowlist. A finding of medium severity or above stops the run with
a :class:`~deployable.core.errors.ModelError` naming the file, the inner member and the construct, unless the config
sets ``model.allow_unsafe_files: true``; the findings are then kept in the audit section of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployable.core.errors import ModelError
from deployable.core.records import AuditCheck, Finding

BLOCKING = ("critical", "high", "medium")
# Findings that say the file is not the model format it is named as (corrupt, truncated, another format): refused
# with what is wrong with the file, never with advice to allow unsafe files.
NOT_A_MODEL = frozenset({"unparseable-onnx"})


def model_file_paths(spec: dict[str, Any]) -> dict[str, Path]:
    """``model.<key>`` -> path for every file or folder a model spec (absolute paths) points to."""
    from deployable.models.sources import PATH_KEYS

    return {f"model.{k}": Path(spec[k]) for k in PATH_KEYS if spec.get(k)}


def scan_model(spec: dict[str, Any], *, refuse: bool = True) -> tuple[list[Finding], list[str], AuditCheck, bool]:
    """Scan every file of a model spec before it is loaded.

    Args:
        spec: the model spec (absolute paths; ``allow_unsafe_files`` is the user's opt-in).
        refuse: raise :class:`ModelError` on a blocking finding the spec does not allow (``deployable run``); False
            only reports it (``deployable audit``, which then audits the data without the model).

    Returns:
        The findings, the scanned files, the :class:`AuditCheck` of the scan, and whether loading must not happen.
    """
    import time

    from deployable.audit.scan import convert_hint, scan_paths

    t = time.perf_counter()
    paths = model_file_paths(spec)
    report = scan_paths(list(paths.values()))
    if report.unreadable:
        path, reason = report.unreadable[0]
        raise ModelError(f"{_field(paths, path)}: cannot read '{path}' to scan it ({reason})")
    blocking = [f for f in report.findings if f.severity in BLOCKING]
    blocked = bool(blocking) and not spec.get("allow_unsafe_files", False)
    if blocked and refuse:
        f = blocking[0]
        if f.code in NOT_A_MODEL:  # a broken file: switching off the safety check would not make it load
            raise ModelError(f"{_field(paths, f.file)}: '{f.file}' is {f.message}", hint=convert_hint(f))
        where = f"{f.file} [{f.member}]" if f.member else str(f.file)
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        hint = convert_hint(f)
        raise ModelError(
            f"{_field(paths, f.file)}: refusing to load {where}: {f.message}{more}",
            hint=f"{hint}; or set model.allow_unsafe_files: true if you made this file yourself",
        )
    check = AuditCheck(
        name="scan",
        status="ran",
        method="pickle opcodes judged against an allowlist of checkpoint globals (never unpickled); archives, "
        "compressed and nested pickles opened; safetensors headers and ONNX external-data paths checked",
        seconds=round(time.perf_counter() - t, 3),
        n_findings=len(report.findings),
        details={
            "files": len(report.scanned),
            "allowed_unsafe": bool(blocking) and bool(spec.get("allow_unsafe_files", False)),
            "blocked": blocked,
        },
    )
    return list(report.findings), list(report.scanned), check, blocked


def _field(paths: dict[str, Path], file: str | None) -> str:
    """The config key whose file (or folder) holds ``file``."""
    target = Path(file or "")
    for key, p in paths.items():
        if target == p or p in target.parents:
            return key
    return "model"
