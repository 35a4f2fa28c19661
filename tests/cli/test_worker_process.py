"""``fluxabee worker --concurrency N --key FIELD``: a one-event handler run by ``process``;
SIGTERM lets the events in flight finish and hands back the rest to the next claim."""

from __future__ import annotations

import re
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import redis

import fluxabee
from tests.cli.conftest import Running, cli_env

STREAM = "test-stream"

HANDLERS = """
import sys
import time

def one(event):
    sys.stdout.write(f"start {event.body}\\n")  # one write: threads never split a line
    sys.stdout.flush()
    time.sleep(0.5)
    sys.stdout.write(f"done {event.body}\\n")
    sys.stdout.flush()
"""


def test_a_sigtermed_worker_finishes_its_events_and_hands_back_the_rest(
    redis_url: str,
    tmp_path: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
    rclient: redis.Redis,
) -> None:
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    config = make_config()
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(30):
            broker.publish(STREAM, n, meta={"k": str(n % 10)})
        broker.flush()
    worker = background("worker", "handlers:one", "--stream", STREAM, "--concurrency", "20",
                        "--key", "k", "--block", "200ms", env=cli_env(REDIS_URL=redis_url),
                        cwd=str(tmp_path))  # fmt: skip
    starts: list[int] = []
    while len(starts) < 10:
        line = worker.wait_line(lambda line: "start" in line)
        starts += [int(n) for n in re.findall(r"start (\d+)", line)]
    assert sorted(starts) == list(range(10))
    code, out, err = worker.stop(signal.SIGTERM)  # ten in the handler, ten queued behind them
    assert code == 0, err
    assert sorted(int(n) for n in re.findall(r"done (\d+)", out)) == list(range(10))
    assert "stopped after 10 events acked" in err.splitlines()[-1]
    pending = rclient.xpending_range(STREAM, "consumer_group", "-", "+", 100)
    assert len(pending) == 10  # read, never started, handed back: idle far past min_idle
    assert min(p["time_since_delivered"] for p in pending) > 4_000
    with fluxabee.Engine(config) as engine:
        consumer = engine.new_context().event_broker().consumer_many(STREAM, min_idle=4.0)
        seen: list[int] = []

        def handler(event: fluxabee.Event) -> None:
            seen.append(event.body)
            if len(seen) == 20:
                consumer.stop()

        assert consumer.process(handler, concurrency=20, key="k", block=0.05) == 20
    assert sorted(seen) == list(range(10, 30))
    for key in range(10):
        mine = [n for n in seen if n % 10 == key]
        assert mine == sorted(mine)
