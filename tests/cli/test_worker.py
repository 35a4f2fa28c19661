"""``fluxabee worker``: a handler from a module, stopped gracefully by SIGTERM and SIGINT,
with Prometheus metrics served on request."""

from __future__ import annotations

import signal
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import fluxabee
from fluxabee._localserver import free_port
from tests.cli.conftest import Running, cli_env, run_cli

STREAM = "test-stream"

HANDLERS = """
import asyncio
import time

def handle(events):
    for event in events:
        print("handled", event.id, event.body, flush=True)

async def ahandle(events):
    for event in events:
        await asyncio.sleep(0)
        print("ahandled", event.id, flush=True)

def slow(events):
    print("batch of", len(events), flush=True)
    time.sleep(1.0)
    print("batch done", flush=True)

def fails(events):
    raise ValueError("nope")
"""


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    """A directory with ``handlers.py`` (the worker runs there)."""
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    return tmp_path


def _publish(config: fluxabee.Config, count: int) -> list[str]:
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for number in range(count):
            broker.publish(STREAM, {"n": number})
        return broker.flush()


def _until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_handles_and_exits_0_on_a_signal(
    sig: int,
    redis_url: str,
    handlers: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
    rclient: redis.Redis,
) -> None:
    worker = background("worker", "handlers:handle", "--stream", STREAM, "--block", "200ms",
                        env=cli_env(REDIS_URL=redis_url), cwd=str(handlers))  # fmt: skip
    worker.wait_line(lambda line: "fluxabee worker: consuming test-stream as consumer-" in line,
                     which="stderr")  # fmt: skip
    ids = _publish(make_config(), 3)
    for entry_id in ids:
        worker.wait_line(lambda line, entry_id=entry_id: line.startswith(f"handled {entry_id}"))
    _until(lambda: rclient.xlen(STREAM) == 0)
    code, _, err = worker.stop(sig)
    assert code == 0, err
    assert err.splitlines()[-1] == "fluxabee worker: stopped after 3 events acked"


def test_a_stop_finishes_and_acks_the_batch_in_hand(
    redis_url: str,
    handlers: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
    rclient: redis.Redis,
) -> None:
    # published before the worker starts, so its first read takes all four (a worker
    # blocked in XREADGROUP is woken by the first XADD of a flush and may take just that)
    _publish(make_config(), 4)
    worker = background("worker", "handlers:slow", "--stream", STREAM, "--block", "200ms",
                        env=cli_env(REDIS_URL=redis_url), cwd=str(handlers))  # fmt: skip
    assert worker.wait_line(lambda line: line.startswith("batch of")) == "batch of 4"
    code, out, err = worker.stop(signal.SIGTERM)  # in the middle of the handler's sleep
    assert code == 0, err
    assert out == "batch done"
    assert rclient.xlen(STREAM) == 0  # acked, and deleted
    assert rclient.xpending(STREAM, "consumer_group")["pending"] == 0


def test_async_handler_and_single_consumer(
    redis_url: str,
    handlers: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
) -> None:
    worker = background("worker", "handlers:ahandle", "--stream", STREAM, "--single",
                        "--block", "200ms", env=cli_env(REDIS_URL=redis_url),
                        cwd=str(handlers))  # fmt: skip
    worker.wait_line(lambda line: "as consumer-single" in line, which="stderr")
    ids = _publish(make_config(), 2)
    worker.wait_line(lambda line: line == f"ahandled {ids[-1]}")
    code, _, err = worker.stop(signal.SIGINT)
    assert code == 0, err
    assert [line for line in worker.lines["stdout"] if line] == [f"ahandled {i}" for i in ids]


def test_worker_serves_prometheus_metrics(
    redis_url: str,
    handlers: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
) -> None:
    port = free_port()
    worker = background("worker", "handlers:fails", "--stream", STREAM, "--block", "200ms",
                        "--max-deliveries", "2", "--metrics-port", str(port),
                        "--metrics-address", "127.0.0.1", "--log-level", "ERROR",
                        env=cli_env(REDIS_URL=redis_url),
                        cwd=str(handlers))  # fmt: skip
    worker.wait_line(lambda line: f"metrics on http://127.0.0.1:{port}/metrics" in line,
                     which="stderr")  # fmt: skip
    _publish(make_config(), 1)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    labels = f'group="consumer_group",stream="{STREAM}"'
    _until(lambda: f"fluxabee_dead_lettered_total{{{labels}}} 1.0" in scrape(), timeout=30)
    text = scrape()
    assert f"fluxabee_consumed_total{{{labels}}} 2.0" in text
    assert f"fluxabee_failed_total{{{labels}}} 2.0" in text
    assert f'fluxabee_stream_dead_letters{{stream="{STREAM}"}} 1.0' in text
    assert "fluxabee_statistics_up 1.0" in text
    assert worker.stop(signal.SIGTERM)[0] == 0


def test_worker_usage_errors(handlers: Path) -> None:
    missing = run_cli("worker", "nowhere:handle", "--stream", "s", cwd=handlers)
    assert missing.returncode == 2 and "cannot import 'nowhere'" in missing.stderr
    no_stream = run_cli("worker", "handlers:handle", cwd=handlers)
    assert no_stream.returncode == 2 and "--stream" in no_stream.stderr
    assert run_cli("worker", "handlers", "--stream", "s", cwd=handlers).returncode == 2
    no_attr = run_cli("worker", "handlers:nothing", "--stream", "s", cwd=handlers)
    assert no_attr.returncode == 2 and "no callable 'nothing'" in no_attr.stderr
