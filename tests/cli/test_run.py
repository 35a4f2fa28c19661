"""``fluxabee run module:app``: an App's handlers run by the real console script, fed by
this (second) process; follow-ups across a ``kill -9``; ``--processes`` supervision;
``/healthz`` and ``/readyz``."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import redis

import fluxabee
from fluxabee._localserver import free_port
from tests.cli.conftest import Running, cli_env, run_cli

APPS = """
import dataclasses
import os
import signal

import fluxabee
from fluxabee import App, Config, Observer, Stream


@dataclasses.dataclass
class Order:
    id: int
    customer: str


config = Config.from_url(
    os.environ["APP_REDIS_URL"],
    streams=[Stream("orders", groups=("billing", "ledger")), "audit", "done"],
)


class KillAfterHandled(Observer):
    \"\"\"kill -9 this process once a billing handler returned (its follow-up flushed),
    before the window acks its event.\"\"\"

    def handled(self, batch):
        if os.environ.get("KILL_AFTER_HANDLED") and batch.group == "billing":
            os.kill(os.getpid(), signal.SIGKILL)


app = App(config, observers=[KillAfterHandled()])
MIN_IDLE = float(os.environ.get("APP_MIN_IDLE", "60"))


@app.consumer("orders", group="billing", concurrency=20, key="customer", min_idle=MIN_IDLE)
async def bill(order: Order, event: fluxabee.AsyncEvent) -> None:
    app.publish(
        "done",
        {"by": "bill", "id": order.id, "type": type(order).__name__,
         "delivery": event.delivery_count},
    )


@app.consumer("orders", group="ledger", single=True)
async def ledger(order: Order) -> None:
    app.publish("done", {"by": "ledger", "id": order.id, "type": type(order).__name__})


@app.consumer("audit")
def audit(values: list[int]) -> None:
    app.publish("done", {"by": "audit", "id": values[0], "type": type(values).__name__})


many = App(Config.from_url(os.environ["APP_REDIS_URL"], streams=["work", "done"]))


@many.consumer("work", concurrency=20, min_idle=MIN_IDLE)
def work(number: int) -> None:
    many.publish("done", number)
