#!/usr/bin/env python3
"""A by-hand mutation pass: apply each mutant, run the tests that should catch it, restore.

Each mutant is (file, original text, mutated text, tests). A mutant that leaves its tests
green is a survivor: a missing test. Run from the project root:

    .venv/bin/python scripts/mutations.py            # every mutant
    .venv/bin/python scripts/mutations.py lock       # those whose name contains "lock"

Exit status 1 when a mutant survives. The suite's tests start their own Redis servers.
"""

# ruff: noqa: E501 - each mutant quotes a source line whole

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "fluxabee"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


UNIT = ("tests/unit",)
HARDENING = ("tests/_async/test_hardening.py", "tests/_sync/test_hardening.py")
FANOUT = "tests/_async/test_fanout.py::"
#: The fan-out scenarios on one server without XACKDEL (XACK + trim) and on Redis 8.2.
TWO_GROUPS = (
    f"{FANOUT}test_two_groups_each_read_every_event_and_an_entry_leaves_once_both_acked[redis-7.0]",
    f"{FANOUT}test_two_groups_each_read_every_event_and_an_entry_leaves_once_both_acked[redis-8.2]",
)
CRASHED = (
    f"{FANOUT}test_a_crashed_consumer_in_one_group_holds_its_entries_until_a_live_one_claims_them[redis-7.0]",
)
DEAD_ONE_GROUP = (
    f"{FANOUT}test_dead_letters_in_one_group_while_the_other_is_healthy_and_replay_to_that_group[redis-7.0]",
)

