"""The invariant of fan-out: no entry leaves a stream before every declared group is done
with it. Used by the fan-out tests of both APIs (it talks to Redis with redis-py).

A :class:`RetentionChecker` records every ID published and every ID each group's handler
handled (successfully: recorded only when the handler is about to return normally), and
reads the dead letters for the IDs each group gave up on. :meth:`check` (call it as often
as you like, from handlers too) fails when an entry the test published is gone from the
stream while some declared group has neither handled nor dead-lettered it.
:meth:`complete` also asserts that every group got every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis

from fluxabee._keys import dead_letter_key


class RetentionChecker:
    """Watches one stream for entries removed before every declared group acked them."""

    def __init__(self, client: redis.Redis, stream: str, groups: Sequence[str]) -> None:
        self.client = client
        self.stream = stream
        self.groups = tuple(groups)
        self.published: list[str] = []
        self.handled: dict[str, set[str]] = {g: set() for g in self.groups}
        #: How many checks ran, so a test can tell the checker really looked.
        self.checks = 0

    def add(self, ids: Iterable[str]) -> None:
        """Record IDs the test published (``flush`` / ``publish_now`` results)."""
        self.published.extend(ids)

    def done(self, group: str, events: Iterable[Any]) -> None:
        """Record events ``group``'s handler handled (call it just before it returns)."""
        self.handled[group].update(e.id for e in events)

    def dead(self) -> dict[str, set[str]]:
        """Source IDs in the dead letters, per group that gave up on them."""
        out: dict[str, set[str]] = {g: set() for g in self.groups}
        for _, fields in self.client.xrange(dead_letter_key(self.stream)):
            group = fields.get(b"fluxabee-group", b"").decode()
            source = fields.get(b"fluxabee-source-id", b"").decode()
            if group in out:
                out[group].add(source)
        return out

    def check(self) -> None:
        """Fail if a published entry left the stream before every declared group was done."""
        self.checks += 1
        present = {i.decode() for i, _ in self.client.xrange(self.stream)}
        dead = self.dead()
        for entry_id in self.published:
            if entry_id in present:
                continue
            missing = [
                g
                for g in self.groups
                if entry_id not in self.handled[g] and entry_id not in dead[g]
            ]
            assert not missing, (
                f"entry {entry_id} of {self.stream} was removed before {missing} acked it"
            )

    def complete(self) -> None:
        """:meth:`check`, and every group handled (or dead-lettered) every published event."""
        self.check()
        dead = self.dead()
        for group in self.groups:
            missed = [i for i in self.published if i not in self.handled[group] | dead[group]]
            assert not missed, f"group {group} never got {missed[:5]} ({len(missed)} events)"
