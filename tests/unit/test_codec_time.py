"""Time crosses as Go's time.Time does: the MessagePack timestamp extension. Pure, no Redis."""

from __future__ import annotations

import dataclasses
import datetime
import struct

import msgpack
import pydantic
import pytest

from fluxabee import DecodeError, Event, SerializationError
from fluxabee.codec import decode_body, encode_body, unserialize

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def at(seconds: int, micros: int = 0) -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=seconds, microseconds=micros)


def ts32(seconds: int) -> bytes:
    return b"\xd6\xff" + struct.pack(">I", seconds)


def ts64(seconds: int, nanos: int) -> bytes:
    return b"\xd7\xff" + struct.pack(">Q", nanos << 34 | seconds)


def ts96(seconds: int, nanos: int) -> bytes:
    return b"\xc7\x0c\xff" + struct.pack(">Iq", nanos, seconds)


@dataclasses.dataclass
class When:
    At: datetime.datetime


class WhenModel(pydantic.BaseModel):
    At: datetime.datetime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (at(0), ts32(0)),
        (at(2**32 - 1), ts32(2**32 - 1)),  # 2106-02-07T06:28:15Z: the last 32-bit one
        (at(2**32), ts64(2**32, 0)),  # one second later needs 64 bits
        (at(0, 1), ts64(0, 1000)),  # any fraction needs 64 bits
        (at(2**34 - 1, 999_999), ts64(2**34 - 1, 999_999_000)),  # the last 64-bit one
        (at(2**34), ts96(2**34, 0)),  # 2514-05-30T01:53:04Z
        (at(-1), ts96(-1, 0)),  # before 1970: 96 bits, seconds signed
        (at(-1, 500_000), ts96(-1, 500_000_000)),  # 1969-12-31T23:59:59.5Z
        (datetime.datetime(1, 1, 1, tzinfo=UTC), ts96(-62135596800, 0)),  # Go's zero time
        (
            datetime.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            ts96(253402300799, 999_999_000),
        ),
    ],
)
def test_datetime_encodes_as_the_shortest_timestamp_form(
    value: datetime.datetime, expected: bytes
) -> None:
    assert encode_body(value) == expected
    assert decode_body(expected) == value


def test_the_spec_forms_literally() -> None:
    assert encode_body(at(1)).hex() == "d6ff00000001"
    assert encode_body(at(-1)).hex() == "c70cff00000000ffffffffffffffff"


@pytest.mark.parametrize(
    "raw", [ts32(1_700_000_000), ts64(1_700_000_000, 5_000), ts96(1_700_000_000, 5_000)]
)
def test_every_form_decodes_to_an_aware_utc_datetime(raw: bytes) -> None:
    value = decode_body(raw)
    assert isinstance(value, datetime.datetime)
    assert value.tzinfo is UTC
    assert value.replace(microsecond=0) == at(1_700_000_000)


@pytest.mark.parametrize(
    ("nanos", "micros"), [(999, 0), (1_000, 1), (1_999, 1), (999_999_999, 999_999)]
)
def test_go_nanoseconds_are_truncated_to_microseconds(nanos: int, micros: int) -> None:
    assert decode_body(ts64(100, nanos)) == at(100, micros)
    assert decode_body(ts96(-100, nanos)) == at(-100, micros)


def test_another_timezone_is_the_same_instant_and_comes_back_in_utc() -> None:
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    local = datetime.datetime(2026, 11, 27, 15, 25, 53, 123456, tzinfo=tokyo)
    back = decode_body(encode_body(local) or b"")
    assert back == local
    assert back.tzinfo is UTC
    assert back.hour == 6


def test_an_aware_datetime_subclass_encodes_like_a_datetime() -> None:
    class Moment(datetime.datetime):  # pendulum, arrow and friends subclass datetime
        pass

    for seconds, micros in [(1_700_000_000, 5), (-1, 500_000), (-62135596800, 0), (2**34, 1)]:
        plain = at(seconds, micros)
        moment = Moment.fromtimestamp(0, UTC) + datetime.timedelta(
            seconds=seconds, microseconds=micros
        )
        assert encode_body(moment) == encode_body(plain), (seconds, micros)


def test_datetimes_in_dataclasses_dicts_lists_and_models() -> None:
    value = at(1_795_760_753, 123_456)
    raw = ts64(1_795_760_753, 123_456_000)
    assert encode_body(When(At=value)) == b"\x81\xa2At" + raw
    assert encode_body({"At": value}) == b"\x81\xa2At" + raw
    assert encode_body([value]) == b"\x91" + raw
    assert encode_body(WhenModel(At=value)) == b"\x81\xa2At" + raw  # not an ISO string
    assert unserialize(decode_body(b"\x81\xa2At" + raw), When) == When(At=value)
    assert unserialize(decode_body(b"\x81\xa2At" + raw), WhenModel) == WhenModel(At=value)


def test_a_naive_datetime_is_refused_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match="naive datetime 2026-01-02T03:04:05"):
        encode_body(datetime.datetime(2026, 1, 2, 3, 4, 5))
    with pytest.raises(SerializationError, match=r"\(When\) at At: naive datetime"):
        encode_body(When(At=datetime.datetime(2026, 1, 2)))


def test_a_date_is_refused_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match=r"date 2026-01-02 is not supported"):
        encode_body({"day": datetime.date(2026, 1, 2)})


def test_a_timestamp_beyond_datetime_stays_a_timestamp_and_the_body_stays_readable() -> None:
    far = ts96(253402300800, 7)  # 10000-01-01T00:00:00Z: past datetime.max
    before_one = ts96(-62135596801, 0)  # 0000-12-31T23:59:59Z
    raw = b"\x83\xa3Far" + far + b"\xa3Old" + before_one + b"\xa3Now" + ts32(5)
    body = decode_body(raw)
    assert body["Far"] == msgpack.Timestamp(253402300800, 7)
    assert body["Old"] == msgpack.Timestamp(-62135596801, 0)
    assert body["Now"] == at(5)  # the in-range one is still a datetime
    late = decode_body(b"\x92" + far + ts64(5, 999_999_999))[1]
    assert late == at(5, 999_999)  # truncated there too, never rounded up
    assert decode_body(b"\x91" + far) == [msgpack.Timestamp(253402300800, 7)]
    assert decode_body(b"\x81" + far + b"\x01") == {msgpack.Timestamp(253402300800, 7): 1}


def test_unserialize_names_an_out_of_range_timestamp() -> None:
    raw = b"\x81\xa2At" + ts96(253402300800, 0)
    event = Event("1-0", "s", raw, {}, lambda _e: None)
    with pytest.raises(DecodeError, match=r"into When at At: .*outside the range of datetime"):
        event.unserialize(When)
    with pytest.raises(DecodeError) as info:
        event.unserialize(When)
    assert info.value.raw == raw


def test_a_bad_timestamp_is_a_decode_error() -> None:
    for raw in [b"\xd4\xff\x00", ts64(0, 1_000_000_000)]:  # wrong length; nanos > 999999999
        with pytest.raises(DecodeError) as info:
            decode_body(raw)
        assert info.value.raw == raw


def test_a_datetime_field_refuses_other_values() -> None:
    with pytest.raises(DecodeError, match=r"into When at At: expected datetime"):
        unserialize({"At": "2026-01-01T00:00:00Z"}, When)
