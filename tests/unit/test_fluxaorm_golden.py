"""Golden entries written by FluxaORM's own Go EventBroker: fluxabee reads every one, and
writes the same bytes for the Python mirror of each Go value. Pure, no Redis.

The data (``data/fluxaorm_entries.json``) was written by FluxaORM (github.com/latolukasz/
fluxaorm at a1d6207, MessagePack by github.com/shamaton/msgpack v1.2.1) to Redis 7.0.15
and read back with XRANGE; ``data/README.md`` says more. The expected Python values below
are written by hand from each entry's ``go_value``, not derived from the bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Annotated, Any

import msgpack
import pydantic
import pytest
from pydantic.alias_generators import to_pascal

import fluxabee
from fluxabee import Event, Float32, codec, go_name, wire_names

#: FluxaORM's entries, committed as test data (CI runs on a clean clone).
GOLDEN_PATH = Path(__file__).parent / "data" / "fluxaorm_entries.json"

UTC = datetime.timezone.utc
#: Go's 2026-11-27T06:25:53.123456789Z as Go wrote it (timestamp 64).
GO_TIME = bytes.fromhex("d7ff1d6f34546b092271")
#: The same instant truncated to microseconds (...123456000 ns), as fluxabee writes it.
PY_TIME = bytes.fromhex("d7ff1d6f28006b092271")
WHEN = datetime.datetime(2026, 11, 27, 6, 25, 53, 123456, tzinfo=UTC)


def _load() -> list[dict[str, Any]]:
    if not GOLDEN_PATH.is_file():
        pytest.fail(f"golden data missing: {GOLDEN_PATH} (it is committed; restore it)")
    entries: list[dict[str, Any]] = json.loads(GOLDEN_PATH.read_text())["entries"]
    return entries


ENTRIES = {entry["case"]: entry for entry in _load()}


def _fields(case: str) -> list[bytes]:
    return [p for k, v in ENTRIES[case]["fields_hex"] for p in (k.encode(), bytes.fromhex(v))]


def _event(case: str) -> Event:
    raw, meta = codec.split_fields(_fields(case))
    return Event(f"0-{case}", "interop", raw, meta, lambda _event: None)


# --- Python mirrors of FluxaORM's Go types ----------------------------------------------


@dataclasses.dataclass
class SomeStruct:
    Name: str


@wire_names(go_name)
@dataclasses.dataclass
class Inner:
    label: str
    score: float
    flags: list[bool]


@wire_names(go_name)
@dataclasses.dataclass
class SampleNT:
    name: str
    count: int
    big: int
    neg: int
    small: int
    ratio: float
    active: bool
    tags: list[str]
    numbers: list[int]
    child: Inner
    children: list[Inner]
    attrs: dict[str, str]
    raw: bytes
    maybe: str | None


@dataclasses.dataclass
class Sample(SampleNT):  # inherits the go_name rule
    when: datetime.datetime


@dataclasses.dataclass
class WithTime:
    At: datetime.datetime


@dataclasses.dataclass
class F32:
    Ratio32: Annotated[float, Float32]


@dataclasses.dataclass
class Tagged:
    title: str = dataclasses.field(metadata={"msgpack": "name"})
    n: int = dataclasses.field(metadata={"msgpack": "count"})


class InnerModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_pascal)
    label: str
    score: float
    flags: list[bool]


class SampleModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_pascal)
    name: str
    count: int
    big: int
    neg: int
    small: int
    ratio: float
    active: bool
    tags: list[str]
    numbers: list[int]
    child: InnerModel
    children: list[InnerModel]
    attrs: dict[str, str]
    raw: bytes
    maybe: str | None
    when: datetime.datetime


class F32Model(pydantic.BaseModel):
    ratio32: Annotated[float, Float32] = pydantic.Field(alias="Ratio32")


SAMPLE_KW: dict[str, Any] = dict(
    name="a1", count=42, big=1 << 40, neg=-5, small=200, ratio=1.5, active=True,
    tags=["x", "y"], numbers=[1, 300, 70000], attrs={"k": "v"}, raw=b"\x00\x01\x02\xff",
    maybe=None,
)  # fmt: skip
SAMPLE_BODY: dict[str, Any] = {
    "Name": "a1", "Count": 42, "Big": 1 << 40, "Neg": -5, "Small": 200, "Ratio": 1.5,
    "Active": True, "Tags": ["x", "y"], "Numbers": [1, 300, 70000],
    "Child": {"Label": "in", "Score": 0.25, "Flags": [True, False]},
    "Children": [{"Label": "c0", "Score": 2.0, "Flags": []}], "Attrs": {"k": "v"},
    "Raw": b"\x00\x01\x02\xff", "Maybe": None,
}  # fmt: skip


def _build(cls: Any, **kw: Any) -> Any:
    if issubclass(cls, pydantic.BaseModel):  # constructed by alias, as it travels
        return cls.model_validate({to_pascal(k): v for k, v in kw.items()})
    return cls(**kw)


def _sample(cls: type, inner: type, **extra: Any) -> Any:
    child = _build(inner, label="in", score=0.25, flags=[True, False])
    children = [_build(inner, label="c0", score=2.0, flags=[])]
    return _build(cls, **SAMPLE_KW, child=child, children=children, **extra)


@dataclasses.dataclass
class Case:
    body: Any  # what .body must be
    meta: dict[str, str]  # what .meta must be
    mirrors: list[tuple[Any, Any]]  # (type, value): .unserialize(type) == value, and encoded
    truncated_ns: bool = False  # Go's nanoseconds: Python writes them truncated to µs


CASES: dict[str, Case] = {
    "string": Case("some-text", {"kind": "string"}, [(str, "some-text")]),
    "empty": Case("", {"kind": "empty"}, [(str, "")]),
    "unicode": Case("ünï", {"kind": "unicode", "note": "zażółć"}, [(str, "ünï")]),
    "some": Case({"Name": "a1"}, {"kind": "some"}, [(SomeStruct, SomeStruct(Name="a1"))]),
    "sample": Case(
        SAMPLE_BODY,
        {"kind": "sample", "source": "interop"},
        [(SampleNT, _sample(SampleNT, Inner))],
    ),
    "sample_time": Case(
        {**SAMPLE_BODY, "When": WHEN},
        {"kind": "sample_time"},
        [
            (Sample, _sample(Sample, Inner, when=WHEN)),
            (SampleModel, _sample(SampleModel, InnerModel, when=WHEN)),
        ],
        truncated_ns=True,
    ),
    "time": Case({"At": WHEN}, {"kind": "time"}, [(WithTime, WithTime(At=WHEN))], True),
    "nil": Case(
        None, {"kind": "nil", "action": "add", "entity": "x", "id": "7"}, [(type(None), None)]
    ),
    "map": Case({"id": 7}, {"kind": "map"}, [(dict[str, int], {"id": 7})]),
    "list": Case(
        [42, -5, 300, 70000, 1 << 40, 1.5, True, None, "x"],
        {"kind": "list"},
        [(list[Any], [42, -5, 300, 70000, 1 << 40, 1.5, True, None, "x"])],
    ),
    "bytes": Case(b"\x00\x01\x02\xff", {"kind": "bytes"}, [(bytes, b"\x00\x01\x02\xff")]),
    "f32": Case(
        {"Ratio32": 1.5},
        {"kind": "f32"},
        [(F32, F32(Ratio32=1.5)), (F32Model, F32Model.model_validate({"Ratio32": 1.5}))],
    ),
    "tagged": Case({"name": "t", "count": 3}, {"kind": "tagged"}, [(Tagged, Tagged("t", 3))]),
    "int": Case(42, {"kind": "int"}, [(int, 42)]),
    "meta_names": Case("v", {"kind": "meta_names", "stream": "x", "body": "y"}, [(str, "v")]),
}


def test_every_golden_entry_has_a_case() -> None:
    assert len(ENTRIES) == 15
    assert set(ENTRIES) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fluxabee_decodes_what_go_wrote(case: str) -> None:
    event = _event(case)
    expected = CASES[case]
    assert event.body == expected.body
    assert type(event.body) is type(expected.body)
    assert event.meta == expected.meta
    assert event.tag("kind") == case
    for cls, value in expected.mirrors:
        assert event.unserialize(cls) == value, cls


@pytest.mark.parametrize("case", sorted(CASES))
def test_fluxabee_writes_the_bytes_go_wrote(case: str) -> None:
    expected = CASES[case]
    go_fields = _fields(case)
    if expected.truncated_ns:
        body = go_fields[1]
        assert body.count(GO_TIME) == 1
        go_fields[1] = body.replace(GO_TIME, PY_TIME)
    for _cls, value in expected.mirrors:
        assert codec.entry_fields(value, expected.meta) == go_fields, _cls


def test_the_truncated_time_is_gos_instant_to_the_microsecond() -> None:
    go = msgpack.unpackb(GO_TIME)
    py = msgpack.unpackb(PY_TIME)
    assert (go.seconds, go.nanoseconds) == (1795760753, 123456789)
    assert (py.seconds, py.nanoseconds) == (1795760753, 123456000)


def test_time_decodes_to_an_aware_utc_datetime() -> None:
    at = _event("time").body["At"]
    assert at.tzinfo is UTC
    assert at.isoformat() == "2026-11-27T06:25:53.123456+00:00"


def test_go_meta_named_stream_and_body_are_plain_meta() -> None:
    event = _event("meta_names")
    assert (event.tag("stream"), event.tag("body")) == ("x", "y")
    assert event.stream == "interop"  # the event's own stream is not the meta key
    assert event.body == "v"


def test_snake_case_fields_without_the_go_rule_do_not_match_gos_names() -> None:
    @dataclasses.dataclass
    class Untagged:  # what went wrong before: all zero values on the Go side
        ratio32: float = 0.0

    assert _event("f32").unserialize(Untagged) == Untagged()
    assert fluxabee.go_name("ratio32") == "Ratio32"
