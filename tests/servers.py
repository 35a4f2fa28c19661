"""Real ``redis-server`` processes for the tests, on free 127.0.0.1 ports.

No mocks and no shared server: each :class:`RedisServer` is a process this suite starts,
waits for (PING), and stops; fault tests ``kill()`` (SIGKILL) and ``restart()`` it on the
same port and directory, so an AOF survives.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis


def redis_server_binary() -> str:
    """Path of ``redis-server`` on PATH (CI installs it when missing)."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not on PATH: apt-get install -y redis-server")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 (``--save "" --appendonly no`` by default)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="fluxabee-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self.workdir / "redis.log"

    def args(self) -> list[str]:
        """The command line of the server."""
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--dir", str(self.workdir),
            "--logfile", str(self.logfile),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        self.process = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"redis-server exited: {err}\n{self._log_tail()}")
                try:
                    if client.ping():
                        return self
                except redis.exceptions.AuthenticationError:
                    return self  # it answers: it just wants a password (--requirepass)
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer PING\n{self._log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.logfile.read_text().splitlines()[-15:])
        except OSError:
            return "(no log)"

    def _wait(self) -> None:
        if self.process is not None:
            self.process.wait(timeout=30)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no save (AOF with fsync always survives)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self._wait()

    def stop(self) -> None:
        """SIGTERM the server and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
        self._wait()

    def restart(self, *, kill: bool = True) -> RedisServer:
        """Kill (or stop) and start again on the same port and directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def client(self) -> redis.Redis:
        """A plain redis-py client for test set-up and assertions."""
        return redis.Redis(host="127.0.0.1", port=self.port)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
