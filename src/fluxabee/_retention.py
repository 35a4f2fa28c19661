"""Pure: what acking does on a stream, where a trim may cut, and which group an entry is for.

An entry may only disappear once every group of its stream has acked it. The rules, each in
one place:

- **Ack mode** (:func:`ack_mode`). One group: XACK + XDEL (FluxaORM's; the stream's length
  is its backlog). Several groups: ``XACKDEL ... ACKED`` where the server has it (Redis
  8.2+, detected by a :class:`~fluxabee._actions.Probe`, never from a version), which
  deletes an entry only once every group acked it; elsewhere XACK only, and a trim.
  ``retention: trim``: XACK only, whatever the groups.
- **Groups nobody declared** (:func:`watches_groups`). A newer deploy or a Go service may
  add a group to a stream this config declares with one: its XDELs would remove what that
  group has not read. So a consumer of a one-group stream looks (``XINFO GROUPS``) at its
  first ack and then every :data:`GROUP_CHECK_INTERVAL`; while it finds others, it acks
  as for several groups (XACKDEL, or XACK and trims), and says so once, naming them.
- **The safe MINID** (:func:`safe_minid`): the oldest entry some group still needs, from
  ``XINFO STREAM ... FULL COUNT 1`` (per group its lowest pending ID, else the ID after its
  last-delivered one). Every group that exists counts, declared or not (as XACKDEL ACKED
  counts them); a declared group that does not exist yet means no trim at all, and a trim
  first creates every declared group at ``0``, so a group not yet used holds entries back.
  Trims are exact ``XTRIM MINID`` (never ``~``: with ACKED it removed nothing on Redis
  8.2.3), with ``ACKED`` as a second guard where the server has it.
- **Caps** (``max_len``, ``max_age``) never cut an entry a group still needs: a stream over
  a cap is reported (:func:`over_cap`), not trimmed past the safe MINID.
- **When to trim** (:class:`Retainer`): a consumer whose acks leave entries behind (XACK
  only) trims once it acked :data:`TRIM_AFTER_ACKS` entries, or after
  :data:`TRIM_INTERVAL` once it acked any; with caps it also checks them every
  :data:`CAP_CHECK_INTERVAL`. Warnings (over a cap, a failed trim) are rate-bounded.
- **Replay to one group** (:func:`handled_here`, :func:`replay_fields`): an entry replayed
  from the dead letters of a stream with several groups carries the group it died in
  (``fluxabee-group``); consumers of the other declared groups ack it without handing it
  over. A group that is no longer declared gets it everywhere (a duplicate beats a loss).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._actions import Flow, Probe, Send
from ._constants import (
    CAP_CHECK_INTERVAL,
    GROUP_CHECK_INTERVAL,
    GROUP_FIELD,
    RETENTION_WARNING_INTERVAL,
    TRIM_AFTER_ACKS,
    TRIM_INTERVAL,
)
from ._protocol import (
    Arg,
    group_create_command,
    id_ms,
    pack_ack,
    pack_xack,
    pack_xackdel,
    stream_full_command,
    xtrim_minid_command,
)
from ._replies import no_such_key
from ._replies import text as _text
from ._streamconfig import Stream
from .errors import BrokerConnectionError, RedisReplyError

logger = logging.getLogger("fluxabee")

#: The largest sequence number of a stream ID (an unsigned 64-bit integer).
_MAX_SEQ = 2**64 - 1
#: The command that tells whether a server can delete an entry once every group acked it.
XACKDEL = "XACKDEL"


class AckMode(enum.Enum):
    """What acking sends."""

    #: XACK + XDEL: one group; the entry is deleted at once.
    XDEL = "XACK + XDEL"
    #: ``XACKDEL ... ACKED``: deleted once every group acked it (Redis 8.2+).
    XACKDEL = "XACKDEL ACKED"
    #: XACK only: acked entries wait for a trim to the safe MINID.
    XACK = "XACK, then XTRIM MINID"


def ack_mode(stream: Stream, has_xackdel: bool, others: Sequence[str] = ()) -> AckMode:
    """The ack mode of ``stream`` on a server that has XACKDEL or not, ``others`` being the
    groups found on the stream in Redis that its config does not declare."""
    if stream.retention == "trim":
        return AckMode.XACK
    if len(stream.groups) == 1 and not others:
        return AckMode.XDEL
    return AckMode.XACKDEL if has_xackdel else AckMode.XACK


def probes(stream: Stream, others: Sequence[str] = ()) -> bool:
    """Whether the stream's rules depend on the server having XACKDEL (several groups,
    declared or found: the ack mode, or the ``ACKED`` guard of a trim)."""
    return len(stream.groups) + len(others) > 1


def watches_groups(stream: Stream) -> bool:
    """Whether a consumer must look for groups its config does not declare: one declared
    group, acked with XACK + XDEL, which would delete entries a group added since (by a
    newer deploy, or a Go service) still needs."""
    return stream.retention != "trim" and len(stream.groups) == 1


def groups_command(stream: str) -> list[Arg]:
    """``XINFO GROUPS <stream>``: the groups that exist on the stream."""
    return [b"XINFO", b"GROUPS", stream]


def undeclared_groups(reply: Any, declared: Sequence[str]) -> tuple[str, ...]:
    """The groups of an ``XINFO GROUPS`` reply (RESP2) that ``declared`` lacks, in order."""
    names = (_text(_pairs(group).get("name", b"")) for group in reply or ())
    return tuple(name for name in names if name and name not in declared)


def pack_acks(mode: AckMode, stream: str, group: str, ids: list[str]) -> tuple[bytes, int]:
    """The packed ack of ``ids`` in ``mode``, and how many commands it holds."""
    if mode is AckMode.XDEL:
        return pack_ack(stream, group, ids), 2
    if mode is AckMode.XACKDEL:
        return pack_xackdel(stream, group, ids), 1
    return pack_xack(stream, group, ids), 1


def unknown_command(reply: Any) -> bool:
    """Whether an error reply says the server does not know the command (a server that
    lost XACKDEL, say after a downgrade or a failover to an older replica)."""
    return isinstance(reply, RedisReplyError) and "unknown command" in str(reply).lower()


# -- IDs and the safe MINID ----------------------------------------------------------------


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream ID as ``(ms, seq)``, for comparing."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest ID after ``entry_id`` (``5-2`` -> ``5-3``; the last seq rolls over)."""
    ms, seq = id_key(entry_id)
    return f"{ms}-{seq + 1}" if seq < _MAX_SEQ else f"{ms + 1}-0"


