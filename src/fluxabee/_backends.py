"""The only place where sync and asyncio differ: byte streams, waiting, calling handlers.

The asyncio shell (``_async/``) calls ``AsyncBackend`` and ``AsyncNetworkBackend``;
``scripts/unasync.py`` rewrites those names to ``SyncBackend`` and ``SyncNetworkBackend``
in the generated sync shell (``_sync/``), whose methods are the same ones without
``async``. No event loop runs in a hidden thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import select
import selectors
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from . import _validate as validate
from ._connparams import ConnParams
from .errors import InvalidArgumentError

T = TypeVar("T")
#: Tasks finishing work whose caller was cancelled (kept alive until done).
_FINISHING: set[asyncio.Task[None]] = set()

#: Seconds a write may take before the connection is given up.
WRITE_TIMEOUT = 30.0
#: Bytes per write when a pipeline is sent in parts (big pipelines are never joined whole).
WRITE_CHUNK = 256 * 1024
#: Bytes asked of the socket per read.
READ_SIZE = 65536
#: How often a sync wait looks at its flag, seconds.
FLAG_POLL = 0.02
#: Seconds to wait for a background helper to stop before giving up on it.
JOIN_TIMEOUT = 15.0


class AsyncNetworkBackend:
    """Opens the byte streams of the asyncio API (TCP, TLS or a unix socket).

    Injectable (``AsyncEngine(config, network_backend=...)``, as httpcore's
    ``network_backend``): a subclass can wrap the streams it returns, say to make a
    connection die after a command was written and before its reply arrived.
    """

    async def connect(self, params: ConnParams, timeout: float) -> AsyncStream:
        """Open a connection to the server ``params`` names, within ``timeout`` seconds."""
        if params.path:
            opening = asyncio.open_unix_connection(params.path)
        else:
            opening = asyncio.open_connection(
                params.host,
                params.port,
                ssl=params.tls,
                server_hostname=params.server_hostname if params.tls else None,
            )
        reader, writer = await asyncio.wait_for(opening, timeout)
        return AsyncSocketStream(reader, writer)


class SyncNetworkBackend:
    """Opens the byte streams of the sync API (TCP, TLS or a unix socket).

    Injectable (``Engine(config, network_backend=...)``, as httpcore's ``network_backend``).
    """

    def connect(self, params: ConnParams, timeout: float) -> SyncStream:
        """Open a connection to the server ``params`` names, within ``timeout`` seconds."""
        sock: socket.socket
        if params.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(params.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((params.host, params.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if params.tls is not None:
                try:
                    sock = params.tls.wrap_socket(sock, server_hostname=params.server_hostname)
                except BaseException:
                    sock.close()
                    raise
        return SyncSocketStream(sock)


class AsyncBackend:
    """Waiting, guarding and handler calls for the asyncio shell."""

    @staticmethod
    def check_handler(handler: object) -> None:
        """A handler the asyncio API can call: any callable, plain or ``async def``."""
        validate.handler(handler, sync=False)

    @staticmethod
    async def hand(handler: Callable[..., Any], events: list[Any]) -> Exception | None:
        """Call a plain or ``async def`` handler; return the ``Exception`` it raised, if any."""
        try:
            result = handler(events)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            return exc
        return None

    @staticmethod
    def new_flag() -> AsyncFlag:
        """A settable flag that can be awaited with a timeout."""
        return AsyncFlag()

    @staticmethod
    def new_guard() -> contextlib.nullcontext[None]:
        """A guard for state shared with background work (none is needed in one loop)."""
        return contextlib.nullcontext()

    @staticmethod
    def new_lock() -> asyncio.Lock:
        """A lock held across awaits (one ``flush`` of a context at a time)."""
        return asyncio.Lock()

    @staticmethod
    async def shielded(work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` to its end even when the caller is cancelled (the caller still is)."""
        return await asyncio.shield(work())

    @staticmethod
    async def gather(calls: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        """Run ``calls`` concurrently; the first failure is raised once all have ended."""
        if len(calls) == 1:
            await calls[0]()
            return
        results = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @staticmethod
    def finish_later(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` to its end in a task of its own (the caller is being cancelled)."""
        task = asyncio.get_running_loop().create_task(work())
        _FINISHING.add(task)  # a strong reference until it is done
        task.add_done_callback(_FINISHING.discard)

    @staticmethod
    def start_background(func: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``func()`` as a task of the running loop."""
        return asyncio.get_running_loop().create_task(func())

    @staticmethod
    async def join_background(task: asyncio.Task[None]) -> None:
        """Wait for a background task whose stop flag is set; cancel it if stuck.

        A cancellation of the caller cancels the task too and propagates.
        """
        if task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), JOIN_TIMEOUT)
        except asyncio.CancelledError:
            task.cancel()
            raise
        except (asyncio.TimeoutError, Exception):
            task.cancel()


class SyncBackend:
    """Waiting, guarding and handler calls for the sync shell."""

    @staticmethod
    def check_handler(handler: object) -> None:
        """A handler the sync API can call: a callable that is not ``async def``."""
        validate.handler(handler, sync=True)

    @staticmethod
    def hand(handler: Callable[..., Any], events: list[Any]) -> Exception | None:
        """Call a handler; return the ``Exception`` it raised, if any.

        A handler that returns an awaitable (an ``async def`` the up-front check missed) is
        a programming error: it raises :class:`InvalidArgumentError` instead of counting as
        a failure of the events, so nothing is retried, acked or dead-lettered.
        """
        try:
            result = handler(events)
        except Exception as exc:
            return exc
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise InvalidArgumentError(
                "the sync API got an async handler: use fluxabee.AsyncEngine for async def"
            )
        return None

    @staticmethod
    def new_flag() -> SyncFlag:
        """A settable flag that can be waited on with a timeout."""
        return SyncFlag()

    @staticmethod
    def new_guard() -> threading.Lock:
        """A lock for state shared with the lock-keeper thread (the connection pool)."""
        return threading.Lock()

    @staticmethod
    def new_lock() -> threading.Lock:
        """A lock held across a whole ``flush`` (one flush of a context at a time)."""
        return threading.Lock()

    @staticmethod
    def shielded(work: Callable[[], T]) -> T:
        """Run ``work()`` (the sync twin of ``AsyncBackend.shielded``)."""
        return work()

    @staticmethod
    def gather(calls: Sequence[Callable[[], None]]) -> None:
        """Run ``calls`` one after the other; the first failure is raised once all ran."""
        failure: BaseException | None = None
        for call in calls:
            try:
                call()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    @staticmethod
    def finish_later(work: Callable[[], None]) -> None:
        """The sync twin of ``AsyncBackend.finish_later``: run ``work()`` now."""
        work()

    @staticmethod
    def start_background(func: Callable[[], None]) -> threading.Thread:
        """Run ``func()`` in a daemon thread (not an event loop: plain blocking calls)."""
        thread = threading.Thread(target=func, name="fluxabee-lock-keeper", daemon=True)
        thread.start()
        return thread

    @staticmethod
    def join_background(thread: threading.Thread) -> None:
        """Wait for a background thread whose stop flag is already set."""
        if thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT)


class AsyncFlag:
    """A one-way flag (``set`` / ``is_set`` / ``wait``); set() is safe from any thread."""

    def __init__(self) -> None:
        self._set = False
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        """Raise the flag and wake waiters."""
        self._set = True
        event, loop = self._event, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return self._set

    def clear(self) -> None:
        """Lower the flag."""
        self._set = False
        if self._event is not None:
            self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the flag; return whether it is set."""
        if self._set:
            return True
        if self._event is None:
            self._event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self._set


class SyncFlag:
    """A one-way flag (``set`` / ``is_set`` / ``wait``) for threads and signal handlers.

    ``set`` only assigns a bool, so it is safe inside a signal handler that interrupts a
    ``wait`` or ``clear`` (a ``threading.Event`` would deadlock on its own lock there);
    ``wait`` polls in short slices instead.
    """

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Raise the flag (waiters notice within one poll slice)."""
        self._set = True

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return self._set

    def clear(self) -> None:
        """Lower the flag."""
        self._set = False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the flag; return whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(FLAG_POLL, remaining))
        return self._set


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (bytes or EOF) right now, whatever its fd."""
    if _HAS_POLL:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    with selectors.DefaultSelector() as selector:  # pragma: no cover (no poll: Windows)
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(0))


_HAS_POLL = hasattr(select, "poll")


def _chunks(parts: list[bytes]) -> Iterator[bytes]:
    """Join small parts into writes of about ``WRITE_CHUNK`` bytes; big parts go alone."""
    if 0 < sum(map(len, parts)) <= WRITE_CHUNK:  # a usual flush: one write, joined in C
        yield b"".join(parts)
        return
    pending: list[bytes] = []
    size = 0
    for part in parts:
        if len(part) >= WRITE_CHUNK:
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            yield part
            continue
        pending.append(part)
        size += len(part)
        if size >= WRITE_CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class AsyncStream(Protocol):
    """A connection's byte stream under asyncio, as an :class:`AsyncNetworkBackend` gives it."""

    async def write(self, data: bytes | list[bytes]) -> None:
        """Send all of ``data`` (a list: its parts one after the other)."""

    async def read(self, timeout: float | None) -> bytes:
        """Some bytes (``b""`` at EOF), waiting up to ``timeout`` seconds (None: forever)."""

    async def stale(self) -> bool:
        """Whether this idle connection is unusable (the peer closed it)."""

    async def close(self) -> None:
        """Close the connection; never raises."""

    def abort(self) -> None:
        """Close now, from anywhere (wakes a blocked read); never raises."""


class SyncStream(Protocol):
    """A connection's byte stream for the sync API, as a :class:`SyncNetworkBackend` gives it."""

    def write(self, data: bytes | list[bytes]) -> None:
        """Send all of ``data`` (a list: its parts one after the other)."""

    def read(self, timeout: float | None) -> bytes:
        """Some bytes (``b""`` at EOF), waiting up to ``timeout`` seconds (None: forever)."""

    def stale(self) -> bool:
        """Whether this idle connection is unusable (the peer closed it)."""

    def close(self) -> None:
        """Close the connection; never raises."""

    def abort(self) -> None:
        """Close now, from any thread (wakes a blocked read); never raises."""


class AsyncSocketStream:
    """A connection's byte stream under asyncio (an asyncio stream pair)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    async def write(self, data: bytes | list[bytes]) -> None:
        """Send all of ``data`` (a list is sent part after part, never joined whole)."""
        if isinstance(data, list):
            for chunk in _chunks(data):
                self._writer.write(chunk)
                await asyncio.wait_for(self._writer.drain(), WRITE_TIMEOUT)
            return
        self._writer.write(data)
        await asyncio.wait_for(self._writer.drain(), WRITE_TIMEOUT)

    async def read(self, timeout: float | None) -> bytes:
        """Some bytes (``b""`` at EOF), waiting up to ``timeout`` seconds (None: forever)."""
        if timeout is None:
            return await self._reader.read(READ_SIZE)
        return await asyncio.wait_for(self._reader.read(READ_SIZE), timeout)

    async def stale(self) -> bool:
        """Whether the peer closed this idle connection (lets the loop notice EOF first).

        Two loop turns: in the first the selector reports the socket readable and queues
        the transport's read callback behind this task; in the second that callback runs.
        """
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return self._reader.at_eof() or self._writer.is_closing()

    async def close(self) -> None:
        """Close the connection; never raises."""
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    def abort(self) -> None:
        """Close the transport now (a pending read sees EOF)."""
        with contextlib.suppress(Exception):
            self._writer.transport.abort()


class SyncSocketStream:
    """A connection's byte stream for the sync API (a plain socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes | list[bytes]) -> None:
        """Send all of ``data`` (a list is sent part after part, never joined whole)."""
        self._sock.settimeout(WRITE_TIMEOUT)
        if isinstance(data, list):
            for chunk in _chunks(data):
                self._sock.sendall(chunk)
            return
        self._sock.sendall(data)

    def read(self, timeout: float | None) -> bytes:
        """Some bytes (``b""`` at EOF), waiting up to ``timeout`` seconds (None: forever)."""
        self._sock.settimeout(timeout)
        return self._sock.recv(READ_SIZE)

    def stale(self) -> bool:
        """Whether this idle connection is readable: EOF or stray bytes, so unusable.

        ``poll`` (``selectors`` where there is none), never ``select.select``: that one
        raises for descriptors of 1,024 and above, and a process with many open files
        would then take every pooled connection for stale and open a new one per command.
        """
        try:
            return _readable(self._sock)
        except (OSError, ValueError):  # closed (fileno -1) or broken: unusable
            return True

    def close(self) -> None:
        """Close the connection; never raises."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def abort(self) -> None:
        """Shut the socket down (wakes a ``recv`` blocked in another thread), then close."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self.close()
