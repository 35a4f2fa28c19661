"""Codec: golden bytes shared with Go, round trips, clear errors. Pure, no Redis."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxabee import DecodeError, FluxabeeError, SerializationError
from fluxabee.codec import decode_body, encode_body, entry_fields, split_fields, unserialize
from fluxabee.event import _UNSET, Event


@dataclasses.dataclass
class GoStruct:
    Name: str


@dataclasses.dataclass
class Inner:
    X: int


@dataclasses.dataclass
class Outer:
    Inner: Inner
    Tags: list[str]


class Model(pydantic.BaseModel):
    name: str
    size: int = 0


class Color(enum.Enum):
    RED = "red"


def test_dataclass_encodes_exactly_like_a_go_struct() -> None:
    assert encode_body(GoStruct(Name="a1")) == bytes.fromhex("81a44e616d65a26131")


def test_str_is_msgpack_str_and_bytes_is_bin() -> None:
    assert encode_body("a1") == bytes.fromhex("a26131")
    assert encode_body(b"a1") == bytes.fromhex("c4026131")


@pytest.mark.parametrize(
    "body", ["text", b"\x00\xff", 0, -5, 2**63, 1.5, True, False, [1, "a"], {"a": {"b": [1]}}]
)
def test_plain_bodies_round_trip(body: object) -> None:
    packed = encode_body(body)
    assert packed is not None
    assert decode_body(packed) == body


def test_none_body_has_no_bytes() -> None:
    assert encode_body(None) is None


def test_nested_dataclass_and_pydantic_round_trip() -> None:
    body = Outer(Inner=Inner(X=1), Tags=["a"])
    packed = encode_body(body)
    assert packed is not None
    assert decode_body(packed) == {"Inner": {"X": 1}, "Tags": ["a"]}
    assert unserialize(decode_body(packed), Outer) == body
    model_bytes = encode_body(Model(name="n", size=2))
    assert model_bytes is not None
    assert unserialize(decode_body(model_bytes), Model) == Model(name="n", size=2)


def test_enum_encodes_its_value() -> None:
    assert decode_body(encode_body(Color.RED) or b"") == "red"
    assert unserialize("red", Color) is Color.RED


@pytest.mark.parametrize("body", [object(), {1, 2j}, 2**70, {"f": lambda: 1}])
def test_unserializable_bodies_raise_serialization_error(body: object) -> None:
    with pytest.raises(SerializationError):
        encode_body(body)


@pytest.mark.parametrize("raw", [b"\xc1", b"\xa5ab", b"\x01\x02", b"\xa2\xff\xfe"])
def test_bad_msgpack_raises_decode_error_with_raw_bytes(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_body(raw)
    assert info.value.raw == raw


def test_unserialize_mismatch_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        unserialize("text", GoStruct)
    with pytest.raises(DecodeError):
        unserialize({"size": "big"}, Model)
    with pytest.raises(DecodeError):
        unserialize({}, GoStruct)  # required field missing
    with pytest.raises(DecodeError):
        unserialize(True, int)
    assert unserialize(3, float) == 3.0
    assert unserialize({"Name": "x", "Extra": 1}, GoStruct) == GoStruct(Name="x")


def test_entry_fields_put_body_first_then_meta() -> None:
    assert entry_fields("x", {"k": "v"}) == [b"s", b"\xa1x", b"k", b"v"]
    assert entry_fields(None, {"k": "v"}) == [b"k", b"v"]
    for bad_meta in ({"k": 1}, {"": "v"}, {"s": "v"}):
        with pytest.raises(SerializationError):
            entry_fields("x", bad_meta)
    with pytest.raises(SerializationError):
        entry_fields(None, {})


def test_split_fields_accepts_flat_lists_and_survives_non_utf8_meta() -> None:
    raw, meta = split_fields([b"s", b"\xa1x", b"k", b"\xff"])
    assert raw == b"\xa1x"
    assert meta["k"].encode("utf-8", "surrogateescape") == b"\xff"
    assert split_fields({b"k": b"v"}) == (None, {"k": "v"})


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_like)
def test_any_supported_body_round_trips(body: Any) -> None:
    packed = encode_body(body)
    if body is None:
        assert packed is None
    else:
        assert packed is not None
        assert decode_body(packed) == body


@given(st.binary(max_size=64))
def test_any_bytes_decode_to_a_value_or_a_decode_error(raw: bytes) -> None:
    try:
        decode_body(raw)
    except FluxabeeError as exc:
        assert isinstance(exc, DecodeError)
        assert exc.raw == raw


def test_event_repr_shows_id_stream_deliveries_and_a_bounded_body_preview() -> None:
    def acker(event: Event[None]) -> None:
        pass

    small = Event("1-0", "orders", encode_body({"id": 7, "note": "x" * 500}), {"k": "v"}, acker, 2)
    text = repr(small)
    assert text.startswith("<Event 1-0 of 'orders' delivery=2 body={")
    assert "'id': 7" in text and "meta={'k': 'v'}" in text
    assert len(text) < 200
    big = Event("2-0", "orders", encode_body("y" * 100_000), {}, acker)
    assert "body=<100005 bytes>" in repr(big)
    assert big._body is _UNSET  # not decoded just to be shown
    broken = Event("3-0", "orders", b"\xc1", {}, acker)
    assert "undecodable" in repr(broken)
    assert "body=None" in repr(Event("4-0", "s", None, {"a": "b"}, acker))
