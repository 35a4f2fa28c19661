"""The event broker: publish / flush, consumers, statistics.

``publish`` buffers an event in this broker (one per context); ``flush`` sends the whole
buffer in one pipelined round trip per Redis pool and keeps, for a later ``flush``, every
event Redis did not confirm: none is lost, and the library never resends one by itself.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .._constants import DEFAULT_LOCK_TTL, DEFAULT_MIN_IDLE, GROUP_NAME, SINGLE_CONSUMER_NAME
from .._policy import RetryPolicy
from .._protocol import many_consumer_name, pack_xadd, to_seconds, xadd_header
from .._stats import StreamStatistics, build_statistics
from ..codec import entry_fields
from ..errors import (
    BrokerConnectionError,
    FluxabeeError,
    NoGroupError,
    PartialFlushError,
    RedisReplyError,
)
from ..event import AsyncDeadLetter
from .client import AsyncClients
from .consumer import AsyncConsumer
from .dead_letters import read_dead_letters, replay_dead_letters


class AsyncEventBroker:
    """Publishes to and reads from the streams of a config. Get it from a context."""

    def __init__(self, clients: AsyncClients) -> None:
        self._clients = clients
        self._config = clients.config
        #: (pool code, packed XADD) per buffered event, in publish order.
        self._buffer: list[tuple[str, bytes]] = []
        #: stream -> (pool code, packed ``XADD <stream> *`` header).
        self._targets: dict[str, tuple[str, bytes]] = {}

    # -- publishing ------------------------------------------------------------------

    def _pack(self, stream: str, body: Any, meta: dict[str, Any]) -> tuple[str, bytes]:
        target = self._targets.get(stream)
        if target is None:
            pool = self._config.pool_for_stream(stream)
            target = self._targets[stream] = (pool.code, xadd_header(stream))
        return target[0], pack_xadd(target[1], entry_fields(body, meta))

    def publish(self, stream: str, body: Any = None, **meta: str) -> None:
        """Buffer one event (no IO). ``meta`` values must be ``str``.

        Raises :class:`UnknownStreamError` for an undeclared stream and
        :class:`SerializationError` for a body that cannot be encoded; then nothing is
        buffered. The event is serialized here, so later changes to ``body`` do not leak in.
        """
        self._buffer.append(self._pack(stream, body, meta))

    @property
    def buffered(self) -> int:
        """How many events wait for :meth:`flush`."""
        return len(self._buffer)

    def discard(self) -> int:
        """Drop every buffered event without sending it; returns how many were dropped."""
        dropped, self._buffer = len(self._buffer), []
        return dropped

    async def flush(self) -> list[str]:
        """Send every buffered event; return the new entry IDs in publish order.

        One pipelined round trip per Redis pool; order within a stream is kept. If Redis
        fails part-way, :class:`PartialFlushError` (a :class:`BrokerConnectionError`) is
        raised with the IDs that did land, and every event Redis did not confirm stays
        buffered for the next ``flush``. An error reply (say WRONGTYPE) raises that error
        and keeps the refused events buffered too. Nothing is ever resent automatically.
        """
        batch, self._buffer = self._buffer, []
        if not batch:
            return []
        by_pool: dict[str, list[int]] = {}
        for index, item in enumerate(batch):
            by_pool.setdefault(item[0], []).append(index)
        ids: list[str | None] = [None] * len(batch)
        failure: FluxabeeError | None = None
        reply_error: FluxabeeError | None = None
        for code, indexes in by_pool.items():
            replies: list[Any] = []
            if len(by_pool) == 1:
                payload = [item[1] for item in batch]
            else:
                payload = [batch[i][1] for i in indexes]
            try:
                await self._clients.client(code).execute_packed(payload, len(indexes), out=replies)
            except BrokerConnectionError as exc:
                failure = failure or exc
            for index, reply in zip(indexes, replies, strict=False):
                if isinstance(reply, bytes):
                    ids[index] = reply.decode()
                elif isinstance(reply, BrokerConnectionError):  # LOADING, READONLY, ...
                    failure = failure or reply
                else:
                    reply_error = reply_error or reply
        if failure is None and reply_error is None:
            return ids  # type: ignore[return-value] # every slot holds an ID
        unconfirmed = [item for item, new_id in zip(batch, ids, strict=True) if new_id is None]
        self._buffer = unconfirmed + self._buffer
        if failure is not None:
            raise PartialFlushError(
                f"flush failed after {len(batch) - len(unconfirmed)} of {len(batch)} events; "
                f"{len(unconfirmed)} stay buffered: {failure}",
                ids,
            ) from failure
        assert reply_error is not None
        raise reply_error

    async def publish_now(self, stream: str, body: Any = None, **meta: str) -> str:
        """Send one event at once (bypassing the buffer) and return its entry ID."""
        code, packed = self._pack(stream, body, meta)
        reply = (await self._clients.client(code).execute_packed(packed, 1))[0]
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

        It holds a lock in Redis (``{stream}:lock``, TTL ``lock_ttl``, refreshed in the
        background) while it lives: while another live ``consumer_single`` holds the stream,
        ``consume`` raises :class:`ConsumerLockedError` and ``run`` waits as a hot standby,
        taking over within ``lock_ttl`` after the holder dies.
        """
        pool = self._config.pool_for_stream(stream)
        return AsyncConsumer(
            client=self._clients.client(pool.code),
            stream=stream,
            name=SINGLE_CONSUMER_NAME,
            retry_policy=retry_policy or RetryPolicy(),
            min_idle=DEFAULT_MIN_IDLE,
            lock_ttl=to_seconds(lock_ttl, "lock_ttl") or DEFAULT_LOCK_TTL,
            locks=self._clients.locks,
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
        pool = self._config.pool_for_stream(stream)
        return AsyncConsumer(
            client=self._clients.client(pool.code),
            stream=stream,
            name=many_consumer_name(),
            retry_policy=retry_policy or RetryPolicy(),
            min_idle=to_seconds(min_idle, "min_idle"),
            lock_ttl=None,
            locks=self._clients.locks,
        )

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, stream: str, count: int = 100) -> list[AsyncDeadLetter]:
        """The oldest ``count`` dead letters of ``stream`` (``{stream}:dead``), oldest first.

        ``letter.event.ack()`` deletes a dead letter for good.
        """
        pool = self._config.pool_for_stream(stream)
        return await read_dead_letters(self._clients.client(pool.code), stream, count)

    async def replay_dead_letters(self, stream: str) -> int:
        """Re-publish every dead letter of ``stream`` to ``stream`` and remove it; how many.

        Each is XADDed to the source first and deleted from the dead letters after Redis
        confirmed it, so none is ever in neither place. Delivery counts start again at 1.
        """
        pool = self._config.pool_for_stream(stream)
        return await replay_dead_letters(self._clients.client(pool.code), stream)

    # -- statistics ------------------------------------------------------------------

    async def stream_statistics(self, stream: str) -> StreamStatistics:
        """Length, oldest age, lag, pending and consumers of one stream (one round trip)."""
        pool = self._config.pool_for_stream(stream)
        group = GROUP_NAME
        replies = await self._clients.client(pool.code).execute(
            [
                [b"TIME"],
                [b"XINFO", b"STREAM", stream],
                [b"XINFO", b"GROUPS", stream],
                [b"XPENDING", stream, group],
                [b"XINFO", b"CONSUMERS", stream, group],
            ]
        )
        time_reply, info_stream, info_groups, pending, info_consumers = replies
        if isinstance(info_stream, RedisReplyError):
            if "no such key" not in str(info_stream):
                raise info_stream
            info_stream = info_groups = pending = info_consumers = None
        for reply in (info_groups, pending, info_consumers):
            if isinstance(reply, RedisReplyError) and not isinstance(reply, NoGroupError):
                raise reply
        if isinstance(pending, NoGroupError) or isinstance(info_consumers, NoGroupError):
            pending = info_consumers = None
        return build_statistics(
            stream=stream,
            pool=pool.code,
            time_reply=time_reply,
            info_stream=info_stream,
            info_groups=info_groups,
            pending_summary=pending,
            info_consumers=info_consumers,
        )

    async def streams_statistics(self, *streams: str) -> list[StreamStatistics]:
        """Statistics of the named streams, or of every configured stream in config order."""
        names = streams or self._config.streams
        return [await self.stream_statistics(name) for name in names]
