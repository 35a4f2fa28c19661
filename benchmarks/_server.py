"""Throwaway ``redis-server`` for benchmarks.

``run_server()`` starts ``redis-server`` (from PATH) on a free 127.0.0.1 port,
without persistence (``--save "" --appendonly no``), waits until it answers
PING, yields its URL and shuts it down at the end. Never point the benchmark at a
shared server: ``flush`` refuses anything that is not on the loopback interface.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import redis

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ping(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.02)
        return False
    finally:
        client.close()


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # SIGTERM: redis-server exits cleanly (no save configured)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextmanager
def run_server(
    executable: str = "redis-server",
    startup_timeout: float = 10.0,
    attempts: int = 3,
) -> Iterator[str]:
    """Start a throwaway redis-server on a free loopback port and yield its URL."""
    binary = shutil.which(executable)
    if binary is None:
        msg = f"{executable!r} not found on PATH"
        raise RuntimeError(msg)
    with tempfile.TemporaryDirectory(prefix="fluxabee-bench-redis-") as workdir:
        last_error = "not started"
        log_path = os.path.join(workdir, "redis.log")
        for _ in range(attempts):
            port = _free_port()
            url = f"redis://127.0.0.1:{port}/0"
            options = {
                "port": str(port),
                "bind": "127.0.0.1",
                "save": "",
                "appendonly": "no",
                "dir": workdir,
                "daemonize": "no",
                "loglevel": "warning",
                "logfile": log_path,
            }
            argv = [binary]
            for key, value in options.items():
                argv += [f"--{key}", value]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if _wait_ping(url, proc, startup_timeout):
                    break
                last_error = f"redis-server on port {port} did not answer PING: {_tail(log_path)}"
            except BaseException:
                _stop(proc)
                raise
            _stop(proc)  # lost the port race or too slow: retry on another port
        else:
            raise RuntimeError(last_error)
        try:
            yield url
        finally:
            _stop(proc)


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in _LOOPBACK:
        msg = f"refusing to touch a non-loopback Redis: {url!r}"
        raise ValueError(msg)


def flush(url: str) -> None:
    """FLUSHALL the (loopback, benchmark-owned) server at ``url``."""
    _check_loopback(url)
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()
