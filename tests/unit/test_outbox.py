"""The publish buffer: whatever a flush comes to, exactly the unconfirmed events stay."""

from __future__ import annotations

import threading

import pytest

from fluxabee import BrokerConnectionError, EventTooLargeError, PartialFlushError, WrongTypeError
from fluxabee._outbox import MIN_BULK_LIMIT, Outbox, Pending
from fluxabee.errors import reply_error


def outbox(*sizes: int, pool: str = "p") -> Outbox:
    box = Outbox()
    for n, size in enumerate(sizes):
        box.add(Pending(pool, "s", f"xadd{n}".encode(), size))
    return box


def test_a_flush_that_landed_everything_empties_the_buffer_and_returns_the_ids() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    flush.record([0, 1], [b"1-0", b"2-0"])
    box.settle(flush)
    assert flush.outcome() == ["1-0", "2-0"]
    assert len(box) == 0


def test_an_interrupted_flush_keeps_every_unconfirmed_event_in_order_before_newer_ones() -> None:
    box = outbox(10, 10, 10)
    flush = box.begin()
    box.add(Pending("p", "s", b"published-meanwhile", 10))
    flush.record([0, 1, 2], [b"1-0"])  # cancelled after the first reply: nothing raised here
    box.settle(flush)
    assert [i.packed for i in box.items] == [b"xadd1", b"xadd2", b"published-meanwhile"]


def test_a_dropped_connection_is_a_partial_flush_naming_what_landed() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    flush.record([0, 1], [b"1-0"], BrokerConnectionError("reset"))
    box.settle(flush)
    with pytest.raises(PartialFlushError, match="1 stay buffered") as info:
        flush.outcome()
    assert info.value.ids == ["1-0", None]
    assert len(box) == 1


def test_an_error_reply_keeps_the_refused_event_and_raises_it() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    flush.record([0, 1], [reply_error("WRONGTYPE no"), b"2-0"])
    box.settle(flush)
    with pytest.raises(WrongTypeError):
        flush.outcome()
    assert [i.packed for i in box.items] == [b"xadd0"]


def test_events_over_the_limit_are_refused_by_name_and_leave_the_buffer() -> None:
    box = outbox(10, MIN_BULK_LIMIT + 1, 10)
    flush = box.begin()
    assert not flush.needs_limit([0, 2])
    assert flush.needs_limit([0, 1, 2])
    sent = flush.within_limit([0, 1, 2], MIN_BULK_LIMIT)
    assert sent == [0, 2]
    flush.record(sent, [b"1-0", b"3-0"])
    box.settle(flush)
    assert len(box) == 0
    with pytest.raises(EventTooLargeError) as info:
        flush.outcome()
    error = info.value
    assert (error.stream, error.size, error.limit, error.rejected) == (
        "s",
        MIN_BULK_LIMIT + 1,
        MIN_BULK_LIMIT,
        [1],
    )
    assert error.ids == ["1-0", None, "3-0"]


def test_redis_refusing_a_length_is_a_rejection_even_though_the_connection_dropped() -> None:
    box = outbox(10, 10, 10)
    flush = box.begin()
    refused = reply_error("ERR Protocol error: invalid bulk length")
    flush.record([0, 1, 2], [b"1-0", refused], BrokerConnectionError("closed"))
    box.settle(flush)
    with pytest.raises(EventTooLargeError, match="1 other events stay buffered") as info:
        flush.outcome()
    assert isinstance(info.value.__cause__, BrokerConnectionError)
    assert [i.packed for i in box.items] == [b"xadd2"]


def test_the_too_large_message_counts_the_other_refused_and_the_kept_events() -> None:
    box = outbox(MIN_BULK_LIMIT + 5, MIN_BULK_LIMIT + 6, 10)
    flush = box.begin()
    sent = flush.within_limit([0, 1, 2], MIN_BULK_LIMIT)
    flush.record(sent, [], BrokerConnectionError("down"))
    box.settle(flush)
    with pytest.raises(EventTooLargeError) as info:
        flush.outcome()
    text = str(info.value)
    assert f"field of {MIN_BULK_LIMIT + 5} bytes" in text
    assert f"proto-max-bulk-len of {MIN_BULK_LIMIT} bytes" in text
    assert "(1 more events refused)" in text
    assert text.endswith("; 1 other events stay buffered")
    assert info.value.limit == MIN_BULK_LIMIT


