"""The Cluster slot map: the gaps a mutation pass found (issue 14, section 9)."""

from __future__ import annotations

from fluxabee._cluster import Address, SlotMap, parse_slots, redirect_of
from fluxabee._keys import SLOTS
from fluxabee.errors import reply_error


def test_the_map_from_cluster_slots_names_each_masters_host() -> None:
    reply = [[0, 8191, [b"10.0.0.1", 7000, b"a", []], [b"10.0.0.4", 7003, b"b", []]],
             [8192, 16383, [b"node-c", 7001, b"c", []]]]  # fmt: skip
    assert parse_slots(reply) == [
        (0, 8191, Address("10.0.0.1", 7000)),
        (8192, 16383, Address("node-c", 7001)),
    ]


def test_a_redirect_keeps_a_host_name_as_given() -> None:
    found = redirect_of(reply_error("MOVED 7 XnodeX:7000"))
    assert found is not None and found.address == Address("XnodeX", 7000)


def test_a_range_past_the_last_slot_is_cut_at_the_last_slot() -> None:
    slot_map = SlotMap([(-5, SLOTS + 10, Address("a", 1))])
    assert len(slot_map) == SLOTS
    assert slot_map.owner(SLOTS - 1) == Address("a", 1)
