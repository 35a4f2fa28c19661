"""Unit tests of fluxabee.config: URI forms, YAML/dict loading, validation, lookups."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

import pytest
import redis

from fluxabee.config import Config, RedisPool
from fluxabee.errors import ConfigError, FluxabeeError, UnknownStreamError

FLUXAORM_YAML = """
default:
  redis: 127.0.0.1:6379:0
  streams:
    - stream-1
    - stream-2
other:
  redis: redis://127.0.0.1:6380/1
  streams: [stream-3]
"""


def _config_error(build: Any) -> str:
    with pytest.raises(ConfigError) as info:
        build()
    return str(info.value)


# --- URI forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "url", "db"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0", 0),
        ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/0", 0),
        ("redis://127.0.0.1", "redis://127.0.0.1:6379/0", 0),
        ("redis://127.0.0.1:6380/4", "redis://127.0.0.1:6380/4", 4),
        ("REDIS://Host:6380/4", "redis://Host:6380/4", 4),
        ("rediss://user:pw@host:6380/2", "rediss://user:pw@host:6380/2", 2),
        ("redis://:secret@host/1", "redis://:secret@host:6379/1", 1),
        ("redis://user@host:7000", "redis://user@host:7000/0", 0),
        ("redis://[::1]:7000/3", "redis://[::1]:7000/3", 3),
        ("redis://h/5?socket_timeout=2", "redis://h:6379/5?socket_timeout=2", 5),
        ("redis://h?db=6&health_check_interval=3", "redis://h:6379/6?health_check_interval=3", 6),
        ("unix:///tmp/r.sock", "unix:///tmp/r.sock?db=0", 0),
        ("unix:///tmp/r.sock?db=1", "unix:///tmp/r.sock?db=1", 1),
        ("unix://u:p@/tmp/r.sock?timeout=1&db=2", "unix://u:p@/tmp/r.sock?db=2&timeout=1", 2),
        ("127.0.0.1", "redis://127.0.0.1:6379/0", 0),
        ("redis-host:6380", "redis://redis-host:6380/0", 0),
        ("127.0.0.1:6379:3", "redis://127.0.0.1:6379/3", 3),
        ("redis:6379:0", "redis://redis:6379/0", 0),
    ],
)
def test_accepted_uri_becomes_normalized_url_with_db(uri: str, url: str, db: int) -> None:
    pool = RedisPool(uri=uri)
    assert pool.url == url
    assert pool.db == db


def test_short_uri_with_db_becomes_redis_url() -> None:
    assert RedisPool(uri="localhost:6379:2").url == "redis://localhost:6379/2"


def test_default_pool_uses_local_redis_db_0() -> None:
    pool = RedisPool()
    assert (pool.code, pool.url, pool.db, pool.streams) == (
        "default",
        "redis://127.0.0.1:6379/0",
        0,
        (),
    )


@pytest.mark.parametrize(
    "uri", ["rediss://user:p%40ss@cache.example:6380/2", "redis://h:7000/9", "unix:///s?db=3"]
)
def test_normalized_url_is_understood_by_redis_py(uri: str) -> None:
    pool = RedisPool(uri=uri)
    kwargs = redis.ConnectionPool.from_url(pool.url).connection_kwargs
    assert kwargs["db"] == pool.db
    if uri.startswith("rediss"):
        assert (kwargs["host"], kwargs["port"], kwargs["username"]) == (
            "cache.example",
            6380,
            "user",
        )
        assert kwargs["password"] == "p@ss"


def test_explicit_database_applies_when_uri_names_none() -> None:
    pool = RedisPool(uri="redis://h:6379", database=7)
    assert (pool.url, pool.db) == ("redis://h:6379/7", 7)
    assert RedisPool(uri="unix:///s", database=2).url == "unix:///s?db=2"


def test_explicit_database_equal_to_uri_db_is_accepted() -> None:
    assert RedisPool(uri="h:6379:3", database=3).db == 3


def test_explicit_database_contradicting_uri_db_is_an_error() -> None:
    message = _config_error(lambda: RedisPool(uri="redis://h/1", database=2))
    assert "database" in message


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("foo:bar:baz:qux", "cannot parse 'foo:bar:baz:qux'"),
        ("", "empty"),
        ("h:0", "port"),
        ("h:65536", "port"),
        ("redis://h:99999999999999999999999", "port"),
        ("h:abc", "cannot parse"),
        ("h:6379:-1", "cannot parse"),
        ("h:6379:x", "cannot parse"),
        ("http://h:6379", "scheme"),
        ("redis://h/x", "db"),
        ("redis://h/1/2", "path"),
        ("redis://h/1?db=2", "contradicts"),
        ("redis://h?db=x", "db"),
        ("redis://:6379/0", "host"),
        ("redis://h:/0", "port"),
        ("redis://h#frag", "fragment"),
        ("unix://relative.sock", "unix"),
        ("unix://", "unix"),
        ("redis://h 1:6379", "whitespace"),
        ("h:6379\n", "whitespace"),
    ],
)
def test_unparsable_uri_is_a_config_error_naming_uri(uri: str, fragment: str) -> None:
    message = _config_error(lambda: RedisPool(uri=uri))
    assert ".uri: " in message
    assert fragment in message


def test_password_is_masked_in_errors_and_repr() -> None:
    message = _config_error(lambda: RedisPool(uri="redis://u:hunter2@h:0"))
    assert "hunter2" not in message
    pool = RedisPool(uri="rediss://u:hunter2@h:6380/1")
    assert "hunter2" not in repr(pool)
    assert "hunter2" in pool.url


def test_unparsable_yaml_redis_names_the_yaml_key() -> None:
    message = _config_error(lambda: Config.from_dict({"default": {"redis": "a:b:c:d"}}))
    assert message.startswith("default.redis: cannot parse 'a:b:c:d'")


# --- loading -----------------------------------------------------------------------------


def _assert_fluxaorm_config(config: Config) -> None:
    assert [p.code for p in config.redis_pools] == ["default", "other"]
    assert config.pool("default").url == "redis://127.0.0.1:6379/0"
    assert config.pool("other").url == "redis://127.0.0.1:6380/1"
    assert config.pool("default").streams == ("stream-1", "stream-2")


def test_from_yaml_text_builds_every_pool() -> None:
    _assert_fluxaorm_config(Config.from_yaml(FLUXAORM_YAML))


def test_from_yaml_path_reads_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fluxabee.yaml"
    path.write_text(FLUXAORM_YAML, encoding="utf-8")
    _assert_fluxaorm_config(Config.from_yaml(path))


def test_from_yaml_str_naming_a_file_reads_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fluxabee.yaml"
    path.write_text(FLUXAORM_YAML, encoding="utf-8")
    _assert_fluxaorm_config(Config.from_yaml(str(path)))


def test_from_yaml_missing_path_is_a_config_error(tmp_path: pathlib.Path) -> None:
    message = _config_error(lambda: Config.from_yaml(tmp_path / "missing.yaml"))
    assert "missing.yaml" in message


def test_from_yaml_str_naming_no_file_says_so() -> None:
    message = _config_error(lambda: Config.from_yaml("no-such-config.yaml"))
    assert "neither an existing file" in message


def test_from_yaml_file_error_names_file_and_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("default:\n  mysql: x\n", encoding="utf-8")
    message = _config_error(lambda: Config.from_yaml(path))
    assert "bad.yaml" in message
    assert "default.mysql" in message


def test_from_yaml_syntax_error_is_chained_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml("default: [unclosed\n")
    assert info.value.__cause__ is not None


def test_from_yaml_bad_timestamp_is_config_error() -> None:
    # PyYAML raises a bare ValueError for an impossible date.
    with pytest.raises(ConfigError):
        Config.from_yaml("2001-13-45")


def test_from_dict_builds_pools_with_defaults() -> None:
    config = Config.from_dict({"default": {"streams": ["a"]}, "other": {"redis": "h:6380:2"}})
    assert config.pool("default").url == "redis://127.0.0.1:6379/0"
    assert config.pool("other").url == "redis://h:6380/2"
    assert config.pool("other").streams == ()


def test_from_url_builds_one_pool() -> None:
    config = Config.from_url("redis://h:6380/3", streams=["a", "b"], code="main")
    assert config.pool("main").url == "redis://h:6380/3"
    assert config.streams == ("a", "b")


def test_from_url_rejects_str_streams() -> None:
    assert "streams" in _config_error(lambda: Config.from_url("h", streams="abc"))


def test_lists_are_stored_as_tuples() -> None:
    pool = RedisPool(streams=["a", "b"])
    config = Config(redis_pools=[pool])
    assert pool.streams == ("a", "b")
    assert isinstance(config.redis_pools, tuple)
    assert config == Config(redis_pools=(RedisPool(streams=("a", "b")),))


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (None, "empty document"),
        ({}, "no pools"),
        (["default"], "config:"),
        ("default", "config:"),
        ({5: {}}, "config[5]"),
        ({"": {}}, "config['']"),
        ({"default": None}, "default:"),
        ({"default": ["x"]}, "default:"),
        (
            {"default": {"mysql": "x"}},
            "default.mysql: unknown key (expected one of: redis, streams, cluster",
        ),
        ({"default": {"redis": 6379}}, "default.redis"),
        ({"default": {"redis": None}}, "default.redis"),
        ({"default": {"streams": "s"}}, "default.streams: expected a list"),
        ({"default": {"streams": None}}, "default.streams"),
        ({"default": {"streams": {"s": 1}}}, "default.streams"),
        ({"default": {"streams": ["a", "b", ""]}}, "default.streams[2]"),
        ({"default": {"streams": ["a", 1]}}, "default.streams[1]"),
        ({"default": {"streams": ["a", "a"]}}, "default.streams[1]: stream 'a' is listed twice"),
        ({"a": {"streams": ["s"]}, "b": {"streams": ["s"]}}, "b.streams[0]"),
    ],
)
def test_bad_dict_is_config_error_naming_the_key(data: Any, key: str) -> None:
    assert key in _config_error(lambda: Config.from_dict(data))


def test_stream_on_two_pools_names_both_pools() -> None:
    data = {"a": {"streams": ["s"]}, "b": {"streams": ["t", "s"]}}
    message = _config_error(lambda: Config.from_dict(data))
    assert "'a'" in message
    assert "'b'" in message
    message = _config_error(
        lambda: Config(
            redis_pools=[RedisPool(code="a", streams=["s"]), RedisPool(code="b", streams=["s"])]
        )
    )
    assert message.startswith("redis_pools[1].streams[0]")
    assert "'a'" in message
    assert "'b'" in message


def test_pool_code_used_twice_is_an_error() -> None:
    message = _config_error(lambda: Config(redis_pools=[RedisPool(), RedisPool()]))
    assert message.startswith("redis_pools[1].code")
    assert "redis_pools[0]" in message


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"code": ""}, "RedisPool.code"),
        ({"code": 3}, "RedisPool.code"),
        ({"database": True}, ".database"),
        ({"database": "1"}, ".database"),
        ({"database": 1.0}, ".database"),
        ({"database": -1}, ".database"),
        ({"uri": 6379}, ".uri"),
        ({"streams": "abc"}, ".streams"),
        ({"streams": ["a", ""]}, ".streams[1]"),
        ({"streams": ["a", "a"]}, ".streams[1]"),
        ({"streams": [b"a"]}, ".streams[0]"),
    ],
)
def test_bad_redis_pool_field_is_config_error_naming_it(kwargs: dict[str, Any], key: str) -> None:
    assert key in _config_error(lambda: RedisPool(**kwargs))


@pytest.mark.parametrize(
    ("pools", "key"),
    [([], "at least one"), ("abc", "redis_pools:"), ([RedisPool(), "x"], "redis_pools[1]")],
)
def test_bad_redis_pools_is_config_error(pools: Any, key: str) -> None:
    assert key in _config_error(lambda: Config(redis_pools=pools))


def test_config_error_is_a_value_error_and_fluxabee_error() -> None:
    with pytest.raises(ValueError):
        Config.from_dict({"default": {"streams": "s"}})
    assert issubclass(ConfigError, FluxabeeError)


# --- lookups -----------------------------------------------------------------------------


def test_pool_for_stream_finds_the_declaring_pool() -> None:
    config = Config.from_yaml(FLUXAORM_YAML)
    assert config.pool_for_stream("stream-3").code == "other"
    assert config.pool_for_stream("stream-1") is config.pool("default")


def test_pool_for_undeclared_stream_raises_unknown_stream_error() -> None:
    config = Config.from_yaml(FLUXAORM_YAML)
    with pytest.raises(UnknownStreamError) as info:
        config.pool_for_stream("nope")
    assert info.value.stream == "nope"
    assert "nope" in str(info.value)


def test_missing_pool_code_is_config_error_naming_it() -> None:
    assert "'nope'" in _config_error(lambda: Config.from_yaml(FLUXAORM_YAML).pool("nope"))


def test_streams_are_in_config_order() -> None:
    config = Config.from_dict(
        {"b": {"streams": ["z", "y"]}, "a": {"streams": ["x"]}, "c": {"streams": ["w"]}}
    )
    assert config.streams == ("z", "y", "x", "w")


def test_config_and_pool_are_frozen() -> None:
    config = Config.from_yaml(FLUXAORM_YAML)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.redis_pools = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pool("default").uri = "h"  # type: ignore[misc]


def test_equal_configs_hash_alike_and_replace_revalidates() -> None:
    config = Config.from_yaml(FLUXAORM_YAML)
    assert hash(config) == hash(Config.from_yaml(FLUXAORM_YAML))
    pool = dataclasses.replace(config.pool("other"), database=1)
    assert pool.db == 1
    with pytest.raises(ConfigError):
        dataclasses.replace(config.pool("other"), database=2)


# -- Cluster, Sentinel and TLS pools ------------------------------------------------------------


def test_a_cluster_pool_takes_one_seed_or_a_list() -> None:
    one = RedisPool(uri="10.0.0.1:7000", cluster=True, streams=["s"])
    many = RedisPool(uri=["10.0.0.1:7000", "redis://10.0.0.2:7001"], cluster=True, streams=["s"])
    assert one.topology == many.topology == "cluster"
    assert many.urls == ("redis://10.0.0.1:7000/0", "redis://10.0.0.2:7001/0")
    assert many.url == many.urls[0]
    yaml_pool = Config.from_yaml(
        "default:\n  cluster: true\n  redis: [10.0.0.1:7000, 10.0.0.2:7001]\n  streams: [s]\n"
    ).redis_pools[0]
    assert yaml_pool.urls == many.urls and yaml_pool.cluster


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uri": ["a:1", "b:2"]}, "needs cluster=True"),
        ({"uri": [], "cluster": True}, "expected a URI or a list"),
        ({"uri": "a:1:3", "cluster": True}, "database 0 only"),
        ({"uri": ["a:1:0", "redis://b:2/1"], "cluster": True}, "different databases"),
        ({"uri": "unix:///tmp/r.sock", "cluster": True}, "not unix"),
        ({"cluster": "yes"}, "cluster: expected true or false"),
        ({"sentinels": ["s:26379"]}, "master_name: a Sentinel pool needs"),
        ({"master_name": "m"}, "sentinels: master_name needs"),
        ({"sentinels": "s:26379", "master_name": "m"}, "expected a list of host:port"),
        ({"sentinels": ["s:1"], "master_name": "m", "cluster": True}, "not both"),
        ({"ssl_ca_certs": "/ca.pem"}, "ssl_ca_certs: TLS options need a rediss:// uri"),
        ({"uri": "rediss://h:1", "ssl_certfile": ""}, "ssl_certfile: expected a non-empty"),
    ],
)
def test_bad_topologies_are_config_errors_naming_the_key(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        RedisPool(streams=["s"], **kwargs)


def test_yaml_errors_of_topologies_name_the_yaml_key() -> None:
    with pytest.raises(ConfigError, match=r"^jobs\.master_name: a Sentinel pool needs"):
        Config.from_dict({"jobs": {"sentinels": ["s:26379"], "streams": ["s"]}})
    with pytest.raises(ConfigError, match=r"^jobs\.cluster: expected true or false"):
        Config.from_dict({"jobs": {"cluster": "yes", "streams": ["s"]}})
    with pytest.raises(ConfigError, match=r"^jobs\.redis\[1\]: cannot parse"):
        Config.from_dict({"jobs": {"cluster": True, "redis": ["a:1", "a b"], "streams": ["s"]}})


def test_a_sentinel_pool_keeps_credentials_and_masks_every_password() -> None:
    pool = RedisPool(
        uri="redis://:m-pw@mymaster/2",
        sentinels=["10.0.0.5:26379", "redis://10.0.0.6:26379"],
        master_name="mymaster",
        sentinel_password="s-pw",
        streams=["s"],
    )
    assert pool.topology == "sentinel" and pool.db == 2
    assert pool.sentinel_urls == (
        "redis://:s-pw@10.0.0.5:26379/0",
        "redis://:s-pw@10.0.0.6:26379/0",
    )
    text = repr(pool)
    assert "m-pw" not in text and "s-pw" not in text
    assert "sentinel_password='***'" in text and "master_name='mymaster'" in text


def test_tls_files_go_into_the_url_the_connection_reads() -> None:
    pool = RedisPool(
        uri="rediss://h:6380/0",
        ssl_ca_certs="/etc/ssl/ca.pem",
        ssl_certfile="/etc/ssl/app pem",
        ssl_keyfile="/etc/ssl/app.key",
        streams=["s"],
    )
    assert pool.url == (
        "rediss://h:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_certfile=/etc/ssl/app%20pem"
        "&ssl_keyfile=/etc/ssl/app.key"
    )
    assert "ssl_ca_certs='/etc/ssl/ca.pem'" in repr(pool)
