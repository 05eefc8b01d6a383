"""pydantic validation errors translated into Problems: the path as it is in the file, its line, a clear message."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from k8s_ops.core.errors import Problem
from k8s_ops.core.paths import KEY_MATERIAL, looks_like_key_material
from k8s_ops.core.secret import mask_text
from k8s_ops.talos.inventory.models import Cluster
from k8s_ops.talos.inventory.source import ABSENT, Path_, Source, step


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that the key at `loc[-1]` belongs to (for 'did you mean' suggestions)."""
    model: type[BaseModel] | None = Cluster
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int) or part not in aliases(model):
            continue  # sequence index or union tag: stay on the current model
        model = _first_model(aliases(model)[part])
    return model


def aliases(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f.annotation for n, f in model.model_fields.items()}


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):  # unions, tuple[...], dict[...], Annotated[...]
        found = _first_model(arg)
        if found is not None:
            return found
    return None


_PREFIX = 40  # an inventory error shows at most this much of a value it quotes (key material: nothing)
_LONG_SEGMENT = re.compile(rf'[^.\[\]"]{{{_PREFIX + 1},}}')


def safe_field(field: str) -> str:
    """A field path as shown in a problem: a key that looks like key material is `<not shown>`, a long key is cut
    (a mapping key is input too: a `vars` key that is an age secret key must not print the key)."""
    if looks_like_key_material(field):
        field = KEY_MATERIAL.sub("<not shown>", mask_text(field))
    return _LONG_SEGMENT.sub(lambda m: m.group(0)[:_PREFIX] + "...", field)


def type_name(value: Any) -> str:
    """What a value is, for an error that must not echo it: `a mapping`, `a list`, `a string`, ..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def short(value: Any) -> str:
    """A value quoted in an error: never key material, never more than a short prefix; containers by type."""
    if isinstance(value, Mapping | list | tuple):
        return type_name(value)
    text = value if isinstance(value, str) else repr(value)
    if looks_like_key_material(text):
        return f"{type_name(value)} that looks like key material (not shown)"
    if not isinstance(value, str):
        return text if len(text) <= _PREFIX else text[:_PREFIX] + "..."
    return repr(text) if len(text) <= _PREFIX else repr(text[:_PREFIX]) + f"... ({len(text)} characters)"


def unechoed(message: str, value: Any) -> str:
    """A validator's message with the value it quotes cut to `short(value)` (validators quote the whole value)."""
    if isinstance(value, str) and value and short(value) != repr(value):
        message = message.replace(repr(value), short(value)).replace(value, short(value))
    return message


def _message(err: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, list(aliases(model)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(aliases(model))}"
        return f"unknown key {short(loc[-1])}{hint}"
    if kind == "literal_error":
        what = "role" if loc and loc[-1] == "role" else "value"
        return f"unknown {what} {short(value)}; expected {ctx.get('expected')}"
    if kind == "ip_any_address":
        return f"{short(value)} is not a valid IP address"
    if kind == "ip_any_network":
        return f"{short(value)} is not a valid network in CIDR notation with host bits zero (e.g. 10.42.0.0/16)"
    if kind == "ip_any_interface":
        return f"{short(value)} is not a valid address with prefix (e.g. 10.25.11.11/24)"
    if kind == "value_error":
        return unechoed(str(ctx.get("error", err["msg"])), value)
    if kind in {"model_type", "dict_type"}:
        return f"expected a mapping, got {type_name(value)}"
    if kind in {"tuple_type", "list_type"}:
        return f"expected a list, got {type_name(value)}"
    msg = str(err["msg"])
    return f"{msg} (got {short(value)})" if not isinstance(value, dict | list) else msg


def _data_loc(src: Source, loc: Sequence[str | int], kind: str) -> Path_:
    """Drop the parts of a pydantic `loc` that are not in the data (union tags, validator names)."""
    out: list[str | int] = []
    cur = src.data
    for i, part in enumerate(loc):
        child = step(cur, part)
        if child is not ABSENT:
            cur = child
        elif not (kind == "missing" and i == len(loc) - 1):
            continue  # not in the data: a union tag or validator name; a missing key itself is kept
        out.append(part)
    return tuple(out)


def _key_at(mapping: Any, key: Any) -> Any:
    """The key of `mapping` equal to `key` as stored (pydantic reports `True` as 1)."""
    if isinstance(mapping, dict):
        for k in mapping:
            if k == key:
                return k
    return key


def validation_problems(src: Source, exc: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "vars" and not isinstance(_key_at(src.get("vars"), loc[1]), str):
            continue  # a non-string variable name: reported once, by the variable-name check
        if loc and loc[-1] == "[key]":
            if loc[0] == "vars":
                continue  # variable names get their own, clearer check
            path = _data_loc(src, loc[:-1], err["type"])
            out.append(src.problem(path, f"key {short(loc[-2])} must be a string (quote it)"))
            continue
        path = _data_loc(src, err["loc"], err["type"])
        out.append(src.problem(path, _message(err, path)))
    return out
