"""Opening the registry a user means: ``--registry``, ``$DEPLOYABLE_REGISTRY``, or the project's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployable.core.errors import DeployableError
from deployable.core.records import RunResult
from deployable.registry._collect import project_folder
from deployable.registry._engine import ENV, default_location
from deployable.registry._store import Registry


def _from_project(project: Any) -> tuple[str, Path | None]:
    section = project.registry
    url = section.url
    if url and "://" not in url:
        url = str(project.path(url))
    artifacts = project.path(section.artifacts) if section.artifacts else None
    import os

    return os.environ.get(ENV) or url or str(project.path(project.cache_dir) / "registry.db"), artifacts


def registry_of_project(project: Any) -> Registry:
    """The registry of a loaded :class:`~deployable.config.Project`: ``$DEPLOYABLE_REGISTRY``, else its
    ``registry.url``, else ``<cache_dir>/registry.db`` beside its config."""
    url, artifacts = _from_project(project)
    return Registry(url, artifacts=artifacts)


def open_registry(
    location: str | Path | None = None,
    *,
    artifacts: str | Path | None = None,
    create: bool = False,
) -> Registry:
    """The registry at ``location``: a database URL, a SQLite file, or a project (its folder or deployable.yaml)
    whose registry is meant. Default: ``$DEPLOYABLE_REGISTRY``, else the project in the working directory."""
    if location is None:
        import os

        if os.environ.get(ENV):
            return Registry(os.environ[ENV], artifacts=artifacts, create=create)
        if not Path("deployable.yaml").is_file():
            default_location(None)  # raises: say how to name one
        location = Path("deployable.yaml")
    s = str(location)
    if "://" not in s and (Path(s).is_dir() or s.endswith((".yaml", ".yml"))):
        from deployable.config import load_config

        url, own = _from_project(load_config(Path(s)))
        return Registry(url, artifacts=artifacts or own, create=create)
    return Registry(location, artifacts=artifacts, create=create)


def registry_of_run(
    run_folder: str | Path, location: str | Path | None = None, *, artifacts: str | Path | None = None
) -> Registry:
    """The registry a run folder is released to: ``location`` if given, else ``$DEPLOYABLE_REGISTRY``, else its
    project's ``registry.url``, else ``<cache_dir>/registry.db`` next to the run's config."""
    if location is not None:
        return open_registry(location, artifacts=artifacts, create=True)
    import os

    if os.environ.get(ENV):
        return Registry(os.environ[ENV], artifacts=artifacts, create=True)
    try:
        result = RunResult.load(Path(run_folder) / "results.json")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeployableError(
            f"release: {run_folder} is not a run folder with a readable results.json",
            hint="pass the --out folder of deployable run or gate",
        ) from exc
    config = result.config
    base = project_folder(result, Path(run_folder))
    section = config.get("registry") or {}
    url = section.get("url")
    if url and "://" not in url:
        url = str(base / url)
    own = base / section["artifacts"] if section.get("artifacts") else None
    cache = base / config.get("cache_dir", ".deployable-cache")
    return Registry(url or cache / "registry.db", artifacts=artifacts or own, create=True)


def load(ref: str, *, target: str, registry: str | Path | None = None, artifacts: str | Path | None = None) -> Any:
    """The predictor ``ref`` (``name@alias`` or ``name@3``) ships to ``target``, its files verified and scanned."""
    with open_registry(registry, artifacts=artifacts) as reg:
        return reg.load(ref, target=target)
