"""One line for a config validation error: the key path as the user wrote it, what was found, and what to do."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from deployable._config_plugins import section_in
from deployable.core.errors import closest
from deployable.core.plugins import list_plugins


def explain(label: str, exc: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first validation error: key path, what was found, what to do."""
    errors = exc.errors()

    # in a union (str | mapping) every member reports; the deepest error is the one about what the user meant
    def weight(e: Any) -> tuple[bool, bool, int, int]:
        # a typo explains a "missing" key beside it; a mapping given where str | mapping is allowed meant the mapping
        wrong_member = e["type"] == "string_type" and isinstance(e.get("input"), dict)
        return (e["type"] == "extra_forbidden", not wrong_member, len(e["loc"]), -errors.index(e))

    err = max(errors, key=weight)
    raw_loc = [str(p) for p in err["loc"]]
    # drop discriminator tags pydantic inserts for tagged unions (model.sentence-transformers.head -> model.head)
    tags = _union_tags()
    loc = [p for p in raw_loc if p not in tags and not p.startswith("function-")]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        parent_model = _model_at(root, raw_loc[:-1])
        valid = list(parent_model.model_fields) if parent_model else []
        valid = [v for v in valid if v != "base_dir"]
        match = closest(loc[-1], valid)
        fix = f"did you mean '{'.'.join([*loc[:-1], match])}'?" if match else f"valid keys here: {', '.join(valid)}"
        return f"{label}: {key}: unknown key ({fix})"
    if kind == "missing":
        return f"{label}: {key}: required key is missing (add it; see 'deployable schema' or docs/config.md)"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tag = ctx.get("tag", found)
        field = str(ctx.get("discriminator", "'type'")).strip("'")
        options = [o.strip(" '") for o in str(ctx.get("expected_tags", "")).split(",")]
        match = closest(str(tag), options)
        fix = f"did you mean '{match}'?" if match else f"valid: {', '.join(options)}"
        what = "recipe" if field == "recipe" else "model type"
        return f"{label}: {key}.{field}: unknown {what} '{tag}' ({fix})"
    shown = repr(found) if not isinstance(found, dict) else "a mapping"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    msg = err["msg"].removeprefix("Value error, ").rstrip(".")
    if kind == "plugin_name":  # the message names the valid ones
        return f"{label}: {key}: {msg}"
    if kind == "value_error" and isinstance(found, dict):  # a check across keys: the message says it all
        return f"{label}: {key}: {msg} (see docs/config.md)"
    return f"{label}: {key}: {msg}; found {shown} (fix the value; see docs/config.md)"


def _union_tags() -> set[str]:
    """Tags pydantic and the plugin sections put in error locations (model.onnx.path -> model.path)."""
    return {"str", "TargetConfig", "BinnedSlice", *list_plugins("model"), *list_plugins("recipe")}


def _model_at(root: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model a raw error location points into (tags of tagged unions pick the member)."""
    model: Any = root
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        i += 1
        if part.isdigit():
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        section = section_in(field.annotation, field.metadata)
        if section is not None:  # the next part (after a list index) is the plugin's tag
            if i < len(parts) and parts[i].isdigit():
                i += 1
            if i >= len(parts) or parts[i] not in section.members():
                return section.fallback
            model = section.members()[parts[i]]
            i += 1
            continue
        members = _models_in(field.annotation)
        if not members:
            return None
        model = members[0]
        if len(members) > 1 and i < len(parts):
            nxt = parts[i + 1] if parts[i].isdigit() and i + 1 < len(parts) else parts[i]
            for m in members:
                tag = m.model_fields.get("type") or m.model_fields.get("recipe")
                literal = getattr(tag.annotation, "__args__", (None,))[0] if tag else None
                if nxt in (m.__name__, literal):
                    model = m
                    parts.remove(nxt)
                    break
    return model


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model mentioned in a (possibly nested, union, list or Annotated) annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        out += [m for m in _models_in(arg) if m not in out]
    return out
