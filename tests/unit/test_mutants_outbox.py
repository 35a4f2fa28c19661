"""The publish buffer's flush rules: the gaps a mutation pass found (issue 14, section 9)."""

from __future__ import annotations

import pytest

from fluxabee import (
    BrokerConnectionError,
    EventTooLargeError,
    FluxabeeError,
    PartialFlushError,
    ReplicationError,
)
from fluxabee._outbox import MIN_BULK_LIMIT, Flush, Outbox, Pending
from fluxabee.errors import reply_error


def flush_of(*pools: str, size: int = 10) -> Flush:
    return Flush([Pending(pool, f"s{n}", b"xadd", size) for n, pool in enumerate(pools)])


def test_events_of_two_pools_are_grouped_per_pool_in_publish_order() -> None:
    assert flush_of("a", "b", "a").groups == {"a": [0, 2], "b": [1]}
    assert flush_of("a", "a").groups == {"a": [0, 1]}
    assert flush_of().groups == {}


def test_no_events_need_no_look_at_the_servers_limit() -> None:
    assert not flush_of("a").needs_limit([])


def test_a_field_of_exactly_the_smallest_limit_needs_no_look_at_the_servers_limit() -> None:
    flush = Flush([Pending("p", "s", b"x", MIN_BULK_LIMIT), Pending("p", "s", b"x", 5)])
    assert not flush.needs_limit([0, 1])
    assert Flush([Pending("p", "s", b"x", MIN_BULK_LIMIT + 1)]).needs_limit([0])


def test_a_field_of_exactly_the_servers_limit_is_sent() -> None:
    flush = Flush([Pending("p", "s", b"x", 100), Pending("p", "s", b"x", 101)])
    assert flush.within_limit([0, 1], 100) == [0]
    assert flush.rejected == [1]


def test_each_confirmed_event_is_counted_once_even_when_recorded_again() -> None:
    flush = flush_of("p", "p", "p")
    flush.record([0, 1], [b"1-0", b"2-0"])
    assert flush.landed == 2
    for _ in range(3):
        flush.record([0], [b"1-0"])
    assert flush.landed == 2
    box = Outbox()
    box.settle(flush)
    assert [item.stream for item in box.items] == ["s2"]


def test_a_reply_not_received_does_not_hide_the_replies_after_it() -> None:
    flush = flush_of("p", "p")
    flush.record([0, 1], [None, b"2-0"])
    assert flush.ids == [None, "2-0"]


def test_a_connection_error_reply_makes_the_flush_partial_and_the_first_failure_wins() -> None:
    flush = flush_of("p", "p", "p")
    first = BrokerConnectionError("LOADING first")
    flush.record([0, 1, 2], [first, BrokerConnectionError("second"), b"3-0"])
    flush.record([], [], BrokerConnectionError("dropped later"))
    with pytest.raises(PartialFlushError) as info:
        flush.outcome()
    assert info.value.__cause__ is first
    assert info.value.ids == [None, None, "3-0"]


def test_an_error_reply_names_the_xadd_and_the_first_one_is_raised() -> None:
    flush = flush_of("p", "p")
    flush.record([0, 1], [reply_error("WRONGTYPE first"), reply_error("WRONGTYPE second")])
    with pytest.raises(FluxabeeError) as info:
        flush.outcome()
    assert "first" in str(info.value)
    assert info.value.command == "XADD"  # type: ignore[attr-defined]


def test_a_fluxabee_error_in_place_of_a_reply_is_raised_and_the_first_one_wins() -> None:
    flush = flush_of("p", "p")
    first, second = FluxabeeError("first"), FluxabeeError("second")
    flush.record([0, 1], [first, second])
    with pytest.raises(FluxabeeError) as info:
        flush.outcome()
    assert info.value is first


def test_enough_replicas_confirming_leaves_the_flush_clean() -> None:
    flush = flush_of("p")
    flush.record([0], [b"1-0"])
    flush.replicas(2, 2, "n1")
    flush.replicas(2, 3, "n2")
    assert flush.outcome() == ["1-0"]


def test_too_few_replicas_raise_a_replication_error_naming_the_worst_node() -> None:
    flush = flush_of("p", "p")
    flush.record([0, 1], [b"1-0", b"2-0"])
    flush.replicas(3, 2, "n1")
    flush.replicas(3, 1, "n2")
    flush.replicas(3, 2, "n3")
    with pytest.raises(ReplicationError) as info:
        flush.outcome()
    error = info.value
    assert (error.ids, error.wanted, error.acknowledged) == (["1-0", "2-0"], 3, 1)
    assert "3 replicas were asked to confirm the flush, 1 did (n2)" in str(error)


def test_a_wait_that_failed_counts_as_no_replica_and_a_lost_connection_makes_it_partial() -> None:
    flush = flush_of("p")
    flush.record([0], [b"1-0"])
    flush.replicas(1, reply_error("ERR wait refused"), "n1")
    with pytest.raises(ReplicationError) as info:
        flush.outcome()
    assert info.value.acknowledged == 0
    lost = flush_of("p")
    lost.record([0], [b"1-0"])
    dropped = BrokerConnectionError("reset")
    lost.replicas(1, dropped, "n1")
    lost.replicas(1, BrokerConnectionError("later"), "n2")
    with pytest.raises(PartialFlushError) as partial:
        lost.outcome()
    assert partial.value.__cause__ is dropped


def test_a_single_refused_event_names_its_stream_and_mentions_no_others() -> None:
    flush = Flush([Pending("p", "orders", b"x", 200), Pending("p", "s", b"x", 5)])
    flush.within_limit([0, 1], 100)
    flush.record([1], [b"1-0"])
    with pytest.raises(EventTooLargeError) as info:
        flush.outcome()
    assert "'orders'" in str(info.value)
    assert "more events refused" not in str(info.value)
    assert info.value.limit == 100


def test_an_event_redis_refused_has_no_known_limit() -> None:
    flush = flush_of("p")
    flush.record([0], [reply_error("ERR Protocol error: invalid bulk length")])
    with pytest.raises(EventTooLargeError) as info:
        flush.outcome()
    assert info.value.limit == 0