def test_a_partial_flush_counts_what_landed() -> None:
    box = outbox(10, 10, 10)
    flush = box.begin()
    flush.record([0, 1, 2], [b"1-0", b"2-0"], BrokerConnectionError("reset"))
    with pytest.raises(PartialFlushError, match=r"after 2 of 3 events; 1 stay buffered"):
        flush.outcome()


def test_an_event_recorded_twice_counts_once_so_the_unconfirmed_one_stays() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    flush.record([0], [b"1-0"])
    flush.record([0, 1], [b"1-0", None])  # a retry that repeats the first reply
    box.settle(flush)
    assert [i.packed for i in box.items] == [b"xadd1"]


def test_events_of_several_pools_are_grouped_per_pool_in_publish_order() -> None:
    box = Outbox()
    for n, pool in enumerate(["a", "b", "a", "c", "b"]):
        box.add(Pending(pool, "s", f"xadd{n}".encode(), 10))
    assert box.begin().groups == {"a": [0, 2], "b": [1, 4], "c": [3]}
    assert outbox(10, 10, 10).begin().groups == {"p": [0, 1, 2]}
    assert Outbox().begin().groups == {}


def packed(box: Outbox) -> list[bytes]:
    return [i.packed for i in box.items]


def test_an_event_published_during_a_flush_that_landed_everything_stays_buffered() -> None:
    # Kills the mutant "the all-landed fast path clears the whole buffer" (issue 14, §9):
    # another task or thread published while the flush was in flight.
    box = outbox(10, 10)
    flush = box.begin()
    box.add(Pending("p", "s", b"published-meanwhile", 10))
    flush.record([0, 1], [b"1-0", b"2-0"])
    box.settle(flush)
    assert flush.outcome() == ["1-0", "2-0"]
    assert packed(box) == [b"published-meanwhile"]


def test_a_flush_owns_its_snapshot_so_the_buffer_holds_only_newer_events_meanwhile() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    assert len(box) == 0  # in flight: the flush settles them
    box.add(Pending("p", "s", b"newer", 10))
    assert len(box) == 1
    assert [i.packed for i in flush.items] == [b"xadd0", b"xadd1"]


def test_discard_then_publish_during_a_flush_keeps_the_new_event_and_what_did_not_land() -> None:
    # Issue 14, item 10: the flush settled by cutting the first N items of a list that
    # discard() had replaced, so the event published after the discard was dropped.
    box = outbox(10, 10, 10)
    flush = box.begin()
    box.add(Pending("p", "s", b"before-discard", 10))
    assert box.discard() == 1  # drops what the flush did not take
    box.add(Pending("p", "s", b"after-discard", 10))
    flush.record([0, 1, 2], [b"1-0"])  # interrupted after the first reply
    box.settle(flush)
    assert packed(box) == [b"xadd1", b"xadd2", b"after-discard"]


def test_discard_then_publish_during_a_flush_that_landed_everything_keeps_the_new_event() -> None:
    box = outbox(10, 10)
    flush = box.begin()
    box.discard()
    box.add(Pending("p", "s", b"after-discard", 10))
    flush.record([0, 1], [b"1-0", b"2-0"])
    box.settle(flush)
    assert packed(box) == [b"after-discard"]


def test_threads_publishing_during_flushes_lose_nothing_and_duplicate_nothing() -> None:
    # The sync API shares a context's buffer between threads: appends race with begin and
    # settle; every event ends either sent once or still buffered.
    box = Outbox()
    writers, per_writer = 4, 5000
    started = threading.Barrier(writers + 1)

    def write(w: int) -> None:
        started.wait()
        for n in range(per_writer):
            box.add(Pending("p", "s", f"{w}:{n}".encode(), 10))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    started.wait()
    sent: list[bytes] = []
    rounds = 0
    while any(t.is_alive() for t in threads) or len(box):
        flush = box.begin()
        rounds += 1
        landed = len(flush.items) // 2 if rounds % 3 == 0 else len(flush.items)
        flush.record(list(range(landed)), [b"1-0"] * landed)
        sent += [item.packed for item in flush.items[:landed]]
        box.settle(flush)
    for thread in threads:
        thread.join()
    assert len(sent) == len(set(sent)) == writers * per_writer
    for w in range(writers):  # each writer's events went out in its own order
        mine = [int(p.split(b":")[1]) for p in sent if p.startswith(f"{w}:".encode())]
        assert mine == sorted(mine)
