"""Retry policy and dead-letter fields: the gaps a mutation pass found (issue 14, section 9).

Each test pins a behaviour a mutant changed while every other unit test stayed green.
"""

from __future__ import annotations

import pytest

from fluxabee import InvalidArgumentError, RetryPolicy
from fluxabee._constants import DEAD_DELIVERIES_FIELD, DEAD_ERROR_FIELD, GROUP_FIELD
from fluxabee._policy import dead_letter_fields, reconnect_delay, split_dead_letter


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"backoff": -1.0}, "backoff"),
        ({"max_backoff": -1.0}, "max_backoff"),
        ({"dead_letter_on": "ValueError"}, "dead_letter_on"),
    ],
)
def test_a_bad_policy_field_gets_an_error_naming_that_field(
    kwargs: dict[str, object], name: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{name} must be ")


def test_dead_letter_on_takes_a_single_exception_type_as_a_tuple_of_one() -> None:
    policy = RetryPolicy(dead_letter_on=ValueError)  # type: ignore[arg-type]
    assert policy.dead_letter_on == (ValueError,)
    assert policy.dead_letters_at_once(ValueError("x"))


def test_dead_letter_on_given_as_a_list_is_kept_as_a_tuple() -> None:
    policy = RetryPolicy(dead_letter_on=[KeyError, OSError])  # type: ignore[arg-type]
    assert policy.dead_letter_on == (KeyError, OSError)


@pytest.mark.parametrize("kinds", [[1], (int,), [ValueError, "x"]])
def test_dead_letter_on_rejects_what_is_not_an_exception_type(kinds: object) -> None:
    with pytest.raises(InvalidArgumentError, match="dead_letter_on"):
        RetryPolicy(dead_letter_on=kinds)  # type: ignore[arg-type]


def test_a_callable_backoff_may_ask_for_no_wait_at_all() -> None:
    policy = RetryPolicy(backoff=lambda deliveries: 0.25 * (deliveries - 1))
    assert policy.delay(1) == 0.0
    assert policy.delay(2) == 0.25


@pytest.mark.parametrize(("rand", "share"), [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
def test_reconnect_jitter_is_half_to_all_of_the_delay(rand: float, share: float) -> None:
    assert reconnect_delay(1, lambda: 1.0) > 0
    assert reconnect_delay(1, lambda: rand) == reconnect_delay(1, lambda: 1.0) * share


def fields(*pairs: tuple[bytes, bytes]) -> list[bytes]:
    return [item for pair in pairs for item in pair]


def test_a_field_whose_value_is_a_reserved_name_is_kept_in_the_dead_letter() -> None:
    original = fields((b"note", DEAD_ERROR_FIELD.encode()), (DEAD_ERROR_FIELD.encode(), b"old"))
    out = dead_letter_fields(
        original, error="new", deliveries=3, source_id="1-0", now_ms=5, group="g"
    )
    assert out[:2] == [b"note", DEAD_ERROR_FIELD.encode()]
    assert out.count(b"old") == 0
    assert split_dead_letter(out).fields == [b"note", DEAD_ERROR_FIELD.encode()]


def test_an_error_text_that_is_not_valid_unicode_is_written_with_a_replacement() -> None:
    out = dead_letter_fields(
        [b"k", b"v"], error="bad \udcff name", deliveries=1, source_id="1-0", now_ms=5, group="g"
    )
    assert out[out.index(DEAD_ERROR_FIELD.encode()) + 1] == b"bad ? name"


def test_a_dead_letter_without_a_delivery_count_reads_as_zero_deliveries() -> None:
    parts = split_dead_letter(fields((b"k", b"v"), (DEAD_ERROR_FIELD.encode(), b"boom")))
    assert parts.deliveries == 0
    assert parts.error == "boom"
    assert parts.group is None


def test_dead_letter_notes_that_are_not_utf8_are_read_with_replacement_characters() -> None:
    parts = split_dead_letter(
        fields(
            (b"k", b"v"),
            (DEAD_ERROR_FIELD.encode(), b"e\xff"),
            (DEAD_DELIVERIES_FIELD.encode(), b"4"),
            (b"fluxabee-source-id", b"1-\xff"),
            (GROUP_FIELD.encode(), b"g\xff"),
        )
    )
    assert (parts.error, parts.source_id, parts.group) == ("e\ufffd", "1-\ufffd", "g\ufffd")
    assert parts.deliveries == 4
