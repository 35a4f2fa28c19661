"""Fixtures: real server processes on free loopback ports, a clean database per test.

The session server comes from fluxabee's own pytest plugin (``fluxabee.testing``, which
users enable the same way): ``redis_server`` is its server seen as a
:class:`tests.servers.RedisServer`, ``redis_url`` its ``fluxabee_redis_url`` (flushed per
test). Besides them and ``server_factory``:

- the server matrix: ``matrix_server`` (session-scoped, one per kind of
  :data:`tests.servers.MATRIX_KINDS`) and ``matrix_url`` (flushed per test). A test that
  takes either runs once per kind; narrow it with
  ``@pytest.mark.parametrize("matrix_server", ["redis-7.0"], indirect=True)``. A kind
  missing here is skipped, or fails with ``FLUXABEE_REQUIRE_MATRIX=1`` (CI);
- Redis Cluster: ``cluster`` (3 masters) and ``cluster_with_replicas`` (3 + 3), healed
  (killed nodes restarted, paused ones resumed) and flushed before each test, and
  ``cluster_factory`` for clusters of one's own (``tests/cluster.py``);
- Sentinel: ``sentinel_factory`` (``tests/sentinel.py``);
- TLS: ``tls_certs`` (a CA, server and client certificates) and ``tls_server_factory``
  (``tests/tls.py``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
import redis

from fluxabee import Config, LocalServer, RedisPool, ServerTLS
from tests.cluster import ClusterServer
from tests.sentinel import SentinelServer
from tests.servers import (
    MATRIX_KINDS,
    REQUIRE_MATRIX_ENV,
    RedisServer,
    default_binary,
    matrix_binary,
    matrix_required,
)
from tests.tls import TLSFiles, make_certificates, tls_binary


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (``timeout``, a CI stop) ends the run like Ctrl-C, so fixtures tear down
    and no server outlives the run (Python's default SIGTERM exits without cleanup)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


#: The suite's session server and engine fixtures are fluxabee's own plugin's; pytester
#: runs the plugin's own tests in a pytest of their own.
pytest_plugins = ["fluxabee.testing", "pytester"]

#: Streams every test config declares.
STREAMS = ("test-stream", "test-group", "other-stream")


@pytest.fixture(scope="session")
def redis_server(redis_server: LocalServer) -> RedisServer:
    """The plugin's session server (tests flush it; fault tests use their own), with the
    suite's helpers (a redis-py ``client()``, ``kill``, ``restart``...)."""
    return RedisServer.wrapping(redis_server)


@pytest.fixture
def redis_url(fluxabee_redis_url: str) -> str:
    """The session server's URL, flushed before the test (restarted if a test stopped it)."""
    return fluxabee_redis_url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test's database, for set-up and assertions."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_config(redis_url: str) -> Callable[..., Config]:
    """Build a one-pool config on the test server: ``make_config("s1", "s2")``."""

    def build(*streams: str, url: str | None = None) -> Config:
        return Config(
            redis_pools=[
                RedisPool(code="default", uri=url or redis_url, streams=list(streams or STREAMS))
            ]
        )

    return build


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """The default test config: streams ``test-stream``, ``test-group``, ``other-stream``."""
    return make_config()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (for fault tests); all are stopped at teardown."""
    servers: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        server = RedisServer(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


# -- the server matrix -------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which server each test starts, and which matrix kinds are here."""
    lines = []
    try:
        default = default_binary()
        lines.append(f"servers: default {default.kind} {default.path} ({default.origin})")
    except Exception as exc:  # the error shows again, as a failure, in the first test
        lines.append(f"servers: no default server: {exc}")
    for kind, source in MATRIX_KINDS.items():
        binary = matrix_binary(kind)
        found = f"{binary.path} ({binary.origin})" if binary else f"MISSING: {source}"
        lines.append(f"  matrix {kind}: {found}")
    return lines


def _require(what: str) -> None:
    """Skip for a missing server, or fail when the matrix is required (CI)."""
    if matrix_required():
        pytest.fail(f"{what} ({REQUIRE_MATRIX_ENV}=1 makes this a failure)")
    pytest.skip(what)


@pytest.fixture(scope="session", params=list(MATRIX_KINDS))
def matrix_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One server per matrix kind (``redis-6.2``, ``redis-7.0``, ``redis-8.2``,
    ``valkey-9.1``), started once per session."""
    kind: str = request.param
    binary = matrix_binary(kind)
    if binary is None:
        _require(f"no {kind} server here: it comes from {MATRIX_KINDS[kind]}")
    with RedisServer(binary=binary) as server:
        yield server


@pytest.fixture
def matrix_url(matrix_server: RedisServer) -> str:
    """The matrix server's URL, flushed before the test (restarted if a test stopped it)."""
    if not matrix_server.server.running:
        matrix_server.start()
    client = matrix_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return matrix_server.url


# -- Redis Cluster -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterServer]:
    """A 3-master cluster (no replicas) for the session; tests use ``cluster``."""
    with ClusterServer(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def redis_cluster_replicas() -> Iterator[ClusterServer]:
    """A 3-master, 3-replica cluster per module; tests use ``cluster_with_replicas``."""
    with ClusterServer(masters=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture
def cluster(redis_cluster: ClusterServer) -> ClusterServer:
    """The session's 3-master cluster, healed and flushed."""
    redis_cluster.heal()
    redis_cluster.flushall()
    return redis_cluster


@pytest.fixture
def cluster_with_replicas(redis_cluster_replicas: ClusterServer) -> ClusterServer:
    """The module's 3 + 3 cluster, healed (roles may have swapped) and flushed."""
    redis_cluster_replicas.heal()
    redis_cluster_replicas.flushall()
    return redis_cluster_replicas


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., ClusterServer]]:
    """Start clusters of one's own: ``cluster_factory(masters=3, replicas=1, binary=...)``;
    all are torn down after the test."""
    clusters: list[ClusterServer] = []

    def start(**kwargs: Any) -> ClusterServer:
        cluster = ClusterServer(**kwargs)
        clusters.append(cluster)
        return cluster.start()

    yield start
    for cluster in clusters:
        cluster.close()


# -- Sentinel ------------------------------------------------------------------------------


@pytest.fixture
def sentinel_factory() -> Iterator[Callable[..., SentinelServer]]:
    """Start master + replica + sentinel: ``sentinel_factory(master_password=...,
    sentinel_password=...)``; all are stopped after the test."""
    setups: list[SentinelServer] = []

    def start(**kwargs: Any) -> SentinelServer:
        setup = SentinelServer(**kwargs)
        setups.append(setup)
        return setup.start()

    yield start
    for setup in setups:
        setup.close()


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server_factory(tls_certs: TLSFiles) -> Iterator[Callable[..., LocalServer]]:
    """Start TLS-only servers: ``tls_server_factory(auth_clients="yes"|"no"|"optional")``
    on a binary built with TLS (skipped, or failed under FLUXABEE_REQUIRE_MATRIX, when
    there is none); all are stopped after the test."""
    binary = tls_binary()
    if binary is None:
        _require("no server binary here is built with TLS (Debian's redis-server is)")
    servers: list[LocalServer] = []

    def start(auth_clients: str = "no", **kwargs: Any) -> LocalServer:
        tls: ServerTLS = tls_certs.server_tls(auth_clients)  # type: ignore[arg-type]
        server = LocalServer(binary=binary, tls=tls, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()
