"""Round trips Python -> bytes -> Python are exact for every supported type (hypothesis)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import struct
from typing import Annotated, Any

import msgpack
from hypothesis import example, given
from hypothesis import strategies as st

from fluxabee import Float32, go_name, wire_names
from fluxabee.codec import decode_body, encode_body, unserialize

UTC = datetime.timezone.utc
F32 = Annotated[float, Float32]


def round_trip(value: Any, cls: Any) -> Any:
    raw = encode_body(value)
    assert raw is not None
    return unserialize(decode_body(raw), cls)


# --- time --------------------------------------------------------------------------------

utc_datetimes = st.datetimes(timezones=st.just(UTC))  # years 1 to 9999, microseconds
pre_1970 = st.datetimes(max_value=datetime.datetime(1969, 12, 31, 23, 59, 59, 999999))
post_2106 = st.datetimes(min_value=datetime.datetime(2106, 2, 7, 6, 28, 16))
offsets = st.timedeltas(
    min_value=datetime.timedelta(hours=-23, minutes=-59),
    max_value=datetime.timedelta(hours=23, minutes=59),
).map(lambda d: datetime.timezone(datetime.timedelta(minutes=d // datetime.timedelta(minutes=1))))
# Away from the ends of datetime's range, so the UTC instant of any offset still fits.
any_zone = st.datetimes(
    min_value=datetime.datetime(1, 1, 2),
    max_value=datetime.datetime(9999, 12, 30),
    timezones=offsets,
)


@given(utc_datetimes | pre_1970.map(lambda d: d.replace(tzinfo=UTC)) | post_2106.map(
    lambda d: d.replace(tzinfo=UTC)))  # fmt: skip
@example(datetime.datetime(1, 1, 1, tzinfo=UTC))  # Go's zero time
@example(datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@example(datetime.datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC))
@example(datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_an_aware_utc_datetime_round_trips_exactly(value: datetime.datetime) -> None:
    back = decode_body(encode_body(value) or b"")
    assert back == value
    assert back.tzinfo is UTC
    assert back.microsecond == value.microsecond
    assert round_trip(value, datetime.datetime) == value


@given(any_zone)
def test_an_aware_datetime_in_any_zone_is_the_same_instant_in_utc(value: datetime.datetime) -> None:
    back = decode_body(encode_body(value) or b"")
    assert back == value
    assert back.tzinfo is UTC
    assert back.replace(tzinfo=None) == value.astimezone(UTC).replace(tzinfo=None)


@given(st.integers(-(2**63), 2**63 - 1) | st.integers(-(2**40), 2**40), st.integers(0, 999_999_999))
def test_any_timestamp_decodes_to_its_instant_truncated_to_microseconds(
    seconds: int, nanos: int
) -> None:
    raw = b"\xc7\x0c\xff" + struct.pack(">Iq", nanos, seconds)
    try:
        expected: Any = datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(
            seconds=seconds, microseconds=nanos // 1000
        )
    except OverflowError:  # beyond datetime (years 1 to 9999): kept as a Timestamp
        expected = msgpack.Timestamp(seconds, nanos)
    assert decode_body(raw) == expected
    assert decode_body(b"\x91" + raw) == [expected]


# --- float32 -----------------------------------------------------------------------------


@dataclasses.dataclass
class Ratios:
    one: F32
    many: list[F32]
    maybe: F32 | None


@given(
    st.floats(width=32, allow_nan=False),
    st.lists(st.floats(width=32, allow_nan=False), max_size=4),
    st.none() | st.floats(width=32, allow_nan=False),
)
def test_a_float32_value_round_trips_exactly(one: float, many: list[float], maybe: Any) -> None:
    value = Ratios(one, many, maybe)
    raw = encode_body(value) or b""
    assert raw[5:6] == b"\xca"  # 83 a3 'one' ca ...
    assert raw.count(b"\xca") >= 1 + len(many) + (maybe is not None)
    back = round_trip(value, Ratios)
    assert back == value


def test_float32_nan_stays_nan() -> None:
    back = round_trip(Ratios(math.nan, [], None), Ratios)
    assert math.isnan(back.one)


# --- nested dataclasses, enums, bytes ------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    M = 2


@wire_names(go_name)
@dataclasses.dataclass
class Part:
    part_no: str
    weight: F32
    color: Color
    blob: bytes


@wire_names(go_name)
@dataclasses.dataclass
class Assembly:
    name: str
    size: Size
    parts: list[Part]
    by_code: dict[str, Part]
    spare: Part | None
    built: datetime.datetime
    pair: tuple[int, str]
    ratio: float
    count: int
    flag: bool
    note: str | None = None


def parts() -> st.SearchStrategy[Part]:
    return st.builds(
        Part,
        part_no=st.text(max_size=8),
        weight=st.floats(width=32, allow_nan=False),
        color=st.sampled_from(Color),
        blob=st.binary(max_size=8),
    )


assemblies = st.builds(
    Assembly,
    name=st.text(max_size=8),
    size=st.sampled_from(Size),
    parts=st.lists(parts(), max_size=3),
    by_code=st.dictionaries(st.text(max_size=4), parts(), max_size=2),
    spare=st.none() | parts(),
    built=utc_datetimes,
    pair=st.tuples(st.integers(-(2**63), 2**64 - 1), st.text(max_size=4)),
    ratio=st.floats(allow_nan=False),
    count=st.integers(-(2**63), 2**64 - 1),
    flag=st.booleans(),
    note=st.none() | st.text(max_size=4),
)


@given(assemblies)
def test_nested_dataclasses_round_trip_exactly(value: Assembly) -> None:
    back = round_trip(value, Assembly)
    assert back == value
    assert all(type(p) is Part for p in back.parts)
    assert all(type(p) is Part for p in back.by_code.values())
    assert back.spare is None or type(back.spare) is Part
    assert type(back.size) is Size and type(back.pair) is tuple


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
        | st.text() | st.binary() | utc_datetimes,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )
)  # fmt: skip
def test_plain_bodies_with_datetimes_round_trip_exactly(value: Any) -> None:
    raw = encode_body(value)
    assert (raw is None) == (value is None)
    if raw is not None:
        assert decode_body(raw) == value