class GroupPosition(NamedTuple):
    """One group of a stream, as a trim sees it."""

    name: str
    #: The last entry delivered to the group (``0-0`` before any).
    last_delivered: str
    #: The group's lowest pending (delivered, not acked) ID, or ``None``.
    lowest_pending: str | None

    @property
    def needs_from(self) -> str:
        """The oldest entry the group still needs: its lowest pending one, else the first
        after its last delivered one."""
        return self.lowest_pending or next_id(self.last_delivered)


class StreamState(NamedTuple):
    """``XINFO STREAM ... FULL COUNT 1``, as a trim needs it."""

    length: int
    #: The first entry's ID (``None``: the stream is empty).
    first_id: str | None
    groups: tuple[GroupPosition, ...]


def _pairs(flat: Any) -> dict[str, Any]:
    it = iter(flat or ())
    return {_text(k): v for k, v in zip(it, it, strict=False)}


def parse_stream_full(raw: Any) -> StreamState:
    """``XINFO STREAM <key> FULL COUNT 1`` (RESP2, Redis 6.2+ and Valkey) -> the state."""
    info = _pairs(raw)
    entries = info.get("entries") or []
    groups = []
    for raw_group in info.get("groups") or ():
        group = _pairs(raw_group)
        pending = group.get("pending") or []
        groups.append(
            GroupPosition(
                _text(group["name"]),
                _text(group.get("last-delivered-id", b"0-0")),
                _text(pending[0][0]) if pending else None,
            )
        )
    first = _text(entries[0][0]) if entries else None
    return StreamState(int(info.get("length", 0)), first, tuple(groups))


def safe_minid(state: StreamState, declared: Sequence[str]) -> str | None:
    """The oldest entry some group still needs, or ``None`` when no trim is safe (no group
    at all, or a declared group missing: it would miss what a trim removes)."""
    names = {g.name for g in state.groups}
    if not state.groups or any(group not in names for group in declared):
        return None
    return min((g.needs_from for g in state.groups), key=id_key)


class TrimPlan(NamedTuple):
    """Where a trim cuts, and who holds the stream back."""

    #: ``XTRIM MINID`` this ID, or ``None``: nothing may (or need) be removed.
    minid: str | None
    #: The groups that need the oldest needed entry (the ones holding retention back).
    holders: tuple[str, ...]


def plan_trim(state: StreamState, declared: Sequence[str]) -> TrimPlan:
    """Trim below the safe MINID, when there is something below it."""
    safe = safe_minid(state, declared)
    if safe is None:
        return TrimPlan(None, ())
    holders = tuple(g.name for g in state.groups if id_key(g.needs_from) == id_key(safe))
    if state.first_id is None or id_key(state.first_id) >= id_key(safe):
        return TrimPlan(None, holders)
    return TrimPlan(safe, holders)


