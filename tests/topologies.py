"""The ``topology`` fixture: a test that takes it runs on one server, on a 3-master Cluster
and on a Sentinel-managed master, with the same :class:`Topology` surface for its config and
for looking at Redis. Import ``topology_fixture`` and ``sentinel_setup_fixture`` into a
test module to use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from fluxabee import Config, RedisPool
from tests.cluster import ClusterServer
from tests.sentinel import MASTER_NAME, SentinelServer

#: The stream every topology config declares by default.
STREAM = "lifecycle"
#: Its group (the default group name).
GROUP = "consumer_group"

_Execute = Callable[..., Any]


class Topology:
    """A pool of one kind, its config, and redis-py access to the node holding a stream."""

    def __init__(
        self,
        kind: str,
        pool: Callable[[str, list[str]], RedisPool],
        node_of: Callable[[str], _Execute],
        data_nodes: Callable[[], list[_Execute]],
    ) -> None:
        self.kind = kind
        self._pool = pool
        self._node_of = node_of
        self._data_nodes = data_nodes

    def __repr__(self) -> str:
        return f"<Topology {self.kind}>"

    def config(self, *, userinfo: str = "", streams: tuple[str, ...] = (STREAM,)) -> Config:
        """A one-pool config of this topology (``userinfo``: ``user:password@``)."""
        return Config(redis_pools=[self._pool(userinfo, list(streams))])

    def run(self, stream: str, *args: Any) -> Any:
        """Run a command on the master that holds ``stream``."""
        return self._node_of(stream)(*args)

    def on_every_node(self, *args: Any) -> None:
        """Run a command on every data node a client may reach (ACL rules are per node)."""
        for execute in self._data_nodes():
            execute(*args)

    def pending(self, stream: str = STREAM) -> int:
        """How many entries of ``stream`` its group handed over and nobody acked."""
        reply = self.run(stream, "XPENDING", stream, GROUP)  # redis-py may parse it
        return int(reply["pending"] if isinstance(reply, dict) else reply[0])


@pytest.fixture(scope="module", name="sentinel_setup")
def sentinel_setup_fixture() -> Iterator[SentinelServer]:
    """One master + replica + sentinel per module (no failover happens in these tests)."""
    with SentinelServer() as setup:
        yield setup


def _single(request: pytest.FixtureRequest) -> tuple[Topology, list[redis.Redis]]:
    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)

    def pool(userinfo: str, streams: list[str]) -> RedisPool:
        return RedisPool(uri=url.replace("redis://", f"redis://{userinfo}"), streams=streams)

    execute = client.execute_command
    return Topology("single", pool, lambda _: execute, lambda: [execute]), [client]


def _cluster(request: pytest.FixtureRequest) -> tuple[Topology, list[redis.Redis]]:
    cluster: ClusterServer = request.getfixturevalue("cluster")

    def pool(userinfo: str, streams: list[str]) -> RedisPool:
        seed = f"redis://{userinfo}127.0.0.1:{cluster.masters()[0].port}"
        return RedisPool(uri=seed, cluster=True, streams=streams)

    def node_of(stream: str) -> _Execute:
        return cluster.master_for_slot(cluster.keyslot(stream)).execute

    return Topology("cluster", pool, node_of, lambda: [n.execute for n in cluster.nodes]), []


def _sentinel(request: pytest.FixtureRequest) -> tuple[Topology, list[redis.Redis]]:
    setup: SentinelServer = request.getfixturevalue("sentinel_setup")
    master = setup.client(setup.current_master())
    master.flushall()

    def pool(userinfo: str, streams: list[str]) -> RedisPool:
        return RedisPool(
            uri=f"redis://{userinfo}sentinel-master/0",  # the host is asked of the sentinel
            sentinels=[f"127.0.0.1:{port}" for _, port in setup.sentinels],
            master_name=MASTER_NAME,
            streams=streams,
        )

    execute = master.execute_command
    return Topology("sentinel", pool, lambda _: execute, lambda: [execute]), [master]


@pytest.fixture(params=["single", "cluster", "sentinel"], name="topology")
def topology_fixture(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The test runs on one server, on a 3-master Cluster and on a Sentinel setup."""
    build = {"single": _single, "cluster": _cluster, "sentinel": _sentinel}[request.param]
    found, clients = build(request)
    yield found
    for client in clients:
        client.close()
