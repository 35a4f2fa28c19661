"""``RedisPool.timeout``: one setting, validated once, carried to every connection of every
topology (issue 14, item 30)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest

from fluxabee import AsyncNetworkBackend, Config, ConfigError, RedisPool
from fluxabee._async.cluster import AsyncClusterClient
from fluxabee._async.sentinel import AsyncSentinelClient
from fluxabee._backends import SyncNetworkBackend
from fluxabee._connparams import conn_params
from fluxabee._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from fluxabee._sync.client import ServerClient
from fluxabee._sync.cluster import ClusterClient
from fluxabee._sync.sentinel import SentinelClient


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(2, 2.0), (0.25, 0.25), (_dt.timedelta(milliseconds=1500), 1.5), ("30s", 30.0)],
)
def test_a_timeout_is_seconds_in_any_form_of_a_duration(given: Any, seconds: float) -> None:
    pool = RedisPool(uri="redis://h", timeout=given)
    assert pool.timeout == pool.timeout_seconds == seconds
    assert f"timeout={seconds!r}" in repr(pool)


def test_without_a_timeout_the_defaults_hold() -> None:
    pool = RedisPool(uri="redis://h")
    assert pool.timeout is None and pool.timeout_seconds is None
    params = conn_params(pool.url, pool.timeout_seconds)
    assert (params.connect_timeout, params.command_timeout) == (
        DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_SOCKET_TIMEOUT,
    )


@pytest.mark.parametrize("bad", [0, -1, "soon", True, float("nan"), [1]])
def test_a_bad_timeout_is_refused_naming_the_key(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"RedisPool\('default'\)\.timeout: expected"):
        RedisPool(uri="redis://h", timeout=bad)
    with pytest.raises(ConfigError, match=r"^default\.timeout: expected"):
        Config.from_dict({"default": {"redis": "h:1:0", "streams": ["s"], "timeout": bad}})


def test_the_yaml_key_sets_it() -> None:
    config = Config.from_yaml("default:\n  redis: h:1:0\n  streams: [s]\n  timeout: 2s\n")
    assert config.pool("default").timeout == 2.0


def test_every_topologys_connections_carry_the_timeout() -> None:
    single = RedisPool(uri="redis://h", timeout=0.5)
    cluster = RedisPool(uri=["h1:7000", "h2:7001"], cluster=True, timeout=0.5)
    sentinel = RedisPool(
        uri="redis://:pw@m/0", sentinels=["s1:26379"], master_name="m", timeout=0.5
    )
    params = [
        ServerClient(single, SyncNetworkBackend())._params,
        *ClusterClient(cluster, SyncNetworkBackend())._seeds,
        AsyncClusterClient(cluster, AsyncNetworkBackend())._base,
        SentinelClient(sentinel, SyncNetworkBackend())._params,
        *AsyncSentinelClient(sentinel, AsyncNetworkBackend())._sentinels,
    ]
    assert {(p.connect_timeout, p.command_timeout) for p in params} == {(0.5, 0.5)}
