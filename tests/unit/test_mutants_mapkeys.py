"""Map keys: the gaps a mutation pass found (issue 14, section 9).

The proof from type hints must be sound (a class it proves can never hold a map key that
does not come back) and the walk of what it cannot prove must look everywhere.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Optional, Union

import pydantic
import pytest

from fluxabee._ext import Extension
from fluxabee._mapkeys import _PROVEN, _safe_hint, _safe_key_hint, key_problem, keys_come_back


class Word(str):
    pass


class Color(enum.Enum):
    RED = "red"


class Pair(enum.Enum):
    ONE_TWO = (1, 2)


class Bad(enum.Enum):
    MAP = {"k": {(1, 2): 3}}  # noqa: RUF012 - a value that is a map with a bad key


@dataclasses.dataclass
class Safe:
    name: str
    counts: dict[str, int]


@dataclasses.dataclass
class Unsafe:
    m: dict[tuple[int, int], int]


@dataclasses.dataclass
class Node:
    value: int
    next: Node | None = None


@dataclasses.dataclass
class Unresolved:
    m: NoSuchType  # type: ignore[name-defined]  # noqa: F821 - hints that cannot be resolved


class Loose(pydantic.BaseModel):
    data: Any


class Strict(pydantic.BaseModel):
    n: int


T = typing.TypeVar("T")
OURS = (Safe, Unsafe, Node, Unresolved, Loose, Strict)


@pytest.fixture(autouse=True)
def _unproven() -> Iterator[None]:
    """Each test proves this module's classes afresh (the proofs are cached per class)."""
    for cls in OURS:
        _PROVEN.pop(cls, None)
    yield
    for cls in OURS:
        _PROVEN.pop(cls, None)


@pytest.mark.parametrize(
    ("hint", "safe"),
    [
        (int, True), (None, True), (type(None), True), (datetime.datetime, True),
        (Annotated[int, "m"], True), (Annotated[dict[tuple[int], int], "m"], False),
        (list[int], True), (tuple[int, ...], True), (frozenset[str], True),
        (list[dict[tuple[int], int]], False), (list[Any], False),
        (dict[str, int], True), (dict[int, list[int]], True), (dict[Color, int], True),
        (dict[Annotated[str, "m"], int], True), (dict[tuple[int, int], int], False),
        (dict[str, Any], False), (dict[str, dict[Pair, int]], False), (dict, False),
        (int | None, True), (Optional[list[int]], True), (Union[int, Any], False),  # noqa: UP007, UP045
        (int | dict[tuple[int], int], False),
        (Color, True), (Pair, False), (Word, True), (datetime.date, False),
        (Safe, True), (Unsafe, False), (Strict, True), (Loose, False),
        (Any, False), (object, False), (T, False), (tuple, False),
    ],
    ids=repr,
)  # fmt: skip
def test_a_hint_is_proven_safe_only_when_no_value_of_it_can_hold_a_bad_key(
    hint: Any, safe: bool
) -> None:
    assert _safe_hint(hint) is safe


@pytest.mark.parametrize(
    ("hint", "safe"),
    [
        (str, True), (Word, True), (int, True), (Annotated[str, "m"], True), (Color, True),
        (Pair, False), (tuple, False), (tuple[int, int], False), (list[int], False),
        (Annotated[tuple[int], "m"], False), (Any, False),
    ],
    ids=repr,
)  # fmt: skip
def test_a_map_key_hint_is_safe_only_when_its_values_decode_to_hashables(
    hint: Any, safe: bool
) -> None:
    assert _safe_key_hint(hint) is safe


def test_the_message_names_the_type_of_the_bad_key() -> None:
    assert key_problem("k") is None
    problem = key_problem((1, 2))
    assert problem is not None and problem.startswith("a map key of type tuple ")


def test_subclasses_of_plain_types_and_extensions_are_keys_that_come_back() -> None:
    assert keys_come_back({Word("a"): 1, Extension(1, b"x"): 2})
    assert not keys_come_back({Word("a"): 1, (1,): 2})


def test_a_class_proven_safe_is_accepted_and_one_proven_unsafe_is_walked() -> None:
    assert keys_come_back(Safe("a", {"x": 1}))
    assert _PROVEN[Safe] is True
    assert keys_come_back(Unsafe({}))
    assert not keys_come_back(Unsafe({(1, 2): 3}))


def test_a_class_that_refers_to_itself_is_checked_without_endless_recursion() -> None:
    assert keys_come_back(Node(1, Node(2)))


def test_a_class_whose_hints_cannot_be_resolved_is_walked() -> None:
    assert not keys_come_back(Unresolved({(1, 2): 3}))
    assert keys_come_back(Unresolved({"a": 3}))
    assert _PROVEN[Unresolved] is False


def test_a_model_that_cannot_be_proven_is_walked_through_its_dump() -> None:
    assert keys_come_back(Loose(data={"a": [1]}))
    assert not keys_come_back(Loose(data={"a": {(1, 2): 3}}))


def test_mappings_sequences_and_enums_other_than_the_builtins_are_walked() -> None:
    ordered = collections.OrderedDict
    assert keys_come_back(ordered({"a": {"b": 1}}))
    assert not keys_come_back(ordered({(1, 2): 1}))
    assert not keys_come_back(ordered({"a": {(1, 2): 1}}))

    class Items(list[Any]):
        pass

    assert keys_come_back(Items([1, {"a": 2}]))
    assert not keys_come_back(Items([{(1,): 2}]))
    assert not keys_come_back(Bad.MAP)
    assert keys_come_back(Color.RED)


def test_a_set_or_another_object_holds_no_map_and_is_left_to_the_packer() -> None:
    assert keys_come_back({"a": {1, 2}, "b": frozenset({"x"})})
    assert keys_come_back([object()])