MUTANTS = [
    Mutant(
        "lock_refresh ignores the token",
        "lua/lock_refresh.lua",
        "if holder and holder ~= ARGV[1] then",
        "if false then",
        HARDENING,
    ),
    Mutant(
        "dead letters ack the source although the XADD failed",
        "_machine.py",
        "moved = [e for e, r in zip(events, replies, strict=True) if isinstance(r, bytes)]",
        "moved = list(events)",
        (*UNIT, *HARDENING),
    ),
    Mutant(
        "replay deletes a dead letter whose XADD failed",
        "_async/dead_letters.py",
        "done = [e.id for (e, _), r in zip(chosen, replies, strict=True) if isinstance(r, bytes)]",
        "done = [e.id for e, _ in chosen]",
        ("tests/_async/test_hardening.py",),
    ),
    Mutant(
        "backoff does not double",
        "_policy.py",
        "base * 2.0 ** max(0, min(deliveries - 1, 62))",
        "base * 1.0 ** max(0, min(deliveries - 1, 62))",
        UNIT,
    ),
    Mutant(
        "the local lease check is skipped",
        "_machine.py",
        "if lease is not None and not lease.held():",
        "if False:",
        UNIT,
    ),
    Mutant(
        "publish_now resends its XADD on a fresh connection",
        "_async/broker.py",
        "reply = (await client.execute_packed(item.packed, 1))[0]",
        "reply = (await client.execute_packed(item.packed, 1, retry_safe=True))[0]",
        ("tests/_async/test_hardening.py",),
    ),
    Mutant(
        "a lost reply of XREADGROUP > does not make the consumer re-read its pending list",
        "_machine.py",
        """        except BaseException:  # a lost reply: cancelled, interrupted or disconnected
            self.lost_reply()
            raise
        new = raw_entries(_raise_errors([reply])[0])""",
        """        except BrokerConnectionError:
            raise
        new = raw_entries(_raise_errors([reply])[0])""",
        (*UNIT, *HARDENING),
    ),
    Mutant(
        "a read of new entries is marked retry-safe",
        "_machine.py",
        "reply = (yield Send([read], timeout=block_ms / 1000 + BLOCK_READ_MARGIN))[0]",
        "reply = (yield Send([read], retry_safe=True, timeout=block_ms / 1000 + BLOCK_READ_MARGIN))[0]",
        UNIT,
    ),
    Mutant(
        "poison isolation is skipped",
        "_runloop.py",
        "        if len(events) > 1:\n            self._excuse(failed)\n            isolated, failed = yield from self._isolate(failed)",
        "        if False:\n            self._excuse(failed)\n            isolated, failed = yield from self._isolate(failed)",
        UNIT,
    ),
    Mutant(
        "consumer_single moves past a failed event",
        "_runloop.py",
        "                still += failed[index + 1 :]  # consumer_single: the rest waits behind it\n                break",
        "                pass",
        UNIT,
    ),
    Mutant(
        "run does not count events acked inside a failed batch",
        "_runloop.py",
        "handled = sum(1 for e in events if e.acked)",
        "handled = 0",
        UNIT,
    ),
    Mutant(
        "the dead-letter boundary is off by one",
        "_policy.py",
        "return deliveries > self.max_deliveries",
        "return deliveries >= self.max_deliveries",
        UNIT,
    ),
    Mutant(
        "a flush that failed part-way drops what it did not confirm",
        "_outbox.py",
        "return self.ids[index] is not None or index in self.rejected",
        "return True",
        UNIT,
    ),
    Mutant(
        "an oversized event is sent anyway",
        "_outbox.py",
        "            if self.items[index].size > limit:",
        "            if False:",
        UNIT,
    ),
    Mutant(
        "derived keys wrap names that hold a stray closing brace",
        "_keys.py",
        '    if b"}" not in data:',
        "    if True:",
        UNIT,
    ),
    Mutant(
        "a zero lock_ttl is accepted",
        "_validate.py",
        "    if positive and result <= 0:",
        "    if positive and result < 0:",
        UNIT,
    ),
    Mutant(
        "the sync API accepts async handlers",
        "_validate.py",
        "    if sync and _is_async(value):",
        "    if False:",
        UNIT,
    ),
    Mutant(
        "statistics ignore a refused TIME",
        "_stats.py",
        "    if isinstance(time_reply, RedisReplyError):\n        raise time_reply",
        "    if False:\n        raise time_reply",
        ("tests/_async/test_hardening.py",),
    ),
    Mutant(
        "NOSCRIPT is not sent again as EVAL",
        "_async/client.py",
        'if isinstance(reply, RedisReplyError) and reply.prefix == "NOSCRIPT":',
        "if False:",
        ("tests/_async/test_hardening.py",),
    ),
    Mutant(
        "the engine's close is not shielded",
        "_async/engine.py",
        "await AsyncBackend.shielded(self._close)",
        "await self._close()",
        ("tests/test_async_only.py",),
    ),
    Mutant(
        "a cancelled join swallows the cancellation",
        "_backends.py",
        "        except asyncio.CancelledError:\n            task.cancel()\n            raise",
        "        except asyncio.CancelledError:\n            task.cancel()",
        ("tests/test_async_only.py",),
    ),
]


