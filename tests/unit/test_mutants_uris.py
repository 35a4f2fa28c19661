"""URI parsing: the gaps a mutation pass found (issue 14, section 9). A bad URI gets an
error naming where it came from, the part that is wrong and its value (never a password)."""

from __future__ import annotations

import pytest

from fluxabee._uris import build_url, describe, parse_uri
from fluxabee.errors import ConfigError

W = "default.redis"
EXPECTED = "expected redis://, rediss://, unix:///path or host[:port[:db]]"
LONG = "1234567890123456789"
CUT = "str 'xxxxxxxxxxxx...xxxxxxxxxxxxx'"  # reprlib's bound


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "empty"),
        ("redis://h /0", "whitespace or control characters"),
        ("a:b:c:d", EXPECTED),
        (f"h:6379:{LONG}", f"db must be a non-negative integer, got '{LONG}'"),
        ("h:70000", "port must be 1..65535, got '70000'"),
        ("h:065535", "port must be 1..65535, got '065535'"),
        ("redis://:pw@h:0/0", "port must be 1..65535, got '0'"),
        ("http://h", f"unsupported scheme 'http'; {EXPECTED}"),
        ("redis://h/0#x", "a fragment ('#') is not allowed; percent-encode '#' as %23"),
        ("unix:///", "a unix URL names an absolute socket path: unix:///path"),
        ("unix://", "a unix URL names an absolute socket path: unix:///path"),
        ("unix://h/tmp/r.sock", "a unix URL names an absolute socket path: unix:///path"),
        ("redis://", "missing or invalid host"),
        ("redis://h:x/0", "missing or invalid host or port"),
        ("redis://h//1", "the path must be /<db>, got '//1'"),
        ("redis://h/1/", "the path must be /<db>, got '/1/'"),
        ("redis://h/x", "db must be a non-negative integer, got 'x'"),
        ("redis://h/?db=x", "db must be a non-negative integer, got 'x'"),
        ("redis://h/?db=1=2", "db must be a non-negative integer, got '1=2'"),
        ("redis://h/?db=1&db=2", "db given twice (1 and 2)"),
        ("redis://h/1?db=2", "db 1 in the path contradicts db=2"),
    ],
)  # fmt: skip
def test_a_bad_uri_gets_an_error_naming_where_the_uri_and_the_reason(uri: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri(uri, W)
    shown = repr(uri).replace(":pw@", ":***@")
    assert str(info.value) == f"{W}: cannot parse {shown}: {reason}"


def test_the_same_db_given_twice_is_no_contradiction() -> None:
    assert parse_uri("redis://h/?db=2&db=2", W).db == 2


def test_a_digit_string_of_the_longest_accepted_length_is_a_db() -> None:
    assert parse_uri("h:6379:" + "9" * 18, W).db == 10**18 - 1


def test_a_uri_in_an_option_value_does_not_split_the_scheme() -> None:
    parsed = parse_uri("redis://h:1/0?note=x://y", W)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.query) == (
        "redis",
        "h",
        1,
        ("note=x://y",),
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "None"), (5, "int 5"), (["a"], "list ['a']"), ("x" * 99, CUT)],
)
def test_a_bad_value_is_described_by_its_type_and_a_bounded_repr(value: object, shown: str) -> None:
    assert describe(value) == shown


def test_a_uri_that_is_no_string_is_named_by_its_type_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri(6379, W)
    assert str(info.value) == f"{W}: expected a URI string, got int 6379"


def test_an_added_option_keeps_slashes_and_encodes_the_rest() -> None:
    parsed = parse_uri("redis://h:1", W)
    assert build_url(parsed, 0, {"ssl_ca": "/a b/c&d"}) == "redis://h:1/0?ssl_ca=/a%20b/c%26d"
