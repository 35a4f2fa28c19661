"""Map keys: a body whose map key would not come back as a dict key is refused at publish
(it would be published, then unreadable forever)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxabee import SerializationError
from fluxabee._mapkeys import _PROVEN, keys_come_back
from fluxabee.codec import decode_body, encode_body

UTC = datetime.timezone.utc


class Color(enum.Enum):
    RED = "red"


class Pair(enum.Enum):
    ONE_TWO = (1, 2)


@dataclasses.dataclass
class Loose:
    m: Any
    n: int = 0


@dataclasses.dataclass
class Strict:
    name: str
    counts: dict[str, int]
    tags: list[str]
    at: datetime.datetime | None = None


class Model(pydantic.BaseModel):
    m: dict[Any, Any]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({(1, 2): "x"}, "[(1, 2)] (key)"),
        ({"a": [{"b": {frozenset({1}): 1}}]}, "[frozenset({1})] (key)"),
        ([{"k": {(1,): 2}}], "[(1,)] (key)"),
        ({Pair.ONE_TWO: 1}, "(key)"),
        (Loose({(1, 2): 3}), "m[(1, 2)] (key)"),
        (Loose([{"x": {(1, 2): 3}}]), "[(1, 2)] (key)"),
        (Model(m={(1, 2): 3}), "[(1, 2)] (key)"),
    ],
    ids=repr,
)
def test_a_key_that_cannot_come_back_is_refused_naming_where(body: Any, where: str) -> None:
    with pytest.raises(SerializationError, match="cannot be a dict key") as info:
        encode_body(body)
    assert where in str(info.value)


def test_every_key_that_comes_back_is_accepted() -> None:
    at = datetime.datetime(2026, 1, 2, tzinfo=UTC)
    body = {"s": 1, 2: 2, 1.5: 3, True: 4, b"b": 5, None: 6, at: 7, Color.RED: 8}
    assert decode_body(encode_body(body) or b"") == {
        "s": 1, 2: 2, 1.5: 3, True: 4, b"b": 5, None: 6, at: 7, "red": 8,
    }  # fmt: skip


def test_a_class_whose_hints_prove_its_keys_is_never_walked_again() -> None:
    assert keys_come_back(Strict("a", {"x": 1}, ["t"]))
    assert _PROVEN[Strict] is True
    assert keys_come_back(Loose({"a": 1}))
    assert _PROVEN[Loose] is False  # Any: its values are walked on every publish


json_keys = st.one_of(st.text(max_size=4), st.integers(-5, 5), st.binary(max_size=2))
bodies = st.recursive(
    st.none() | st.integers(-3, 3) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(json_keys | st.tuples(st.integers(0, 2)), children, max_size=3)
    ),
    max_leaves=12,
)


@given(bodies)
def test_a_body_is_accepted_exactly_when_it_reads_back(body: Any) -> None:
    try:
        packed = encode_body(body)
    except SerializationError:
        with pytest.raises(Exception, match="unhashable"):
            decode_body_strict(body)
        return
    if packed is not None:
        decode_body(packed)  # never raises: every key came back


def decode_body_strict(body: Any) -> Any:
    """What reading such a body did before: msgpack's own unhashable error."""
    import msgpack  # noqa: PLC0415

    return msgpack.unpackb(msgpack.packb(body), strict_map_key=False)


def test_a_body_nested_as_deep_as_msgpack_allows_is_checked_from_a_deep_stack() -> None:
    body: list[Any] = []
    inner = body
    for _ in range(510):  # msgpack's own limit is 511 levels
        inner.append([])
        inner = inner[0]

    def from_depth(depth: int, value: Any) -> bytes | None:
        return encode_body(value) if depth == 0 else from_depth(depth - 1, value)

    assert from_depth(600, body)  # past the stack the walk has: the C reader decides
    inner.append({(1, 2): 3})
    with pytest.raises(SerializationError, match="would not come back as a dict key"):
        from_depth(600, body)
