"""unserialize() builds nested types; errors name the path, both ways. Pure, no Redis."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import typing
from typing import Annotated, Any, Literal, NewType, Optional, Union

import pydantic
import pytest

from fluxabee import DecodeError, Event, Float32, SerializationError
from fluxabee.codec import decode_body, encode_body, unserialize

UTC = datetime.timezone.utc
Sku = NewType("Sku", str)


class Status(enum.Enum):
    OPEN = "open"
    PAID = "paid"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class LineItem:
    sku: Sku
    qty: int
    price: float = 0.0


@dataclasses.dataclass
class Note:
    text: str


class Customer(pydantic.BaseModel):
    name: str
    vip: bool = False


@dataclasses.dataclass
class Order:
    items: list[LineItem]
    by_sku: dict[str, LineItem]
    gift: Optional[LineItem]  # noqa: UP045 - typing.Optional, not X | None, on purpose
    pair: tuple[LineItem, int]
    history: tuple[LineItem, ...]
    extra: LineItem | Note
    status: Status
    level: Level
    placed: datetime.datetime
    blob: bytes
    tags: set[str]
    customers: list[Customer]
    kind: Literal["web", "shop"] = "web"
    maybe_notes: Union[list[Note], None] = None  # noqa: UP007 - typing.Union on purpose
    any_: Any = None


def make_order() -> Order:
    return Order(
        items=[LineItem(Sku("a"), 1, 1.5), LineItem(Sku("b"), 2)],
        by_sku={"a": LineItem(Sku("a"), 1, 1.5)},
        gift=None,
        pair=(LineItem(Sku("c"), 3), 7),
        history=(LineItem(Sku("d"), 4),),
        extra=Note("thanks"),
        status=Status.PAID,
        level=Level.HIGH,
        placed=datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        blob=b"\x00\xff",
        tags={"x"},
        customers=[Customer(name="Ann", vip=True)],
        kind="shop",
        maybe_notes=[Note("n")],
        any_={"free": [1]},
    )


def test_nested_types_round_trip_through_bytes() -> None:
    order = make_order()
    back = unserialize(decode_body(encode_body(order) or b""), Order)
    assert back == order
    assert type(back.items[0]) is LineItem
    assert type(back.by_sku["a"]) is LineItem
    assert type(back.pair[0]) is LineItem and isinstance(back.pair, tuple)
    assert isinstance(back.history, tuple) and type(back.history[0]) is LineItem
    assert type(back.extra) is Note
    assert back.status is Status.PAID and back.level is Level.HIGH
    assert type(back.customers[0]) is Customer
    assert back.maybe_notes is not None and type(back.maybe_notes[0]) is Note


def test_a_union_picks_the_member_that_fits() -> None:
    order = dataclasses.replace(make_order(), extra=LineItem(Sku("u"), 9))
    back = unserialize(decode_body(encode_body(order) or b""), Order)
    assert back.extra == LineItem(Sku("u"), 9)
    assert unserialize(2, Union[int, float]) == 2  # noqa: UP007
    assert type(unserialize(2, float | int)) is int
    assert unserialize(2.5, Union[int, float]) == 2.5  # noqa: UP007


def wire(order: Order) -> dict[str, Any]:
    return decode_body(encode_body(order) or b"")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda w: w["items"].__setitem__(1, {"sku": 7, "qty": 1}), r"items\[1\]\.sku"),
        (lambda w: w["items"][0].__setitem__("qty", "x"), r"items\[0\]\.qty"),
        (lambda w: w["by_sku"]["a"].pop("qty"), r"by_sku\.a\.qty"),
        (lambda w: w.__setitem__("gift", {"sku": "g"}), r"gift\.qty"),
        (lambda w: w["pair"].__setitem__(1, "7"), r"pair\[1\]"),
        (lambda w: w.__setitem__("pair", [w["pair"][0]]), r"pair: expected an array of 2"),
        (lambda w: w.__setitem__("extra", {"nope": 1}), r"extra: fits none of"),
        (lambda w: w.__setitem__("status", "lost"), r"status: 'lost' is not a valid Status"),
        (lambda w: w.__setitem__("placed", 17), r"placed: expected datetime"),
        (lambda w: w.__setitem__("blob", "text"), r"blob: expected bytes"),
        (lambda w: w["customers"][0].__setitem__("vip", [1]), r"customers\[0\]\.vip"),
        (lambda w: w.__setitem__("kind", "mail"), r"kind: expected one of"),
        (lambda w: w.__setitem__("items", {"a": 1}), r"items: expected an array"),
        (lambda w: w.__setitem__("by_sku", [1]), r"by_sku: expected a map"),
        (lambda w: w["maybe_notes"].__setitem__(0, {"text": 1}), r"maybe_notes\[0\]\.text"),
    ],
)
def test_a_value_of_the_wrong_shape_names_its_path(change: Any, where: str) -> None:
    body = wire(make_order())
    change(body)
    with pytest.raises(DecodeError, match=r"cannot unserialize into Order at " + where):
        unserialize(body, Order)


def test_a_union_tries_its_members_in_the_order_written() -> None:
    @dataclasses.dataclass
    class A:
        v: int = 0

    @dataclasses.dataclass
    class B:
        v: int = 0

    assert type(unserialize({"v": 1}, A | B)) is A
    assert type(unserialize({"v": 1}, B | A)) is B  # equal to A | B, yet tried B first
    assert type(unserialize([{"v": 1}], list[B | A])[0]) is B


def test_a_literal_checks_the_type_too() -> None:
    assert unserialize(1, Literal[1, "a"]) == 1
    with pytest.raises(DecodeError, match="expected one of"):
        unserialize(True, Literal[1])


def test_plain_type_mismatches() -> None:
    for value, cls in [(True, int), ("1", int), (1, bool), (1.5, int), (None, str), (b"x", str)]:
        with pytest.raises(DecodeError):
            unserialize(value, cls)
    assert unserialize(3, float) == 3.0 and type(unserialize(3, float)) is float
    assert unserialize(bytearray(b"a"), bytes) == b"a"
    assert unserialize(None, Optional[int]) is None  # noqa: UP045
    assert unserialize({"a": [1]}, dict) == {"a": [1]}
    with pytest.raises(DecodeError, match="expected int, got str"):
        unserialize({"a": "x"}, dict[str, int])
    with pytest.raises(DecodeError, match="expected nil"):
        unserialize(1, type(None))


def test_go_nil_slices_and_maps_are_empty_ones() -> None:
    @dataclasses.dataclass
    class FromGo:
        tags: list[str]
        attrs: dict[str, str]
        raw: bytes
        seen: frozenset[int]
        maybe: list[int] | None

    value = unserialize(
        {"tags": None, "attrs": None, "raw": None, "seen": None, "maybe": None}, FromGo
    )
    assert value == FromGo([], {}, b"", frozenset(), None)


def test_a_recursive_dataclass() -> None:
    @dataclasses.dataclass
    class Tree:
        name: str
        children: list[Tree] = dataclasses.field(default_factory=list)

    globals()["Tree"] = Tree  # get_type_hints resolves the string "list[Tree]" here
    tree = Tree("root", [Tree("a", [Tree("a1")]), Tree("b")])
    assert unserialize(decode_body(encode_body(tree) or b""), Tree) == tree
    with pytest.raises(DecodeError, match=r"at children\[0\]\.children\[0\]\.name"):
        unserialize({"name": "r", "children": [{"name": "a", "children": [{"name": 1}]}]}, Tree)


def test_a_constructor_error_is_a_decode_error() -> None:
    @dataclasses.dataclass
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n must be >= 0")

    with pytest.raises(DecodeError, match=r"Checked\(\.\.\.\) raised ValueError: n must be"):
        unserialize({"n": -1}, Checked)


def test_event_unserialize_keeps_the_raw_bytes() -> None:
    raw = encode_body({"sku": 1, "qty": 1}) or b""
    event = Event("1-0", "s", raw, {}, lambda _e: None)
    with pytest.raises(DecodeError) as info:
        event.unserialize(LineItem)
    assert info.value.raw == raw
    assert "at sku: expected str, got int 1" in str(info.value)


def test_decoding_is_lazy_and_the_plan_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    event = Event("1-0", "s", b"\xc1 not msgpack", {}, lambda _e: None)
    assert event.id == "1-0" and event.tag("x") == ""  # building an event decodes nothing
    assert not event.decodable

    @dataclasses.dataclass
    class Fresh:
        a: int

    calls = []
    real = typing.get_type_hints
    monkeypatch.setattr(typing, "get_type_hints", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        assert unserialize({"a": 1}, Fresh) == Fresh(1)
        assert encode_body(Fresh(1)) == b"\x81\xa1a\x01"
    assert len(calls) == 1


def test_unresolvable_hints_are_named() -> None:
    @dataclasses.dataclass
    class Dangling:
        a: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(DecodeError, match=r"cannot resolve the type hints of .*Dangling"):
        unserialize({"a": 1}, Dangling)
    assert encode_body(Dangling(1)) == b"\x81\xa1a\x01"  # encoding needs no hints

    @dataclasses.dataclass
    class DanglingF32:
        a: Annotated[float, Float32]
        b: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(SerializationError, match="needed to find its float32 fields"):
        encode_body(DanglingF32(1.0, 2))


# --- serialization errors say what and where --------------------------------------------


@dataclasses.dataclass
class Priced:
    items: list[LineItem]


def test_an_integer_beyond_64_bits_says_so() -> None:
    for big in (2**64, -(2**63) - 1, 2**70):
        with pytest.raises(SerializationError, match=r"outside the 64-bit range .*-2\*\*63"):
            encode_body(big)
    assert decode_body(encode_body(2**64 - 1) or b"") == 2**64 - 1
    assert decode_body(encode_body(-(2**63)) or b"") == -(2**63)
    with pytest.raises(SerializationError, match="integer of 10001 bits"):
        encode_body(2**10000)


def test_the_path_of_what_failed_is_named() -> None:
    body = Priced([LineItem(Sku("a"), 1), LineItem(Sku("b"), 1), LineItem(Sku("c"), 1, 2**70)])
    with pytest.raises(SerializationError, match=r"\(Priced\) at items\[2\]\.price: integer"):
        encode_body(body)
    with pytest.raises(SerializationError, match=r"\(dict\) at a\[1\]\['b c'\]: cannot serialize"):
        encode_body({"a": [1, {"b c": object()}]})
    with pytest.raises(SerializationError, match=r"at \[0\]: .*surrogates not allowed"):
        encode_body(["\ud800"])
    with pytest.raises(SerializationError, match=r"at \[\(1\+2j\)\] \(key\): cannot serialize"):
        encode_body({1 + 2j: 1})


def test_a_pydantic_path_uses_python_names() -> None:
    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        odd_one: object = pydantic.Field(alias="OddOne")

    model = Loose.model_validate({"OddOne": 2**70})
    with pytest.raises(SerializationError, match=r"\(Loose\) at odd_one: integer"):
        encode_body(model)


def test_errors_raised_while_reading_a_body_are_serialization_errors() -> None:
    @dataclasses.dataclass
    class Unset:
        a: int
        b: int = dataclasses.field(init=False)  # never set

    with pytest.raises(SerializationError, match="has no attribute 'b'"):
        encode_body(Unset(1))
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="recursion"):
        encode_body(cycle)


def test_the_packer_still_works_after_an_error() -> None:
    with pytest.raises(SerializationError):
        encode_body([1, object()])
    assert encode_body([1, 2]) == b"\x92\x01\x02"


def test_types_messagepack_cannot_carry_are_named() -> None:
    for value, name in [(datetime.timedelta(1), "timedelta"), (1 + 2j, "complex")]:
        with pytest.raises(SerializationError, match=f"object of type {name}"):
            encode_body(value)