def over_cap(stream: Stream, length: int, first_id: str | None, now_ms: float) -> str | None:
    """Why the stream is over a cap (``None`` when it is not, or has none)."""
    if stream.max_len is not None and length > stream.max_len:
        return f"length {length} > max_len {stream.max_len}"
    limit = stream.max_age_seconds
    if limit is not None and first_id is not None:
        age = (now_ms - id_ms(first_id)) / 1000
        if age > limit:
            return f"oldest entry {age:.0f} s old > max_age {limit:.0f} s"
    return None


# -- the trim flow -------------------------------------------------------------------------


class TrimResult(NamedTuple):
    """What a trim did."""

    #: Entries removed.
    removed: int
    #: The stream's length afterwards.
    length: int
    #: The MINID it trimmed to (``None``: it removed nothing).
    minid: str | None
    #: Groups holding the oldest needed entry.
    holders: tuple[str, ...]
    #: Why the stream is over a cap after the trim, or ``None``.
    over_cap: str | None


def trim(stream: Stream, *, acked_guard: bool) -> Flow[TrimResult]:
    """Create every declared group (no MKSTREAM), read the stream's state, and trim it
    exactly to the safe MINID (``ACKED`` too when ``acked_guard``: the server has it)."""
    name = stream.name
    creates = [group_create_command(name, group, mkstream=False) for group in stream.groups]
    read: list[list[Arg]] = [[b"TIME"], stream_full_command(name)]
    replies = yield Send([*creates, *read], retry_safe=True)
    time_reply, info = replies[-2], replies[-1]
    if isinstance(time_reply, RedisReplyError):
        raise time_reply
    if no_such_key(info):  # no stream: nothing to trim (and nothing was created)
        return TrimResult(0, 0, None, (), None)
    for reply in (*replies[: len(creates)], info):
        if isinstance(reply, RedisReplyError) and reply.prefix != "BUSYGROUP":
            raise reply
    state = parse_stream_full(info)
    plan = plan_trim(state, stream.groups)
    length, first = state.length, state.first_id
    removed = 0
    if plan.minid is not None:
        caps = stream.max_len is not None or stream.max_age is not None
        commands: list[list[Arg]] = [xtrim_minid_command(name, plan.minid, acked=acked_guard)]
        if caps:
            commands += [[b"XLEN", name], [b"XRANGE", name, b"-", b"+", b"COUNT", 1]]
        after = yield Send(commands, retry_safe=True)  # an exact MINID trim is idempotent
        for reply in after:
            if isinstance(reply, RedisReplyError):
                raise reply
        removed = int(after[0])
        length = int(after[1]) if caps else max(0, length - removed)
        if caps:
            first = _text(after[2][0][0]) if after[2] else None
    now_ms = int(time_reply[0]) * 1000 + int(time_reply[1]) / 1000
    return TrimResult(
        removed, length, plan.minid, plan.holders, over_cap(stream, length, first, now_ms)
    )


# -- one consumer's retention --------------------------------------------------------------


