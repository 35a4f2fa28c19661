"""Pure: a Redis Cluster's slot map, what a reply says about it, and where a command goes.

The map comes from ``CLUSTER SHARDS`` (Redis 7+, Valkey) or ``CLUSTER SLOTS`` (6.2), parsed
here from the raw replies; a key goes to the master of its slot (:func:`fluxabee._keys.
key_slot`). The rules of a real Cluster client, each in one place:

- ``MOVED <slot> <host>:<port>``: the slot lives elsewhere for good. The command did not
  run; send it there, update that slot at once and refresh the whole map before the next
  command (a MOVED usually means a failover or a resharding moved more than one slot).
- ``ASK <slot> <host>:<port>``: the slot is being migrated and this key already left. The
  command did not run; send ``ASKING`` then the command to that node, once; the map does
  not change.
- A connection failure or ``CLUSTERDOWN`` / ``TRYAGAIN`` / ``READONLY``: the topology may
  have changed (a failover): refresh the map before the next command.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._keys import SLOTS
from ._replies import text as _text
from .errors import RedisReplyError, RedisUnavailableError

#: Redirects followed for one command before giving up (a map that keeps changing).
MAX_REDIRECTS = 5


class Address(NamedTuple):
    """A node's host and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Redirect:
    """What a MOVED or ASK reply says: the slot, and the node that has it."""

    ask: bool
    slot: int
    address: Address


def redirect_of(reply: Any) -> Redirect | None:
    """The redirect an error reply stands for, or ``None`` (not an error, or another one)."""
    if not isinstance(reply, RedisReplyError) or reply.prefix not in ("MOVED", "ASK"):
        return None
    words = str(reply).split()
    if len(words) < 3:
        return None
    host, _, port = words[2].rpartition(":")
    if not port.isdigit():
        return None
    return Redirect(reply.prefix == "ASK", int(words[1]), Address(host.strip("[]"), int(port)))


def topology_changed(reply: Any) -> bool:
    """Whether an error reply means the map must be asked again (a failover, a reshard)."""
    return isinstance(reply, RedisUnavailableError) or redirect_of(reply) is not None


def _fields(flat: Sequence[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def parse_shards(reply: Any, *, tls: bool = False) -> list[tuple[int, int, Address]]:
    """``CLUSTER SHARDS`` -> (first slot, last slot, master address) ranges.

    A shard's master is the node with ``role master`` (a failed one is skipped); its address
    is its ``endpoint`` (or ``ip``) and ``port`` (``tls-port`` when ``tls``).
    """
    ranges = []
    for shard in reply or ():
        info = _fields(shard)
        slots = [int(s) for s in info.get("slots") or ()]
        master = None
        for raw in info.get("nodes") or ():
            node = _fields(raw)
            if (
                _text(node.get("role", b"")) == "master"
                and _text(node.get("health", b"online")) != "failed"
            ):
                master = node
        if master is None or not slots:
            continue
        host = _text(master.get("endpoint") or master.get("ip") or b"")
        if host in ("", "?"):
            host = _text(master.get("ip", b"127.0.0.1"))
        port: Any = master.get("tls-port") if tls else None
        address = Address(host, int(port or master.get("port", 0)))
        ranges += [(slots[i], slots[i + 1], address) for i in range(0, len(slots) - 1, 2)]
    return ranges


def parse_slots(reply: Any) -> list[tuple[int, int, Address]]:
    """``CLUSTER SLOTS`` (Redis 6.2) -> (first slot, last slot, master address) ranges."""
    return [
        (int(item[0]), int(item[1]), Address(_text(item[2][0]), int(item[2][1])))
        for item in reply or ()
    ]


class SlotMap:
    """Which master serves each of the 16384 slots."""

    __slots__ = ("_owners",)

    def __init__(self, ranges: Iterable[tuple[int, int, Address]] = ()) -> None:
        self._owners: list[Address | None] = [None] * SLOTS
        for first, last, address in ranges:
            for slot in range(max(0, first), min(SLOTS - 1, last) + 1):
                self._owners[slot] = address

    def __len__(self) -> int:
        """How many slots have an owner."""
        return sum(1 for owner in self._owners if owner is not None)

    def owner(self, slot: int) -> Address | None:
        """The master of ``slot`` (``None`` when no node serves it: the cluster is down)."""
        return self._owners[slot]

    def moved(self, slot: int, address: Address) -> None:
        """A MOVED reply: ``slot`` lives on ``address`` now."""
        self._owners[slot] = address

    def nodes(self) -> list[Address]:
        """Every master that serves a slot, in slot order."""
        seen: dict[Address, None] = {}
        for owner in self._owners:
            if owner is not None:
                seen.setdefault(owner)
        return list(seen)

    def group(self, slots: Sequence[int]) -> dict[Address | None, list[int]]:
        """Indexes of ``slots`` by owner, in order (``None``: slots nobody serves)."""
        groups: dict[Address | None, list[int]] = {}
        owners = self._owners
        for index, slot in enumerate(slots):
            groups.setdefault(owners[slot], []).append(index)
        return groups
