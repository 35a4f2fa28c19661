"""``fluxabee worker --name NAME``: a restarted worker takes back at once what its killed
predecessor of the same name left pending (issue 14, item 23)."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import fluxabee
from tests.cli.conftest import Running, cli_env, run_cli

STREAM = "test-stream"
GROUP = "consumer_group"


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    """A directory with ``handlers.py`` (the worker runs there)."""
    source = """
    def handle(events):
        for event in events:
            print("handled", event.id, event.delivery_count, flush=True)
    """
    (tmp_path / "handlers.py").write_text(textwrap.dedent(source))
    return tmp_path


def test_a_worker_restarted_with_its_name_takes_back_what_it_left_pending_at_once(
    redis_url: str,
    handlers: Path,
    background: Callable[..., Running],
    make_config: Callable[..., fluxabee.Config],
    rclient: redis.Redis,
) -> None:
    with fluxabee.Engine(make_config()) as engine:
        broker = engine.new_context().event_broker()
        for number in range(3):
            broker.publish(STREAM, number)
        ids = broker.flush()
    # The first worker named pod-7 read the three events and was killed (kill -9).
    rclient.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    rclient.xreadgroup(GROUP, "pod-7", {STREAM: ">"}, count=3)
    worker = background("worker", "handlers:handle", "--stream", STREAM, "--name", "pod-7",
                        "--min-idle", "10m", "--block", "200ms",
                        env=cli_env(REDIS_URL=redis_url), cwd=str(handlers))  # fmt: skip
    worker.wait_line(lambda line: "consuming test-stream as pod-7 " in line, which="stderr")
    for entry_id in ids:  # long before min_idle (10 minutes)
        worker.wait_line(lambda line, entry_id=entry_id: line.startswith(f"handled {entry_id}"))
    code, _, err = worker.stop(signal.SIGTERM)
    assert code == 0, err
    assert rclient.xlen(STREAM) == 0


def test_name_is_refused_with_single_and_when_it_has_whitespace(
    redis_url: str, handlers: Path
) -> None:
    env = cli_env(REDIS_URL=redis_url)
    single = run_cli("worker", "handlers:handle", "--stream", STREAM, "--single",
                     "--name", "pod-7", env=env, cwd=handlers)  # fmt: skip
    assert single.returncode == 2
    assert "--name is for consumer_many workers" in single.stderr
    spaced = run_cli("worker", "handlers:handle", "--stream", STREAM, "--name", "pod 7",
                     env=env, cwd=handlers)  # fmt: skip
    assert spaced.returncode == 2  # a usage error
    assert "name must have no whitespace" in spaced.stderr
