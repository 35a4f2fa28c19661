"""Throwaway server for benchmarks, through ``fluxabee.LocalServer``.

``run_server()`` starts the server ``fluxabee.find_server_binary()`` picks (``redis-server``
on PATH first; ``benchmarks/run.sh`` insists on it, so figures compare with earlier runs)
on a free 127.0.0.1 port, without persistence (``--save "" --appendonly no``), waits until
it answers PING, yields its URL and stops it at the end. Never point the benchmark at a
shared server: ``flush`` refuses anything that is not on the loopback interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import redis

from fluxabee import LocalServer

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@contextmanager
def run_server(binary: str | None = None, startup_timeout: float = 10.0) -> Iterator[str]:
    """Start a throwaway server on a free loopback port and yield its URL."""
    server = LocalServer(
        binary=binary, extra_args=["--loglevel", "warning"], startup_timeout=startup_timeout
    )
    with server:
        yield server.url


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
