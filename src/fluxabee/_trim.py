"""Pure: an explicit trim to an ID or a length, refused when it would cut what a group needs.

``broker.trim(stream, min_id=...)`` / ``max_len=...`` (and ``fluxabee trim``) cut a stream
where its operator says, not where retention would. Unless forced, the cut must not go past
the oldest entry some group still needs (:func:`fluxabee._retention.safe_minid`): an entry
still pending, or not delivered yet, is never removed by accident. The trim is exact
(``XTRIM MINID``), with ``ACKED`` as a second guard where the server has it.
"""

from __future__ import annotations

from typing import Any

from ._actions import Flow, Send
from ._protocol import Arg, stream_full_command, xtrim_minid_command
from ._replies import no_such_key
from ._replies import text as _text
from ._retention import id_key, next_id, parse_stream_full, plan_trim, safe_minid
from ._streamconfig import Stream
from .errors import RedisReplyError, TrimRefusedError


def target_id(state_length: int, newest: Any, max_len: int) -> str | None:
    """The ID to trim below so ``max_len`` entries are left (``None``: nothing to cut).

    ``newest`` is ``XREVRANGE ... COUNT max(max_len, 1)`` (newest first).
    """
    if state_length <= max_len or not newest:
        return None
    if max_len == 0:
        return next_id(_text(newest[0][0]))  # everything, the newest one included
    return _text(newest[-1][0])  # the oldest of those kept


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
    read: list[list[Arg]] = [stream_full_command(name)]
    if max_len is not None:
        read.append([b"XREVRANGE", name, b"+", b"-", b"COUNT", max(max_len, 1)])
    replies = yield Send(read, retry_safe=True)
    for reply in replies:
        if isinstance(reply, RedisReplyError):
            if no_such_key(reply):
                return 0
            raise reply
    state = parse_stream_full(replies[0])
    target = min_id if max_len is None else target_id(state.length, replies[1], max_len)
    if target is None or state.first_id is None or id_key(target) <= id_key(state.first_id):
        return 0
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
