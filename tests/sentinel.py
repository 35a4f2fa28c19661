"""A real Redis Sentinel setup on 127.0.0.1: one master, one replica, one sentinel.

The sentinel watches the master under :data:`MASTER_NAME` with quorum 1 and a short
``down-after-milliseconds``, so ``kill_master()`` + ``wait_failover()`` promotes the
replica within a few seconds. Optional ``master_password`` (``requirepass`` and
``masterauth`` on both data nodes, ``auth-pass`` in the sentinel) and ``sentinel_password``
(the sentinel's own ``requirepass``). The sentinel rewrites its config file, so it gets
a writable one in its own directory. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fluxabee import LocalServer, ServerBinary
from tests.servers import default_binary

#: The name the sentinel monitors the master under.
MASTER_NAME = "mymaster"
#: ``down-after-milliseconds`` while a killed node rejoins (:meth:`SentinelServer.restart`).
REJOIN_DOWN_AFTER_MS = 10_000


class SentinelServer:
    """One master, one replica of it, one sentinel; ``with SentinelServer() as s:``."""

    def __init__(
        self,
        *,
        binary: ServerBinary | str | None = None,
        master_password: str | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.binary = binary if isinstance(binary, ServerBinary) else binary or default_binary()
        self.master_password = master_password
        self.sentinel_password = sentinel_password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        data_args = ["--repl-diskless-sync-delay", "0"]  # a replica syncs at once
        if master_password:
            data_args += ["--requirepass", master_password, "--masterauth", master_password]
        self._data_args = data_args
        #: The first master; after a failover it is the replica (when running).
        self.master = LocalServer(binary=self.binary, extra_args=data_args)
        #: The first replica; after a failover it is the master.
        self.replica = LocalServer(
            binary=self.binary,
            extra_args=[*data_args, "--replicaof", "127.0.0.1", str(self.master.port)],
        )
        #: The sentinel process (``--sentinel``).
        self.sentinel = LocalServer(binary=self.binary, extra_args=["--sentinel"])
        self.sentinel.config_file = self.sentinel.workdir / "sentinel.conf"
        self._killed: LocalServer | None = None
        #: Seconds the last start() took until the sentinel saw master and replica.
        self.startup_seconds = 0.0

    def __repr__(self) -> str:
        return (
            f"<SentinelServer {self.binary.kind} master :{self.master.port} replica "
            f":{self.replica.port} sentinel :{self.sentinel.port}>"
        )

    def _config(self) -> str:
        name, port = MASTER_NAME, self.master.port
        lines = [
            f"sentinel monitor {name} 127.0.0.1 {port} 1",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {name} {self.master_password}")
        if self.sentinel_password:
            lines.append(f"requirepass {self.sentinel_password}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> SentinelServer:
        """Start master, replica (until its link is up), then the sentinel, and wait until
        the sentinel sees the master up and the replica linked."""
        began = time.monotonic()
        try:
            self.master.start()
            self.replica.start()
            self._wait("replica linked", lambda: self._link_up(self.replica), timeout)
            assert self.sentinel.config_file is not None
            self.sentinel.config_file.write_text(self._config())
            self.sentinel.start()
            self._wait("sentinel sees master and replica", self._sentinel_ready, timeout)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except redis.RedisError as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"{self!r}: {what} not within {timeout} s ({last!r})")

    # -- clients -------------------------------------------------------------------------

    def client(self, server: LocalServer) -> redis.Redis:
        """A redis-py client (decoded, no retries) on the master or the replica."""
        return redis.Redis(
            host="127.0.0.1", port=server.port, password=self.master_password,
            decode_responses=True, socket_timeout=2, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip

    def sentinel_client(self) -> redis.Redis:
        """A redis-py client (decoded, no retries) on the sentinel itself."""
        return redis.Redis(
            host="127.0.0.1", port=self.sentinel.port, password=self.sentinel_password,
            decode_responses=True, socket_timeout=2, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """``[("127.0.0.1", sentinel port)]``, for a Sentinel-aware client."""
        return [("127.0.0.1", self.sentinel.port)]

    def _link_up(self, server: LocalServer) -> bool:
        client = self.client(server)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")

    def _sentinel_ready(self) -> bool:
        client = self.sentinel_client()
        try:
            master = client.sentinel_master(MASTER_NAME)
            replicas = client.sentinel_slaves(MASTER_NAME)
        finally:
            client.close()
        linked = [
            r for r in replicas
            if _flags(r) == {"slave"} and r.get("master-link-status") == "ok"
        ]  # fmt: skip
        return _flags(master) == {"master"} and len(linked) == 1

    # -- what the sentinel says, and faults ----------------------------------------------

    def master_address(self) -> tuple[str, int]:
        """``(host, port)`` of the master as the sentinel reports it."""
        client = self.sentinel_client()
        try:
            host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        finally:
            client.close()
        return str(host), int(port)

    def current_master(self) -> LocalServer:
        """The data node the sentinel names as master."""
        _, port = self.master_address()
        return self.master if port == self.master.port else self.replica

    def kill_master(self) -> LocalServer:
        """SIGKILL the node the sentinel names as master; return it."""
        server = self.current_master()
        self._killed = server
        server.kill()
        return server

    def wait_failover(
        self, old_master: LocalServer | None = None, timeout: float = 30.0
    ) -> tuple[str, int]:
        """Wait until the sentinel names the other data node than ``old_master`` (default:
        the one :meth:`kill_master` killed) and that node says ROLE master; return its
        address."""
        old = old_master or self._killed or self.current_master()
        old_port = old.port
        new = self.replica if old is self.master else self.master

        def promoted() -> bool:
            if self.master_address()[1] != new.port:
                return False
            client = self.client(new)
            try:
                return bool(client.execute_command("ROLE")[0] == "master")
            finally:
                client.close()

        self._wait(f"failover from :{old_port} to :{new.port}", promoted, timeout)
        return "127.0.0.1", new.port

    def restart(self, server: LocalServer, timeout: float = 30.0) -> None:
        """Start a killed data node again as a replica of the current master (what the
        sentinel would tell it, only sooner) and wait until the sentinel sees it linked."""
        host, port = self.master_address()
        # The failover under test is over. The sentinel's short down-after (1 s) would
        # take a stall of the new master on a loaded machine for a death and fail back to
        # the node that is rejoining (seen in CI: config-epoch 2, the old master master
        # again), so the rejoin gets a wider margin.
        client = self.sentinel_client()
        try:
            margin = max(self.down_after_ms, REJOIN_DOWN_AFTER_MS)
            client.sentinel_set(MASTER_NAME, "down-after-milliseconds", str(margin))
        finally:
            client.close()
        if port != server.port:
            server.extra_args = [*self._data_args, "--replicaof", host, str(port)]
        server.start()
        self._wait(
            f"node :{server.port} linked as a replica",
            lambda: self._link_up(server) and self._sentinel_ready(),
            timeout,
        )

    def close(self) -> None:
        """Stop all three processes and remove their directories."""
        for server in (self.sentinel, self.replica, self.master):
            server.close()

    def __enter__(self) -> SentinelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _flags(state: dict[str, object]) -> set[str]:
    """The ``flags`` of a SENTINEL MASTER / REPLICAS entry as a set (RESP2 or RESP3)."""
    flags = state.get("flags", "")
    return set(flags) if isinstance(flags, set) else set(str(flags).split(","))
