"""The dashboard's IO shell: a lazily opened engine, the sampler, and the actions.

Every rule comes from the library: statistics (``streams_statistics``, one round trip per
pool), pending entries, claims, acks (the stream's ack mode, :class:`Retainer`), dead
letters (:func:`dead_letter_fields`, XADD confirmed before the ack), replays, trims and
their refusal, pruning. This module only sends what those say and reports counts and IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._async.broker import AsyncEventBroker
from .._async.client import AsyncCommands
from .._async.consumer import AsyncDriver
from .._async.dead_letters import replay_dead_letters
from .._async.engine import AsyncEngine
from .._backends import AsyncBackend
from .._inspection import PendingEntry, claim_command, parse_pending_entries
from .._keys import dead_letter_key
from .._policy import dead_letter_fields
from .._protocol import Arg, parse_entries, xadd_command
from .._retention import Retainer, id_key, plan_trim, safe_minid
from .._stats import StreamStatistics
from .._trim import find_cut
from .._uris import mask
from ..config import Config
from ..errors import NoGroupError, RedisReplyError
from ._history import History

logger = logging.getLogger("fluxabee.dashboard")

#: Most IDs one action takes.
MAX_IDS = 1000
#: Entries counted at most by a trim preview.
PREVIEW_LIMIT = 100_000
#: The error recorded in a dead letter moved by hand.
MOVED_BY_HAND = "moved to the dead letters from the dashboard"


@dataclass(frozen=True)
class Done:
    """What an action did: a sentence for the page and the log, and the IDs touched."""

    message: str
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrimPreview:
    """What a trim would do."""

    #: Entries that would go (at most :data:`PREVIEW_LIMIT` counted).
    count: int
    #: Whether ``trim`` would refuse it (it would cut what a group still needs).
    refused: bool
    #: A sentence for the page.
    message: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Service:
    """One dashboard's connections, snapshot cache and sampler (opened on first use)."""

    def __init__(self, config: Config, *, every: float) -> None:
        #: The configuration shown.
        self.config = config
        #: Seconds between samples (and page refreshes).
        self.every = every
        #: The rates and lag trends sampled so far.
        self.history = History()
        #: When the dashboard started (wall clock, for the page).
        self.started = time.strftime("%H:%M:%S UTC", time.gmtime())
        self._engine: AsyncEngine | None = None
        self._broker: AsyncEventBroker | None = None
        self._lock: asyncio.Lock | None = None
        self._latest: tuple[float, list[StreamStatistics]] | None = None
        self._sampler: asyncio.Task[None] | None = None

    # -- connections and the snapshot ------------------------------------------------

    def engine(self) -> AsyncEngine:
        """The engine, created on first use (it connects lazily, on its first command)."""
        if self._engine is None:
            self._engine = AsyncEngine(self.config)
        return self._engine

    def broker(self) -> AsyncEventBroker:
        """The engine's event broker (for its inspection and admin methods)."""
        if self._broker is None or self._engine is None:
            self._broker = self.engine().new_context().event_broker()
        return self._broker

    def client(self, stream: str) -> AsyncCommands:
        """The connection pool (or Cluster node) of ``stream``."""
        return self.broker()._clients.for_stream(stream)

    async def snapshot(self, max_age: float) -> tuple[float, list[StreamStatistics]]:
        """Statistics of every stream, at most ``max_age`` seconds old; concurrent callers
        share one fetch (one round trip per pool), which is also recorded as a sample."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._start_sampler()
        async with self._lock:
            now = time.monotonic()
            if self._latest is not None and now - self._latest[0] <= max_age:
                return self._latest
            stats = await self.broker().streams_statistics()
            now = time.monotonic()
            self.history.record(stats, now)
            self._latest = (now, stats)
            return self._latest

    def invalidate(self) -> None:
        """Forget the cached snapshot (after an action)."""
        self._latest = None

    def _start_sampler(self) -> None:
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.snapshot(self.every / 2)
            except Exception as exc:  # a Redis outage: the pages say it; keep sampling
                if not failing:  # once per outage, not once per sample
                    logger.warning("fluxabee dashboard: sampling failed: %s", mask(str(exc)))
                failing = True
            else:
                if failing:
                    logger.warning("fluxabee dashboard: sampling works again")
                failing = False

    async def aclose(self) -> None:
        """Stop the sampler and close the connections (they reopen on the next request)."""
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        engine, self._engine, self._broker = self._engine, None, None
        if engine is not None:
            await engine.aclose()
        self._latest = None

    # -- reading ---------------------------------------------------------------------

    async def pending_page(
        self,
        stream: str,
        group: str,
        *,
        count: int,
        min_idle_ms: int,
        consumer: str | None,
        after: str | None,
    ) -> list[PendingEntry]:
        """A page of a group's pending entries (XPENDING's extended form), after ``after``."""
        command: list[Arg] = [b"XPENDING", stream, group]
        if min_idle_ms > 0:
            command += [b"IDLE", min_idle_ms]
        command += [b"-" if after is None else "(" + after, b"+", count]
        if consumer:
            command.append(consumer)
        try:
            raw = await self.client(stream).call(command, retry_safe=True)
        except NoGroupError:
            return []
        return parse_pending_entries(raw)

    async def server_ms(self, stream: str) -> float:
        """The server's clock, in milliseconds (ages are measured against it)."""
        seconds, micros = await self.client(stream).call([b"TIME"], retry_safe=True)
        return int(seconds) * 1000 + int(micros) / 1000

    # -- actions on pending entries --------------------------------------------------

    async def claim(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> Done:
        """XCLAIM ``ids`` to ``consumer`` (JUSTID: delivery counts unchanged)."""
        command = claim_command(stream, group, consumer, 0, list(ids))
        raw = await self.client(stream).call(command)
        moved = tuple(_text(i) for i in raw or ())
        return Done(f"claimed {len(moved)} of {len(ids)} entries to {consumer}", moved)

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle: float) -> Done:
        """Claim every entry of ``group`` idle at least ``min_idle`` to ``consumer``."""
        moved: list[str] = []
        while len(moved) < MAX_IDS * 100:
            page = await self.broker().claim_pending(
                stream, consumer=consumer, min_idle=min_idle, count=MAX_IDS, group=group
            )
            moved += [e.id for e in page]
            if len(page) < MAX_IDS:
                break
        return Done(f"claimed {len(moved)} idle entries to {consumer}", tuple(moved))

    async def _ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        retainer = Retainer(self.config.stream(stream))
        driver = AsyncDriver(self.client(stream), AsyncBackend.new_flag())
        await driver.drive(retainer.ack(group, list(ids)))

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> Done:
        """Ack ``ids`` in ``group`` as a consumer would (the stream's ack mode)."""
        await self._ack(stream, group, ids)
        return Done(f"acked {len(ids)} entries in {group}", tuple(ids))

    async def dead_letter(self, stream: str, group: str, ids: Sequence[str]) -> Done:
        """Move pending ``ids`` to the dead letters: XADD each letter, then ack the ones
        Redis confirmed (never resent: a resend could write a letter twice)."""
        client = self.client(stream)
        reads: list[list[Arg]] = []
        for entry_id in ids:
            reads += [[b"XRANGE", stream, entry_id, entry_id], [b"XPENDING", stream, group,
                      entry_id, entry_id, 1]]  # fmt: skip
        replies = await client.execute(reads, retry_safe=True)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        now_ms = int(time.time() * 1000)
        found: list[str] = []
        commands: list[list[Arg]] = []
        for index, entry_id in enumerate(ids):
            entries = parse_entries(replies[2 * index])
            pending = parse_pending_entries(replies[2 * index + 1])
            if not entries or entries[0].fields is None:
                continue
            fields = dead_letter_fields(
                entries[0].fields,
                error=MOVED_BY_HAND,
                deliveries=pending[0].deliveries if pending else 0,
                source_id=entry_id,
                now_ms=now_ms,
                group=group,
            )
            found.append(entry_id)
            commands.append(xadd_command(dead_letter_key(stream), fields))
        moved: list[str] = []
        if commands:
            written = await client.execute(commands)
            moved = [i for i, r in zip(found, written, strict=True) if isinstance(r, bytes)]
        if moved:
            await self._ack(stream, group, moved)
        missing = len(ids) - len(found)
        note = f" ({missing} no longer in the stream)" if missing else ""
        return Done(f"moved {len(moved)} entries to the dead letters{note}", tuple(moved))

    async def delete(self, stream: str, group: str, ids: Sequence[str]) -> Done:
        """Delete ``ids`` from the stream (acked first in every declared group)."""
        client = self.client(stream)
        commands: list[list[Arg]] = [
            [b"XACK", stream, name, *ids] for name in self.config.stream(stream).groups
        ]
        commands.append([b"XDEL", stream, *ids])
        replies = await client.execute(commands, retry_safe=True)
        for reply in replies:
            if isinstance(reply, RedisReplyError) and not isinstance(reply, NoGroupError):
                raise reply
        removed = int(replies[-1])
        return Done(f"deleted {removed} of {len(ids)} entries", tuple(ids))

    # -- dead letters, trims, consumers -----------------------------------------------

    async def replay(self, stream: str, ids: Sequence[str] | None) -> Done:
        """Replay the dead letters ``ids`` (all when ``None``) to their groups."""
        chosen = None if ids is None else set(ids)
        moved = await replay_dead_letters(
            self.client(stream), self.config.stream(stream), None, chosen
        )
        what = "all dead letters" if ids is None else f"{len(ids)} selected dead letters"
        return Done(f"replayed {moved} of {what} of {stream}", tuple(ids or ()))

    async def delete_letters(self, stream: str, ids: Sequence[str]) -> Done:
        """Delete dead letters for good."""
        removed = await self.client(stream).call(
            [b"XDEL", dead_letter_key(stream), *ids], retry_safe=True
        )
        return Done(f"deleted {int(removed)} dead letters of {stream}", tuple(ids))

    async def trim_preview(
        self, stream: str, *, min_id: str | None, max_len: int | None
    ) -> TrimPreview:
        """How many entries a trim would remove, and whether it would be refused (the
        rule of ``trim``: not past the oldest entry some group still needs)."""
        settings = self.config.stream(stream)
        client = self.client(stream)
        driver = AsyncDriver(client, AsyncBackend.new_flag())
        state, target = await driver.drive(find_cut(stream, min_id=min_id, max_len=max_len))
        if state is None:
            return TrimPreview(0, False, "the stream does not exist: nothing to trim")
        if target is None:
            return TrimPreview(0, False, "nothing would be removed")
        if max_len is not None:
            count = max(0, state.length - max_len)
        else:
            raw = await client.call(
                [b"XRANGE", stream, b"-", "(" + target, b"COUNT", PREVIEW_LIMIT], retry_safe=True
            )
            count = len(raw or ())
        safe = safe_minid(state, settings.groups)
        refused = safe is None or id_key(target) > id_key(safe)
        if refused:
            holders = ", ".join(plan_trim(state, settings.groups).holders) or "no group"
            message = (
                f"{count} entries would go, but the trim would be refused: {holders} still "
                f"need entries from {safe or 'the start'}"
            )
        else:
            message = f"{count} entries would be removed (below {target})"
        return TrimPreview(count, refused, message)

    async def trim(self, stream: str, *, min_id: str | None, max_len: int | None) -> Done:
        """``broker.trim`` (never forced: a cut of unread entries raises TrimRefusedError)."""
        removed = await self.broker().trim(stream, min_id=min_id, max_len=max_len)
        return Done(f"trimmed {removed} entries from {stream}")

    async def prune(self, idle: float) -> Done:
        """``prune_consumers`` on every group of every stream."""
        names: list[str] = []
        broker = self.broker()
        for stream in self.config.streams:
            for group in self.config.stream(stream).groups:
                pruned = await broker.prune_consumers(stream, idle=idle, group=group)
                names += [f"{stream}/{group}/{n}" for n in pruned]
        return Done(f"pruned {len(names)} consumers", tuple(names))
