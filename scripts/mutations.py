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
        "done = [e.id for e, r in zip(entries, replies, strict=True) if isinstance(r, bytes)]",
        "done = [e.id for e in entries]",
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
        """        except BrokerConnectionError:
            self.lost_reply()
            raise
        return parse_xreadgroup(_raise_errors([reply])[0])""",
        """        except BrokerConnectionError:
            raise
        return parse_xreadgroup(_raise_errors([reply])[0])""",
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
        "_machine.py",
        "        if len(events) > 1:\n            isolated, failed = yield from self._isolate(failed)",
        "        if False:\n            isolated, failed = yield from self._isolate(failed)",
        UNIT,
    ),
    Mutant(
        "consumer_single moves past a failed event",
        "_machine.py",
        "                still += failed[index + 1 :]  # consumer_single: the rest waits behind it\n                break",
        "                pass",
        UNIT,
    ),
    Mutant(
        "run does not count events acked inside a failed batch",
        "_machine.py",
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
