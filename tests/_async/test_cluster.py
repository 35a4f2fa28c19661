"""Redis Cluster: the core scenarios on a real 3-master cluster, a resharding of a slot
with live traffic, and a master failover with traffic (3 masters + 3 replicas).

The same API as for one server; only the pool differs (``cluster=True``, seed nodes).
"""

from __future__ import annotations

from typing import Any

import pytest

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    Config,
    ConsumerLockedError,
    PartialFlushError,
    RedisPool,
    ReplicationError,
    RetryPolicy,
)
from fluxabee._keys import dead_letter_key, key_slot, lock_key
from tests._async.traffic import Steps, ride_out_failover, wait_for
from tests.cluster import ClusterServer, Node
from tests.faulty import AsyncFaultyBackend, FaultPlan

FAST = RetryPolicy(max_deliveries=2, backoff=0, max_backoff=0)


class Boom(Exception):
    pass


def cluster_config(cluster: ClusterServer, streams: list[str], *, seeds: int = 1) -> Config:
    uris = [f"127.0.0.1:{n.port}" for n in cluster.masters()[:seeds]]
    return Config(redis_pools=[RedisPool(uri=uris, cluster=True, streams=streams)])


async def ignore(events: list[AsyncEvent]) -> None:
    pass


# -- the core scenarios -------------------------------------------------------------------


async def test_flush_sends_one_pipeline_per_master_and_keeps_the_order_of_each_stream(
    cluster: ClusterServer,
) -> None:
    streams = cluster.spread(3)
    plan = FaultPlan()
    config = cluster_config(cluster, streams)
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        broker = engine.new_context().event_broker()
        for i in range(30):
            broker.publish(streams[i % 3], i)
        await broker.publish_now(streams[0], "warm")  # learns the map, opens a connection
        before = plan.count(b"XADD")
        ids = await broker.flush()
        assert plan.count(b"XADD") - before == 3  # one pipeline per master, not per event
        seen: dict[str, list[Any]] = {}
        for stream in streams:
            consumer = broker.consumer_many(stream)

            async def handler(events: list[AsyncEvent], stream: str = stream) -> None:
                seen.setdefault(stream, []).extend(e.body for e in events)

            await consumer.consume(100, 0, handler)
    assert len(ids) == 30 and None not in ids
    assert seen[streams[0]] == ["warm", *range(0, 30, 3)]
    assert seen[streams[1]] == list(range(1, 30, 3))
    assert seen[streams[2]] == list(range(2, 30, 3))


async def test_consumers_claims_dead_letters_locks_and_statistics_work_unchanged(
    cluster: ClusterServer,
) -> None:
    streams = cluster.spread(2)
    async with AsyncEngine(cluster_config(cluster, streams)) as engine:
        broker = engine.new_context().event_broker()
        stream = streams[0]
        for i in range(4):
            broker.publish(stream, "bad" if i == 2 else i)
        await broker.flush()
        crashed = broker.consumer_many(stream)
        with pytest.raises(Boom):
            await crashed.consume(10, 0, _fail)  # four pending on a consumer that "dies"
        claimer = broker.consumer_many(stream, retry_policy=FAST)
        handled: list[Any] = []

        async def handler(events: list[AsyncEvent]) -> None:
            if any(e.body == "bad" for e in events):
                raise Boom
            handled.extend(e.body for e in events)

        assert await claimer.autoclaim(10, 0, lambda events: None) == 4  # claimed and acked
        for i in range(3):
            broker.publish(stream, "bad" if i == 1 else f"later-{i}")
        await broker.flush()
        running = claimer

        async def stopping(events: list[AsyncEvent]) -> None:
            await handler(events)
            if len(handled) == 2:
                running.stop()

        await claimer.run(10, 0.2, stopping)
        assert handled == ["later-0", "later-2"]
        with pytest.raises(Boom):  # its second failure alone (the batch delivery is excused)
            await claimer.consume(10, 0, handler)
        assert await claimer.consume(10, 0, handler) == 0  # read a fourth time: dead-lettered
        (letter,) = await broker.dead_letters(stream)
        assert letter.event.body == "bad" and "Boom" in letter.error
        assert await broker.replay_dead_letters(stream) == 1
        stats = {s.stream: s for s in await broker.streams_statistics()}
        assert stats[stream].length == 1  # the replayed one
        assert stats[stream].dead_letters == 0
        assert stats[streams[1]].oldest_event_age is None
        assert crashed.name in await broker.prune_consumers(stream, idle=0)

        single = broker.consumer_single(streams[1], lock_ttl=30)
        await single.consume(1, 0, ignore)
        other = engine.new_context().event_broker().consumer_single(streams[1], lock_ttl=30)
        with pytest.raises(ConsumerLockedError):
            await other.consume(1, 0, ignore)
        await single.aclose()
    admin = cluster.master_for_slot(key_slot(stream))
    assert key_slot(dead_letter_key(stream)) == key_slot(lock_key(stream)) == key_slot(stream)
    assert admin.execute("EXISTS", dead_letter_key(stream)) == 1  # on the stream's own node


async def _fail(events: list[AsyncEvent]) -> None:
    raise Boom


async def test_flush_waits_for_replicas_when_asked(cluster: ClusterServer) -> None:
    streams = cluster.spread(2)
    async with AsyncEngine(cluster_config(cluster, streams)) as engine:
        broker = engine.new_context().event_broker()
        broker.publish(streams[0], 1)
        broker.publish(streams[1], 2)
        with pytest.raises(ReplicationError) as info:  # this cluster has no replicas
            await broker.flush(wait_replicas=1, timeout=0.05)
    assert info.value.wanted == 1 and info.value.acknowledged == 0
    assert None not in info.value.ids  # they landed on their masters
    assert broker.buffered == 0


