"""How a class looks on the wire: field names, float32 fields, nested types. Pure, no IO.

A :class:`ClassSchema` is built once per dataclass or pydantic model (``get_type_hints``
runs once) and cached, so encoding a body and ``unserialize()`` only look it up. Names
mirror Go's msgpack (github.com/shamaton/msgpack): a struct field is keyed by its exported
name or by its ``msgpack:"name"`` tag, ``msgpack:"-"`` leaves it out, and key matching is
exact (case-sensitive). In Python:

- ``dataclasses.field(metadata={"msgpack": "name"})`` is the tag (``"-"`` leaves it out);
- ``@fluxabee.wire_names(fluxabee.go_name)`` maps every other field of a class, so
  ``order_id`` goes out as ``OrderId``; a field's own tag wins (``OrderID``);
- pydantic models use pydantic's own aliases (``Field(alias=...)``, ``alias_generator``).
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeAlias, TypeVar, Union

import msgpack

try:  # pydantic is optional: models are supported when it is installed.
    from pydantic import BaseModel
except ImportError:  # pragma: no cover - exercised only without pydantic
    BaseModel = None  # type: ignore[assignment,misc]

C = TypeVar("C", bound=type)

#: The ``dataclasses.field(metadata=...)`` key naming a field on the wire (Go's tag name).
WIRE_NAME_KEY = "msgpack"
#: The wire name that leaves a field out, in both directions (Go's ``msgpack:"-"``).
SKIP_NAME = "-"
#: The class attribute where :func:`wire_names` keeps a class's naming rule.
_RULE_ATTR = "__fluxabee_wire_names__"


class Float32:
    """Marks a float as MessagePack float32, Go's ``float32``: ``Annotated[float, Float32]``.

    Works on dataclass and pydantic fields and inside ``list``, ``tuple``, ``dict`` values
    and ``Optional``: ``list[Annotated[float, fluxabee.Float32]]`` is Go's ``[]float32``.
    The value is rounded to the nearest float32 (as Go's ``float32(x)`` does); one beyond
    float32's range raises :class:`~fluxabee.SerializationError`. Go rejects float64 in a
    float32 field, so a field Go declares ``float32`` needs this marker. The class itself
    and its instances (``Float32()``) both work as the marker.
    """

    __slots__ = ()


def go_name(name: str) -> str:
    """Go's exported name for a snake_case Python name: ``order_id`` -> ``OrderId``.

    Each ``_``-separated part gets an upper-case first letter and the underscores go.
    Initialisms are Go style, not a rule: give such a field its own wire name,
    ``dataclasses.field(metadata={"msgpack": "OrderID"})``.
    """
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def wire_names(rule: Callable[[str], str]) -> Callable[[C], C]:
    """Class decorator: name every field of a dataclass on the wire by ``rule(name)``.

    ``@fluxabee.wire_names(fluxabee.go_name)`` maps ``order_id`` to ``OrderId``, matching
    an untagged Go struct. A field's own ``metadata={"msgpack": ...}`` wins over the rule.
    Encoding and ``unserialize()`` use the same names; subclasses inherit the rule. Use it
    above or below ``@dataclass``. pydantic models have their own rule
    (``model_config = ConfigDict(alias_generator=...)``) and refuse this one.
    """
    if not callable(rule):
        raise TypeError(f"wire_names() takes a function str -> str, not {rule!r}")

    def apply(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"wire_names() decorates a class, not {cls!r}")
        if is_model_class(cls):
            raise TypeError(
                f"{cls.__name__} is a pydantic model: name its fields with pydantic's "
                "alias_generator or Field(alias=...), not wire_names()"
            )
        setattr(cls, _RULE_ATTR, staticmethod(rule))
        _SCHEMAS.pop(cls, None)
        WALK_CLASSES.discard(cls)
        return cls

    return apply


def is_model_class(cls: Any) -> bool:
    """Whether ``cls`` is a pydantic model class (``False`` without pydantic)."""
    return BaseModel is not None and isinstance(cls, type) and issubclass(cls, BaseModel)


def is_struct_class(cls: Any) -> bool:
    """Whether ``cls`` is a class that travels as a map: a dataclass or a pydantic model."""
    return isinstance(cls, type) and (dataclasses.is_dataclass(cls) or is_model_class(cls))


def key_segment(key: Any) -> str:
    """A map key as a step of an error path: ``.sku`` for a name, ``['a b']`` otherwise."""
    return f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"


class PathError(Exception):
    """A value of a body that failed to encode or decode; ``path`` collects where,
    innermost first (each level adds its :func:`key_segment` or ``[index]`` on the way out)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []

    def where(self) -> str:
        """The path from the body to the value, e.g. ``items[2].sku`` (``""``: the body)."""
        return "".join(reversed(self.path)).lstrip(".")


# --- Encoding plans: where the C packer alone would get the bytes wrong -----------------
#
# A plan is ``None`` ("let msgpack's C packer do it": no float32 can hide beneath) or a
# tuple whose first item says how to walk the value: F32, ("list", plan), ("tuple", (plan,
# ...)), ("dict", plan), ("union", (plan, ...)), ("struct", cls). A value that does not
# fit its plan (``None`` above all) is handed to the C packer, so ``Optional[X]`` is X's.
Plan: TypeAlias = tuple[Any, ...] | None
#: The plan of a float32 value.
F32: tuple[str] = ("f32",)

_NONE_TYPE = type(None)
_UNION_ORIGINS: tuple[Any, ...] = (Union, types.UnionType)
_SEQUENCE_ORIGINS: tuple[Any, ...] = (
    list,
    set,
    frozenset,
    typing.get_origin(typing.Sequence),
    typing.get_origin(typing.MutableSequence),
    typing.get_origin(typing.AbstractSet),
    typing.get_origin(typing.MutableSet),
    typing.get_origin(typing.Iterable),
    typing.get_origin(typing.Collection),
)
_MAPPING_ORIGINS: tuple[Any, ...] = (
    dict,
    typing.get_origin(typing.Mapping),
    typing.get_origin(typing.MutableMapping),
)


def is_float32(metadata: Any) -> bool:
    """Whether an ``Annotated`` metadata item is the :class:`Float32` marker."""
    return metadata is Float32 or isinstance(metadata, Float32)


def plan_of(hint: Any) -> Plan:
    """The encoding plan of a type hint (``None``: msgpack's C packer is enough)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        if any(is_float32(m) for m in metadata):
            return F32
        return plan_of(base)
    args = typing.get_args(hint)
    if origin in _UNION_ORIGINS:
        plans = tuple(plan_of(a) for a in args if a is not _NONE_TYPE)
        if all(p is None for p in plans):
            return None
        return plans[0] if len(plans) == 1 else ("union", plans)  # every plan packs None
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = plan_of(args[0])
            return None if inner is None else ("list", inner)
        plans = tuple(plan_of(a) for a in args)
        return None if all(p is None for p in plans) else ("tuple", plans)
    if origin in _SEQUENCE_ORIGINS and args:
        inner = plan_of(args[0])
        return None if inner is None else ("list", inner)
    if origin in _MAPPING_ORIGINS and len(args) == 2:
        inner = plan_of(args[1])
        return None if inner is None else ("dict", inner)
    if is_struct_class(hint) and needs_walk(hint):
        return ("struct", hint)
    return None


# --- Class schemas ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldSchema:
    """One field of a :class:`ClassSchema`."""

    #: The Python attribute name.
    name: str
    #: The map key on the wire.
    wire: str
    #: ``wire`` packed as a MessagePack ``str`` (ready to join into a body).
    key: bytes
    #: The resolved type hint, ``Annotated`` extras kept (``Any`` when unknown).
    hint: Any
    #: Whether ``unserialize()`` passes it to ``__init__``.
    init: bool
    #: Whether ``unserialize()`` needs it on the wire (no default, no default factory).
    required: bool
    #: How to encode it when msgpack's C packer alone would get it wrong (else ``None``).
    plan: Plan


@dataclasses.dataclass(frozen=True)
class ClassSchema:
    """A class's fields as they travel: built once per class by :func:`class_schema`."""

    #: The class.
    cls: type
    #: True for a pydantic model, False for a dataclass.
    is_model: bool
    #: The fields that travel, in declaration order (the order Go writes a struct's).
    fields: tuple[FieldSchema, ...]
    #: Wire name -> field, and Python name -> field where no wire name is the same.
    by_key: Mapping[str, FieldSchema]
    #: Whether some field needs the Python encoder (a float32 somewhere beneath).
    walk: bool
    #: Dataclasses only: the object -> ``{wire name: value}`` map the C packer then packs.
    as_dict: Callable[[Any], dict[str, Any]]
    #: Why the type hints could not be resolved (``None``: they were; every hint is
    #: ``Any`` otherwise, which encoding tolerates and ``unserialize`` does not).
    unresolved: str | None = None


_SCHEMAS: dict[type, ClassSchema] = {}
#: The classes whose schema says ``walk``: ``encode_body`` sends them to the Python walk
#: straight away (a hook raising through msgpack's C packer costs about 2 us).
WALK_CLASSES: set[type] = set()
_building = threading.local()


def class_schema(cls: type) -> ClassSchema:
    """The cached :class:`ClassSchema` of a dataclass or pydantic model class.

    Raises ``TypeError`` naming the class when its type hints cannot be resolved or two
    fields share a wire name.
    """
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = _build(cls)
        if schema.walk:
            WALK_CLASSES.add(cls)
    return schema


def needs_walk(cls: type) -> bool:
    """Whether values of ``cls`` need the Python encoder (``False`` while it is being built:
    a recursive reference is then packed by the C packer, which hands it back at run time).
    """
    stack: set[type] = _building.__dict__.setdefault("stack", set())
    if cls in stack:
        return False
    return class_schema(cls).walk


def _build(cls: type) -> ClassSchema:
    stack: set[type] = _building.__dict__.setdefault("stack", set())
    stack.add(cls)
    try:
        fields, unresolved = _model_fields(cls) if is_model_class(cls) else _dataclass_fields(cls)
    finally:
        stack.discard(cls)
    by_key: dict[str, FieldSchema] = {}
    for f in fields:
        other = by_key.get(f.wire)
        if other is not None:
            raise TypeError(
                f"{cls.__name__}: fields {other.name!r} and {f.name!r} share the wire name "
                f"{f.wire!r}"
            )
        by_key[f.wire] = f
    for f in fields:  # pydantic's model_dump keys a dataclass inside a model by Python name
        by_key.setdefault(f.name, f)
    return ClassSchema(
        cls=cls,
        is_model=is_model_class(cls),
        fields=fields,
        by_key=by_key,
        walk=any(f.plan is not None for f in fields),
        as_dict=_dict_maker(fields),
        unresolved=unresolved,
    )


def _resolve_hints(cls: type) -> tuple[dict[str, Any], str | None]:
    """The class's type hints, or ``({}, why)`` when they cannot be resolved.

    Encoding does without them (every field is then ``Any``) unless an annotation names
    ``Float32``, which would otherwise go out as float64 without a word; ``unserialize``
    needs them and reports ``why``.
    """
    try:
        return typing.get_type_hints(cls, include_extras=True), None
    except Exception as exc:  # NameError for a forward reference, and friends
        why = f"cannot resolve the type hints of {cls.__name__}: {exc}"
    for f in dataclasses.fields(cls):
        if "Float32" in (f.type if isinstance(f.type, str) else repr(f.type)):
            raise TypeError(f"{why} (needed to find its float32 fields)")
    return {}, why


def _dataclass_fields(cls: type) -> tuple[tuple[FieldSchema, ...], str | None]:
    hints, unresolved = _resolve_hints(cls)
    rule = getattr(cls, _RULE_ATTR, None)
    out = []
    for f in dataclasses.fields(cls):
        wire = f.metadata.get(WIRE_NAME_KEY) if f.metadata else None
        if wire is None:
            wire = rule(f.name) if rule is not None else f.name
        if not isinstance(wire, str) or not wire:
            raise TypeError(
                f"{cls.__name__}.{f.name}: a wire name is a non-empty str, not {wire!r}"
            )
        if wire == SKIP_NAME:
            continue
        hint = hints.get(f.name, Any)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(_field(f.name, wire, hint, f.init, required))
    return tuple(out), unresolved


def _model_fields(cls: Any) -> tuple[tuple[FieldSchema, ...], str | None]:
    out = []
    for name, info in cls.model_fields.items():
        if info.exclude:
            continue
        wire = info.serialization_alias or info.alias or name
        hint = info.annotation
        if info.metadata:
            params = (hint, *info.metadata)
            hint = Annotated[params]
        out.append(_field(name, wire, hint, True, info.is_required()))
    return tuple(out), None


def _field(name: str, wire: str, hint: Any, init: bool, required: bool) -> FieldSchema:
    key: bytes = msgpack.packb(wire)
    return FieldSchema(name, wire, key, hint, init, required, plan_of(hint))


def _dict_maker(fields: tuple[FieldSchema, ...]) -> Callable[[Any], dict[str, Any]]:
    pairs = tuple((f.name, f.wire) for f in fields)

    def as_dict(obj: Any) -> dict[str, Any]:
        return {wire: getattr(obj, name) for name, wire in pairs}

    return as_dict
