"""Where ``process`` differs between asyncio and threads: running work, waiting for the first.

The asyncio shell of ``process`` (:mod:`fluxabee._async.process`) calls
:class:`AsyncWorkers`; ``scripts/unasync.py`` renames it :class:`SyncWorkers` in the
generated sync shell. Under asyncio each handler call is a task (a plain ``def`` handler
runs in a thread through :func:`asyncio.to_thread`); under threads each is a job of a real
:class:`~concurrent.futures.ThreadPoolExecutor` of ``concurrency`` threads, and the read
runs in a thread of its own so the loop can wait for whichever ends first. No event loop
runs in a hidden thread.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Collection, Coroutine
from concurrent import futures
from typing import Any, TypeVar

from ._validate import _is_async
from .errors import InvalidArgumentError

T = TypeVar("T")


class AsyncWorkers:
    """Tasks of one ``process`` loop under asyncio."""

    def __init__(self, concurrency: int, handler: Callable[..., Any]) -> None:
        self._handler = handler
        self._is_async = _is_async(handler)

    async def call(self, event: Any) -> None:
        """Call the handler with one event (a plain ``def`` in a thread)."""
        if self._is_async:
            await self._handler(event)
            return
        result = await asyncio.to_thread(self._handler, event)
        if inspect.isawaitable(result):  # a callable object whose __call__ returns one
            await result

    def submit(self, work: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
        """Run ``work()`` as a task."""
        return asyncio.get_running_loop().create_task(work())

    spawn = submit

    @staticmethod
    def done(job: asyncio.Task[T]) -> T:
        """The result of a finished job (its exception raised)."""
        return job.result()

    @staticmethod
    async def wait(jobs: Collection[Awaitable[Any]], timeout: float) -> set[Any]:
        """Wait up to ``timeout`` seconds for the first of ``jobs`` to finish; the finished."""
        if not jobs:
            await asyncio.sleep(timeout)
            return set()
        done, _ = await asyncio.wait(jobs, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return done

    async def abandon(self, jobs: Collection[asyncio.Task[Any]]) -> None:
        """Give up on ``jobs`` (handlers past the shutdown timeout): cancel them and wait
        for them to end."""
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    async def close(self) -> None:
        """Nothing to release under asyncio (threads come from the loop's executor)."""


class SyncWorkers:
    """A thread pool of ``concurrency`` threads for one ``process`` loop, and a read thread."""

    def __init__(self, concurrency: int, handler: Callable[..., Any]) -> None:
        self._handler = handler
        self._pool = futures.ThreadPoolExecutor(concurrency, thread_name_prefix="fluxabee-handler")
        self._reader = futures.ThreadPoolExecutor(1, thread_name_prefix="fluxabee-read")

    def call(self, event: Any) -> None:
        """Call the handler with one event (in a pool thread)."""
        result = self._handler(event)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise InvalidArgumentError(
                "the sync API got an async handler: use fluxabee.AsyncEngine for async def"
            )

    def submit(self, work: Callable[[], T]) -> futures.Future[T]:
        """Run ``work()`` in the handler pool."""
        return self._pool.submit(work)

    def spawn(self, work: Callable[[], T]) -> futures.Future[T]:
        """Run ``work()`` (a read) in the read thread."""
        return self._reader.submit(work)

    @staticmethod
    def done(job: futures.Future[T]) -> T:
        """The result of a finished job (its exception raised)."""
        return job.result()

    @staticmethod
    def wait(jobs: Collection[futures.Future[Any]], timeout: float) -> set[Any]:
        """Wait up to ``timeout`` seconds for the first of ``jobs`` to finish; the finished."""
        if not jobs:
            futures.wait([futures.Future()], timeout=timeout)  # a plain, interruptible sleep
            return set()
        done, _ = futures.wait(jobs, timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return done

    def abandon(self, jobs: Collection[futures.Future[Any]]) -> None:
        """Give up on ``jobs`` (handlers past the shutdown timeout): threads cannot be
        cancelled, so ``process`` returns without waiting for them."""
        for job in jobs:
            job.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Release the threads (waits for the read thread; handlers have ended)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reader.shutdown(wait=True)
