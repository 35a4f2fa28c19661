"""Network backends for fault tests: real connections that lose a reply on purpose.

Injected through ``Engine(config, network_backend=...)`` (httpcore's ``network_backend``).
A :class:`FaultPlan` names a marker (bytes of a command, say ``b"XADD"``); the first write
that contains it goes to Redis as usual, and the stream then reads Redis's reply (so the
command certainly ran) and throws it away, closing the connection: exactly a connection
that died after the command was written and before its reply arrived. Every write is
also recorded, so a test can count round trips.

``raises`` replaces the connection error by another exception (a ``KeyboardInterrupt`` or a
``CancelledError``: an interruption while the reply was on the wire); ``before=True``
raises it instead of writing the marked command (it never reaches Redis).
"""

from __future__ import annotations

import threading

from fluxabee import AsyncNetworkBackend, AsyncStream, SyncNetworkBackend, SyncStream
from fluxabee._connparams import ConnParams


class FaultPlan:
    """What to break, shared by the connections of one backend (thread-safe enough)."""

    def __init__(
        self,
        marker: bytes | None = None,
        *,
        times: int = 1,
        raises: type[BaseException] | None = None,
        before: bool = False,
    ) -> None:
        self.marker = marker
        self.times = times
        self.raises = raises
        self.before = before
        #: Every payload written, in order (a list payload joined).
        self.writes: list[bytes] = []
        #: Set once a reply was lost.
        self.fired = threading.Event()
        #: Set on the first write containing one of ``watch`` (no fault: just observe).
        self.watched = threading.Event()
        self.watch: tuple[bytes, ...] = ()

    def written(self, data: bytes | list[bytes]) -> bool:
        """Record a write; whether the connection must now lose the reply."""
        payload = b"".join(data) if isinstance(data, list) else data
        self.writes.append(payload)
        if any(marker in payload for marker in self.watch):
            self.watched.set()
        if self.marker is not None and self.times > 0 and self.marker in payload:
            self.times -= 1
            return True
        return False

    def count(self, marker: bytes) -> int:
        """How many writes contained ``marker``."""
        return sum(1 for w in self.writes if marker in w)

    def failure(self) -> BaseException:
        """What the marked command raises (and note that it fired)."""
        self.fired.set()
        if self.raises is not None:
            return self.raises("fault injected: interrupted")
        return ConnectionResetError("fault injected: the reply was lost")


class AsyncFaultyStream:
    """An asyncio stream that loses the reply to the marked command."""

    def __init__(self, inner: AsyncStream, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan
        self._dying = False

    async def write(self, data: bytes | list[bytes]) -> None:
        if self._plan.before and self._plan.written(data):
            raise self._plan.failure()  # never written: the command did not run
        await self._inner.write(data)
        if not self._plan.before and self._plan.written(data):
            self._dying = True

    async def read(self, timeout: float | None) -> bytes:
        if self._dying:
            await self._inner.read(timeout)  # Redis answered: the command ran
            self._inner.abort()
            raise self._plan.failure()
        return await self._inner.read(timeout)

    async def stale(self) -> bool:
        return await self._inner.stale()

    async def close(self) -> None:
        await self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


class AsyncFaultyBackend(AsyncNetworkBackend):
    """The default backend, its streams wrapped in :class:`AsyncFaultyStream`."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    async def connect(self, params: ConnParams, timeout: float) -> AsyncStream:
        return AsyncFaultyStream(await super().connect(params, timeout), self.plan)


class SyncFaultyStream:
    """A sync stream that loses the reply to the marked command."""

    def __init__(self, inner: SyncStream, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan
        self._dying = False

    def write(self, data: bytes | list[bytes]) -> None:
        if self._plan.before and self._plan.written(data):
            raise self._plan.failure()  # never written: the command did not run
        self._inner.write(data)
        if not self._plan.before and self._plan.written(data):
            self._dying = True

    def read(self, timeout: float | None) -> bytes:
        if self._dying:
            self._inner.read(timeout)
            self._inner.abort()
            raise self._plan.failure()
        return self._inner.read(timeout)

    def stale(self) -> bool:
        return self._inner.stale()

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


class SyncFaultyBackend(SyncNetworkBackend):
    """The default backend, its streams wrapped in :class:`SyncFaultyStream`."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def connect(self, params: ConnParams, timeout: float) -> SyncStream:
        return SyncFaultyStream(super().connect(params, timeout), self.plan)
