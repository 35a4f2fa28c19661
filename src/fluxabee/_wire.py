"""Python values to MessagePack bytes, the way Go's msgpack writes them. Pure, no IO.

The fast path is msgpack's C packer with :func:`default` as its hook: dataclasses become
``{wire name: value}`` maps, pydantic models their ``model_dump``, enums their value,
aware datetimes the timestamp extension (the packer's own ``datetime=True``, which picks
the shortest of the 32, 64 and 96-bit forms, as Go does). A value the C packer cannot
write right, a float32 (MessagePack has no per-value float32 switch), makes the hook raise
:class:`NeedsWalk`; :func:`walk_pack` then writes that body in Python, asking the C packer
for every part that holds no float32. When packing fails, :func:`explain` walks the body
again to say what failed and where (``items[2].price``).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import struct
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from ._ext import Extension
from ._mapkeys import key_problem
from ._schema import (
    _SCHEMAS,
    F32,
    WALK_CLASSES,
    ClassSchema,
    FieldSchema,
    PathError,
    Plan,
    class_schema,
    is_model_class,
    key_segment,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_F32 = struct.Struct(">Bf")


class NeedsWalk(Exception):
    """Raised by the hook for a value only :func:`walk_pack` writes right (float32)."""


class EncodeFailure(PathError):
    """A value that cannot be encoded; ``path`` collects where, innermost first."""


def default(obj: Any) -> Any:
    """msgpack ``default`` hook: turn supported non-native values into native ones."""
    cls = type(obj)
    schema = _SCHEMAS.get(cls)  # the common case first: a class already seen
    if schema is not None or dataclasses.is_dataclass(cls) or is_model_class(cls):
        if schema is None:
            schema = class_schema(cls)
        if schema.walk:
            raise NeedsWalk
        if schema.is_model:
            return obj.model_dump(mode="python", by_alias=True)
        return schema.as_dict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is None or obj.utcoffset() is None:
            raise TypeError(
                f"naive datetime {obj.isoformat()} has no timezone: a MessagePack timestamp "
                "is an instant, so give it one (tzinfo=datetime.timezone.utc)"
            )
        return timestamp_of(obj)  # an aware subclass (the C packer takes exact datetimes)
    if isinstance(obj, datetime.date):
        raise TypeError(
            f"date {obj.isoformat()} is not supported: MessagePack has no date type and Go's "
            "time.Time is an instant; send an aware datetime or an ISO string"
        )
    if cls is Extension:
        if not 0 <= obj.code <= 127:
            raise TypeError(
                f"extension type {obj.code} cannot be written (MessagePack for Python writes "
                "codes 0 to 127; a Go complex is two floats in Python)"
            )
        return msgpack.ExtType(obj.code, obj.data)
    if isinstance(obj, int) and not isinstance(obj, bool):
        raise TypeError(
            f"integer {_short_int(obj)} is outside the 64-bit range MessagePack can carry "
            "(-2**63 .. 2**64-1)"
        )
    raise TypeError(f"cannot serialize object of type {cls.__qualname__}")


def timestamp_of(value: datetime.datetime) -> msgpack.Timestamp:
    """An aware datetime as a MessagePack timestamp, exact to the microsecond."""
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return msgpack.Timestamp(seconds, delta.microseconds * 1000)


def _short_int(value: int) -> str:
    return str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"


def walk_pack(body: Any, pack: Callable[[Any], bytes]) -> bytes:
    """Encode ``body`` in Python where needed (float32), with ``pack`` for the rest.

    Raises :class:`EncodeFailure` (with the path) for a value that cannot be encoded.
    """
    out: list[bytes] = []
    _Walker(out, pack, deep=False).struct_or_container(body)
    return b"".join(out)


def explain(body: Any, pack: Callable[[Any], bytes]) -> EncodeFailure | None:
    """Walk ``body`` part by part to find what the C packer failed on (``None``: not found)."""
    try:
        _Walker([], pack, deep=True).value(body, None)
    except EncodeFailure as failure:
        return failure
    except Exception:  # RecursionError on a cycle, a property that raises, ...: no path
        return None
    return None


class _Walker:
    """Writes a value as MessagePack into ``out``; ``deep`` walks every part in Python."""

    __slots__ = ("deep", "out", "pack")

    def __init__(self, out: list[bytes], pack: Callable[[Any], bytes], *, deep: bool) -> None:
        self.out = out
        self.pack = pack
        self.deep = deep

    def leaf(self, value: Any) -> None:
        try:
            self.out.append(self.pack(value))
        except NeedsWalk:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeFailure(str(exc)) from None

    def value(self, value: Any, plan: Plan) -> None:
        if plan is None:
            if type(value) in WALK_CLASSES or (self.deep and _is_composite(value)):
                self.struct_or_container(value)
                return
            try:
                self.leaf(value)
            except NeedsWalk:
                self.struct_or_container(value)
            return
        kind = plan[0]
        if plan is F32:
            self.float32(value)
        elif kind == "list" and isinstance(value, (list, tuple, set, frozenset)):
            self.items(value, plan[1])
        elif kind == "tuple" and isinstance(value, (list, tuple)) and len(value) == len(plan[1]):
            self.out.append(_array_header(len(value)))
            for i, (item, item_plan) in enumerate(zip(value, plan[1], strict=True)):
                self.at(f"[{i}]", item, item_plan)
        elif kind == "dict" and isinstance(value, Mapping):
            self.mapping(value, lambda _key: plan[1])
        elif kind == "union":
            self.value(value, _pick(value, plan[1]))
        elif kind == "struct" and isinstance(value, Mapping) and not _is_struct(value):
            schema = _schema_of(plan[1])  # a pydantic model_dump of that class
            self.mapping(value, lambda key: _field_plan(schema.by_key, key), schema.by_key)
        else:
            self.value(value, None)

    def struct_or_container(self, value: Any) -> None:
        cls = type(value)
        if dataclasses.is_dataclass(cls) and not isinstance(value, type):
            schema = _schema_of(cls)
            out, pack, deep = self.out, self.pack, self.deep
            out.append(_map_header(len(schema.fields)))
            for f in schema.fields:
                out.append(f.key)
                item, plan = getattr(value, f.name), f.plan
                if not deep:  # the common cases inline; anything odd takes the full path
                    try:
                        if plan is None:
                            out.append(pack(item))
                            continue
                        if plan is F32 and type(item) is float:
                            out.append(_F32.pack(0xCA, item))
                            continue
                    except Exception:
                        pass
                self.at("." + f.name, item, plan)
        elif is_model_class(cls):
            schema = _schema_of(cls)
            dumped = value.model_dump(mode="python", by_alias=True)
            if isinstance(dumped, Mapping):
                self.mapping(dumped, lambda key: _field_plan(schema.by_key, key), schema.by_key)
            else:  # a RootModel dumps its root
                self.value(dumped, _field_plan(schema.by_key, "root"))
        elif isinstance(value, Mapping):
            self.mapping(value, lambda _key: None)
        elif isinstance(value, (list, tuple, set, frozenset)):
            self.items(value, None)
        else:
            self.leaf(value)

    def items(self, values: Any, plan: Plan) -> None:
        self.out.append(_array_header(len(values)))
        for i, item in enumerate(values):
            self.at(f"[{i}]", item, plan)

    def mapping(
        self,
        value: Mapping[Any, Any],
        plan_for: Callable[[Any], Plan],
        fields: Mapping[str, FieldSchema] | None = None,
    ) -> None:
        self.out.append(_map_header(len(value)))
        for key, item in value.items():
            seg = _key_segment(key, fields)
            try:
                self.leaf(key)
                problem = key_problem(key)
                if problem is not None:
                    raise EncodeFailure(problem)
            except (EncodeFailure, NeedsWalk) as exc:
                failure = exc if isinstance(exc, EncodeFailure) else EncodeFailure("bad key")
                failure.path.append(seg + " (key)")
                raise failure from None
            self.at(seg, item, plan_for(key))

    def at(self, segment: str, value: Any, plan: Plan) -> None:
        try:
            self.value(value, plan)
        except EncodeFailure as failure:
            failure.path.append(segment)
            raise

    def float32(self, value: Any) -> None:
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            try:
                self.out.append(_F32.pack(0xCA, value))
            except (OverflowError, struct.error):
                raise EncodeFailure(f"{value!r} is outside float32's range") from None
        else:
            self.value(value, None)


def _schema_of(cls: type) -> ClassSchema:
    try:
        return class_schema(cls)
    except TypeError as exc:
        raise EncodeFailure(str(exc)) from None


def _map_header(n: int) -> bytes:
    if n <= 0x0F:
        return bytes((0x80 | n,))
    return struct.pack(">BH", 0xDE, n) if n <= 0xFFFF else struct.pack(">BI", 0xDF, n)


def _array_header(n: int) -> bytes:
    if n <= 0x0F:
        return bytes((0x90 | n,))
    return struct.pack(">BH", 0xDC, n) if n <= 0xFFFF else struct.pack(">BI", 0xDD, n)


def _is_struct(value: Any) -> bool:
    cls = type(value)
    return dataclasses.is_dataclass(cls) or is_model_class(cls)


def _is_composite(value: Any) -> bool:
    return _is_struct(value) or isinstance(value, (Mapping, list, tuple, set, frozenset))


def _field_plan(by_key: Mapping[str, FieldSchema], key: Any) -> Plan:
    field = by_key.get(key) if isinstance(key, str) else None
    return None if field is None else field.plan


def _key_segment(key: Any, fields: Mapping[str, FieldSchema] | None) -> str:
    if fields is not None and isinstance(key, str) and key in fields:
        return "." + fields[key].name  # a pydantic alias: name the Python field
    return key_segment(key)


def _pick(value: Any, plans: tuple[Plan, ...]) -> Plan:
    """The member plan of a union that fits ``value`` (``None``: let the packer decide)."""
    if value is None:
        return None
    for plan in plans:
        if plan is F32 and isinstance(value, float):
            return plan
        if plan is None:
            continue
        kind = plan[0]
        if (kind in ("list", "tuple") and isinstance(value, (list, tuple))) or (
            kind == "dict" and isinstance(value, Mapping)
        ):
            return plan
        if kind == "struct" and isinstance(value, plan[1]):
            return None  # a live object: the hook hands it back with its own schema
    return None