"""


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    (tmp_path / "apps.py").write_text(textwrap.dedent(APPS))
    return tmp_path


def _until(condition: Callable[[], object], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def _done(rclient: redis.Redis) -> list[dict[str, object]]:
    return [msgpack.unpackb(f[b"s"]) for _, f in rclient.xrange("done")]


def _publish(url: str, stream: str, bodies: list[object], **meta: str) -> None:
    config = fluxabee.Config.from_url(url, streams=[stream])
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for body in bodies:
            broker.publish(stream, body, **meta)
        broker.flush()


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_app_handles_what_a_second_process_publishes_and_answers_probes(
    apps: Path, redis_url: str, rclient: redis.Redis, background: Callable[..., Running]
) -> None:
    port, metrics = free_port(), free_port()
    env = cli_env(APP_REDIS_URL=redis_url)
    run = background(
        "run", "apps:app", "--health-port", str(port), "--metrics-port", str(metrics),
        "--metrics-address", "127.0.0.1", env=env, cwd=str(apps),
    )  # fmt: skip
    run.wait_line(lambda line: "3 handlers" in line, "stderr")
    _until(lambda: _get(port, "/healthz") == 200)
    assert _get(port, "/readyz") == 200
    assert _get(port, "/nothing") == 404
    config = fluxabee.Config.from_url(
        redis_url, streams=[fluxabee.Stream("orders", groups=("billing", "ledger")), "audit"]
    )
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(30):
            broker.publish("orders", {"id": i, "customer": f"c{i % 4}"}, customer=f"c{i % 4}")
            broker.publish("audit", [i, i + 1])
        broker.flush()
    _until(lambda: rclient.xlen("done") >= 90)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    # Acks follow the follow-ups' flush: wait for the last ones rather than race them.
    _until(lambda: 'fluxabee_acked_total{group="ledger",stream="orders"} 30.0' in scrape())
    code, _, err = run.stop(signal.SIGTERM)
    assert code == 0, err
    done = _done(rclient)
    for by, kind in (("bill", "Order"), ("ledger", "Order"), ("audit", "list")):
        mine = [d for d in done if d["by"] == by]
        assert sorted(d["id"] for d in mine) == list(range(30)), by
        assert {d["type"] for d in mine} == {kind}
    assert [d["id"] for d in done if d["by"] == "ledger"] == list(range(30))  # single: in order


def test_follow_ups_survive_a_kill_9_after_the_handler_returned(
    apps: Path, redis_url: str, rclient: redis.Redis, background: Callable[..., Running]
) -> None:
    env = cli_env(APP_REDIS_URL=redis_url, KILL_AFTER_HANDLED="1", APP_MIN_IDLE="1")
    doomed = background("run", "apps:app", env=env, cwd=str(apps))
    doomed.wait_line(lambda line: "3 handlers" in line, "stderr")
    _publish(redis_url, "orders", [{"id": 7, "customer": "a"}], customer="a")
    assert doomed.process.wait(40) == -signal.SIGKILL
    # The follow-up is in its stream; the order was never acked.
    assert [d["id"] for d in _done(rclient) if d["by"] == "bill"] == [7]
    assert rclient.xpending("orders", "billing")["pending"] == 1
    env = cli_env(APP_REDIS_URL=redis_url, APP_MIN_IDLE="1")
    again = background("run", "apps:app", env=env, cwd=str(apps))
    _until(lambda: len([d for d in _done(rclient) if d["by"] == "bill"]) == 2)
    assert again.stop(signal.SIGTERM)[0] == 0
    bills = [d for d in _done(rclient) if d["by"] == "bill"]
    assert [(d["id"], d["delivery"]) for d in bills] == [(7, 1), (7, 2)]  # handed over again
    assert rclient.xpending("orders", "billing")["pending"] == 0


def test_processes_3_handle_10000_events_restart_a_killed_worker_and_stop_on_sigterm(
    apps: Path, redis_url: str, rclient: redis.Redis, background: Callable[..., Running]
) -> None:
    port = free_port()
    env = cli_env(APP_REDIS_URL=redis_url, APP_MIN_IDLE="2")
    run = background(
        "run", "apps:many", "--processes", "3", "--health-port", str(port),
        env=env, cwd=str(apps),
    )  # fmt: skip
    pids = set()
    for _ in range(3):
        line = run.wait_line(lambda line: "started (pid" in line, "stderr")
        pids.add(int(line.rsplit("pid ", 1)[1].rstrip(")")))
    _until(lambda: _get(port, "/healthz") == 200)
    _publish(redis_url, "work", list(range(10_000)))
    _until(lambda: rclient.xlen("done") >= 1_000)
    victim = sorted(pids)[1]
    os.kill(victim, signal.SIGKILL)
    run.wait_line(lambda line: f"(pid {victim}) killed by SIGKILL" in line, "stderr")
    run.wait_line(lambda line: "started (pid" in line, "stderr")
    _until(lambda: len(set(_done(rclient))) == 10_000, timeout=50)
    _until(lambda: _get(port, "/healthz") == 200)
    assert _get(port, "/readyz") == 200
    # Worker i reads as HOST-PID-i: the restarted worker took its predecessor's name (and
    # its pending list, at once), so the group knows three names, not four.
    names = {c["name"].decode() for c in rclient.xinfo_consumers("work", "consumer_group")}
    supervisor = run.process.pid
    assert names == {f"{socket.gethostname()}-{supervisor}-{i}" for i in range(3)}, names
    code, _, err = run.stop(signal.SIGTERM)
    assert code == 0, err
    assert "every worker stopped" in err
    assert sorted(set(_done(rclient))) == list(range(10_000))  # none lost (a few doubled)


def test_run_usage_errors(apps: Path, redis_url: str) -> None:
    env = cli_env(APP_REDIS_URL=redis_url)
    for args in (
        ["run", "apps"],
        ["run", "apps:nothing"],
        ["run", "nosuchmodule:app"],
        ["run", "apps:many", "--name", "two words"],
    ):
        result = run_cli(*args, env=env, cwd=str(apps))
        assert result.returncode == 2, result.stderr


def test_help_lists_run_and_asyncapi() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "asyncapi"):
        assert f"  {command} " in result.stdout, command
