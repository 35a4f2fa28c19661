"""What the asyncio and the sync tests do differently, behind one name each.

The asyncio tests call ``AsyncHelpers``; ``scripts/unasync.py`` renames it ``SyncHelpers``
in the generated sync tests.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


class AsyncHelpers:
    """asyncio: interruption is cancellation (a timeout)."""

    @staticmethod
    async def interrupted(call: Callable[[], Awaitable[Any]], seconds: float) -> None:
        """Run ``call()`` and cancel it after ``seconds`` (it must still be running)."""
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(), seconds)


class SyncHelpers:
    """sync: interruption is a KeyboardInterrupt (raised from SIGALRM, as Ctrl-C would)."""

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
