"""Bodies to MessagePack and back, and stream-entry fields to event parts. Pure: no IO.

The wire layout is FluxaORM's: the body is MessagePack in field ``s``; every meta key is a
field of its own. A dataclass encodes as a MessagePack map keyed by field name, exactly as
Go's msgpack encodes a struct, so ``Name="a1"`` gives the bytes ``81 a4 4e 61 6d 65 a2 61 31``.
Strings are MessagePack ``str``, ``bytes`` are ``bin``. Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack

from ._constants import BODY_FIELD
from .errors import DecodeError, SerializationError

T = TypeVar("T")

#: ``s`` as bytes.
BODY_FIELD_B = _BODY_FIELD_B = BODY_FIELD.encode()

try:  # pydantic is optional: models are supported when it is installed.
    from pydantic import BaseModel as _BaseModel
    from pydantic import ValidationError as _ValidationError
except ImportError:  # pragma: no cover - exercised only without pydantic
    _BaseModel = None  # type: ignore[assignment,misc]
    _ValidationError = None  # type: ignore[assignment,misc]


def _default(obj: Any) -> Any:
    """msgpack ``default`` hook: turn supported non-native values into native ones."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if _BaseModel is not None and isinstance(obj, _BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot serialize object of type {type(obj).__name__}")


_local = threading.local()


def _new_packer() -> Any:
    return msgpack.Packer(default=_default, use_bin_type=True, autoreset=True)


def encode_body(body: Any) -> bytes | None:
    """Encode an event body as MessagePack; ``None`` stays ``None`` (no ``s`` field).

    Raises :class:`SerializationError` for anything MessagePack cannot carry. One Packer
    per thread is reused (creating one per call is most of the cost of a small body).
    """
    if body is None:
        return None
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = _new_packer()
    try:
        packed: bytes = packer.pack(body)
        return packed
    except (TypeError, ValueError, OverflowError) as exc:
        _local.packer = _new_packer()  # never reuse a packer that failed part-way
        raise SerializationError(f"cannot serialize body: {exc}") from exc


def decode_body(raw: bytes) -> Any:
    """Decode MessagePack bytes; maps become dicts, ``str`` is UTF-8 text.

    Raises :class:`DecodeError` (carrying ``raw``) for anything that is not exactly one
    valid MessagePack value.
    """
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises many types: ExtraData, ValueError, ...
        raise DecodeError(f"cannot decode body ({len(raw)} bytes): {exc}", raw) from exc


def check_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    """Validate meta: keys are non-empty ``str`` other than ``s``, values are ``str``."""
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise SerializationError(f"meta key {key!r} must be a non-empty str")
        if key == BODY_FIELD:
            raise SerializationError(f"meta key {BODY_FIELD!r} is reserved for the body")
        if not isinstance(value, str):
            raise SerializationError(
                f"meta value of {key!r} must be str, not {type(value).__name__}"
            )
    return dict(meta)


def entry_fields(body: Any, meta: Mapping[str, Any]) -> list[bytes]:
    """Build the flat XADD field/value list for one event (``s`` first, then meta).

    Raises :class:`SerializationError` for a bad body or meta, or an event with neither.
    """
    packed = encode_body(body)
    if not meta and packed is not None:
        return [_BODY_FIELD_B, packed]  # the common case, kept short: it runs per publish
    checked = check_meta(meta)
    fields: list[bytes] = []
    if packed is not None:
        fields += (_BODY_FIELD_B, packed)
    elif not checked:
        raise SerializationError("an event needs a body or at least one meta field")
    for key, value in checked.items():
        fields += (key.encode(), value.encode("utf-8", "surrogateescape"))
    return fields


def split_fields(
    fields: Mapping[bytes, bytes] | list[bytes],
) -> tuple[bytes | None, dict[str, str]]:
    """Split an entry's fields into the raw body bytes and the meta dict.

    Accepts redis-py's field dict or the flat list of the raw protocol. Meta that is not
    UTF-8 is decoded with ``surrogateescape``, so it never raises and the bytes survive.
    """
    if isinstance(fields, list) and len(fields) == 2 and fields[0] == _BODY_FIELD_B:
        return fields[1], {}  # the common case: a body and no meta
    pairs: Any = fields.items() if isinstance(fields, Mapping) else _pairs(fields)
    raw: bytes | None = None
    meta: dict[str, str] = {}
    for key, value in pairs:
        if key == _BODY_FIELD_B:
            raw = value
        else:
            meta[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return raw, meta


def join_fields(raw: bytes | None, meta: Mapping[str, str]) -> list[bytes]:
    """The inverse of :func:`split_fields`: the original field bytes, ``s`` first."""
    fields: list[bytes] = [] if raw is None else [_BODY_FIELD_B, raw]
    for key, value in meta.items():
        fields += (key.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
    return fields


def _pairs(flat: list[bytes]) -> zip[tuple[bytes, bytes]]:
    it = iter(flat)
    return zip(it, it, strict=False)


def unserialize(value: Any, cls: type[T]) -> T:
    """Turn a decoded body into ``cls``: a dataclass, a pydantic model or a plain type.

    Dataclasses take the map's known fields (extra keys, as Go structs may send, are
    ignored) and nested dataclass fields are built recursively.
    Raises :class:`DecodeError` when the value does not fit.
    """
    try:
        return typing.cast(T, _convert(value, cls))
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"cannot unserialize into {getattr(cls, '__name__', cls)}: {exc}"
        ) from exc


def _convert(value: Any, cls: Any) -> Any:
    if cls is Any or cls is object:
        return value
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        if not isinstance(value, Mapping):
            raise DecodeError(f"expected a map for {cls.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in value and f.init:
                kwargs[f.name] = _convert(value[f.name], hints.get(f.name, Any))
        return cls(**kwargs)
    if _BaseModel is not None and isinstance(cls, type) and issubclass(cls, _BaseModel):
        return cls.model_validate(value)
    origin = typing.get_origin(cls)
    if origin is not None:  # list[int], dict[str, X], Optional[...]: trust the decoded shape
        return value
    if isinstance(cls, type):
        if isinstance(value, cls) and not (cls is int and isinstance(value, bool)):
            return value
        if cls is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if issubclass(cls, enum.Enum):
            return cls(value)
        raise DecodeError(f"expected {cls.__name__}, got {type(value).__name__}")
    return value
