"""Decoded bodies into typed Python values: the work behind ``unserialize()``. Pure, no IO.

Each type hint is compiled once into a converter (a small function) and cached, so a
dataclass's field names, wire names, defaults and nested types are looked up once per
class, not once per event. Converters check the decoded shape as they build and raise
:class:`Mismatch`, which collects the path (``items[2].sku``) on its way out.

Go's rules, mirrored: unknown keys are ignored; a field missing from the map takes its
default (and one without a default is an error); a nil where Go has a slice, a map or
``[]byte`` (Go writes nil ones as nil) is an empty ``list`` / ``dict`` / ``bytes``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Literal, TypeVar, Union

from ._ext import COMPLEX_CODE, Extension
from ._schema import (
    _MAPPING_ORIGINS,
    _SEQUENCE_ORIGINS,
    PathError,
    class_schema,
    is_model_class,
    key_segment,
)

try:  # pydantic is optional: models are supported when it is installed.
    from pydantic import ValidationError
except ImportError:  # pragma: no cover - exercised only without pydantic
    ValidationError = None  # type: ignore[assignment,misc]

Converter = Callable[[Any], Any]
_NONE_TYPE = type(None)
_MISSING: Any = object()


class Mismatch(PathError):
    """A decoded value that does not fit its type hint; ``path`` collects where."""


_CONVERTERS: dict[Any, Converter] = {}


def converter(hint: Any) -> Converter:
    """The cached converter of a type hint."""
    # Unions compare equal whatever their order (int | float == float | int), but the
    # order decides which member is tried first: a generic hint is keyed by its repr too.
    key = hint if type(hint) is type else (hint, repr(hint))
    try:
        return _CONVERTERS[key]
    except KeyError:
        conv = _CONVERTERS[key] = _compile(hint)
        return conv
    except TypeError:  # an unhashable hint (Annotated with a dict, say): not cached
        return _compile(hint)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _identity(value: Any) -> Any:
    return value


def _compile(hint: Any) -> Converter:
    if hint is Any or hint is object or isinstance(hint, TypeVar):
        return _identity
    if hint is None or hint is _NONE_TYPE:
        return _none
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        return converter(args[0])
    if origin in (Union, types.UnionType):
        return _union(args)
    if origin is Literal:
        return _literal(args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(converter(args[0]), tuple)
        return _fixed_tuple(tuple(converter(a) for a in args))
    if origin in _SEQUENCE_ORIGINS:
        container: Any = list
        if origin in (set, frozenset):
            container = origin
        elif isinstance(origin, type) and issubclass(origin, AbstractSet):
            container = set
        return _sequence(converter(args[0]) if args else _identity, container)
    if origin in _MAPPING_ORIGINS:
        key, val = (converter(args[0]), converter(args[1])) if args else (_identity, _identity)
        return _mapping(key, val)
    if origin is not None:  # a parametrised class: Box[int] is a Box
        return converter(origin) if isinstance(origin, type) else _identity
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return converter(supertype)
    if not isinstance(hint, type):
        return _identity  # a hint this module does not know: trust the decoded shape
    if hint in _BARE:  # list, dict, ...: as list[Any], dict[Any, Any], ...
        return converter(_BARE[hint])
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    if is_model_class(hint):
        return _model(hint)
    if issubclass(hint, enum.Enum):
        return _enum(hint)
    return _SCALARS.get(hint) or _instance(hint)


def _none(value: Any) -> None:
    if value is not None:
        raise Mismatch(f"expected nil, got {_describe(value)}")


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise Mismatch(f"expected bool, got {_describe(value)}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Mismatch(f"expected int, got {_describe(value)}")


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # Go's decoder takes ints into floats too
    raise Mismatch(f"expected float, got {_describe(value)}")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Mismatch(f"expected str, got {_describe(value)}")


def _bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if value is None:
        return b""  # Go writes a nil []byte as nil
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise Mismatch(f"expected bytes (MessagePack bin), got {_describe(value)}")


def _datetime(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    if type(value).__name__ == "Timestamp":
        raise Mismatch(f"{value!r} is outside the range of datetime (years 1 to 9999)")
    raise Mismatch(f"expected datetime (MessagePack timestamp), got {_describe(value)}")


def _complex(value: Any) -> complex:
    if isinstance(value, Extension):
        found = value.complex
        if found is not None:
            return found
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return complex(value)
    raise Mismatch(
        f"expected complex (Go's complex64/128: extension {COMPLEX_CODE}), got {_describe(value)}"
    )


def _date(value: Any) -> Any:
    raise Mismatch("date fields are not supported (Go's time.Time is an instant): use datetime")


_BARE: dict[type, Any] = {
    list: list[Any],
    tuple: tuple[Any, ...],
    set: set[Any],
    frozenset: frozenset[Any],
    dict: dict[Any, Any],
}

_SCALARS: dict[type, Converter] = {
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    bytes: _bytes,
    datetime.datetime: _datetime,
    datetime.date: _date,
    complex: _complex,
}


def _instance(cls: type) -> Converter:
    def conv(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        raise Mismatch(f"expected {cls.__name__}, got {_describe(value)}")

    return conv


def _enum(cls: type[enum.Enum]) -> Converter:
    def conv(value: Any) -> Any:
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise Mismatch(f"{value!r} is not a valid {cls.__name__}") from None

    return conv


def _literal(choices: tuple[Any, ...]) -> Converter:
    def conv(value: Any) -> Any:
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return value
        raise Mismatch(f"expected one of {choices!r}, got {_describe(value)}")

    return conv


def _union(members: tuple[Any, ...]) -> Converter:
    nullable = _NONE_TYPE in members
    hints = [m for m in members if m is not _NONE_TYPE]
    convs = [converter(m) for m in hints]
    exact = tuple(m for m in hints if m in _SCALARS)  # a value of exactly one of these fits

    def conv(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise Mismatch(f"expected {_names(hints)}, got nil")
        if type(value) in exact:
            return value
        if len(convs) == 1:
            return convs[0](value)
        reasons = []
        for member in convs:
            try:
                return member(value)
            except Mismatch as exc:
                reasons.append(exc.reason)
        raise Mismatch(f"fits none of {_names(hints)} ({'; '.join(reasons)})")

    return conv


def _names(hints: list[Any]) -> str:
    return " | ".join(getattr(h, "__name__", repr(h)) for h in hints)


def _sequence(item: Converter, container: Any) -> Converter:
    def conv(value: Any) -> Any:
        if value is None:
            return container()  # Go writes a nil slice as nil
        if not isinstance(value, (list, tuple)):
            raise Mismatch(f"expected an array, got {_describe(value)}")
        out = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except Mismatch as exc:
                exc.path.append(f"[{i}]")
                raise
        if container is list:
            return out
        try:
            return container(out)
        except TypeError as exc:  # an unhashable element of a set
            raise Mismatch(f"cannot build a {container.__name__}: {exc}") from None

    return conv


def _fixed_tuple(items: tuple[Converter, ...]) -> Converter:
    def conv(value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise Mismatch(f"expected an array of {len(items)}, got {_describe(value)}")
        out = []
        for i, (item, element) in enumerate(zip(items, value, strict=True)):
            try:
                out.append(item(element))
            except Mismatch as exc:
                exc.path.append(f"[{i}]")
                raise
        return tuple(out)

    return conv


def _mapping(key: Converter, val: Converter) -> Converter:
    def conv(value: Any) -> Any:
        if value is None:
            return {}  # Go writes a nil map as nil
        if not isinstance(value, Mapping):
            raise Mismatch(f"expected a map, got {_describe(value)}")
        out = {}
        for k, v in value.items():
            try:
                out[key(k)] = val(v)
            except Mismatch as exc:
                exc.path.append(key_segment(k))
                raise
        return out

    return conv


def _dataclass(cls: type) -> Converter:
    plan: list[tuple[str, str, Converter, bool]] | None = None

    def conv(value: Any) -> Any:
        nonlocal plan
        if plan is None:  # built on first use, so recursive classes compile
            plan = _dataclass_plan(cls)
        if not isinstance(value, Mapping):
            raise Mismatch(f"expected a map for {cls.__name__}, got {_describe(value)}")
        kwargs = {}
        for name, wire, field_conv, required in plan:
            item = value.get(wire, _MISSING)
            if item is _MISSING:
                if required:
                    failure = Mismatch(f"missing (no default; wire name {wire!r})")
                    failure.path.append("." + name)
                    raise failure
                continue
            try:
                kwargs[name] = field_conv(item)
            except Mismatch as exc:
                exc.path.append("." + name)
                raise
        try:
            return cls(**kwargs)
        except Exception as exc:  # __post_init__ checks, InitVar without a default, ...
            raise Mismatch(f"{cls.__name__}(...) raised {type(exc).__name__}: {exc}") from None

    return conv


def _dataclass_plan(cls: type) -> list[tuple[str, str, Converter, bool]]:
    try:
        schema = class_schema(cls)
    except TypeError as exc:
        raise Mismatch(str(exc)) from None
    if schema.unresolved is not None:
        raise Mismatch(schema.unresolved)
    return [(f.name, f.wire, converter(f.hint), f.required) for f in schema.fields if f.init]


def _model(cls: Any) -> Converter:
    def conv(value: Any) -> Any:
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            more = exc.error_count() - 1
            failure = Mismatch(first["msg"] + (f" (and {more} more)" if more else ""))
            for part in reversed(first["loc"]):
                failure.path.append(f"[{part}]" if isinstance(part, int) else f".{part}")
            raise failure from None

    return conv
