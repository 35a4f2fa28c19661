"""Where an app's runtime differs between asyncio and threads: calling one handler with its
arguments, and running one ``process`` loop per handler side by side.

:mod:`fluxabee._async.app` calls :class:`AsyncLoops`; ``scripts/unasync.py`` renames it
:class:`SyncLoops` in the generated sync runtime. Under asyncio each loop is a task and a
plain ``def`` handler runs in a thread of its own pool of ``concurrency`` threads (not
the loop's default executor, which has ``min(32, cpus + 4)``), carrying the handler
call's context, so its follow-ups buffer in its own broker; under threads each loop runs
in a thread of its own and the calling thread waits for them in short slices, so a signal
handler still runs on it. No event loop runs in a hidden thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent import futures
from typing import Any

from .errors import InvalidArgumentError

#: Seconds the sync runtime's calling thread waits on a loop thread at a time.
JOIN_SLICE = 0.2


class AsyncLoops:
    """Handler calls and loops of the asyncio runtime."""

    @staticmethod
    def new_pool(is_async: bool, concurrency: int) -> futures.ThreadPoolExecutor | None:
        """Threads for a plain ``def`` handler, as many as its ``concurrency``."""
        if is_async:
            return None
        return futures.ThreadPoolExecutor(concurrency, thread_name_prefix="fluxabee-app")

    @staticmethod
    def close_pool(pool: futures.ThreadPoolExecutor | None) -> None:
        """Let the pool's threads end once their handler returns (not waited for, as
        ``process`` does not wait for handlers past its ``shutdown_timeout``)."""
        if pool is not None:
            pool.shutdown(wait=False)

    @staticmethod
    async def call(
        func: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        pool: futures.ThreadPoolExecutor | None = None,
    ) -> None:
        """Await an ``async def`` handler; run a plain ``def`` one in a thread of ``pool``
        in a copy of this context (as ``asyncio.to_thread`` does)."""
        if is_async:
            await func(*args, **kwargs)
        else:
            context = contextvars.copy_context()
            call = functools.partial(context.run, func, *args, **kwargs)
            await asyncio.get_running_loop().run_in_executor(pool, call)

    @staticmethod
    async def run_all(
        loops: Sequence[Callable[[], Coroutine[Any, Any, None]]], stop: Callable[[], None]
    ) -> None:
        """Run ``loops`` as tasks until all end; the first to fail calls ``stop()`` (the
        others end gracefully) and its error is raised once all have ended. A cancellation
        cancels them all."""
        tasks = [asyncio.ensure_future(loop()) for loop in loops]
        failure: BaseException | None = None
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    await next_done
                except Exception as exc:
                    if failure is None:
                        failure = exc
                        stop()
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if failure is not None:
            raise failure


class SyncLoops:
    """Handler calls and loops of the sync runtime (threads)."""

    @staticmethod
    def new_pool(is_async: bool, concurrency: int) -> futures.ThreadPoolExecutor | None:
        """None: ``process`` already runs the handler in its pool of threads."""
        return None

    @staticmethod
    def close_pool(pool: futures.ThreadPoolExecutor | None) -> None:
        """Nothing to close."""

    @staticmethod
    def call(
        func: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        pool: futures.ThreadPoolExecutor | None = None,
    ) -> None:
        """Call the handler (``async def`` ones are refused: they need the asyncio runtime)."""
        if is_async:
            raise InvalidArgumentError(
                "an async def handler runs under asyncio: use app.run() or await app.serve()"
            )
        func(*args, **kwargs)

    @staticmethod
    def run_all(loops: Sequence[Callable[[], None]], stop: Callable[[], None]) -> None:
        """Run ``loops`` in threads until all end; the first to fail calls ``stop()`` and its
        error is raised once all have ended."""
        failures: list[BaseException] = []

        def work(loop: Callable[[], None]) -> None:
            try:
                loop()
            except BaseException as exc:
                failures.append(exc)
                stop()

        threads = [
            threading.Thread(target=work, args=(loop,), name="fluxabee-app", daemon=True)
            for loop in loops
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(JOIN_SLICE)
        except BaseException:
            stop()
            raise
        if failures:
            raise failures[0]
