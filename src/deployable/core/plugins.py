"""Registries of named factories (model sources, data formats, recipes, perturbations...).

Modelled on timm's registry: ``@register("model", "onnx")`` adds a factory, ``list_plugins("model")`` lists the
names, and ``get_plugin`` fails with the list of valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from deployable.core.errors import DeployableError, did_you_mean

F = TypeVar("F", bound=Callable[..., Any])
_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}


def register(kind: str, name: str) -> Callable[[F], F]:
    """Decorator registering ``factory`` under ``kind``/``name``. Registering a name twice is an error."""

    def deco(factory: F) -> F:
        table = _REGISTRY.setdefault(kind, {})
        if name in table and table[name] is not factory:
            raise ValueError(f"plugin {kind}/{name} is already registered")
        table[name] = factory
        return factory

    return deco


def list_plugins(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    _load_builtins()
    return sorted(_REGISTRY.get(kind, {}))


def get_plugin(kind: str, name: str, *, field: str | None = None) -> Callable[..., Any]:
    """The factory registered as ``kind``/``name``; a :class:`DeployableError` listing valid names otherwise."""
    _load_builtins()
    table = _REGISTRY.get(kind, {})
    if name not in table:
        where = f"{field}: " if field else ""
        raise DeployableError(f"{where}unknown {kind} '{name}'", hint=did_you_mean(name, table))
    return table[name]


def _load_builtins() -> None:
    # Importing these modules runs their @register decorators; they import heavy libraries lazily.
    import deployable.data.sources
    import deployable.models.sources  # noqa: F401