MUTANTS += [
    # -- fan-out and retention (issue 10) --------------------------------------------------
    Mutant(
        "several groups ack with XACK + XDEL",
        "_retention.py",
        "    if len(stream.groups) == 1 and not others:",
        "    if len(stream.groups) >= 1 and not others:",
        (*UNIT, *TWO_GROUPS),
    ),
    Mutant(
        "the XACKDEL probe is skipped",
        "_retention.py",
        "    return len(stream.groups) + len(others) > 1",
        "    return False",
        (*UNIT, *TWO_GROUPS),
    ),
    Mutant(
        "a server that lost XACKDEL is not turned to XACK",
        "_retention.py",
        "        if mode is AckMode.XACKDEL and unknown_command(replies[0]):",
        "        if False:",
        UNIT,
    ),
    Mutant(
        "the safe MINID ignores pending entries",
        "_retention.py",
        "        return self.lowest_pending or next_id(self.last_delivered)",
        "        return next_id(self.last_delivered)",
        (*UNIT, *CRASHED),
    ),
    Mutant(
        "a missing declared group does not block a trim",
        "_retention.py",
        "    if not state.groups or any(group not in names for group in declared):",
        "    if not state.groups:",
        UNIT,
    ),
    Mutant(
        "groups that are not declared do not hold entries back",
        "_retention.py",
        "    return min((g.needs_from for g in state.groups), key=id_key)",
        "    return min((g.needs_from for g in state.groups if g.name in declared), key=id_key)",
        UNIT,
    ),
    Mutant(
        "the trim cuts one entry too far",
        "_retention.py",
        "        commands: list[list[Arg]] = [xtrim_minid_command(name, plan.minid, acked=acked_guard)]",
        "        commands: list[list[Arg]] = [xtrim_minid_command(name, next_id(plan.minid), acked=acked_guard)]",
        (*UNIT, *TWO_GROUPS),
    ),
    Mutant(
        "trims are approximate",
        "_protocol.py",
        '    command: list[Arg] = [b"XTRIM", stream, b"MINID", minid]',
        '    command: list[Arg] = [b"XTRIM", stream, b"MINID", b"~", minid]',
        UNIT,
    ),
    Mutant(
        "a trim creates the stream",
        "_retention.py",
        "    creates = [group_create_command(name, group, mkstream=False) for group in stream.groups]",
        "    creates = [group_create_command(name, group, mkstream=True) for group in stream.groups]",
        UNIT,
    ),
    Mutant(
        "a consumer creates its own group only",
        "_machine.py",
        "        commands = [group_create_command(self.stream, g) for g in self.settings.groups]",
        "        commands = [group_create_command(self.stream, g) for g in (self.group,)]",
        UNIT,
    ),
    Mutant(
        "a cap is over at its own size",
        "_retention.py",
        "    if stream.max_len is not None and length > stream.max_len:",
        "    if stream.max_len is not None and length >= stream.max_len:",
        UNIT,
    ),
    Mutant(
        "consumers never trim after the interval",
        "_retention.py",
        "            and (self.acked >= TRIM_AFTER_ACKS or now - self._last_trim >= TRIM_INTERVAL)",
        "            and self.acked >= TRIM_AFTER_ACKS",
        UNIT,
    ),
    Mutant(
        "a failed trim stops the consumer",
        "_retention.py",
        "        except (BrokerConnectionError, RedisReplyError) as exc:",
        "        except ZeroDivisionError as exc:",
        UNIT,
    ),
    Mutant(
        "a replayed entry is handed to every group",
        "_retention.py",
        "    return target is None or target == group or target not in declared",
        "    return True",
        (*UNIT, *DEAD_ONE_GROUP),
    ),
    Mutant(
        "replays do not name their group",
        "_retention.py",
        "    if len(declared) > 1 and group is not None and group in declared:",
        "    if False:",
        (*UNIT, *DEAD_ONE_GROUP),
    ),
    Mutant(
        "dead letters do not name their group",
        "_machine.py",
        "                    now_ms=now_ms,\n                    group=self.group,",
        '                    now_ms=now_ms,\n                    group="",',
        (*UNIT, *DEAD_ONE_GROUP),
    ),
    Mutant(
        "Redis 6.2's claimed holes are left pending",
        "_machine.py",
        "            yield from self._ack_holes(start, claimed.cursor, {e.id for e in entries})",
        "            self.pending_first = True",
        (
            *UNIT,
            "tests/_async/test_matrix.py::test_autoclaim_hands_over_live_entries_and_acks_away_one_deleted_while_pending[redis-6.2]",
        ),
    ),
    Mutant(
        "the hole lookup reads past the scanned range",
        "_machine.py",
        '        end = "+" if cursor in CURSOR_END else "(" + cursor',
        '        end = "+"',
        UNIT,
    ),
    Mutant(
        "groups share one consumer_single lock",
        "_keys.py",
        "    if group == GROUP_NAME:",
        "    if True:",
        (f"{FANOUT}test_consumer_single_holds_one_lock_per_stream_and_group[redis-7.0]",),
    ),
    Mutant(
        "unknown lag is reported as 0",
        "_stats.py",
        "        lag=None if lag is None else int(lag),",
        "        lag=int(lag or 0),",
        ("tests/_async/test_groups.py",),
    ),
    Mutant(
        "a consumer joins the last declared group by default",
        "_streamconfig.py",
        "            return self.groups[0]",
        "            return self.groups[-1]",
        ("tests/_async/test_groups.py",),
    ),
    Mutant(
        "an explicit trim goes past what a group still needs",
        "_trim.py",
        "        if safe is None or id_key(target) > id_key(safe):",
        "        if safe is None:",
        ("tests/_async/test_groups.py",),
    ),
    Mutant(
        "a Cluster redirect is not followed",
        "_async/cluster.py",
        "            first = next((i for i, r in enumerate(got) if redirect_of(r) is not None), None)",
        "            first = None",
        ("tests/_async/test_cluster.py",),
    ),
    Mutant(
        "flush drops the XADDs a moved slot redirected",
        "_async/broker.py",
        "        if redirected:  # the slot moved: those XADDs did not run; send them where it went",
        "        if False:",
        ("tests/_async/test_cluster.py",),
    ),
    Mutant(
        "a Sentinel client keeps writing to a demoted master",
        "_async/sentinel.py",
        "        if any(isinstance(r, RedisUnavailableError) for r in replies):",
        "        if False:",
        ("tests/_async/test_sentinel.py",),
    ),
    Mutant(
        "the Cluster map is never asked again after a failure",
        "_async/cluster.py",
        '        """A node failed or answered READONLY / CLUSTERDOWN: ask for the map next time."""\n        self._stale = True',
        '        """A node failed or answered READONLY / CLUSTERDOWN: ask for the map next time."""',
        ("tests/_async/test_cluster.py",),
    ),
    # -- the publish hot path ----------------------------------------------------------------
    Mutant(
        "an event recorded twice is counted as landed twice",
        "_outbox.py",
        "                if ids[index] is None:  # counted once, even if recorded twice\n                    self.landed += 1",
        "                self.landed += 1",
        UNIT,
    ),
    Mutant(
        "settle drops the whole snapshot when only some events landed",
        "_outbox.py",
        "        if flush.landed == taken:",
        "        if flush.landed >= taken - 1:",
        UNIT,
    ),
    Mutant(
        "the all-landed fast path clears the whole buffer, events published meanwhile too",
        "_outbox.py",
        "        if flush.landed == taken:  # every event landed: nothing goes back\n            return",
        "        if flush.landed == taken:  # every event landed: nothing goes back\n            self.items.clear()\n            return",
        UNIT,
    ),
    Mutant(
        "a flush leaves the events it takes in the buffer (discard() then cuts them)",
        "_outbox.py",
        "            del items[: len(taken)]  # appends only ever go to the end",
        "            pass",
        UNIT,
    ),
    Mutant(
        "an idle connection interrupted in its staleness check is never given back",
        "_async/client.py",
        "            except BaseException:  # cancelled during the check: nothing was sent on it\n                self._release(conn)",
        "            except BaseException:  # cancelled during the check: nothing was sent on it",
        (
            "tests/_async/test_cancellations.py::test_interrupted_at_every_await_no_connection_leaks_and_no_buffered_event_is_lost[publish_now-server]",
        ),
    ),
    Mutant(
        "events of several pools are all sent to the first pool",
        "_outbox.py",
        "        if len(pools) == 1:  # one pool: no grouping per event",
        "        if len(pools) >= 1:  # one pool: no grouping per event",
        UNIT,
    ),
    Mutant(
        "no event is ever checked against the server's limit",
        "_outbox.py",
        "        return max(sizes, default=0) > MIN_BULK_LIMIT",
        "        return False",
        UNIT,
    ),
    Mutant(
        "the body-only fast path drops the meta",
        "_async/broker.py",
        "        if not meta and observers is None:  # the common case: the body alone",
        "        if observers is None:  # the common case: the body alone",
        ("tests/_async/test_publish.py", "tests/_sync/test_publish.py"),
    ),
    Mutant(
        "the body-only XADD names the wrong field",
        "_protocol.py",
        "len(BODY_FIELD), BODY_FIELD.encode())",
        'len(BODY_FIELD), b"x")',
        UNIT,
    ),
    Mutant(
        "a flush over the chunk size is one write (a giant copy)",
        "_backends.py",
        "    if 0 < sum(map(len, parts)) <= WRITE_CHUNK:",
        "    if 0 < sum(map(len, parts)):",
        UNIT,
    ),
]


