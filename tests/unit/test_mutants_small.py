"""Small pure helpers: the gaps a mutation pass found (issue 14, section 9)."""

from __future__ import annotations

from fluxabee._ext import Extension
from fluxabee._replies import text


def test_a_reply_number_is_shown_as_its_digits() -> None:
    assert text(b"1-0") == "1-0"
    assert text(7) == "7"


def test_extensions_are_equal_only_with_the_same_code_and_data_and_hash_alike() -> None:
    one = Extension(1, b"x")
    assert one == Extension(1, b"x") and hash(one) == hash(Extension(1, b"x"))
    assert one != Extension(1, b"y")
    assert one != Extension(2, b"x")
    assert len({one, Extension(1, b"y"), Extension(2, b"x"), Extension(1, b"x")}) == 3