async def test_a_master_down_part_way_leaves_exactly_its_events_buffered(
    cluster: ClusterServer,
) -> None:
    streams = cluster.spread(3)
    down = cluster.master_for_slot(key_slot(streams[1]))
    async with AsyncEngine(cluster_config(cluster, streams, seeds=3)) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(streams[1], "warm")  # the map is known, the node reachable
        for i in range(9):
            broker.publish(streams[i % 3], i)
        cluster.kill(down)
        try:
            with pytest.raises(PartialFlushError) as info:
                await broker.flush()
            ids = info.value.ids
            assert [i is None for i in ids] == [n % 3 == 1 for n in range(9)]
            assert broker.buffered == 3  # exactly the dead master's events
        finally:
            cluster.restart(down)
        assert len(await broker.flush()) == 3  # back: sent once, nothing else again


# -- resharding with live traffic ------------------------------------------------------------


async def test_given_a_slot_resharded_under_traffic_then_publishers_and_consumers_follow_and_lose_nothing(  # noqa: E501
    cluster: ClusterServer,
) -> None:
    (stream,) = cluster.spread(1)
    slot = key_slot(stream)
    source = cluster.master_for_slot(slot)
    target = next(n for n in cluster.masters() if n is not source)
    async with AsyncEngine(cluster_config(cluster, [stream], seeds=3)) as engine:
        broker = engine.new_context().event_broker()
        for i in range(20):
            broker.publish(stream, i)
        confirmed = list(await broker.flush())
        consumer = broker.consumer_many(stream)
        handled: list[str] = []
        phase = {"n": 0}

        def reshard() -> None:
            cluster.begin_migration(slot, target)  # ASK from now on for what moved
            cluster.migrate_keys(slot)
            phase["n"] = 1

        def finish() -> None:
            cluster.finish_migration(slot, target)  # MOVED from now on
            phase["n"] = 2

        mover = Steps(
            ("ten handled", lambda: len(handled) >= 10, reshard),
            ("the later events handled", lambda: len(handled) >= 30, finish),
        ).start()

        published: set[int] = set()

        async def handler(events: list[AsyncEvent]) -> None:
            handled.extend(e.id for e in events)
            for wanted, at in ((1, 10), (2, 30)):
                if len(handled) >= at and wanted not in published:
                    wait_for(f"phase {wanted} of the resharding", lambda w=wanted: phase["n"] >= w)
                    published.add(wanted)  # publish mid-migration (ASK), then after it (MOVED)
                    for i in range(10):
                        broker.publish(stream, f"p{wanted}-{i}")
                    confirmed.extend(await broker.flush())
            if len(confirmed) == 40 and set(confirmed) <= set(handled):
                consumer.stop()

        try:
            await consumer.run(5, 0.2, handler)
        finally:
            mover.join()
    assert len(confirmed) == 40
    assert set(handled) == set(confirmed)  # nothing lost
    assert cluster.master_for_slot(slot) is target


# -- a master failover with traffic ------------------------------------------------------------


async def test_given_a_master_killed_under_traffic_then_run_rides_out_the_failover_and_nothing_confirmed_is_lost(  # noqa: E501
    cluster_with_replicas: ClusterServer, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = cluster_with_replicas
    (stream,) = cluster.spread(1)
    victim = cluster.master_for_slot(key_slot(stream))
    state: dict[str, Node | None] = {"new": None}

    def fail_over() -> None:
        cluster.kill(victim)
        state["new"] = cluster.wait_failover(victim)

    async with AsyncEngine(cluster_config(cluster, [stream], seeds=3)) as engine:
        broker = engine.new_context().event_broker()
        seen = await ride_out_failover(broker, stream, fail_over, lambda: state["new"] is not None)
    print(f"failover: {seen}")
    assert not seen.lost
    assert state["new"] is not None and state["new"] is not victim


async def test_given_a_graceful_failover_then_the_connections_to_the_demoted_master_are_closed(
    cluster_with_replicas: ClusterServer,
) -> None:
    # Given a pooled connection to the master of a stream
    cluster = cluster_with_replicas
    (stream,) = cluster.spread(1, prefix="departed")
    old = cluster.master_for_slot(key_slot(stream))
    (new,) = [cluster.node(n["port"]) for n in old.view() if n["master"] == old.id]  # type: ignore[arg-type]
    seed = next(n for n in cluster.masters() if n is not old)
    config = Config(
        redis_pools=[RedisPool(uri=f"127.0.0.1:{seed.port}", cluster=True, streams=[stream])]
    )

    def ours_on_old() -> int:  # our clients on the old master: the last ran XADD
        clients: Any = old.execute("CLIENT", "LIST")  # text: one line per client
        return sum(1 for line in str(clients).splitlines() if " cmd=xadd " in f" {line} ")

    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(stream, "before")
        assert ours_on_old() == 1
        # When its replica takes over (the old master stays up, as a replica, clients kept)
        new.execute("CLUSTER", "FAILOVER")
        wait_for("the replica to take over", lambda: new.role == "master" and old.role == "replica")
        cluster.wait_healthy()
        await broker.publish_now(stream, "after")  # MOVED: the map is asked again
        # Then nothing stays connected to a node that serves no slot any more
        wait_for("our connections to the old master to close", lambda: ours_on_old() == 0, 20)
        seen: list[Any] = []
        await broker.consumer_many(stream).consume(10, 0, seen.extend)
    assert [e.body for e in seen] == ["before", "after"]