class Retainer:
    """One consumer's retention of its stream: the ack mode (resolved at the first ack from
    the server's features), when to trim next, and rate-bounded warnings."""

    def __init__(self, stream: Stream, *, clock: Callable[[], float] | None = None) -> None:
        #: The stream's settings.
        self.stream = stream
        #: The ack mode, once resolved (``None`` before the first ack).
        self.mode: AckMode | None = None
        #: Whether the server has XACKDEL (so a trim may add ``ACKED``).
        self.xackdel = False
        #: Groups found on the stream in Redis that its config does not declare.
        self.others: tuple[str, ...] = ()
        #: The clock of the group checks (``None``: check at every ack).
        self._clock = clock
        self._groups_due = -math.inf
        self._probed = False
        #: Entries acked since the last trim.
        self.acked = 0
        self._last_trim = -math.inf
        self._last_check = -math.inf
        self._warned = -math.inf
        self._caps = stream.max_len is not None or stream.max_age is not None

    def resolve(self) -> Flow[AckMode]:
        """The ack mode, asking the server about XACKDEL once when it matters."""
        if self.mode is None:
            yield from self._set_mode()
        assert self.mode is not None
        return self.mode

    def _set_mode(self) -> Flow[AckMode]:
        if not self._probed and probes(self.stream, self.others):
            self.xackdel = bool((yield Probe(XACKDEL)))
            self._probed = True
        self.mode = ack_mode(self.stream, self.xackdel, self.others)
        return self.mode

    def check_groups(self) -> Flow[AckMode]:
        """Look for groups the config does not declare (``XINFO GROUPS``) and set the ack
        mode by what was found: found ones hold entries back (XACK, then trims) until they
        are gone. A change is logged, naming the groups."""
        now = self._clock() if self._clock is not None else 0.0
        reply = (yield Send([groups_command(self.stream.name)], retry_safe=True))[0]
        if no_such_key(reply):
            others: tuple[str, ...] = ()  # no stream yet: nothing to delete either
        elif isinstance(reply, RedisReplyError):
            raise reply
        else:
            others = undeclared_groups(reply, self.stream.groups)
        self._groups_due = now + GROUP_CHECK_INTERVAL
        if others != self.others:
            if others:
                logger.warning(
                    "stream %s has groups its config does not declare (%s): "
                    "acks no longer delete entries, trims remove what every group acked; "
                    "declare them, or XGROUP DESTROY them once they are gone for good",
                    self.stream.name,
                    ", ".join(others),
                )
            else:
                logger.warning(
                    "stream %s has no undeclared groups any more: acks delete again",
                    self.stream.name,
                )
        self.others = others
        return (yield from self._set_mode())

    def _groups_check_due(self) -> bool:
        if not watches_groups(self.stream):
            return False
        return self._clock is None or self._clock() >= self._groups_due

    def ack(self, group: str, ids: list[str]) -> Flow[None]:
        """Ack ``ids`` in ``group`` in one round trip (idempotent, so retry-safe); first,
        when due, look for groups the config does not declare."""
        mode = self.mode or (yield from self.resolve())
        if self._groups_check_due():
            mode = yield from self.check_groups()
        packed, count = pack_acks(mode, self.stream.name, group, ids)
        replies = yield Send(packed=packed, count=count, retry_safe=True)
        if mode is AckMode.XACKDEL and unknown_command(replies[0]):
            # The server lost XACKDEL: XACK this time (safe), and look for groups first
            # at the next ack if acks may delete again.
            self.xackdel, self.mode = False, ack_mode(self.stream, False, self.others)
            self._groups_due = -math.inf
            replies = yield Send(
                packed=pack_xack(self.stream.name, group, ids), count=1, retry_safe=True
            )
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        self.acked += len(ids)

    def due(self, now: float) -> bool:
        """Whether a trim (or a check of the caps) is due at clock time ``now``."""
        if (
            self.mode is AckMode.XACK
            and self.acked
            and (self.acked >= TRIM_AFTER_ACKS or now - self._last_trim >= TRIM_INTERVAL)
        ):
            return True
        return self._caps and self.mode is not None and now - self._last_check >= CAP_CHECK_INTERVAL

    def trim_now(self) -> Flow[TrimResult]:
        """Trim to the safe MINID now (``broker.trim``); failures raise."""
        yield from self.resolve()
        return (yield from trim(self.stream, acked_guard=self.xackdel))

    def maintain(self, now: float) -> Flow[TrimResult | None]:
        """Trim when due; a failure (Redis down, an ACL refusal) is logged at a bounded rate,
        never raised: retention is housekeeping, consuming goes on."""
        if not self.due(now):
            return None
        self._last_trim = self._last_check = now
        self.acked = 0
        try:
            result = yield from trim(self.stream, acked_guard=self.xackdel)
        except (BrokerConnectionError, RedisReplyError) as exc:
            self.warn(now, "trimming %s failed: %r", self.stream.name, exc)
            return None
        self.report(result, now)
        return result

    def report(self, result: TrimResult, now: float) -> None:
        """Warn (rate-bounded) when a trim left the stream over a cap, naming who lags."""
        if result.over_cap is not None:
            self.warn(
                now,
                "stream %s is over its cap (%s): groups %s still need entries from %s",
                self.stream.name,
                result.over_cap,
                ", ".join(result.holders) or "-",
                result.minid or "its first entry",
            )

    def warn(self, now: float, message: str, *args: object) -> None:
        """Log a warning, at most once per :data:`RETENTION_WARNING_INTERVAL`."""
        if now - self._warned >= RETENTION_WARNING_INTERVAL:
            self._warned = now
            logger.warning(message, *args)


# -- replay to one group -------------------------------------------------------------------


def handled_here(target: str | None, group: str, declared: Sequence[str]) -> bool:
    """Whether a consumer of ``group`` hands over an entry meant for ``target`` (the
    ``fluxabee-group`` field of a replayed entry): no target, its own group, or a group the
    stream no longer declares (then every group gets it: a duplicate beats a loss)."""
    return target is None or target == group or target not in declared


def for_group(meta: dict[str, str], group: str, declared: Sequence[str]) -> bool:
    """Whether an entry with ``meta`` is handed to ``group`` (:func:`handled_here` of its
    ``fluxabee-group`` field, which leaves ``meta``: it is fluxabee's, not the user's)."""
    return GROUP_FIELD not in meta or handled_here(meta.pop(GROUP_FIELD), group, declared)


def replay_fields(fields: list[bytes], group: str | None, declared: Sequence[str]) -> list[bytes]:
    """The entry a dead letter is replayed as: its original fields, plus the group it died in
    when the stream has several groups and still declares that one."""
    if len(declared) > 1 and group is not None and group in declared:
        return [*fields, GROUP_FIELD.encode(), group.encode()]
    return fields
