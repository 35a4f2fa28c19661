"""A real Redis Cluster on 127.0.0.1 for the tests, formed without redis-cli.

``ClusterServer(masters=3, replicas=1)`` starts ``masters * (1 + replicas)`` nodes
(``--cluster-enabled yes``, a short ``--cluster-node-timeout`` for fast failover), gives
each master its share of the 16384 slots (CLUSTER ADDSLOTS), introduces the nodes to each
other (CLUSTER MEET), attaches the replicas (CLUSTER REPLICATE), and waits until every node
reports ``cluster_state:ok``, agrees on the slot map and every replica's link is up.

Fault tests ``kill`` / ``pause`` / ``restart`` nodes and ``wait_failover``; resharding one
slot in steps (``begin_migration``, ``migrate_keys``, ``finish_migration``) lets a test
see ``ASK`` in the middle and ``MOVED`` after. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from fluxabee import LocalServer, ServerBinary
from tests.servers import default_binary, free_port

SLOTS = 16384
#: One slot owner as seen by one node: (first slot, last slot, node id).
SlotRange = tuple[int, int, str]


def free_node_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _admin(port: int) -> redis.Redis:
    """A redis-py client that never retries (a dead node must fail fast)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass(eq=False)
class Node:
    """One cluster node: its process, its port and its cluster node ID (kept across restarts)."""

    server: LocalServer
    id: str = ""
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        """The node's client port (its cluster bus is ``port + 10000``)."""
        return self.server.port

    @property
    def alive(self) -> bool:
        """Whether the process runs and is not paused."""
        return self.server.running and not self.server.paused

    def execute(self, *args: object) -> object:
        """Run one command on this node (decoded replies); raises redis-py errors."""
        if self._client is None:
            self._client = _admin(self.port)
        try:
            return self._client.execute_command(*args)
        except redis.ConnectionError:
            self._client.close()
            self._client = None
            raise

    @property
    def role(self) -> str:
        """``"master"``, ``"replica"``, or ``"down"`` (not running, paused or not answering)."""
        if not self.alive:
            return "down"
        try:
            reply = self.execute("ROLE")
        except redis.RedisError:
            return "down"
        assert isinstance(reply, list)
        return "master" if reply[0] == "master" else "replica"

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` / ``CLUSTER INFO`` style ``key:value`` lines, as a dict."""
        text = self.execute("CLUSTER", "INFO") if section == "cluster" else None
        if text is None:
            reply = self.execute("INFO", section)
            assert isinstance(reply, dict)
            return {k: str(v) for k, v in reply.items()}
        assert isinstance(text, str)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def view(self) -> list[dict[str, object]]:
        """This node's CLUSTER NODES, parsed: id, port, flags, master, link, slots."""
        reply = self.execute("CLUSTER", "NODES")
        text = reply if isinstance(reply, str) else ""
        nodes = []
        for line in text.splitlines():
            parts = line.split()
            slots = []
            for item in parts[8:]:
                if item.startswith("["):
                    continue  # a migration in progress: [slot->-id] / [slot-<-id]
                first, _, last = item.partition("-")
                slots.append((int(first), int(last or first)))
            address = parts[1].split(",")[0].split("@")[0]
            nodes.append(
                {
                    "id": parts[0],
                    "port": int(address.rsplit(":", 1)[1]),
                    "flags": set(parts[2].split(",")),
                    "master": parts[3],
                    "link": parts[7],
                    "slots": slots,
                }
            )
        return nodes

    def close(self) -> None:
        """Close the admin connection and the process's directory."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.close()


class ClusterServer:
    """``masters`` masters with ``replicas`` replicas each, on free 127.0.0.1 ports.

    ``with ClusterServer(masters=3) as cluster:`` forms it and tears everything down.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 0,
        *,
        binary: ServerBinary | str | None = None,
        node_timeout_ms: int = 2000,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.masters_count = masters
        self.replicas_count = replicas
        self.binary = binary if isinstance(binary, ServerBinary) else binary or default_binary()
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[Node] = []
        for _ in range(masters * (1 + replicas)):
            server = LocalServer(binary=self.binary, port=free_node_port(), extra_args=extra_args)
            server.extra_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(server.workdir / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms),
                "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
                *server.extra_args,
            ]  # fmt: skip
            self.nodes.append(Node(server))
        self._migrations: dict[int, tuple[Node, Node]] = {}
        self._held: dict[str, list[tuple[int, int]]] = {}
        #: Seconds the last start() took to form the cluster.
        self.startup_seconds = 0.0

    def __repr__(self) -> str:
        return f"<ClusterServer {self.binary.kind} {[n.port for n in self.nodes]}>"

    # -- forming -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> ClusterServer:
        """Start every node, form the cluster, wait until it is healthy."""
        began = time.monotonic()
        try:
            for node in self.nodes:
                node.server.start()
            for node in self.nodes:
                node.id = str(node.execute("CLUSTER", "MYID"))
            share = SLOTS // self.masters_count
            for i, master in enumerate(self.nodes[: self.masters_count]):
                last = SLOTS - 1 if i == self.masters_count - 1 else (i + 1) * share - 1
                master.execute("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                master.execute("CLUSTER", "ADDSLOTS", *range(i * share, last + 1))
            for node in self.nodes[1:]:
                self.nodes[0].execute("CLUSTER", "MEET", "127.0.0.1", node.port)
            total = len(self.nodes)
            self._wait(
                "every node knows every other",
                lambda: all(len(n.view()) == total for n in self.nodes),
                timeout,
            )
            for j, replica in enumerate(self.nodes[self.masters_count :]):
                master = self.nodes[j % self.masters_count]
                replica.execute("CLUSTER", "REPLICATE", master.id)
            self.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except redis.RedisError as exc:
                last_error = exc
            time.sleep(0.05)
        raise TimeoutError(f"cluster {self!r}: {what} not within {timeout} s ({last_error!r})")

    def _slot_view(self, node: Node) -> list[SlotRange]:
        return sorted(
            (first, last, str(entry["id"]))
            for entry in node.view()
            for first, last in entry["slots"]  # type: ignore[attr-defined]
        )

    def healthy(self) -> bool:
        """Every running node says ``cluster_state:ok``, sees the same slot map whose owners
        all run, sees no running node as failing, and every replica's link is up."""
        alive = [n for n in self.nodes if n.alive]
        alive_ids = {n.id for n in alive}
        views = []
        for node in alive:
            if node.info("cluster").get("cluster_state") != "ok":
                return False
            view = node.view()
            for entry in view:
                flags = entry["flags"]
                assert isinstance(flags, set)
                if entry["id"] in alive_ids and flags & {"fail", "fail?", "handshake", "noaddr"}:
                    return False
            views.append(self._slot_view(node))
            if node.role == "replica" and node.info("replication").get("master_link_status") != (
                "up"
            ):
                return False
        covered = sum(last - first + 1 for first, last, _ in views[0]) if views else 0
        return (
            covered == SLOTS
            and all(v == views[0] for v in views)
            and all(owner in alive_ids for _, _, owner in views[0])
        )

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until :meth:`healthy`; ``TimeoutError`` after ``timeout`` seconds."""
        self._wait("healthy (state ok, one slot map, replicas linked)", self.healthy, timeout)

    # -- looking -------------------------------------------------------------------------

    def node(self, id_or_port: str | int) -> Node:
        """The node with this ID or port."""
        for node in self.nodes:
            if id_or_port in (node.id, node.port):
                return node
        raise KeyError(id_or_port)

    def masters(self) -> list[Node]:
        """The nodes that are masters now (roles change on failover)."""
        return [n for n in self.nodes if n.role == "master"]

    def replicas(self) -> list[Node]:
        """The nodes that are replicas now."""
        return [n for n in self.nodes if n.role == "replica"]

    def _any_alive(self) -> Node:
        return next(n for n in self.nodes if n.alive)

    def keyslot(self, key: str) -> int:
        """The hash slot of ``key`` (CLUSTER KEYSLOT)."""
        return int(self._any_alive().execute("CLUSTER", "KEYSLOT", key))  # type: ignore[call-overload]

    def master_for_slot(self, slot: int) -> Node:
        """The node that owns ``slot``, as a running node sees it."""
        for first, last, owner in self._slot_view(self._any_alive()):
            if first <= slot <= last:
                return self.node(owner)
        raise KeyError(slot)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for a cluster client."""
        return [("127.0.0.1", n.port) for n in self.nodes]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port of the first node>/0``."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def spread(self, count: int, prefix: str = "orders") -> list[str]:
        """Stream names ``<prefix>-N`` whose slots ``count`` different masters serve."""
        names: list[str] = []
        owners: set[int] = set()
        for i in range(1000):
            name = f"{prefix}-{i}"
            owner = self.master_for_slot(self.keyslot(name)).port
            if owner not in owners:
                owners.add(owner)
                names.append(name)
                if len(names) == count:
                    return names
        raise AssertionError("the cluster's slots are not spread over enough masters")

    def cluster_client(self, **kwargs: object) -> redis.RedisCluster:
        """redis-py's RedisCluster on these nodes (close it after use)."""
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in self.startup_nodes]
        return redis.RedisCluster(startup_nodes=nodes, **kwargs)  # type: ignore[arg-type]

    def flushall(self) -> None:
        """FLUSHALL on every master."""
        for node in self.masters():
            node.execute("FLUSHALL")

    # -- faults --------------------------------------------------------------------------

    def _remember_slots(self, node: Node) -> None:
        others = [n for n in self.nodes if n.alive and n is not node]
        if others:
            view = self._slot_view(others[0])
            self._held[node.id] = [(a, b) for a, b, owner in view if owner == node.id]

    def kill(self, node: Node) -> None:
        """SIGKILL one node (its slots are remembered for :meth:`wait_failover`)."""
        self._remember_slots(node)
        node.server.kill()

    def pause(self, node: Node) -> None:
        """SIGSTOP one node (past the node timeout, its replica takes over)."""
        self._remember_slots(node)
        node.server.pause()

    def resume(self, node: Node) -> None:
        """SIGCONT a paused node."""
        node.server.resume()

    def restart(self, node: Node, timeout: float = 30.0) -> None:
        """Start a killed node again (same port, directory, nodes.conf: same ID) and wait
        until the cluster is healthy with it (a failed-over master rejoins as a replica)."""
        node.server.start()
        self.wait_healthy(timeout)

    def heal(self, timeout: float = 30.0) -> None:
        """Resume paused nodes, start killed ones, and wait until the cluster is healthy."""
        for node in self.nodes:
            if node.server.paused:
                node.server.resume()
            if not node.server.running:
                node.server.start()
        self.wait_healthy(timeout)

    def wait_failover(self, old_master: Node, timeout: float = 30.0) -> Node:
        """Wait until another node owns the slots ``old_master`` held when it was killed or
        paused, says ROLE master, and the cluster is healthy; return that node."""
        held = self._held.get(old_master.id) or []
        if not held:
            raise ValueError(f"node {old_master.port} held no slots when it went down")
        first = held[0][0]
        found: list[Node] = []

        def promoted() -> bool:
            views = [self._slot_view(n) for n in self.nodes if n.alive]
            if any(owner == old_master.id for view in views for _, _, owner in view):
                return False
            owner = self.master_for_slot(first)
            if owner is old_master or owner.role != "master" or not self.healthy():
                return False
            found[:] = [owner]
            return True

        self._wait(f"failover away from node {old_master.port}", promoted, timeout)
        return found[0]

    # -- resharding one slot -------------------------------------------------------------

    def begin_migration(self, slot: int, target: Node) -> Node:
        """Mark ``slot`` IMPORTING on ``target`` and MIGRATING on its owner; return the owner.

        From now on the owner answers ``ASK`` for keys of the slot it no longer has.
        """
        source = self.master_for_slot(slot)
        if source is target:
            raise ValueError(f"node {target.port} already owns slot {slot}")
        target.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
        source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id)
        self._migrations[slot] = (source, target)
        return source

    def migrate_keys(self, slot: int, count: int | None = None) -> int:
        """MIGRATE up to ``count`` (default: all) keys of ``slot`` from its source to its
        target (127.0.0.1); return how many moved."""
        source, target = self._migrations[slot]
        moved = 0
        while count is None or moved < count:
            batch = 100 if count is None else min(100, count - moved)
            keys = source.execute("CLUSTER", "GETKEYSINSLOT", slot, batch)
            assert isinstance(keys, list)
            if not keys:
                break
            source.execute("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        return moved

    def finish_migration(self, slot: int, target: Node, timeout: float = 30.0) -> None:
        """Move the slot's remaining keys, then SETSLOT NODE ``target`` on the target, the
        source and every other master, and wait until every node agrees."""
        if slot in self._migrations:
            self.migrate_keys(slot)
            source, _ = self._migrations.pop(slot)
        else:
            source = self.master_for_slot(slot)
        masters = self.masters()
        for node in [target, source, *[m for m in masters if m not in (target, source)]]:
            node.execute("CLUSTER", "SETSLOT", slot, "NODE", target.id)

        def agreed() -> bool:
            return self.healthy() and all(
                any(a <= slot <= b and o == target.id for a, b, o in self._slot_view(n))
                for n in self.nodes
                if n.alive
            )

        self._wait(f"slot {slot} on node {target.port} everywhere", agreed, timeout)

    # -- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> ClusterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
