"""Smoke tests of the server fixtures themselves: the matrix, Cluster, Sentinel, TLS.

Each scenario is what a fault or topology test will lean on: if one of these fails, the
fixture is broken, not the library.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fluxabee import LocalServer
from tests.cluster import ClusterServer, Node
from tests.sentinel import SentinelServer
from tests.servers import MATRIX_KINDS, RedisServer
from tests.tls import TLSFiles, tls_client

# -- the matrix ----------------------------------------------------------------------------


def test_matrix_server_answers_and_is_the_kind_it_claims(
    matrix_server: RedisServer, matrix_url: str, record_property: Callable[[str, object], None]
) -> None:
    # given a matrix server, flushed
    client = redis.Redis.from_url(matrix_url, decode_responses=True)
    try:
        # when we ask it who it is and use a stream with a group
        assert client.ping() is True
        info = client.info("server")
        entry = client.xadd("s", {"k": "v"})
        client.xgroup_create("s", "g", id="0")
        reply = client.xreadgroup("g", "c", {"s": ">"}, count=10)
        assert client.xack("s", "g", entry) == 1
    finally:
        client.close()
    # then it is the flavor and version the matrix says, and streams work
    assert reply == [["s", [(entry, {"k": "v"})]]]
    binary = matrix_server.binary
    version = info.get("valkey_version") or info["redis_version"]
    record_property("server", f"{binary.kind} {version} {binary.path}")
    print(f"{binary.kind}: INFO server version {version} ({binary.origin}: {binary.path})")
    assert binary.kind in MATRIX_KINDS
    assert version == binary.version_string
    assert ("valkey_version" in info) == (binary.flavor == "valkey")


# -- Redis Cluster -------------------------------------------------------------------------


def test_cluster_serves_every_slot_owner(cluster: ClusterServer) -> None:
    # given the 3-master cluster, one key per master
    masters = cluster.masters()
    assert len(masters) == 3
    keys: dict[str, int] = {}
    for n in range(1000):
        owner = cluster.master_for_slot(cluster.keyslot(f"k{n}")).port
        if owner not in keys.values():
            keys[f"k{n}"] = owner
        if len(keys) == 3:
            break
    # when redis-py's cluster client writes them
    client = cluster.cluster_client(decode_responses=True)
    try:
        for key in keys:
            client.set(key, key)
        values = {key: client.get(key) for key in keys}
    finally:
        client.close()
    # then each key landed on its slot owner, and each owner has one
    assert values == {key: key for key in keys}
    assert sorted(keys.values()) == sorted(m.port for m in masters)
    for key, port in keys.items():
        assert cluster.node(port).execute("GET", key) == key


def test_cluster_failover_promotes_the_replica_and_the_old_master_rejoins(
    cluster_with_replicas: ClusterServer,
) -> None:
    cluster = cluster_with_replicas
    slot = cluster.keyslot("failover-key")
    old = cluster.master_for_slot(slot)
    old.execute("SET", "failover-key", "v")
    old.execute("WAIT", 1, 2000)  # the replica has it before the master dies
    # when the slot's master is killed
    cluster.kill(old)
    new = cluster.wait_failover(old, timeout=20)
    # then its replica owns the slot, as master, with the data
    assert new is not old and new.role == "master"
    assert cluster.master_for_slot(slot) is new
    assert new.execute("GET", "failover-key") == "v"
    # and the old master comes back as a replica of the new one
    cluster.restart(old)
    assert old.role == "replica"
    assert cluster.master_for_slot(slot) is new


def _gone(node: Node, key: str) -> bool:
    """Whether ``key`` left ``node`` in a migration: EXISTS says 0 (Redis 7.0) or ASK
    (Valkey 9.1, the embedded server) for a key of a MIGRATING slot that moved."""
    try:
        return bool(node.execute("EXISTS", key) == 0)
    except redis.exceptions.AskError:
        return True


def test_cluster_slot_migration_answers_ask_then_moved(cluster: ClusterServer) -> None:
    # given two keys in one slot, and a slot migration half done (one key moved)
    slot = cluster.keyslot("{mig}a")
    source = cluster.master_for_slot(slot)
    target = next(m for m in cluster.masters() if m is not source)
    source.execute("SET", "{mig}a", "1")
    source.execute("SET", "{mig}b", "2")
    assert cluster.begin_migration(slot, target) is source
    assert cluster.migrate_keys(slot, count=1) == 1
    moved = "{mig}a" if _gone(source, "{mig}a") else "{mig}b"
    stayed = "{mig}b" if moved == "{mig}a" else "{mig}a"
    try:
        # then the source serves the key it still has and answers ASK for the other
        assert source.execute("GET", stayed) is not None
        with pytest.raises(redis.exceptions.AskError) as ask:
            source.execute("GET", moved)
        assert (ask.value.slot_id, ask.value.node_addr) == (slot, ("127.0.0.1", target.port))
        # and the target serves it only after ASKING (else MOVED back to the owner)
        with pytest.raises(redis.exceptions.MovedError):
            target.execute("GET", moved)
        raw = redis.Redis(
            host="127.0.0.1", port=target.port, decode_responses=True, retry=Retry(NoBackoff(), 0)
        )
        try:
            pipe = raw.pipeline(transaction=False)
            pipe.execute_command("ASKING")
            pipe.execute_command("GET", moved)
            assert pipe.execute() == [True, "1" if moved == "{mig}a" else "2"]
        finally:
            raw.close()
    finally:
        # when the migration finishes, every node sends the slot's keys to the target
        cluster.finish_migration(slot, target)
    assert cluster.master_for_slot(slot) is target
    with pytest.raises(redis.exceptions.MovedError):
        source.execute("GET", stayed)
    assert target.execute("MGET", "{mig}a", "{mig}b") == ["1", "2"]
    # put it back, so the session cluster keeps its even split
    cluster.begin_migration(slot, source)
    cluster.finish_migration(slot, source)
    assert cluster.master_for_slot(slot) is source


# -- Sentinel ------------------------------------------------------------------------------


def test_sentinel_failover(sentinel_factory: Callable[..., SentinelServer]) -> None:
    setup = sentinel_factory()
    first = setup.master_address()
    assert first == ("127.0.0.1", setup.master.port)
    client = setup.client(setup.master)
    try:
        client.set("k", "v")
        client.wait(1, 2000)
    finally:
        client.close()
    # when the master dies
    setup.kill_master()
    # then the sentinel names the replica, which is master now and has the data
    assert setup.wait_failover(timeout=20) == ("127.0.0.1", setup.replica.port)
    promoted = setup.client(setup.replica)
    try:
        assert promoted.get("k") == "v"
        assert promoted.execute_command("ROLE")[0] == "master"
    finally:
        promoted.close()
    # and the old master rejoins as its replica
    setup.restart(setup.master)
    assert setup.master_address() == ("127.0.0.1", setup.replica.port)


def test_sentinel_with_master_and_sentinel_passwords(
    sentinel_factory: Callable[..., SentinelServer],
) -> None:
    setup = sentinel_factory(master_password="m-secret", sentinel_password="s-secret")
    assert setup.master_address() == ("127.0.0.1", setup.master.port)
    # the sentinel and the data nodes want their passwords
    for port in (setup.sentinel.port, setup.master.port):
        bare = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                bare.ping()
        finally:
            bare.close()
    sentinel = redis.Sentinel(
        setup.sentinels,
        sentinel_kwargs={"password": "s-secret"},
        password="m-secret",
        decode_responses=True,
    )
    master = sentinel.master_for("mymaster")
    try:
        master.set("k", "v")
        assert master.get("k") == "v"
    finally:
        master.close()
        for conn in sentinel.sentinels:
            conn.close()


# -- TLS -----------------------------------------------------------------------------------


def test_tls_server_requiring_client_certificates(
    tls_server_factory: Callable[..., LocalServer], tls_certs: TLSFiles
) -> None:
    server = tls_server_factory(auth_clients="yes")
    assert server.url.startswith("rediss://127.0.0.1:")
    with_cert = tls_client(server, tls_certs, client_cert=True)
    without = tls_client(server, tls_certs, client_cert=False)
    try:
        assert with_cert.ping() is True
        with pytest.raises(redis.exceptions.ConnectionError):
            without.ping()
    finally:
        with_cert.close()
        without.close()
    plain = redis.Redis(
        host="127.0.0.1", port=server.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            plain.ping()  # TLS only: no plain-text listener on that port, nor on any
    finally:
        plain.close()


def test_tls_server_without_client_authentication(
    tls_server_factory: Callable[..., LocalServer], tls_certs: TLSFiles
) -> None:
    server = tls_server_factory(auth_clients="no")
    for client_cert in (False, True):
        client = tls_client(server, tls_certs, client_cert=client_cert)
        try:
            assert client.ping() is True
        finally:
            client.close()
