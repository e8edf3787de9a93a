"""A model's parameters checked against its schema: the one implementation both sides use.

The backend resolves a submit's ``parameters`` here once, at admission; the add-on checks the
panel's values here before sending, so the panel refuses exactly what the backend would, in
the same words. Errors name the field relative to the request (``parameters.<name>``); the
backend's admission edge prefixes ``body.``. Stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

_KIND_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "choice": str,
    "str": str,
}
MAX_STR_CHARS = 2_000  # a free-text parameter (negative prompt, model id), not a document


def check_parameter(spec: ParameterSchema, value: Any, *, label: str = "") -> Any:
    """``value`` if it is valid for ``spec`` (ints given for floats become floats), else raise.

    label : how the message names the parameter (default its dotted field path)
    """
    path = f"parameters.{spec.name}"
    shown = label or path
    kind_type = _KIND_TYPES[spec.kind]
    if (isinstance(value, bool) and spec.kind != "bool") or not isinstance(value, kind_type):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"{shown} must be {_kind_name(spec)}, got {_short(value)}",
            field=path,
            hint=_hint(spec),
        )
    if spec.kind == "float" and not math.isfinite(value):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"{shown} must be a finite number, got {value!r}",
            field=path,
            hint=_hint(spec),
        )
    if spec.kind == "choice" and value not in spec.choices:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"{shown} must be one of {', '.join(spec.choices)}, got {_short(value)}",
            field=path,
            hint=_hint(spec),
        )
    if spec.kind == "str" and len(value) > MAX_STR_CHARS:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"{shown} is {len(value)} characters long; at most {MAX_STR_CHARS}",
            field=path,
        )
    if spec.kind in ("int", "float"):
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"{shown} is {value}, outside {_range(spec)}",
                field=path,
                hint=_hint(spec),
            )
        return float(value) if spec.kind == "float" else value
    return value


def resolve_parameters(
    schema: tuple[ParameterSchema, ...], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Every parameter of ``schema``: ``given`` values checked, defaults for the rest.

    Resolving an already resolved mapping returns an equal one, so it is safe to repeat.
    """
    known = {p.name: p for p in schema}
    for name in given:
        if name not in known:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"unknown parameter {name!r}; this model takes: {', '.join(known) or 'none'}",
                field=f"parameters.{name}",
            )
    return {
        name: check_parameter(spec, given.get(name, spec.default)) for name, spec in known.items()
    }


def _kind_name(spec: ParameterSchema) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false",
            "choice": "one of the choices", "str": "text"}[spec.kind]  # fmt: skip


def _range(spec: ParameterSchema) -> str:
    return f"[{spec.minimum}, {spec.maximum}]"


def _hint(spec: ParameterSchema) -> str:
    if spec.kind == "choice":
        return f"Use one of {', '.join(spec.choices)} (default {spec.default})."
    if spec.kind in ("int", "float") and (spec.minimum is not None or spec.maximum is not None):
        return f"Use a value in {_range(spec)} (default {spec.default})."
    return ""


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
