"""Pure: whether every map key of a body comes back as a dict key once decoded.

MessagePack writes a tuple, a set or a dataclass as an array or a map, which decode to a
``list`` or a ``dict``: unhashable, so a body keyed by them (``{(1, 2): "x"}``) could be
published but never read. :func:`keys_come_back` says so before the body is sent; it is on
the publish path, so it proves what it can cheaply: a plain dict of plain values in one
loop, a dataclass or pydantic class once per class from its type hints (a class whose
fields cannot hold such a map is never walked again), and walks only the rest.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

from ._ext import Extension
from ._schema import class_schema, is_model_class

#: Types that encode as a MessagePack scalar which decodes to a hashable value.
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes, datetime.datetime})
#: Per dataclass or model class: whether its type hints prove that no map inside one of
#: its values can have a key that does not come back (built once per class).
_PROVEN: dict[type, bool] = {}
_ORIGIN_SEQUENCES = (list, tuple, set, frozenset)
#: What a map key may be, for messages.
KEY_RULE = "use str, int, float, bool, bytes, None, an aware datetime or an enum of those"


def key_problem(key: Any) -> str | None:
    """Why ``key`` cannot be a map key of a body (``None``: it can)."""
    if key_comes_back(key):
        return None
    return (
        f"a map key of type {type(key).__name__} would be read back as a list or a dict, "
        f"which cannot be a dict key: {KEY_RULE}"
    )


def key_comes_back(key: Any) -> bool:
    """Whether ``key`` decodes to a value that can be a dict key (a scalar, not an array
    or a map): ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``None``, a ``datetime``,
    their subclasses, or an enum whose value is one of them."""
    if type(key) in _PLAIN:
        return True
    if isinstance(key, enum.Enum):
        return key_comes_back(key.value)
    return key is None or isinstance(key, (str, int, float, bytes, datetime.datetime, Extension))


def keys_come_back(value: Any, _plain: frozenset[type] = _PLAIN, _type: type = type) -> bool:
    """Whether every map key anywhere in ``value`` comes back as a dict key."""
    cls = _type(value)
    if cls is dict:  # the common body: one loop, the builtins bound as locals
        for key, item in value.items():
            if _type(key) is not str and not key_comes_back(key):
                return False
            if _type(item) not in _plain and not keys_come_back(item):
                return False
        return True
    if cls in _plain:
        return True
    if cls is list or cls is tuple:
        for item in value:  # noqa: SIM110 - a loop, not all(genexpr): one frame per level
            if _type(item) not in _plain and not keys_come_back(item):
                return False
        return True
    return _other(value, cls)


def _other(value: Any, cls: type) -> bool:
    if _PROVEN.get(cls):  # the common typed body: one lookup
        return True
    if dataclasses.is_dataclass(cls) and not isinstance(value, type):
        if _proven(cls):
            return True
        return all(keys_come_back(getattr(value, f.name)) for f in class_schema(cls).fields)
    if is_model_class(cls):
        if _proven(cls):
            return True
        return keys_come_back(value.model_dump(mode="python", by_alias=True))
    if isinstance(value, Mapping):
        return all(key_comes_back(k) and keys_come_back(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(keys_come_back(item) for item in value)
    if isinstance(value, enum.Enum):
        return keys_come_back(value.value)
    return True  # a set holds no map; anything else is the packer's to accept or refuse


def _proven(cls: type) -> bool:
    proven = _PROVEN.get(cls)
    if proven is None:
        _PROVEN[cls] = False  # a class that refers to itself: walked (never wrongly proven)
        try:
            proven = all(_safe_hint(f.hint) for f in class_schema(cls).fields)
        except TypeError:  # hints that cannot be resolved: walk its values
            proven = False
        _PROVEN[cls] = proven
    return proven


def _safe_hint(hint: Any) -> bool:
    """Whether a value of type ``hint`` cannot hold a map with a key that does not come back."""
    if hint in _PLAIN or hint is None:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _safe_hint(args[0])
    if origin in _ORIGIN_SEQUENCES:
        return all(_safe_hint(arg) for arg in args if arg is not Ellipsis)
    if origin is dict:
        return len(args) == 2 and _safe_key_hint(args[0]) and _safe_hint(args[1])
    if origin is typing.Union or origin is types.UnionType:
        return all(_safe_hint(arg) for arg in args)
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return all(type(member.value) in _PLAIN for member in hint)
        if issubclass(hint, (str, int, float, bytes, datetime.datetime)):
            return True
        if dataclasses.is_dataclass(hint) or is_model_class(hint):
            return _proven(hint)
    return False  # Any, object, a TypeVar, an unknown class: walk the values


def _safe_key_hint(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return all(type(member.value) in _PLAIN for member in hint)
    return isinstance(hint, type) and issubclass(hint, (str, int, float, bytes, datetime.datetime))
