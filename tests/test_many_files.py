"""The sync API in a process with 1,024 or more open files (issue 14, item 4).

``select.select`` raises for a descriptor of 1,024 or above; the idle check took that raise
for "stale" and opened a new connection per command. The scenario runs in a subprocess
that opens 1,100 files first, so the test suite's own process is unaffected.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, resource, sys
    import redis
    from fluxabee import Config, Engine, RedisPool

    url = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    admin = redis.Redis.from_url(url)
    before = int(admin.info("stats")["total_connections_received"])
    config = Config(redis_pools=[RedisPool(uri=url, streams=["s"])])
    with Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(200):
            broker.publish_now("s", n)
        fds = [c._stream._sock.fileno() for c in engine._clients.client("default")._idle]
    opened = int(admin.info("stats")["total_connections_received"]) - before
    print(opened, min(fds), admin.xlen("s"))
    """
)


def test_publish_now_reuses_its_connection_in_a_process_with_many_open_files(
    redis_url: str,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, redis_url],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    opened, fd, length = map(int, done.stdout.split())
    assert fd >= 1024  # the scenario really ran above select()'s limit
    assert length == 200
    assert opened == 1  # one connection for 200 commands (200 before the fix)
