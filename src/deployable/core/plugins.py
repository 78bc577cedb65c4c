"""Registries of named factories (model sources, data formats, optimization recipes).

Modelled on timm's registry: ``@register("model", "onnx")`` adds a factory, ``list_plugins("model")`` lists the
names, and ``get_plugin`` fails with the list of valid names. Each package registers its own entries when it is
imported (``deployable`` imports every built-in one), so this module imports nothing of the stages.

A plugin may carry the pydantic model of its section of ``deployable.yaml`` (``config=``). Its name is then the
value of that model's tag field (``type: Literal["onnx"]``), and the config accepts exactly the registered names:
a plugin registered by a user's own package is accepted by ``load_config`` like a built-in one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

from deployable.core.errors import DeployableError, did_you_mean

F = TypeVar("F", bound=Callable[..., Any])
_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}
_CONFIGS: dict[str, dict[str, type]] = {}


def config_tag(config: type) -> str:
    """The name a config model is registered under: the single value of its first one-value ``Literal`` field."""
    for field in getattr(config, "model_fields", {}).values():
        if typing.get_origin(field.annotation) is typing.Literal and len(typing.get_args(field.annotation)) == 1:
            return str(typing.get_args(field.annotation)[0])
    raise ValueError(f"{config.__name__} has no one-value Literal field to take its plugin name from")


def register(kind: str, name: str | None = None, *, config: type | None = None) -> Callable[[F], F]:
    """Decorator registering ``factory`` under ``kind``/``name``. Registering a name twice is an error.

    Args:
        kind: ``"model"``, ``"data"``, ``"recipe"``...
        name: the plugin's name; taken from ``config``'s tag field when omitted.
        config: the pydantic model validating the plugin's section of the config (its tag field names it).
    """
    if name is None:
        if config is None:
            raise ValueError("register: give a name or a config model to take it from")
        name = config_tag(config)
    elif config is not None and config_tag(config) != name:
        raise ValueError(f"plugin {kind}/{name}: its config model {config.__name__} is tagged {config_tag(config)!r}")
    key = name

    def deco(factory: F) -> F:
        table = _REGISTRY.setdefault(kind, {})
        if key in table and table[key] is not factory:
            raise ValueError(f"plugin {kind}/{key} is already registered")
        table[key] = factory
        if config is not None:
            _CONFIGS.setdefault(kind, {})[key] = config
        return factory

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove a plugin (for tests that register their own)."""
    _REGISTRY.get(kind, {}).pop(name, None)
    _CONFIGS.get(kind, {}).pop(name, None)


def list_plugins(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    return sorted(_REGISTRY.get(kind, {}))


def plugin_config(kind: str, name: str) -> type | None:
    """The config model registered with ``kind``/``name``, or None."""
    return _CONFIGS.get(kind, {}).get(name)


def plugin_configs(kind: str) -> dict[str, type]:
    """Every registered config model of ``kind``, by name (sorted)."""
    return dict(sorted(_CONFIGS.get(kind, {}).items()))


def get_plugin(kind: str, name: str, *, field: str | None = None) -> Callable[..., Any]:
    """The factory registered as ``kind``/``name``; a :class:`DeployableError` listing valid names otherwise."""
    table = _REGISTRY.get(kind, {})
    if name not in table:
        where = f"{field}: " if field else ""
        raise DeployableError(f"{where}unknown {kind} '{name}'", hint=did_you_mean(name, table))
    return table[name]
