"""The event broker: publish / flush, consumers, dead letters, statistics (the IO shell).

``publish`` buffers an event in this broker (one per context); ``flush`` sends the whole
buffer in one pipelined round trip per Redis pool. The rules of what stays buffered live
in :mod:`fluxabee._outbox`: none is lost, none is resent by the library itself.
"""

from __future__ import annotations

import datetime as _dt
import functools
import time
from collections.abc import Mapping
from typing import Any

from .. import _validate as validate
from .._actions import Lease
from .._backends import AsyncBackend
from .._cluster import redirect_of
from .._constants import (
    DEFAULT_LOCK_TTL,
    DEFAULT_MIN_IDLE,
    DEFAULT_WAIT_TIMEOUT,
    MANY_CONSUMER_PREFIX,
    SINGLE_CONSUMER_NAME,
)
from .._keys import key_slot, lock_key
from .._observe import Observers
from .._outbox import MIN_BULK_LIMIT, Flush, Outbox, Pending, is_bulk_length_error, too_large
from .._policy import RetryPolicy
from .._protocol import (
    Arg,
    many_consumer_name,
    pack_body_xadd,
    pack_command,
    pack_xadd,
    xadd_header,
)
from .._retention import Retainer
from .._scripts import prune_consumers
from .._stats import StreamStatistics, parse_statistics, statistics_commands
from .._streamconfig import Stream
from .._trim import trim_to
from ..codec import encode_body, entry_fields
from ..errors import (
    BrokerConnectionError,
    EventTooLargeError,
    InvalidArgumentError,
    RedisReplyError,
)
from ..event import AsyncDeadLetter
from .client import AsyncCommands
from .clients import AsyncClients, AsyncTopology
from .consumer import AsyncConsumer, AsyncDriver
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
        #: stream -> (pool code, packed ``XADD <stream> *`` header, Cluster slot).
        self._targets: dict[str, tuple[str, bytes, int]] = {}
        clients.brokers.add(self)

    # -- publishing ------------------------------------------------------------------

    def _pack(self, stream: str, body: Any, meta: Mapping[str, Any]) -> Pending:
        if self._clients.closed:
            self._clients.check_open()
        target = self._targets.get(stream)
        if target is None:
            pool = self._config.pool_for_stream(stream)
            target = (pool.code, xadd_header(stream), key_slot(stream))
            self._targets[stream] = target
        observers = self._observers
        if not meta and observers is None:  # the common case: the body alone
            packed_body = encode_body(body)
            if packed_body is not None:
                packed = pack_body_xadd(target[1], packed_body)
                return Pending(target[0], stream, packed, len(packed_body), target[2])
        observed = None if observers is None else observers.publishing(stream, meta)
        fields = entry_fields(body, meta if observed is None else observed)
        size = len(fields[1]) if len(fields) == 2 else max(map(len, fields))
        packed = pack_xadd(target[1], fields)
        return Pending(target[0], stream, packed, size, target[2], observed)

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
        """How many events wait for :meth:`flush` (not those a flush in progress took)."""
        return len(self._outbox)

    def discard(self) -> int:
        """Drop every buffered event without sending it; returns how many were dropped.

        Events a flush in progress took are not dropped: that flush puts back (in front)
        the ones that did not land."""
        return self._outbox.discard()

    async def flush(
        self,
        *,
        wait_replicas: int | None = None,
        timeout: float | _dt.timedelta = DEFAULT_WAIT_TIMEOUT,
    ) -> list[str]:
        """Send every buffered event; return the new entry IDs in publish order.

        One pipelined round trip per Redis node (one server, the master of a Sentinel
        pool, or each Cluster master holding buffered streams: concurrently under asyncio,
        one node after another in the sync API); order within a stream is kept (unless Redis
        refuses an event with an error reply and accepts a later one of its stream: the
        refused one lands on a later flush, after it). Whatever goes wrong (a dropped
        connection, an error reply, a failover, a cancellation, a KeyboardInterrupt), every
        event Redis did not confirm stays buffered, in order, for the next ``flush``; nothing
        is ever resent automatically (a MOVED or ASK redirect, which means the command did
        not run, is followed).

        - A connection failure part-way raises :class:`PartialFlushError` (a
          :class:`BrokerConnectionError`) whose ``ids`` say which events landed.
        - An error reply (say WRONGTYPE) raises that error; the refused events stay buffered.
        - An event with a field longer than the server's ``proto-max-bulk-len`` is never
          sent (Redis would drop the connection and every event behind it): it leaves the
          buffer and :class:`EventTooLargeError` names its stream, size and the limit,
          after the other events were sent.
        - ``wait_replicas=N``: each node's pipeline ends with ``WAIT N timeout``; when fewer
          replicas confirmed, :class:`ReplicationError` is raised, the landed events' IDs in
          its ``ids`` (they left the buffer: they are on their master).

        A broker shared between tasks or threads runs one flush at a time: a flush takes
        the events buffered when it starts (whoever published them) and returns their IDs;
        one that waited for another returns once that one settled, so when it returns,
        every event published before it was called has landed (or was refused by the
        flush that took it, which raised).
        """
        wait: list[Arg] | None = None
        if wait_replicas is not None:
            replicas = validate.count(wait_replicas, "wait_replicas")
            wait = [b"WAIT", replicas, validate.ms(timeout, "timeout", positive=True)]
        async with self._flushing:
            flush = self._outbox.begin()
            if not flush.items:
                return []
            started = time.perf_counter()
            try:
                for code, indexes in flush.groups.items():
                    await self._flush_pool(flush, self._clients.client(code), indexes, wait)
            finally:
                self._outbox.settle(flush)
                if self._observers is not None:
                    self._observers.flushed(flush, time.perf_counter() - started)
            return flush.outcome()

    async def _flush_pool(
        self, flush: Flush, client: AsyncTopology, indexes: list[int], wait: list[Arg] | None
    ) -> None:
        try:
            groups = await client.route([flush.items[i].slot for i in indexes])
        except BrokerConnectionError as exc:  # no slot map: nothing was sent
            flush.record(indexes, [], exc)
            return
        redirected: list[int] = []
        calls = [
            functools.partial(
                self._flush_node,
                flush,
                client,
                node,
                [indexes[j] for j in part],
                wait=wait,
                redirected=redirected,
            )
            for node, part in groups
        ]
        await AsyncBackend.gather(calls)
        if redirected:  # the slot moved: those XADDs did not run; send them where it went
            by_slot: dict[int, list[int]] = {}
            for index in sorted(redirected):
                by_slot.setdefault(flush.items[index].slot, []).append(index)
            for slot, part in by_slot.items():
                node = client.for_slot(slot)
                await self._flush_node(flush, client, node, part, wait=wait, redirected=None)

    async def _flush_node(
        self,
        flush: Flush,
        client: AsyncTopology,
        node: AsyncCommands,
        indexes: list[int],
        *,
        wait: list[Arg] | None,
        redirected: list[int] | None,
    ) -> None:
        replies: list[Any] = []
        try:
            if flush.needs_limit(indexes):
                indexes = flush.within_limit(indexes, await node.bulk_limit())
            if not indexes:
                return
            payload = [flush.items[i].packed for i in indexes]
            if wait is not None:
                payload.append(pack_command(wait))
            await node.execute_packed(payload, len(payload), out=replies)
        except BrokerConnectionError as exc:
            client.topology_changed()
            flush.record(indexes, replies, exc)
            return
        except BaseException:  # cancelled, interrupted, closed: settle what landed, go on up
            flush.record(indexes, replies)
            raise
        events = replies[: len(indexes)]
        odd = [position for position, reply in enumerate(events) if type(reply) is not bytes]
        for position in odd:  # the rare replies that are no entry ID
            found = redirect_of(events[position])
            if found is not None and redirected is not None:
                redirected.append(indexes[position])
                events[position] = None
                if not found.ask:
                    client.topology_changed()
            elif is_bulk_length_error(events[position]):
                node.forget_bulk_limit()
        flush.record(indexes, events)
        if wait is not None and len(replies) > len(indexes):
            flush.replicas(int(wait[1]), replies[-1], node.where)

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
        stream = item.stream
        client = self._clients.for_stream(stream)
        if item.size > MIN_BULK_LIMIT:
            limit = await client.bulk_limit()
            if item.size > limit:
                raise EventTooLargeError(
                    too_large(stream, item.size, limit), stream=stream, size=item.size, limit=limit
                )
        reply = (await client.execute_packed(item.packed, 1))[0]
        if is_bulk_length_error(reply):
            client.forget_bulk_limit()
        if isinstance(reply, RedisReplyError):
            raise reply.naming("XADD")
        if not isinstance(reply, bytes):
            raise reply
        return reply.decode()

    # -- consumers -------------------------------------------------------------------

    def _group(self, stream: str, group: str | None) -> tuple[Stream, str]:
        """The stream's settings and the group to join: ``group`` when the stream declares
        it (:class:`UnknownGroupError` otherwise), else its first declared group."""
        settings = self._config.stream(stream)
        if group is not None:
            validate.name_text(group, "group")
        return settings, settings.group(group)

    def consumer_single(
        self,
        stream: str,
        *,
        group: str | None = None,
        retry_policy: RetryPolicy | None = None,
        lock_ttl: float | _dt.timedelta = DEFAULT_LOCK_TTL,
    ) -> AsyncConsumer:
        """The one consumer of ``stream`` in ``group`` (default: the stream's first declared
        group), named ``consumer-single``, reading in ID order (publish order, except for an
        event Redis refused mid-``flush`` while accepting a later one of the stream: it lands
        later; see "Delivery guarantees" in the docs' Concepts page).

        It holds a lock in Redis (``{stream}:lock`` for ``consumer_group``, else
        ``{stream}:lock:<group>``: one per stream and group; TTL ``lock_ttl`` > 0, refreshed
        in the background) while it lives: while another live ``consumer_single`` holds the
        stream's group, ``consume`` raises :class:`ConsumerLockedError` and ``run`` waits as
        a hot standby, taking over within ``lock_ttl`` after the holder dies. The lock binds
        fluxabee processes only: a Go FluxaORM ``ConsumerSingle`` does not take it. A group
        the stream does not declare raises :class:`UnknownGroupError`.
        """
        ttl = validate.seconds(lock_ttl, "lock_ttl", positive=True)
        settings, group = self._group(stream, group)
        client = self._clients.for_stream(stream)
        return AsyncConsumer(
            client=client,
            stream=stream,
            group=group,
            name=SINGLE_CONSUMER_NAME,
            retry_policy=self._policy(retry_policy),
            min_idle=DEFAULT_MIN_IDLE,
            lease=Lease(lock_key(stream, group), ttl, clock=time.monotonic),
            locks=self._clients.locks,
            settings=settings,
            observers=self._observers,
        )

    def consumer_many(
        self,
        stream: str,
        *,
        group: str | None = None,
        retry_policy: RetryPolicy | None = None,
        min_idle: float | _dt.timedelta = DEFAULT_MIN_IDLE,
        name: str | None = None,
    ) -> AsyncConsumer:
        """A new consumer of ``stream`` in ``group`` (default: the stream's first declared
        group) for parallel workers, with a generated unique name unless ``name`` is given.

        ``min_idle`` is how long an event may stay pending on another consumer before
        ``run`` claims it (default 60 s): keep it above your slowest handler. A group the
        stream does not declare raises :class:`UnknownGroupError`.

        ``name`` (say the pod or host name) is a stable name: a worker restarted after a
        crash re-reads the pending list it left under that name at once, instead of
        waiting ``min_idle`` for a claim. Give each live worker its own (two live consumers
        with one name share one pending list); no whitespace, and not ``consumer-single``.
        """
        idle = validate.seconds(min_idle, "min_idle")
        consumer = (
            many_consumer_name()
            if name is None
            else validate.consumer_name(name, reserved=SINGLE_CONSUMER_NAME)
        )
        settings, group = self._group(stream, group)
        client = self._clients.for_stream(stream)
        return AsyncConsumer(
            client=client,
            stream=stream,
            group=group,
            name=consumer,
            retry_policy=self._policy(retry_policy),
            min_idle=idle,
            lease=None,
            locks=self._clients.locks,
            settings=settings,
            observers=self._observers,
        )

    @staticmethod
    def _policy(policy: RetryPolicy | None) -> RetryPolicy:
        if policy is None:
            return RetryPolicy()
        if not isinstance(policy, RetryPolicy):
            raise InvalidArgumentError(f"retry_policy must be a RetryPolicy, got {policy!r}")
        return policy

    async def prune_consumers(
        self, stream: str, *, idle: float | _dt.timedelta, group: str | None = None
    ) -> list[str]:
        """Remove ``consumer_many`` names of ``group`` (default: the stream's first declared
        group) idle for at least ``idle`` that hold no pending entries (a ``kill -9`` leaves
        them in the group forever); returns their names.

        Atomic per stream (Lua): a consumer that holds entries, ``consumer-single`` and
        names fluxabee did not generate are never removed.
        """
        idle_ms = validate.ms(idle, "idle")
        _, group = self._group(stream, group)
        client = self._clients.for_stream(stream)
        call = prune_consumers(stream, group, idle_ms, MANY_CONSUMER_PREFIX, SINGLE_CONSUMER_NAME)
        names = await client.call(call, retry_safe=True)
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, stream: str, count: int = 100) -> list[AsyncDeadLetter]:
        """The oldest ``count`` dead letters of ``stream`` (``{stream}:dead``, one for all
        its groups; ``letter.group`` names the group each failed in), oldest first.

        ``letter.event.ack()`` deletes a dead letter for good.
        """
        count = validate.count(count)
        return await read_dead_letters(self._clients.for_stream(stream), stream, count)

    async def replay_dead_letters(self, stream: str, *, group: str | None = None) -> int:
        """Re-publish the dead letters of ``stream`` (those of ``group`` when given, else
        all) to ``stream`` and remove them; how many.

        Each goes back to the group it failed in only: on a stream with several groups the
        replayed entry names it (``fluxabee-group``) and consumers of the other groups ack
        it without handing it over. Each is XADDed to the source first and deleted from the
        dead letters after Redis confirmed it, so none is ever in neither place. Delivery
        counts start again at 1.
        """
        settings = self._config.stream(stream)
        if group is not None:
            settings, group = self._group(stream, group)
        client = self._clients.for_stream(stream)
        return await replay_dead_letters(client, settings, group)

    # -- retention -------------------------------------------------------------------

    async def trim(
        self,
        stream: str,
        *,
        min_id: str | None = None,
        max_len: int | None = None,
        force: bool = False,
    ) -> int:
        """Remove every entry of ``stream`` that all its groups have acked, below the oldest
        one some group still needs (an exact ``XTRIM MINID``); returns how many it removed.

        Every declared group is created first (at ``0``, if missing), so a group nobody
        used yet holds its entries back. Never removes an entry a group has not acked;
        a stream still over its ``max_len`` / ``max_age`` afterwards is logged.

        ``min_id`` (remove the entries below that ID) or ``max_len`` (keep the newest that
        many) cut where you say instead: :class:`TrimRefusedError` (nothing removed) when
        that would remove an entry still pending or not delivered to a group, unless
        ``force=True``.
        """
        settings = self._config.stream(stream)
        retainer = Retainer(settings)
        driver = AsyncDriver(self._clients.for_stream(stream), AsyncBackend.new_flag())
        if min_id is None and max_len is None:
            result = await driver.drive(retainer.trim_now())
            retainer.report(result, time.monotonic())
            return result.removed
        if min_id is not None and max_len is not None:
            raise InvalidArgumentError("trim takes min_id or max_len, not both")
        if min_id is not None:
            validate.stream_id(min_id, "min_id")
        if max_len is not None:
            validate.length(max_len, "max_len")
        await driver.drive(retainer.resolve())
        flow = trim_to(
            settings,
            min_id=min_id,
            max_len=max_len,
            force=bool(force),
            acked_guard=retainer.xackdel,
        )
        return await driver.drive(flow)

    # -- statistics ------------------------------------------------------------------

    async def stream_statistics(self, stream: str) -> StreamStatistics:
        """Length, ages, lag, pending, consumers and dead letters of one stream (one round
        trip). Ages are seconds against the server's clock (``TIME``)."""
        return (await self.streams_statistics(stream))[0]

    async def streams_statistics(self, *streams: str) -> list[StreamStatistics]:
        """Statistics of the named streams, or of every configured stream in config order;
        one round trip per Redis node (per pool, unless it is a Cluster)."""
        names = list(streams or self._config.streams)
        by_pool: dict[str, list[str]] = {}
        for name in names:
            by_pool.setdefault(self._config.pool_for_stream(name).code, []).append(name)
        found: dict[str, StreamStatistics] = {}
        for code, members in by_pool.items():
            client = self._clients.client(code)
            for attempt in (1, 2):
                try:
                    for node, part in await client.route([key_slot(m) for m in members]):
                        chosen = [self._config.stream(members[i]) for i in part]
                        commands = statistics_commands(chosen)
                        replies = await node.execute(commands, retry_safe=True)
                        for stats in parse_statistics(chosen, code, replies):
                            found[stats.stream] = stats
                    break
                except RedisReplyError as exc:  # a slot moved between the map and the read
                    if attempt == 2 or redirect_of(exc) is None:
                        raise
                    client.topology_changed()
        return [found[name] for name in names]
