"""Type-driven conversion between message dataclasses and their JSON + binary-frame wire form.

``to_wire`` turns a dataclass tree into JSON-ready values; every ``bytes`` value is moved out to
the list of binary frames and replaced by ``{"$frame": index}``, so images and GLBs never travel
as base64. ``from_wire`` walks the dataclass's type hints to rebuild it and checks every value on
the way: the error it raises names the dotted path of the field at fault. Only the types the
messages use are supported (str, int, float, bool, bytes, None, Literal, unions with None,
tuple[T, ...], dict[str, Any], Any, nested dataclasses); field metadata ``minimum``/``maximum``
bound numbers and ``max_length`` bounds text.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from typing import Any, Literal, Union

from shared_protocol.errors import ErrorCode, ProtocolError

FRAME_KEY = "$frame"


def to_wire(value: Any, frames: list[bytes]) -> Any:
    """Return ``value`` as JSON-ready data, appending its bytes values to ``frames``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name), frames) for f in dataclasses.fields(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        frames.append(bytes(value))
        return {FRAME_KEY: len(frames) - 1}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_wire(item, frames) for item in value]
    if isinstance(value, dict):
        return {str(key): to_wire(item, frames) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite float {value!r} cannot be sent as JSON")
    return value


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "object"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "array"
    if origin is dict:
        return "object"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return {str: "string", int: "integer", float: "number", bool: "boolean", bytes: "frame"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _mistyped(path: str, tp: Any, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ProtocolError(
        ErrorCode.INVALID_FIELD,
        f"{path} must be {_type_name(tp)}, got {shown}",
        field=path,
    )


def from_wire(tp: Any, value: Any, frames: list[bytes], path: str, used: set[int]) -> Any:
    """Rebuild a value of type ``tp`` from wire data; raise ProtocolError naming ``path``.

    ``used`` collects the indices of the frames that were referenced, so the caller can reject
    frames that nothing points at.
    """
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _dataclass_from_wire(tp, value, frames, path, used)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[ProtocolError] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_wire(arg, value, frames, path, used)
            except ProtocolError as error:
                errors.append(error)
        # One non-null member: its own message is the most precise.
        raise errors[0] if len(errors) == 1 else _mistyped(path, tp, value)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise _mistyped(path, tp, value)
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise _mistyped(path, tp, value)
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(
            from_wire(item_tp, item, frames, f"{path}[{i}]", used) for i, item in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _mistyped(path, tp, value)
        _key_tp, item_tp = typing.get_args(tp)
        return {k: from_wire(item_tp, v, frames, f"{path}.{k}", used) for k, v in value.items()}
    if tp is bytes:
        return _frame_from_wire(value, frames, path, used)
    if tp is bool:
        if not isinstance(value, bool):
            raise _mistyped(path, tp, value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _mistyped(path, tp, value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mistyped(path, tp, value)
        if not math.isfinite(value):
            raise _mistyped(path, tp, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _mistyped(path, tp, value)
        return value
    if tp is type(None):
        if value is not None:
            raise _mistyped(path, tp, value)
        return None
    raise TypeError(f"codec does not support type {tp!r} at {path}")  # a bug in messages.py


def _frame_from_wire(value: Any, frames: list[bytes], path: str, used: set[int]) -> bytes:
    if not (isinstance(value, dict) and set(value) == {FRAME_KEY}):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f'{path} must be a frame reference {{"{FRAME_KEY}": index}}',
            field=path,
        )
    index = value[FRAME_KEY]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(frames):
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAMES,
            f"{path} points at frame {index!r}, but the message has {len(frames)} binary frames",
            field=path,
        )
    used.add(index)
    return frames[index]


def _dataclass_from_wire(
    cls: type, value: Any, frames: list[bytes], path: str, used: set[int]
) -> Any:
    if not isinstance(value, dict):
        raise _mistyped(path, cls, value)
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        field_path = f"{path}.{unknown[0]}"
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"unknown field {field_path}; known fields: {', '.join(sorted(fields))}",
            field=field_path,
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        field_path = f"{path}.{name}"
        if name not in value:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if not has_default:
                raise ProtocolError(
                    ErrorCode.MISSING_FIELD, f"{field_path} is required", field=field_path
                )
            continue
        item = from_wire(hints[name], value[name], frames, field_path, used)
        _check_range(field, item, field_path)
        kwargs[name] = item
    return cls(**kwargs)


def _check_range(field: dataclasses.Field[Any], value: Any, path: str) -> None:
    if isinstance(value, str):
        longest = field.metadata.get("max_length")
        if longest is not None and len(value) > longest:
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"{path} has {len(value)} characters; the limit is {longest}",
                field=path,
            )
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low = field.metadata.get("minimum")
    high = field.metadata.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE,
            f"{path} is {value}, outside the allowed range [{low}, {high}]",
            field=path,
        )


def bounded(default: Any, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A dataclass field with a default and an inclusive numeric range checked on decode."""
    return dataclasses.field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def bounded_text(default: str | None, max_length: int) -> Any:
    """A dataclass field with a default and a maximum length in characters checked on decode."""
    return dataclasses.field(default=default, metadata={"max_length": max_length})
