"""The keeper of a ``consumer_single`` lock: refreshes it in the background, releases it.

The lock's rules (a token in ``{stream}:lock`` with a TTL; trusted locally only until the
last confirmation + TTL) live in :class:`fluxabee._actions.Lease`, the Lua scripts and the
machine's ``refresh_lock`` flow, which the keeper runs (one rule, also for what a lost lock
means); this module only schedules: a refresh every third of the TTL while the lock is
held, and a release on ``cleanup`` / ``close`` / the end of ``run`` / the engine's close.
A holder that dies (even by SIGKILL) stops refreshing, so the key expires and a standby takes over.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from .._actions import Lease
from .._backends import AsyncBackend
from .._scripts import lock_release
from ..errors import BrokerConnectionError, ClosedError, ConsumerLockedError
from .client import AsyncCommands

logger = logging.getLogger("fluxabee")


class AsyncLock:
    """Keeps the lease of one ``consumer_single`` object alive in the background."""

    def __init__(
        self,
        client: AsyncCommands,
        lease: Lease,
        *,
        owner: object,
        registry: set[Any],
        refresh: Callable[[], Any],
    ) -> None:
        self._client = client
        self.lease = lease
        #: Runs the machine's ``refresh_lock`` flow (raises ConsumerLockedError when lost);
        #: it must not hold the owner (the keeper notices an orphaned lock by its weakref).
        self._refresh_lock = refresh
        #: The consumer; when it is garbage-collected the keeper releases the lock.
        self._owner = weakref.ref(owner)
        #: The engine's set of kept locks, so closing the engine releases this one.
        self._registry = registry
        self._stop = AsyncBackend.new_flag()
        self._keeper: Any = None

    def ensure_keeper(self) -> None:
        """Start refreshing in the background (called when Redis confirmed the lock)."""
        if self._keeper is None:
            self._stop.clear()
            self._registry.add(self)
            self._keeper = AsyncBackend.start_background(self._keep)

    async def _refresh(self) -> bool:
        try:
            await self._refresh_lock()
        except ConsumerLockedError:
            return False
        return True

    async def _keep(self) -> None:
        """Background: refresh every third of the TTL until released, lost or orphaned."""
        while not await self._stop.wait(self.lease.refresh_interval):
            if self._owner() is None:  # the consumer was dropped without cleanup()
                self._keeper = None
                self._registry.discard(self)
                await self._release_key()
                return
            try:
                if not await self._refresh():
                    logger.warning("lost the consumer_single lock %s", self.lease.key)
                    self._keeper = None  # a later take-over starts a new keeper
                    self._registry.discard(self)
                    return
            except ClosedError:
                return
            except BrokerConnectionError:
                # Keep trying; the lease lapses by itself once the TTL has passed.
                continue
            except Exception:  # never let the keeper die silently
                logger.exception("refreshing lock %s failed", self.lease.key)

    async def release(self) -> None:
        """Stop refreshing and delete the key if it is still ours.

        Cancellation propagates at once: the deletion is shielded (it finishes anyway), and
        when the caller is cancelled while the keeper stops, it finishes in the background.
        """
        keeper, self._keeper = self._keeper, None
        self._stop.set()
        self._registry.discard(self)
        if keeper is not None:
            try:
                await AsyncBackend.join_background(keeper)
            except BaseException:
                AsyncBackend.finish_later(self._release_key)
                raise
        await AsyncBackend.shielded(self._release_key)

    async def _release_key(self) -> None:
        lease = self.lease
        was_held = lease.valid_until > 0
        lease.lost()
        if was_held:
            try:
                await self._client.call(lock_release(lease.key, lease.token))
            except (BrokerConnectionError, ClosedError):
                logger.warning("could not release lock %s; it expires by TTL", lease.key)
