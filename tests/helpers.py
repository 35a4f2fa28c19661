"""What the asyncio and the sync tests do differently, behind one name each.

The asyncio tests call ``AsyncHelpers``; ``scripts/unasync.py`` renames it ``SyncHelpers``
in the generated sync tests.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


class AsyncHelpers:
    """asyncio: interruption is cancellation (a timeout)."""

    #: What an interruption raises where the API waits on Redis.
    interruption: type[BaseException] = asyncio.CancelledError

    @staticmethod
    async def interrupted(call: Callable[[], Awaitable[Any]], seconds: float) -> None:
        """Run ``call()`` and cancel it after ``seconds`` (it must still be running)."""
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(), seconds)

    @staticmethod
    async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Poll ``condition`` every 10 ms until it holds; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"gave up after {timeout} s"
            await asyncio.sleep(0.01)

    @staticmethod
    async def run_all(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
        """Run every ``call()`` at once (tasks) and return their results, in order."""
        return list(await asyncio.gather(*(call() for call in calls)))

    @staticmethod
    async def pause(seconds: float) -> None:
        """Let others run for ``seconds`` (0: one turn of the loop)."""
        await asyncio.sleep(seconds)

    @staticmethod
    def me() -> Any:
        """Who runs this code: the current task."""
        return asyncio.current_task()

    @staticmethod
    def counts(owner: Any) -> bool:
        """Whether an await point reached here belongs to ``owner``'s call: any task does
        (work it shields or hands to a task of its own is part of it)."""
        return True

    @staticmethod
    async def interrupt(owner: Any) -> None:
        """Cancel ``owner`` (a task) here: when this is ``owner``'s own await, the
        cancellation arrives right here; from a task it shields, at its ``await`` on it."""
        owner.cancel()
        if asyncio.current_task() is owner:
            await asyncio.sleep(0)

    @staticmethod
    async def attempt(call: Callable[[], Awaitable[Any]]) -> bool:
        """Run ``call()`` in a task of its own; whether it was cancelled (else it ended;
        any other error is raised)."""
        task = asyncio.get_running_loop().create_task(call())
        await asyncio.wait([task])
        if task.cancelled():
            return True
        task.result()
        return False


class SyncHelpers:
    """sync: interruption is a KeyboardInterrupt (raised from SIGALRM, as Ctrl-C would)."""

    #: What an interruption raises where the API waits on Redis.
    interruption: type[BaseException] = KeyboardInterrupt

    @staticmethod
    def interrupted(call: Callable[[], Any], seconds: float) -> None:
        """Run ``call()`` and interrupt it after ``seconds`` (it must still be running)."""

        def on_alarm(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            with pytest.raises(KeyboardInterrupt):
                call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    @staticmethod
    def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Poll ``condition`` every 10 ms until it holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"gave up after {timeout} s"
            time.sleep(0.01)

    @staticmethod
    def run_all(*calls: Callable[[], Any]) -> list[Any]:
        """Run every ``call()`` at once (threads) and return their results, in order; the
        first error of any is raised once all have ended."""
        results: list[Any] = [None] * len(calls)
        errors: list[BaseException] = []

        def main(index: int, call: Callable[[], Any]) -> None:
            try:
                results[index] = call()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=main, args=item, daemon=True) for item in enumerate(calls)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(50.0)
            assert not thread.is_alive(), "a call of run_all did not end within 50 s"
        if errors:
            raise errors[0]
        return results

    @staticmethod
    def pause(seconds: float) -> None:
        """Let others run for ``seconds`` (0: give up the GIL once)."""
        time.sleep(seconds)

    @staticmethod
    def me() -> Any:
        """Who runs this code: the current thread."""
        return threading.current_thread()

    @staticmethod
    def counts(owner: Any) -> bool:
        """Whether an await point reached here belongs to ``owner``'s call: only its own
        thread's (a lock-keeper thread is no part of it)."""
        return threading.current_thread() is owner

    @staticmethod
    def interrupt(owner: Any) -> None:
        """Interrupt the call here, as Ctrl-C would: a KeyboardInterrupt."""
        raise KeyboardInterrupt("interrupted at an await point")

    @staticmethod
    def attempt(call: Callable[[], Any]) -> bool:
        """Run ``call()``; whether it was interrupted by a KeyboardInterrupt (else it
        ended; any other error is raised)."""
        try:
            call()
        except KeyboardInterrupt:
            return True
        return False
