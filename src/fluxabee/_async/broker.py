"""The event broker: publish / flush, consumers, dead letters, statistics (the IO shell).

``publish`` buffers an event in this broker (one per context); ``flush`` sends the whole
buffer in one pipelined round trip per Redis pool. The rules of what stays buffered live
in :mod:`fluxabee._outbox`: none is lost, none is resent by the library itself.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any

from .. import _validate as validate
from .._actions import Lease
from .._backends import AsyncBackend
from .._constants import (
    DEFAULT_LOCK_TTL,
    DEFAULT_MIN_IDLE,
    GROUP_NAME,
    MANY_CONSUMER_PREFIX,
    SINGLE_CONSUMER_NAME,
)
from .._keys import lock_key
from .._observe import Observers
from .._outbox import MIN_BULK_LIMIT, Flush, Outbox, Pending, is_bulk_length_error, too_large
from .._policy import RetryPolicy
from .._protocol import many_consumer_name, pack_xadd, xadd_header
from .._scripts import prune_consumers
from .._stats import StreamStatistics, parse_statistics, statistics_commands
from ..codec import entry_fields
from ..errors import BrokerConnectionError, EventTooLargeError, InvalidArgumentError
from ..event import AsyncDeadLetter
from .client import AsyncClients, AsyncPoolClient
from .consumer import AsyncConsumer
from .dead_letters import read_dead_letters, replay_dead_letters
from .inspection import AsyncInspection


def _merge_meta(meta: Mapping[str, str] | None, meta_kw: dict[str, str]) -> Mapping[str, Any]:
    if meta is None:
        return meta_kw
    if not isinstance(meta, Mapping):
        raise InvalidArgumentError(f"meta must be a mapping of str to str, got {type(meta)}")
    if not meta_kw:
        return meta
    both = set(meta).intersection(meta_kw)
    if both:
        raise InvalidArgumentError(f"meta key {sorted(both)[0]!r} given twice")
    return {**meta, **meta_kw}


class AsyncEventBroker(AsyncInspection):
    """Publishes to and reads from the streams of a config. Get it from a context.

    Looking without consuming (``peek``, ``peek_after``, ``pending_entries``,
    ``claim_pending``) comes from :class:`~fluxabee._async.inspection.AsyncInspection`.
    """

    def __init__(self, clients: AsyncClients, observers: Observers | None = None) -> None:
        self._clients = clients
        self._observers = observers
        self._config = clients.config
        self._outbox = Outbox()
        self._flushing = AsyncBackend.new_lock()
        #: stream -> (pool code, packed ``XADD <stream> *`` header).
        self._targets: dict[str, tuple[str, bytes]] = {}
        clients.brokers.add(self)

    # -- publishing ------------------------------------------------------------------

    def _pack(self, stream: str, body: Any, meta: Mapping[str, Any]) -> Pending:
        self._clients.check_open()
        target = self._targets.get(stream)
        if target is None:
            pool = self._config.pool_for_stream(stream)
            target = self._targets[stream] = (pool.code, xadd_header(stream))
        observers = self._observers
        observed = None if observers is None else observers.publishing(stream, meta)
        fields = entry_fields(body, meta if observed is None else observed)
        size = len(fields[1]) if len(fields) == 2 else max(map(len, fields))
        return Pending(target[0], stream, pack_xadd(target[1], fields), size, observed)

    def publish(
        self,
        stream: str,
        body: Any = None,
        *,
        meta: Mapping[str, str] | None = None,
        **meta_kw: str,
    ) -> None:
        """Buffer one event (no IO). Meta is ``meta`` (any keys, such as ``stream``, ``body``
        or ``content-type``) and/or keyword arguments; values must be ``str``.

        Raises :class:`UnknownStreamError` for an undeclared stream and
        :class:`SerializationError` for a body that cannot be encoded; then nothing is
        buffered. The event is serialized here, so later changes to ``body`` do not leak in.
        """
        self._outbox.add(self._pack(stream, body, _merge_meta(meta, meta_kw)))

    @property
    def buffered(self) -> int:
        """How many events wait for :meth:`flush`."""
        return len(self._outbox)

    def discard(self) -> int:
        """Drop every buffered event without sending it; returns how many were dropped."""
        return self._outbox.discard()

    async def flush(self) -> list[str]:
        """Send every buffered event; return the new entry IDs in publish order.

        One pipelined round trip per Redis pool; order within a stream is kept. Whatever
        goes wrong (a dropped connection, an error reply, a cancellation, a
        KeyboardInterrupt), every event Redis did not confirm stays buffered, in order, for
        the next ``flush``; nothing is ever resent automatically.

        - A connection failure part-way raises :class:`PartialFlushError` (a
          :class:`BrokerConnectionError`) whose ``ids`` say which events landed.
        - An error reply (say WRONGTYPE) raises that error; the refused events stay buffered.
        - An event with a field longer than the server's ``proto-max-bulk-len`` is never
          sent (Redis would drop the connection and every event behind it): it leaves the
          buffer and :class:`EventTooLargeError` names its stream, size and the limit,
          after the other events were sent.
        """
        async with self._flushing:
            flush = self._outbox.begin()
            if not flush.items:
                return []
            started = time.perf_counter()
            try:
                for code, indexes in flush.groups.items():
                    await self._flush_pool(flush, self._clients.client(code), indexes)
            finally:
                self._outbox.settle(flush)
                if self._observers is not None:
                    self._observers.flushed(flush, time.perf_counter() - started)
            return flush.outcome()

    async def _flush_pool(self, flush: Flush, client: AsyncPoolClient, indexes: list[int]) -> None:
        replies: list[Any] = []
        try:
            if flush.needs_limit(indexes):
                indexes = flush.within_limit(indexes, await client.bulk_limit())
            if indexes:
                payload = [flush.items[i].packed for i in indexes]
                await client.execute_packed(payload, len(indexes), out=replies)
        except BrokerConnectionError as exc:
            flush.record(indexes, replies, exc)
        except BaseException:  # cancelled, interrupted, closed: settle what landed, go on up
            flush.record(indexes, replies)
            raise
        else:
            flush.record(indexes, replies)
        if any(is_bulk_length_error(r) for r in replies):
            client.forget_bulk_limit()

    async def publish_now(
        self,
        stream: str,
        body: Any = None,
        *,
        meta: Mapping[str, str] | None = None,
        **meta_kw: str,
    ) -> str:
        """Send one event at once (bypassing the buffer) and return its entry ID.

        Never resent: a failure raises (:class:`BrokerConnectionError` when the reply was
        lost: the event may have landed). An event over the server's bulk limit raises
        :class:`EventTooLargeError` without being sent.
        """
        item = self._pack(stream, body, _merge_meta(meta, meta_kw))
        observers = self._observers
        if observers is None:
            return await self._send_now(item)
        started = time.perf_counter()
        try:
            entry_id = await self._send_now(item)
        except BaseException as exc:
            observers.sent_now(item, None, started, exc)
            raise
        observers.sent_now(item, entry_id, started, None)
        return entry_id

    async def _send_now(self, item: Pending) -> str:
        stream, client = item.stream, self._clients.client(item.pool)
        if item.size > MIN_BULK_LIMIT:
            limit = await client.bulk_limit()
            if item.size > limit:
                raise EventTooLargeError(
                    too_large(stream, item.size, limit), stream=stream, size=item.size, limit=limit
                )
        reply = (await client.execute_packed(item.packed, 1))[0]
        if is_bulk_length_error(reply):
            client.forget_bulk_limit()
        if not isinstance(reply, bytes):
            raise reply
        return reply.decode()

    # -- consumers -------------------------------------------------------------------

    def consumer_single(
        self,
        stream: str,
        *,
        retry_policy: RetryPolicy | None = None,
        lock_ttl: float | _dt.timedelta = DEFAULT_LOCK_TTL,
    ) -> AsyncConsumer:
        """The one consumer of ``stream``, named ``consumer-single``, reading in ID order.

        It holds a lock in Redis (``{stream}:lock``, TTL ``lock_ttl`` > 0, refreshed in the
        background) while it lives: while another live ``consumer_single`` holds the stream,
        ``consume`` raises :class:`ConsumerLockedError` and ``run`` waits as a hot standby,
        taking over within ``lock_ttl`` after the holder dies. The lock binds fluxabee
        processes only: a Go FluxaORM ``ConsumerSingle`` does not take it.
        """
        ttl = validate.seconds(lock_ttl, "lock_ttl", positive=True)
        client = self._clients.for_stream(stream)
        return AsyncConsumer(
            client=client,
            stream=stream,
            group=GROUP_NAME,
            name=SINGLE_CONSUMER_NAME,
            retry_policy=self._policy(retry_policy),
            min_idle=DEFAULT_MIN_IDLE,
            lease=Lease(lock_key(stream), ttl, clock=time.monotonic),
            locks=self._clients.locks,
            observers=self._observers,
        )

    def consumer_many(
        self,
        stream: str,
        *,
        retry_policy: RetryPolicy | None = None,
        min_idle: float | _dt.timedelta = DEFAULT_MIN_IDLE,
    ) -> AsyncConsumer:
        """A new consumer of ``stream`` with a generated unique name, for parallel workers.

        ``min_idle`` is how long an event may stay pending on another consumer before
        ``run`` claims it (default 60 s): keep it above your slowest handler.
        """
        idle = validate.seconds(min_idle, "min_idle")
        client = self._clients.for_stream(stream)
        return AsyncConsumer(
            client=client,
            stream=stream,
            group=GROUP_NAME,
            name=many_consumer_name(),
            retry_policy=self._policy(retry_policy),
            min_idle=idle,
            lease=None,
            locks=self._clients.locks,
            observers=self._observers,
        )

    @staticmethod
    def _policy(policy: RetryPolicy | None) -> RetryPolicy:
        if policy is None:
            return RetryPolicy()
        if not isinstance(policy, RetryPolicy):
            raise InvalidArgumentError(f"retry_policy must be a RetryPolicy, got {policy!r}")
        return policy

    async def prune_consumers(self, stream: str, *, idle: float | _dt.timedelta) -> list[str]:
        """Remove ``consumer_many`` names idle longer than ``idle`` that hold no pending
        entries (a ``kill -9`` leaves them in the group forever); returns their names.

        Atomic per stream (Lua): a consumer that holds entries, ``consumer-single`` and
        names fluxabee did not generate are never removed.
        """
        idle_ms = validate.ms(idle, "idle")
        client = self._clients.for_stream(stream)
        call = prune_consumers(
            stream, GROUP_NAME, idle_ms, MANY_CONSUMER_PREFIX, SINGLE_CONSUMER_NAME
        )
        names = await client.call(call, retry_safe=True)
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, stream: str, count: int = 100) -> list[AsyncDeadLetter]:
        """The oldest ``count`` dead letters of ``stream`` (``{stream}:dead``), oldest first.

        ``letter.event.ack()`` deletes a dead letter for good.
        """
        count = validate.count(count)
        return await read_dead_letters(self._clients.for_stream(stream), stream, count)

    async def replay_dead_letters(self, stream: str) -> int:
        """Re-publish every dead letter of ``stream`` to ``stream`` and remove it; how many.

        Each is XADDed to the source first and deleted from the dead letters after Redis
        confirmed it, so none is ever in neither place. Delivery counts start again at 1.
        """
        return await replay_dead_letters(self._clients.for_stream(stream), stream)

    # -- statistics ------------------------------------------------------------------

    async def stream_statistics(self, stream: str) -> StreamStatistics:
        """Length, ages, lag, pending, consumers and dead letters of one stream (one round
        trip). Ages are seconds against the server's clock (``TIME``)."""
        return (await self.streams_statistics(stream))[0]

    async def streams_statistics(self, *streams: str) -> list[StreamStatistics]:
        """Statistics of the named streams, or of every configured stream in config order;
        one round trip per pool."""
        names = list(streams or self._config.streams)
        by_pool: dict[str, list[str]] = {}
        for name in names:
            by_pool.setdefault(self._config.pool_for_stream(name).code, []).append(name)
        found: dict[str, StreamStatistics] = {}
        for code, members in by_pool.items():
            commands = statistics_commands(members, GROUP_NAME)
            replies = await self._clients.client(code).execute(commands, retry_safe=True)
            for stats in parse_statistics(members, code, GROUP_NAME, replies):
                found[stats.stream] = stats
        return [found[name] for name in names]
