"""The pure Cluster rules: the slot map from CLUSTER SHARDS / SLOTS, and what a reply means."""

# ruff: noqa: E501 - replies as Redis gives them
from __future__ import annotations

import pytest

from fluxabee._cluster import (
    Address,
    SlotMap,
    parse_shards,
    parse_slots,
    redirect_of,
    topology_changed,
)
from fluxabee._keys import SLOTS
from fluxabee.errors import reply_error

# ruff: noqa: E501 - replies as Redis gives them, one node a line
SHARDS = [  # Redis 7.0's reply, trimmed to what matters
    [b"slots", [], b"nodes", [[b"id", b"e", b"port", 7005, b"ip", b"127.0.0.1",
                               b"endpoint", b"127.0.0.1", b"role", b"master", b"health", b"online"]]],
    [b"slots", [0, 5460], b"nodes", [
        [b"id", b"a", b"port", 7000, b"tls-port", 8000, b"ip", b"127.0.0.1", b"endpoint",
         b"10.0.0.1", b"role", b"master", b"health", b"online"],
        [b"id", b"b", b"port", 7003, b"ip", b"127.0.0.1", b"endpoint", b"10.0.0.4",
         b"role", b"replica", b"health", b"online"]]],
    [b"slots", [5461, 10921, 16000, 16383], b"nodes", [
        [b"id", b"c", b"port", 7001, b"ip", b"10.0.0.2", b"endpoint", b"?", b"role",
         b"master", b"health", b"online"]]],
    [b"slots", [10922, 15999], b"nodes", [
        [b"id", b"d", b"port", 7002, b"ip", b"10.0.0.3", b"endpoint", b"10.0.0.3",
         b"role", b"master", b"health", b"failed"],
        [b"id", b"f", b"port", 7004, b"ip", b"10.0.0.6", b"endpoint", b"10.0.0.6",
         b"role", b"master", b"health", b"online"]]],
]  # fmt: skip


def test_the_map_from_cluster_shards_takes_each_shards_live_master() -> None:
    ranges = parse_shards(SHARDS)
    assert ranges == [
        (0, 5460, Address("10.0.0.1", 7000)),
        (5461, 10921, Address("10.0.0.2", 7001)),  # no endpoint ("?"): the ip
        (16000, 16383, Address("10.0.0.2", 7001)),
        (10922, 15999, Address("10.0.0.6", 7004)),  # the failed master is skipped
    ]
    assert parse_shards(SHARDS, tls=True)[0] == (0, 5460, Address("10.0.0.1", 8000))
    slot_map = SlotMap(ranges)
    assert len(slot_map) == SLOTS
    assert slot_map.owner(0) == slot_map.owner(5460) == Address("10.0.0.1", 7000)
    assert slot_map.owner(16383) == Address("10.0.0.2", 7001)
    assert slot_map.nodes() == [Address("10.0.0.1", 7000), Address("10.0.0.2", 7001),
                                Address("10.0.0.6", 7004)]  # fmt: skip


def test_the_map_from_cluster_slots_of_redis_6_2() -> None:
    reply = [[0, 8191, [b"127.0.0.1", 7000, b"a", []], [b"127.0.0.1", 7003, b"b", []]],
             [8192, 16383, [b"127.0.0.1", 7001, b"c", []]]]  # fmt: skip
    slot_map = SlotMap(parse_slots(reply))
    assert slot_map.owner(8191).port == 7000  # type: ignore[union-attr]
    assert slot_map.owner(8192).port == 7001  # type: ignore[union-attr]


def test_a_map_groups_slots_by_owner_and_a_moved_slot_changes_owner() -> None:
    slot_map = SlotMap([(0, 99, Address("a", 1)), (100, 199, Address("b", 2))])
    assert slot_map.group([5, 150, 6, 500]) == {
        Address("a", 1): [0, 2],
        Address("b", 2): [1],
        None: [3],  # nobody serves slot 500: the cluster is down there
    }
    slot_map.moved(5, Address("b", 2))
    assert slot_map.owner(5) == Address("b", 2)
    assert slot_map.owner(6) == Address("a", 1)


@pytest.mark.parametrize(
    ("message", "ask", "slot", "address"),
    [
        ("MOVED 3999 127.0.0.1:6381", False, 3999, Address("127.0.0.1", 6381)),
        ("ASK 3999 10.0.0.7:7000", True, 3999, Address("10.0.0.7", 7000)),
        ("MOVED 1 [::1]:7000", False, 1, Address("::1", 7000)),
    ],
)
def test_redirects_name_the_slot_and_the_node(
    message: str, ask: bool, slot: int, address: Address
) -> None:
    found = redirect_of(reply_error(message))
    assert found is not None
    assert (found.ask, found.slot, found.address) == (ask, slot, address)
    assert topology_changed(reply_error(message))


def test_other_replies_are_no_redirects() -> None:
    assert redirect_of(b"1-0") is None
    assert redirect_of(reply_error("ERR no")) is None
    assert redirect_of(reply_error("MOVED garbage")) is None
    assert topology_changed(reply_error("CLUSTERDOWN The cluster is down"))
    assert topology_changed(reply_error("READONLY You can't write against a read only replica."))
    assert not topology_changed(reply_error("WRONGTYPE no"))


def test_a_failed_master_is_skipped_wherever_the_shard_lists_it() -> None:
    # Given shards whose failed master comes after the live one, and a shard whose only
    # master failed (a failover not finished: nobody serves its slots yet)
    def node(name: bytes, port: int, health: bytes) -> list[object]:
        return [b"id", name, b"port", port, b"ip", b"10.0.0.9", b"endpoint", b"10.0.0.9",
                b"role", b"master", b"health", health]  # fmt: skip

    shards = [
        [b"slots", [0, 99], b"nodes", [node(b"a", 7000, b"online"), node(b"b", 7001, b"failed")]],
        [b"slots", [100, 199], b"nodes", [node(b"c", 7002, b"failed")]],
    ]
    # When the map is read, then only the live master serves, and no failed one at all
    ranges = parse_shards(shards)
    assert ranges == [(0, 99, Address("10.0.0.9", 7000))]
    assert SlotMap(ranges).owner(150) is None
