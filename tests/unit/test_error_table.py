"""The one error table: a Redis error reply, also one raised inside a Lua script, maps to
the fluxabee error for its code (issue 14, item 9)."""

from __future__ import annotations

import pytest

from fluxabee import (
    BrokerAuthenticationError,
    NoGroupError,
    PermissionDeniedError,
    RedisReplyError,
    RedisUnavailableError,
    WrongTypeError,
)
from fluxabee._policy import needs_a_human
from fluxabee.errors import reply_error

NOGROUP = "NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option"


@pytest.mark.parametrize(
    ("message", "kind", "prefix"),
    [
        (NOGROUP, NoGroupError, "NOGROUP"),
        # Redis 6.2: an error met inside a script comes wrapped in ERR ...
        (
            "ERR Error running script (call to f_849b2878be2e350bb738bac7f2f333d5d99daf55): "
            f"@user_script:22: {NOGROUP}",
            NoGroupError,
            "NOGROUP",
        ),
        (
            "ERR Error running script (call to f_0123): @user_script:3: WRONGTYPE Operation "
            "against a key holding the wrong kind of value",
            WrongTypeError,
            "WRONGTYPE",
        ),
        # Redis 7 keeps the error's own code, and says where in the script it came from.
        (f"{NOGROUP} script: f_0123, on @user_script:22.", NoGroupError, "NOGROUP"),
        ("UNBLOCKED the stream key no longer exists", NoGroupError, "UNBLOCKED"),
        (
            "NOPERM User app has no permissions to run the 'xadd' command",
            PermissionDeniedError,
            "NOPERM",
        ),
        (
            "READONLY You can't write against a read only replica.",
            RedisUnavailableError,
            "READONLY",
        ),
        # A script's own error (not a Redis error code) stays ERR.
        (
            "ERR Error running script (call to f_0123): @user_script:1: @user_script: 1: "
            "Unknown Redis command called from Lua script",
            RedisReplyError,
            "ERR",
        ),
        (
            "ERR Error running script (call to f_0123): @user_script:1: user failure",
            RedisReplyError,
            "ERR",
        ),
        ("ERR unknown command 'XACKDEL'", RedisReplyError, "ERR"),
        ("", RedisReplyError, ""),
    ],
)
def test_the_error_table_reads_errors_raised_inside_scripts(
    message: str, kind: type[RedisReplyError], prefix: str
) -> None:
    error = reply_error(message, "EVALSHA")
    assert type(error) is kind
    assert isinstance(error, RedisReplyError) and error.prefix == prefix


@pytest.mark.parametrize(
    "message", ["WRONGPASS invalid username-password pair", "NOAUTH Authentication required."]
)
def test_authentication_errors_need_a_human(message: str) -> None:
    error = reply_error(message)
    assert isinstance(error, BrokerAuthenticationError)
    assert needs_a_human(error)


def test_permission_errors_need_a_human_and_outages_do_not() -> None:
    assert needs_a_human(reply_error("NOPERM no"))
    assert not needs_a_human(reply_error("LOADING Redis is loading"))
    assert not needs_a_human(reply_error(NOGROUP))
