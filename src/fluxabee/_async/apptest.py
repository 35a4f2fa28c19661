"""Run an :class:`~fluxabee.App` inside a test: ``fluxabee.testing.running(app)``.

The app's handlers run in the background (a task; threads in the sync twin) while the
test publishes; :meth:`AsyncRunning.drained` returns once every event published so far,
follow-ups included, was handled: each handler's group has nothing undelivered and nothing
pending, twice in a row (a follow-up is flushed before its trigger is acked, so one that a
handler published after the first look is seen by the second). It polls the groups'
statistics; the test itself never sleeps.
"""

from __future__ import annotations

import datetime as _dt
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import _validate as validate
from .._app import NotDrainedError
from .._backends import AsyncBackend
from .app import AsyncAppRuntime

if TYPE_CHECKING:
    from .._application import App

#: Seconds between two looks at the groups in :meth:`AsyncRunning.drained`.
DRAIN_POLL = 0.01


class AsyncRunning:
    """An app running in the background of a test (the asyncio API)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._runtime: AsyncAppRuntime | None = None
        self._job: Any = None
        self._failure: BaseException | None = None
        self._wake = AsyncBackend.new_flag()

    @property
    def app(self) -> App:
        """The app being run."""
        return self._app

    async def __aenter__(self) -> AsyncRunning:
        app = self._app
        app._check_runnable()
        await app.__aenter__()
        runtime = app.runtime
        assert isinstance(runtime, AsyncAppRuntime)
        self._runtime = runtime
        app._serving = True
        self._job = AsyncBackend.start_background(self._serve)
        return self

    async def _serve(self) -> None:
        assert self._runtime is not None
        try:
            await self._runtime.serve()
        except BaseException as exc:
            self._failure = exc
            self._wake.set()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def drained(self, timeout: float | _dt.timedelta = 30.0) -> None:
        """Flush what the app published, then wait until every handler has handled every
        event of its stream and group (none undelivered, none pending, follow-ups too).
        Raises :class:`NotDrainedError` after ``timeout``, or what stopped a handler loop."""
        limit = validate.seconds(timeout, "timeout")
        runtime = self._runtime
        assert runtime is not None
        await runtime.broker.flush()
        deadline = time.monotonic() + limit
        quiet = 0
        while quiet < 2:
            self._check()
            if await self._quiet(runtime):
                quiet += 1
                continue
            quiet = 0
            if time.monotonic() >= deadline:
                raise NotDrainedError(f"the app's handlers did not drain within {limit:g} s")
            await self._wake.wait(DRAIN_POLL)
        self._check()

    async def _quiet(self, runtime: AsyncAppRuntime) -> bool:
        broker = runtime.broker
        for item in self._app.handlers:
            stats = await broker.stream_statistics(item.stream)
            group = next((g for g in stats.groups if g.name == item.group), None)
            if group is None or group.pending:
                return False
            if group.lag is None:
                if await broker.peek_after(item.stream, group.last_delivered_id, count=1):
                    return False
            elif group.lag:
                return False
        return True

    async def stop(self) -> None:
        """Stop the app gracefully and close it (what leaving the block does)."""
        app, runtime = self._app, self._runtime
        if runtime is None:
            return
        self._runtime = None
        try:
            runtime.stop()
            if self._job is not None:
                await AsyncBackend.join_background(self._job)
        finally:
            app._serving = False
            await app.__aexit__(None, None, None)
        self._check()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
