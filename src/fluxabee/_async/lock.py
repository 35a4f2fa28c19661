"""The lock that makes ``consumer_single`` really single.

A key ``{stream}:lock`` holds a random token with a TTL. The holder refreshes it in the
background every third of the TTL and reads the group only through a Lua script that
checks the token first, atomically; it releases the key on ``cleanup`` / ``close`` / the
end of ``run``. A holder that dies (even by SIGKILL) stops refreshing, so the key expires
and a standby takes over within the TTL. Locally the holder trusts the lock only until
``last confirmation + TTL`` (monotonic clock), so a stalled process never hands over
events after its lock may have passed to another.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import weakref
from typing import Any

from .._backends import AsyncBackend
from .._policy import lock_key
from .._scripts import lock_refresh, lock_release
from ..errors import BrokerConnectionError
from .client import AsyncPoolClient

logger = logging.getLogger("fluxabee")


def _new_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


class AsyncLock:
    """A TTL lock on one stream, held by one ``consumer_single`` object."""

    def __init__(
        self,
        client: AsyncPoolClient,
        stream: str,
        ttl: float,
        *,
        owner: object,
        registry: set[Any],
    ) -> None:
        self._client = client
        #: The consumer; when it is garbage-collected the keeper releases the lock.
        self._owner = weakref.ref(owner)
        #: The engine's set of kept locks, so closing the engine releases this one.
        self._registry = registry
        self.key = lock_key(stream)
        self.token = _new_token()
        self.ttl = ttl
        self.ttl_ms = max(1, round(ttl * 1000))
        self._valid_until = 0.0
        self._stop = AsyncBackend.new_flag()
        self._keeper: Any = None

    @property
    def poll_interval(self) -> float:
        """How often a standby tries to take the lock."""
        return max(0.01, self.ttl / 10)

    def held(self) -> bool:
        """Whether this holder may still trust the lock (local monotonic check)."""
        return time.monotonic() < self._valid_until

    def confirmed(self, sent_at: float) -> None:
        """Redis confirmed the lock for a command sent at monotonic time ``sent_at``."""
        self._valid_until = sent_at + self.ttl
        self._ensure_keeper()

    def _ensure_keeper(self) -> None:
        if self._keeper is None:
            self._stop.clear()
            self._registry.add(self)
            self._keeper = AsyncBackend.start_background(self._keep)

    def lost(self) -> None:
        """Another holder has the lock."""
        self._valid_until = 0.0

    async def _refresh(self) -> bool:
        sent_at = time.monotonic()
        result = await self._client.call(lock_refresh(self.key, self.token, self.ttl_ms))
        if result == 1:
            self._valid_until = sent_at + self.ttl
            return True
        self.lost()
        return False

    async def refresh(self) -> bool:
        """Take or extend the lock now (and keep it from then on); whether it is ours."""
        if await self._refresh():
            self._ensure_keeper()
            return True
        return False

    async def _keep(self) -> None:
        """Background: refresh every third of the TTL until released, lost or orphaned."""
        while not await self._stop.wait(self.ttl / 3):
            if self._owner() is None:  # the consumer was dropped without cleanup()
                self._keeper = None
                self._registry.discard(self)
                await self._release_key()
                return
            try:
                if not await self._refresh():
                    logger.warning("fluxabee: lost the consumer_single lock %s", self.key)
                    self._keeper = None  # a later take-over starts a new keeper
                    self._registry.discard(self)
                    return
            except BrokerConnectionError:
                # Keep trying; held() turns false by itself once the TTL has passed.
                continue
            except Exception:  # never let the keeper die silently
                logger.exception("fluxabee: refreshing lock %s failed", self.key)

    async def release(self) -> None:
        """Stop refreshing and delete the key if it is still ours."""
        keeper, self._keeper = self._keeper, None
        self._stop.set()
        self._registry.discard(self)
        if keeper is not None:
            await AsyncBackend.join_background(keeper)
        await self._release_key()

    async def _release_key(self) -> None:
        was_held = self._valid_until > 0
        self._valid_until = 0.0
        if was_held:
            try:
                await self._client.call(lock_release(self.key, self.token))
            except BrokerConnectionError:
                logger.warning("fluxabee: could not release lock %s; it expires by TTL", self.key)