MUTANTS += [
    # -- the consumer core (issue 14, section 9 and items 1, 8, 9, 14) -----------------------
    Mutant(
        "the reconnect delay is not capped",
        "_policy.py",
        "raw: float = min(RECONNECT_MAX_DELAY, RECONNECT_BASE_DELAY * 2.0 ** min(attempt - 1, 30))",
        "raw: float = RECONNECT_BASE_DELAY * 2.0 ** min(attempt - 1, 30)",
        UNIT,
    ),
    Mutant(
        "own-pending-first is cleared although entries came back",
        "_machine.py",
        "            if entries:\n                return _with_counts(entries, replies[1])\n            self.pending_first = False",
        "            self.pending_first = False\n            if entries:\n                return _with_counts(entries, replies[1])",
        UNIT,
    ),
    Mutant(
        "dead_letter_on in consume dead-letters the whole batch",
        "_machine.py",
        "yield from self.dead_letter(unacked, handed=[unacked[0].delivery_count])",
        "yield from self.dead_letter(events, handed=[e.delivery_count for e in events])",
        UNIT,
    ),
    Mutant(
        "dead_letter_on matches exact types only",
        "_policy.py",
        "return bool(self.dead_letter_on) and isinstance(exc, self.dead_letter_on)",
        "return type(exc) in self.dead_letter_on",
        UNIT,
    ),
    Mutant(
        "a lost lock does not set own-pending-first",
        "_machine.py",
        "        lease.lost()\n        self.pending_first = True\n",
        "        lease.lost()\n",
        UNIT,
    ),
    Mutant(
        "an interrupted ack after the handler returned strands its events",
        "_machine.py",
        "            except BaseException:  # handled, maybe not acked: ours, to hand over again\n                self.lost_reply()",
        "            except BaseException:  # handled, maybe not acked: ours, to hand over again\n                pass",
        UNIT,
    ),
    Mutant(
        "a claim that meets a vanished group raises",
        "_machine.py",
        'yield from self.unless_vanished(self._claim(count, min_idle_ms, start), ([], "0-0"))',
        "yield from self._claim(count, min_idle_ms, start)",
        ("tests/_async/test_vanished.py",),
    ),
    Mutant(
        "errors inside scripts keep the ERR prefix",
        "errors.py",
        "    if inner is not None:\n        return inner.group(1)",
        "    if False:\n        return inner.group(1)",
        UNIT,
    ),
    Mutant(
        "a split batch's failure counts toward max_deliveries",
        "_machine.py",
        "over = deliveries > 1 and exceeded(deliveries - excused.get(entry_id, 0))",
        "over = deliveries > 1 and exceeded(deliveries)",
        UNIT,
    ),
    Mutant(
        "run retries a wrong password forever",
        "_runloop.py",
        "                if needs_a_human(exc):\n                    raise",
        "                if False:\n                    raise",
        ("tests/_async/test_vanished.py::test_run_raises_a_wrong_password_at_once",),
    ),
]


def run(mutant: Mutant) -> bool:
    """Whether the mutant was killed (its tests failed)."""
    path = SRC / mutant.path
    text = path.read_text()
    if text.count(mutant.original) != 1:
        raise SystemExit(f"{mutant.name}: the original text is not found exactly once")
    regenerate = mutant.path.startswith("_async/")
    try:
        path.write_text(text.replace(mutant.original, mutant.mutated))
        if regenerate:
            subprocess.run([sys.executable, "scripts/unasync.py"], cwd=ROOT, check=True)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        return done.returncode != 0
    finally:
        path.write_text(text)
        if regenerate:
            subprocess.run([sys.executable, "scripts/unasync.py"], cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    survivors = []
    for mutant in chosen:
        killed = run(mutant)
        print(f"{'killed  ' if killed else 'SURVIVED'}  {mutant.name}", flush=True)
        if not killed:
            survivors.append(mutant.name)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
