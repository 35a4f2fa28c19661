"""Pure: an explicit trim to an ID or a length, refused when it would cut what a group needs.

``broker.trim(stream, min_id=...)`` / ``max_len=...`` (and ``fluxabee trim``) cut a stream
where its operator says, not where retention would. Unless forced, the cut must not go past
the oldest entry some group still needs (:func:`fluxabee._retention.safe_minid`): an entry
still pending, or not delivered yet, is never removed by accident. The trim is exact
(``XTRIM MINID``), with ``ACKED`` as a second guard where the server has it. Where a
``max_len`` cuts is found on the server, which answers one ID (:func:`walk_target`): the
client's memory and the bytes read stay bounded whatever the stream's length.
"""

from __future__ import annotations

from ._actions import Flow, Send
from ._constants import TRIM_WALK_BUDGET, TRIM_WALK_PAGE
from ._protocol import stream_full_command, xtrim_minid_command
from ._replies import no_such_key
from ._replies import text as _text
from ._retention import StreamState, id_key, next_id, parse_stream_full, plan_trim, safe_minid
from ._scripts import walk
from ._streamconfig import Stream
from .errors import RedisReplyError, TrimRefusedError


def walk_target(name: str, length: int, max_len: int) -> Flow[str | None]:
    """The ID to trim below so the newest ``max_len`` of ``length`` entries are left
    (``None``: nothing to cut), reading one entry's ID whatever ``max_len``.

    The cut is the oldest entry kept: the ``max_len``-th newest, or the one after the
    ``length - max_len`` oldest; the server walks past the entries before it from the
    nearer end (:func:`fluxabee._scripts.walk`), :data:`TRIM_WALK_BUDGET` per round trip.
    """
    if length <= max_len:
        return None
    if max_len == 0:  # everything, the newest entry included
        (newest,) = yield Send([[b"XREVRANGE", name, b"+", b"-", b"COUNT", 1]], retry_safe=True)
        if isinstance(newest, RedisReplyError):
            raise newest
        return next_id(_text(newest[0][0])) if newest else None
    removed = length - max_len
    newest_first = max_len <= removed + 1
    position, after = (max_len if newest_first else removed + 1), ""
    while True:
        call = walk(
            name,
            newest_first=newest_first,
            after=after,
            position=position,
            budget=TRIM_WALK_BUDGET,
            page=TRIM_WALK_PAGE,
        )
        (reply,) = yield Send([call], retry_safe=True)  # it only reads
        if isinstance(reply, RedisReplyError):
            raise reply
        if reply[0] == 1:
            return _text(reply[1])
        if reply[0] != 0:
            return None  # the stream got shorter meanwhile: nothing to cut
        after, position = _text(reply[1]), int(reply[2])


def find_cut(
    name: str, *, min_id: str | None, max_len: int | None
) -> Flow[tuple[StreamState | None, str | None]]:
    """The stream's state (``None``: no stream) and the ID a trim below ``min_id`` or to
    the newest ``max_len`` entries would cut below (``None``: nothing to cut)."""
    (info,) = yield Send([stream_full_command(name)], retry_safe=True)
    if isinstance(info, RedisReplyError):
        if no_such_key(info):
            return None, None
        raise info
    state = parse_stream_full(info)
    target = min_id
    if max_len is not None:
        target = yield from walk_target(name, state.length, max_len)
    if target is None or state.first_id is None or id_key(target) <= id_key(state.first_id):
        return state, None
    return state, target


def trim_to(
    stream: Stream,
    *,
    min_id: str | None,
    max_len: int | None,
    force: bool,
    acked_guard: bool,
) -> Flow[int]:
    """Trim ``stream`` below ``min_id`` (or to its newest ``max_len``); entries removed.

    Raises :class:`TrimRefusedError` (removing nothing) when the cut would pass the oldest
    entry some group still needs, unless ``force``.
    """
    name = stream.name
    state, target = yield from find_cut(name, min_id=min_id, max_len=max_len)
    if state is None or target is None:
        return 0
    assert state.first_id is not None
    if not force:
        safe = safe_minid(state, stream.groups)
        if safe is None or id_key(target) > id_key(safe):
            holders = plan_trim(state, stream.groups).holders
            if safe is None:
                who = "no declared group has read it"
            elif id_key(safe) <= id_key(state.first_id):  # name an entry that exists
                who = f"groups {', '.join(holders)} need every entry, from {state.first_id}"
            else:
                who = f"groups {', '.join(holders)} need the entries from {safe} on"
            raise TrimRefusedError(
                f"trimming {name} below {target} would remove entries not acked yet ({who}); "
                f"nothing was removed (force=True removes them anyway)",
                safe_id=safe,
                holders=holders,
            )
    command = xtrim_minid_command(name, target, acked=acked_guard and not force)
    (removed,) = yield Send([command], retry_safe=True)  # an exact MINID trim is idempotent
    if isinstance(removed, RedisReplyError):
        raise removed
    return int(removed)
