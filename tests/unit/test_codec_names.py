"""Field names and float32 as Go's msgpack writes them: tags, exported names. No Redis."""

from __future__ import annotations

import dataclasses
import struct
from typing import Annotated, Any

import msgpack
import pydantic
import pytest
from pydantic.alias_generators import to_pascal

import fluxabee
from fluxabee import DecodeError, Float32, SerializationError, go_name, wire_names
from fluxabee.codec import decode_body, encode_body, unserialize

F32 = Annotated[float, Float32]


def packed(value: Any) -> bytes:
    """Reference bytes from msgpack itself (for maps of plain values only)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def f32(x: float) -> bytes:
    return b"\xca" + struct.pack(">f", x)


@pytest.mark.parametrize(
    ("name", "go"),
    [
        ("order_id", "OrderId"),
        ("id", "Id"),
        ("http_url", "HttpUrl"),
        ("x", "X"),
        ("a_b_c", "ABC"),
        ("total_2", "Total2"),
        ("Name", "Name"),
        ("already_Camel", "AlreadyCamel"),
        ("order_ID", "OrderID"),
        ("xmlHttp", "XmlHttp"),
    ],
)
def test_go_name_makes_the_exported_name(name: str, go: str) -> None:
    assert go_name(name) == go


@wire_names(go_name)
@dataclasses.dataclass
class Order:
    order_id: str = dataclasses.field(metadata={"msgpack": "OrderID"})  # an initialism
    customer_name: str = ""
    line_count: int = 0


def test_the_go_rule_and_a_per_field_tag_name_the_keys_both_ways() -> None:
    order = Order(order_id="o-1", customer_name="Ann", line_count=2)
    raw = encode_body(order)
    assert raw == packed({"OrderID": "o-1", "CustomerName": "Ann", "LineCount": 2})
    assert unserialize(decode_body(raw or b""), Order) == order


def test_the_rule_works_below_dataclass_and_with_slots() -> None:
    @dataclasses.dataclass(slots=True)
    @wire_names(go_name)
    class Slotted:
        line_count: int

    assert encode_body(Slotted(3)) == packed({"LineCount": 3})
    assert unserialize({"LineCount": 3}, Slotted) == Slotted(3)


def test_any_rule_can_name_fields() -> None:
    @wire_names(str.upper)
    @dataclasses.dataclass
    class Shouty:
        a: int

    assert encode_body(Shouty(1)) == packed({"A": 1})


def test_wire_names_refuses_pydantic_models_and_non_functions() -> None:
    class Model(pydantic.BaseModel):
        a: int

    with pytest.raises(TypeError, match="alias_generator"):
        wire_names(go_name)(Model)
    with pytest.raises(TypeError):
        wire_names("go")  # type: ignore[arg-type]


def test_a_dash_leaves_a_field_out_both_ways() -> None:
    @dataclasses.dataclass
    class Secretive:
        shown: int
        hidden: str = dataclasses.field(default="local", metadata={"msgpack": "-"})

    assert encode_body(Secretive(1, "x")) == packed({"shown": 1})
    assert unserialize({"shown": 1, "hidden": "wire", "-": 2}, Secretive) == Secretive(1)


def test_two_fields_with_one_wire_name_are_an_error_both_ways() -> None:
    @dataclasses.dataclass
    class Clash:
        a: int = dataclasses.field(metadata={"msgpack": "X"})
        b: int = dataclasses.field(metadata={"msgpack": "X"})

    with pytest.raises(SerializationError, match="share the wire name 'X'"):
        encode_body(Clash(1, 2))
    with pytest.raises(DecodeError, match="share the wire name 'X'"):
        unserialize({"X": 1}, Clash)


def test_a_bad_wire_name_is_an_error() -> None:
    @dataclasses.dataclass
    class Empty:
        a: int = dataclasses.field(metadata={"msgpack": ""})

    with pytest.raises(SerializationError, match="non-empty str"):
        encode_body(Empty(1))


def test_unknown_keys_are_ignored_and_missing_ones_take_their_default() -> None:
    @dataclasses.dataclass
    class Defaults:
        need: int
        opt: str = "d"
        many: list[int] = dataclasses.field(default_factory=lambda: [9])

    assert unserialize({"need": 1, "Other": 2}, Defaults) == Defaults(1, "d", [9])
    with pytest.raises(DecodeError, match=r"into .*Defaults at need: missing .*'need'"):
        unserialize({"opt": "x"}, Defaults)


def test_a_missing_field_is_named_by_its_python_path_and_wire_name() -> None:
    with pytest.raises(
        DecodeError, match=r"at order_id: missing \(no default; wire name 'OrderID'"
    ):
        unserialize({"order_id": "o-1"}, Order)  # the Python name is not the wire name


class Aliased(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_pascal)
    order_id: str
    line_count: int = pydantic.Field(alias="Lines")


def test_pydantic_aliases_name_the_keys_both_ways() -> None:
    model = Aliased.model_validate({"OrderId": "o", "Lines": 3})
    raw = encode_body(model)
    assert raw == packed({"OrderId": "o", "Lines": 3})
    assert unserialize(decode_body(raw or b""), Aliased) == model


# --- float32 --------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: F32
    y: float


@dataclasses.dataclass
class Shape:
    points: list[Point]
    by_name: dict[str, Point]
    weights: list[F32]
    scale: dict[str, F32]
    maybe: F32 | None = None
    either: F32 | str = "none"
    fixed: tuple[F32, int] = (0.0, 0)


def test_float32_is_written_as_msgpack_float32() -> None:
    assert encode_body(Point(1.5, 1.5)) == b"\x82\xa1x" + f32(1.5) + b"\xa1y" + packed(1.5)
    assert f32(1.5) == bytes.fromhex("ca3fc00000")


def test_float32_inside_containers_and_nested_dataclasses() -> None:
    shape = Shape([Point(0.5, 2.0)], {"p": Point(-1.0, 0.0)}, [0.25, 3], {"s": 8.0}, 1.0, 2.5)
    raw = encode_body(shape) or b""
    p1 = b"\x82\xa1x" + f32(0.5) + b"\xa1y" + packed(2.0)
    p2 = b"\x82\xa1x" + f32(-1.0) + b"\xa1y" + packed(0.0)
    assert raw == (
        b"\x87\xa6points\x91" + p1 + b"\xa7by_name\x81\xa1p" + p2
        + b"\xa7weights\x92" + f32(0.25) + f32(3.0) + b"\xa5scale\x81\xa1s" + f32(8.0)
        + b"\xa5maybe" + f32(1.0) + b"\xa6either" + f32(2.5)
        + b"\xa5fixed\x92" + f32(0.0) + b"\x00"
    )  # fmt: skip
    assert unserialize(decode_body(raw), Shape) == dataclasses.replace(
        shape, weights=[0.25, 3.0], fixed=(0.0, 0)
    )


def test_float32_optional_none_and_union_other_member() -> None:
    raw = encode_body(Shape([], {}, [], {}, None, "text")) or b""
    assert b"\xa5maybe\xc0" in raw
    assert b"\xa6either\xa4text" in raw


def test_float32_objects_inside_plain_bodies() -> None:
    point = b"\x82\xa1x" + f32(1.5) + b"\xa1y" + packed(1.5)
    assert encode_body({"p": Point(1.5, 1.5)}) == b"\x81\xa1p" + point
    assert encode_body([1, Point(1.5, 1.5), "z"]) == b"\x93\x01" + point + b"\xa1z"


class PointModel(pydantic.BaseModel):
    x: F32
    y: float


class ShapeModel(pydantic.BaseModel):
    points: list[PointModel]
    first: PointModel


def test_float32_in_pydantic_models_nested_too() -> None:
    point = b"\x82\xa1x" + f32(1.5) + b"\xa1y" + packed(1.5)
    model = ShapeModel(points=[PointModel(x=1.5, y=1.5)], first=PointModel(x=1.5, y=1.5))
    raw = encode_body(model)
    assert raw == b"\x82\xa6points\x91" + point + b"\xa5first" + point
    assert unserialize(decode_body(raw or b""), ShapeModel) == model


@wire_names(go_name)
@dataclasses.dataclass
class Reading:
    ratio_x: F32


class Holder(pydantic.BaseModel):
    reading: Reading
    readings: list[Reading]


def test_float32_in_a_dataclass_inside_a_pydantic_model() -> None:
    # pydantic dumps a nested dataclass by its Python names (and validates it so)
    reading = b"\x81\xa7ratio_x" + f32(0.5)
    model = Holder(reading=Reading(0.5), readings=[Reading(0.5)])
    raw = encode_body(model)
    assert raw == b"\x82\xa7reading" + reading + b"\xa8readings\x91" + reading
    assert unserialize(decode_body(raw or b""), Holder) == model


class Ratios(pydantic.RootModel[list[F32]]):
    pass


def test_float32_in_a_pydantic_root_model() -> None:
    assert encode_body(Ratios([1.5])) == b"\x91" + f32(1.5)
    assert unserialize([1.5], Ratios) == Ratios([1.5])


def test_float32_fields_decode_as_checked_floats() -> None:
    back = unserialize({"x": 2, "y": 1}, Point)
    assert back == Point(2.0, 1.0) and type(back.x) is float
    with pytest.raises(DecodeError, match=r"into Point at x: expected float"):
        unserialize({"x": "2", "y": 1}, Point)


def test_float32_rounds_like_go_and_refuses_what_float32_cannot_hold() -> None:
    raw = encode_body(Point(0.1, 0.1)) or b""
    assert raw[3:8] == f32(0.1)
    assert decode_body(raw)["x"] == 0.10000000149011612  # float32(0.1), as Go stores it
    with pytest.raises(SerializationError, match=r"\(Shape\) at points\[1\]\.x: 1e\+300"):
        encode_body(Shape([Point(1, 1), Point(1e300, 1)], {}, [], {}))


def test_a_float32_marker_instance_works_too() -> None:
    @dataclasses.dataclass
    class Inst:
        v: Annotated[float, Float32()]

    assert encode_body(Inst(1.5)) == b"\x81\xa1v" + f32(1.5)


def test_the_marker_is_exported() -> None:
    assert fluxabee.Float32 is Float32
