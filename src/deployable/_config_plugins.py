"""Config sections chosen by a registered plugin (``model``, each ``optimize.recipes`` entry).

The section is validated by the config model registered with the plugin its tag names (:mod:`deployable.core.plugins`),
so a plugin registered by a user's package is accepted like a built-in one and no list of names is written twice.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, SerializeAsAny, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from deployable.core.errors import closest
from deployable.core.plugins import list_plugins, plugin_config


class PluginSection:
    """``Annotated`` metadata of a section whose schema is chosen by a registered plugin.

    Validation looks up ``kind``/``<value of tag>`` in the plugin registry and validates the section with the config
    model registered there (or ``fallback`` for a plugin registered without one). Errors carry the tag in their
    location, as pydantic's tagged unions do (``model.onnx.path``), and an unknown tag lists the registered names.
    """

    def __init__(self, kind: str, tag: str, fallback: type[BaseModel]) -> None:
        self.kind, self.tag, self.fallback = kind, tag, fallback

    def members(self) -> dict[str, type[BaseModel]]:
        """Registered name -> config model, for every plugin of this kind."""
        return {name: plugin_config(self.kind, name) or self.fallback for name in list_plugins(self.kind)}

    def validate(self, value: Any, handler: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError("dict_type", "Input should be a mapping")
        if self.tag not in value:
            raise PydanticCustomError(
                "union_tag_not_found", "Unable to extract tag using discriminator '{discriminator}'",
                {"discriminator": f"'{self.tag}'"},
            )  # fmt: skip
        name = value[self.tag]
        members = self.members()
        if not isinstance(name, str) or name not in members:
            raise PydanticCustomError(
                "union_tag_invalid",
                "Input tag '{tag}' found using '{discriminator}' does not match any of the expected tags: "
                "{expected_tags}",
                {"tag": str(name), "discriminator": f"'{self.tag}'", "expected_tags": ", ".join(map(repr, members))},
            )
        try:
            return members[name].model_validate(value)
        except ValidationError as exc:  # re-raised with the tag in each location, as a tagged union reports it
            raise ValidationError.from_exception_data(
                exc.title,
                [
                    {
                        "type": e["type"],
                        "loc": (name, *e["loc"]),
                        "input": e["input"],
                        **({"ctx": e["ctx"]} if "ctx" in e else {}),
                    }
                    for e in exc.errors(include_url=False)
                ],
            ) from None

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        from pydantic import TypeAdapter

        options = [TypeAdapter(m).json_schema() for m in dict.fromkeys(self.members().values())]
        return {"oneOf": options, "discriminator": {"propertyName": self.tag}}


def _line_error(e: dict[str, Any]) -> Any:
    """A reported error as pydantic takes it back (``msg`` and ``url`` are derived from the type)."""
    return {k: e[k] for k in ("type", "loc", "input", "ctx") if k in e}


class PluginName:
    """``Annotated`` metadata of a key naming a registered plugin (``data.format``): valid are the registered names
    and ``extra`` (``auto``); the JSON Schema's enum is read from the registry when the schema is made."""

    def __init__(self, kind: str, extra: tuple[str, ...] = (), what: str = "") -> None:
        self.kind, self.extra, self.what = kind, extra, what or kind

    def names(self) -> list[str]:
        return [*self.extra, *list_plugins(self.kind)]

    def validate(self, value: str) -> str:
        names = self.names()
        if value not in names:
            match = closest(value, names)
            fix = f"did you mean '{match}'?" if match else f"valid: {', '.join(names)}"
            raise PydanticCustomError("plugin_name", "unknown {what} '{value}' ({fix})",
                                      {"what": self.what, "value": value, "fix": fix})  # fmt: skip
        return value

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {**handler(core_schema), "enum": self.names()}


def plugin_name(kind: str, *extra: str, what: str = "") -> Any:
    name = PluginName(kind, extra, what)
    return Annotated[str, AfterValidator(name.validate), name]


def plugin_section(kind: str, tag: str, fallback: type[BaseModel]) -> Any:
    section = PluginSection(kind, tag, fallback)
    # serialized as the registered model it was validated into, not as the fallback the annotation names
    return Annotated[fallback, WrapValidator(section.validate), section, SerializeAsAny()]


def section_in(annotation: Any, metadata: list[Any] = ()) -> PluginSection | None:
    """The plugin section an annotation (or a list of it) is validated by, if any."""
    for m in [*metadata, *getattr(annotation, "__metadata__", ())]:
        if isinstance(m, PluginSection):
            return m
    for arg in typing.get_args(annotation):
        found = section_in(arg)
        if found is not None:
            return found
    return None
