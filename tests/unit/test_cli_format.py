"""The command's pure helpers: durations, ages, bodies and meta."""

from __future__ import annotations

import json

import pytest

from fluxabee.cli._format import age, jsonable, parse_body, parse_duration, parse_meta


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), ("5s", 5), ("1.5", 1.5),
     ("2d", 172800), ("0", 0), (" 3S ", 3)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-1", "1h-5m", "m", "nan", "inf"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.0004, "0ms"), (0.85, "850ms"), (4.21, "4.2s"), (185, "3m05s"),
     (7620, "2h07m"), (273600, "3d04h")],
)  # fmt: skip
def test_ages(seconds: float | None, text: str) -> None:
    assert age(seconds) == text


def test_bodies_and_meta() -> None:
    assert parse_body('{"a": 1}') == {"a": 1}
    assert parse_body("7") == 7
    assert parse_body("plain text") == "plain text"
    assert parse_meta(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_meta(["novalue"])
    assert jsonable({b"k": [b"\xff", 1.5, None]}) == {"k": [{"hex": "ff"}, 1.5, None]}


def test_non_finite_floats_become_strict_json() -> None:
    body = {"big": float("inf"), "small": float("-inf"), "nan": [float("nan")]}
    text = json.dumps(jsonable(body), allow_nan=False)
    assert json.loads(text) == {"big": "Infinity", "small": "-Infinity", "nan": ["NaN"]}
