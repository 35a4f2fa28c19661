"""The one masking function: URI passwords and secret query options, in any text."""

from __future__ import annotations

import pytest

from fluxabee._uris import mask

#: Characters that end a URI part: the masking once stopped at ``/``, ``?`` and ``#``.
SPECIALS = "#/?@:%& "


def test_passwords_are_masked() -> None:
    assert mask("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask("rediss://:s3cret@host/0") == "rediss://:***@host/0"
    assert mask("redis://host:6379/0") == "redis://host:6379/0"
    assert mask("unix:///tmp/r.sock?db=1") == "unix:///tmp/r.sock?db=1"
    assert mask("no uri here: a@b:c") == "no uri here: a@b:c"


@pytest.mark.parametrize("char", SPECIALS)
def test_a_password_holding_any_uri_delimiter_is_hidden_whole(char: str) -> None:
    uri = f"redis://u:hunter{char}2@redis:6379/0"
    assert mask(uri) == "redis://u:***@redis:6379/0"
    message = f"default.redis: cannot parse {uri!r}: a fragment is not allowed"
    assert mask(message) == (
        "default.redis: cannot parse 'redis://u:***@redis:6379/0': a fragment is not allowed"
    )


@pytest.mark.parametrize("char", SPECIALS)
@pytest.mark.parametrize("key", ["ssl_password", "password", "sentinel_password", "PASSWORD"])
def test_secrets_in_the_query_are_hidden(key: str, char: str) -> None:
    uri = f"rediss://h:6380/0?ssl_certfile=/c.pem&{key}=p{char}ss&ssl_keyfile=/k.pem"
    assert mask(uri) == f"rediss://h:6380/0?ssl_certfile=/c.pem&{key}=***&ssl_keyfile=/k.pem"
    assert mask(f"rediss://h/0?{key}=p{char}ss") == f"rediss://h/0?{key}=***"


def test_every_uri_of_a_text_is_masked_and_masking_twice_changes_nothing() -> None:
    text = "seeds ['redis://:a@h1:1', 'redis://u:b@h2:2/0?ssl_password=c'] failed"
    masked = mask(text)
    assert masked == "seeds ['redis://:***@h1:1', 'redis://u:***@h2:2/0?ssl_password=***'] failed"
    assert mask(masked) == masked


def test_a_traceback_over_several_lines_is_masked_line_by_line() -> None:
    text = "Traceback:\n  uri = 'redis://:p@ss w#rd@h:1'\nConfigError: redis://:x/y@h:2: bad\n"
    assert (
        mask(text) == "Traceback:\n  uri = 'redis://:***@h:1'\nConfigError: redis://:***@h:2: bad\n"
    )
