"""Stream settings in the config: groups, retention and caps, in Python and in YAML."""

# ruff: noqa: E501 - each case quotes its whole message

from __future__ import annotations

import datetime as dt

import pytest

from fluxabee import Config, ConfigError, RedisPool, Stream, UnknownStreamError

YAML = """
default:
  redis: 127.0.0.1:6379:0
  streams:
    - stream-1
    - name: orders
      groups: [billing, search]
      max_len: 1000000
      max_age: 7d
    - name: audit
      retention: trim
"""


def test_given_the_issues_yaml_then_each_stream_has_its_settings_and_names_stay_names() -> None:
    config = Config.from_yaml(YAML)
    pool = config.pool("default")
    assert pool.streams == ("stream-1", "orders", "audit")
    assert config.streams == ("stream-1", "orders", "audit")
    orders = config.stream("orders")
    assert orders == Stream(
        "orders", groups=("billing", "search"), max_len=1_000_000, max_age=7 * 86400
    )
    assert orders.groups == ("billing", "search")
    assert orders.max_age_seconds == 7 * 86400.0
    assert orders.retention == "delete"
    assert config.stream("stream-1") == Stream("stream-1")
    assert config.stream("stream-1").groups == ("consumer_group",)
    assert config.stream("audit").retention == "trim"
    assert config.pool_for_stream("orders") is pool


def test_given_python_objects_then_plain_names_and_streams_mix() -> None:
    pool = RedisPool(streams=["a", Stream("b", groups=["x", "y"])])
    config = Config(redis_pools=[pool])
    assert pool.streams == ("a", "b")
    assert [s.name for s in pool.stream_settings] == ["a", "b"]
    assert config.stream("b").groups == ("x", "y")
    with pytest.raises(UnknownStreamError, match="'nope'"):
        config.stream("nope")
    assert (
        Config.from_url("redis://127.0.0.1:1", streams=[Stream("c", max_len=5)]).stream("c").max_len
        == 5
    )


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("7d", 604800.0),
        ("12h", 43200.0),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("1.5h", 5400.0),
        (30, 30.0),
        (2.5, 2.5),
        (dt.timedelta(minutes=2), 120.0),
    ],
)
def test_durations_take_units_seconds_and_timedeltas(given: object, seconds: float) -> None:
    assert Stream("s", max_age=given).max_age == seconds  # type: ignore[arg-type]
    data = {"p": {"streams": [{"name": "s", "max_age": given}]}}
    assert Config.from_dict(data).stream("s").max_age_seconds == seconds


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "o", "groups": ["a", 5]},
            r"^p\.streams\[1\]\.groups\[1\]: a group name must be a non-empty string, got int 5$",
        ),
        ({"name": "o", "groups": ["a", ""]}, r"^p\.streams\[1\]\.groups\[1\]: a group name"),
        (
            {"name": "o", "groups": ["a", "a"]},
            r"^p\.streams\[1\]\.groups\[1\]: group 'a' is listed twice \(also p\.streams\[1\]\.groups\[0\]\)$",
        ),
        (
            {"name": "o", "groups": "billing"},
            r"^p\.streams\[1\]\.groups: expected a list of group names, got str 'billing'$",
        ),
        ({"name": "o", "groups": []}, r"^p\.streams\[1\]\.groups: at least one group is required"),
        ({"name": "o", "max_len": 0}, r"^p\.streams\[1\]\.max_len: expected an int >= 1"),
        ({"name": "o", "max_len": True}, r"^p\.streams\[1\]\.max_len: expected an int >= 1"),
        ({"name": "o", "max_len": "10"}, r"^p\.streams\[1\]\.max_len: expected an int >= 1"),
        (
            {"name": "o", "max_age": "7 days"},
            r"^p\.streams\[1\]\.max_age: expected a duration such as 7d",
        ),
        (
            {"name": "o", "max_age": "-1d"},
            r"^p\.streams\[1\]\.max_age: expected a duration such as 7d",
        ),
        ({"name": "o", "max_age": 0}, r"^p\.streams\[1\]\.max_age: expected a duration > 0"),
        (
            {"name": "o", "max_age": float("inf")},
            r"^p\.streams\[1\]\.max_age: expected a duration > 0",
        ),
        ({"name": "o", "max_age": True}, r"^p\.streams\[1\]\.max_age: expected a duration"),
        (
            {"name": "o", "retention": "xdel"},
            r"^p\.streams\[1\]\.retention: expected delete or trim, got str 'xdel'$",
        ),
        (
            {"name": "o", "group": ["a"]},
            r"^p\.streams\[1\]\.group: unknown key \(expected one of: name, groups, max_len, max_age, retention\)$",
        ),
        ({"groups": ["a"]}, r"^p\.streams\[1\]\.name: missing"),
        ({"name": ""}, r"^p\.streams\[1\]\.name: a stream name must be a non-empty string"),
        (["o"], r"^p\.streams\[1\]: expected a stream name or a mapping"),
        ({"name": "s"}, r"^p\.streams\[1\]: stream 's' is listed twice \(also p\.streams\[0\]\)$"),
    ],
)
def test_bad_stream_settings_are_config_errors_naming_the_key(entry: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({"p": {"streams": ["s", entry]}})


def test_bad_python_settings_name_the_stream_and_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^Stream\('orders'\)\.groups\[0\]: a group name"):
        Stream("orders", groups=[""])
    with pytest.raises(ConfigError, match=r"^Stream\('orders'\)\.max_age: expected a duration"):
        Stream("orders", max_age="soon")
    with pytest.raises(ConfigError, match=r"^Stream\('orders'\)\.retention: expected delete or"):
        Stream("orders", retention="never")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^Stream\.name: a stream name must be"):
        Stream("")
    with pytest.raises(ConfigError, match=r"^RedisPool\('default'\)\.streams\[0\]: expected a"):
        RedisPool(streams=[7])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"streams\[1\]: stream 'a' is listed twice"):
        RedisPool(streams=["a", Stream("a", groups=["g"])])


def test_settings_take_part_in_equality_hashing_and_repr() -> None:
    plain = RedisPool(streams=["a"])
    grouped = RedisPool(streams=[Stream("a", groups=["x", "y"])])
    assert plain == RedisPool(streams=[Stream("a")])
    assert plain != grouped
    assert hash(grouped) == hash(RedisPool(streams=[Stream("a", groups=("x", "y"))]))
    assert "streams=('a',)" in repr(plain)
    assert "Stream(name='a', groups=('x', 'y')" in repr(grouped)


def test_a_yaml_indentation_slip_is_refused_naming_the_key() -> None:
    text = "default:\n  redis: 127.0.0.1:6379:0\n  streams:\n    - orders\n     - payments\n"
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text)
    assert str(info.value).startswith(
        "default.streams[0]: a stream name cannot hold whitespace or control characters, "
        "got str 'orders - payments'"
    )


@pytest.mark.parametrize("bad", ["a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", " a", "b "])
def test_stream_and_group_names_with_whitespace_or_control_characters_are_refused(
    bad: str,
) -> None:
    with pytest.raises(ConfigError, match=r"^default\.streams\[0\]: a stream name cannot hold"):
        Config.from_dict({"default": {"streams": [bad]}})
    with pytest.raises(ConfigError, match=r"^default\.streams\[0\]\.groups\[1\]: a group name"):
        Config.from_dict({"default": {"streams": [{"name": "s", "groups": ["g", bad]}]}})
    with pytest.raises(ConfigError, match=r"^Stream\.name: a stream name cannot hold"):
        Stream(bad)
