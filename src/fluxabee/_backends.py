"""The only place where sync and asyncio differ: sleeping, waiting and calling handlers.

The asyncio shell (``_async/``) calls ``AsyncBackend``; ``scripts/unasync.py`` rewrites
that name to ``SyncBackend`` in the generated sync shell (``_sync/``), whose methods are
the same ones without ``async``. No event loop runs in a hidden thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from ._connparams import ConnParams
from .errors import InvalidArgumentError

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


class AsyncBackend:
    """Waiting and handler calls for the asyncio shell."""

    @staticmethod
    async def sleep(seconds: float) -> None:
        """Sleep without blocking the event loop."""
        await asyncio.sleep(seconds)

    @staticmethod
    async def call(handler: Callable[..., Any], *args: Any) -> Any:
        """Call a plain or ``async def`` handler and return its result."""
        result = handler(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    @staticmethod
    def new_flag() -> AsyncFlag:
        """A settable flag that can be awaited with a timeout."""
        return AsyncFlag()

    @staticmethod
    async def open_stream(params: ConnParams, timeout: float) -> AsyncStream:
        """Open a TCP / TLS / unix connection to Redis."""
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
        return AsyncStream(reader, writer)

    @staticmethod
    def start_background(func: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``func()`` as a task of the running loop."""
        return asyncio.get_running_loop().create_task(func())

    @staticmethod
    async def join_background(task: asyncio.Task[None]) -> None:
        """Wait for a background task (its stop flag is already set); cancel if stuck."""
        try:
            await asyncio.wait_for(task, JOIN_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()


class SyncBackend:
    """Waiting and handler calls for the sync shell."""

    @staticmethod
    def sleep(seconds: float) -> None:
        """Sleep the calling thread."""
        time.sleep(seconds)

    @staticmethod
    def call(handler: Callable[..., Any], *args: Any) -> Any:
        """Call a handler; a coroutine function is a mistake in the sync API."""
        result = handler(*args)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise InvalidArgumentError(
                "the sync API got an async handler: use fluxabee.AsyncEngine for async def"
            )
        return result

    @staticmethod
    def new_flag() -> SyncFlag:
        """A settable flag that can be waited on with a timeout."""
        return SyncFlag()

    @staticmethod
    def open_stream(params: ConnParams, timeout: float) -> SyncStream:
        """Open a TCP / TLS / unix connection to Redis."""
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
                sock = params.tls.wrap_socket(sock, server_hostname=params.server_hostname)
        return SyncStream(sock)

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


def _chunks(parts: list[bytes]) -> Iterator[bytes]:
    """Join small parts into writes of about ``WRITE_CHUNK`` bytes; big parts go alone."""
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


class AsyncStream:
    """A connection's byte stream under asyncio."""

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


class SyncStream:
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
        """Whether this idle connection is readable: EOF or stray bytes, so unusable."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        """Close the connection; never raises."""
        with contextlib.suppress(OSError):
            self._sock.close()
