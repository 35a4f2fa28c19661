"""What a new user hits on the command line: secrets, exit codes, Ctrl-C, small outputs.

Each runs the real console script in a subprocess against a real server."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from tests.cli.conftest import Running, cli_env, run_cli
from tests.servers import RedisServer


@pytest.mark.parametrize("char", "#/?@:%& ", ids=repr)
def test_no_password_shows_in_the_output_whatever_it_holds(
    char: str, server_factory: Callable[..., RedisServer]
) -> None:
    secret = f"Sup3r{char}S3cr3t"
    server = server_factory(extra_args=["--requirepass", secret])
    encoded = quote(secret, safe="")
    runs = [
        run_cli("--debug", "stats", "s", "--redis", f"redis://me:{secret}@127.0.0.1:1/0"),
        run_cli("--debug", "stats", "s", "--redis", f"redis://me:{encoded}@127.0.0.1:1/0"),
        run_cli("--debug", "stats", "s", "--redis", f"rediss://h:1/0?ssl_password={secret}"),
        run_cli(
            "--debug", "tail", "s", env=cli_env(REDIS_URL=f"redis://:{encoded}x@{server.url[8:]}")
        ),
    ]
    ok = run_cli("stats", "s", "--redis", f"redis://:{encoded}@127.0.0.1:{server.port}/0")
    assert ok.returncode == 0, ok.stderr
    assert f"redis://:***@127.0.0.1:{server.port}/0" in ok.stdout
    assert all(run.returncode in (1, 2) for run in runs)
    for run in [*runs, ok]:
        shown = run.stdout + run.stderr
        assert "Sup3r" not in shown and "S3cr3t" not in shown, shown


def test_bad_input_on_the_command_line_exits_2(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "fluxabee.yaml"
    config.write_text(f"default:\n  redis: {redis_url}\n  streams: [orders]\n")
    env = cli_env(FLUXABEE_CONFIG=str(config))
    group = run_cli("pending", "orders", "--group", "nope", env=env)
    assert (group.returncode, group.stderr) == (
        2,
        "fluxabee: error: group 'nope' is not declared for stream 'orders' "
        "(its groups: 'consumer_group')\n",
    )
    too_big = run_cli("publish", "orders", str(2**64), env=env)
    assert too_big.returncode == 2, too_big.stderr
    assert too_big.stderr.startswith("fluxabee: error: BODY: cannot serialize body (int)")
    lines = tmp_path / "bodies.jsonl"
    lines.write_text(f'{{"ok": 1}}\n\n{{"n": {2**64}}}\n')
    in_file = run_cli("publish", "orders", "--file", str(lines), env=env)
    assert in_file.returncode == 2, in_file.stderr
    assert f"{lines} line 3: cannot serialize body (dict) at n:" in in_file.stderr
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text("{oops\n")
    assert run_cli("publish", "orders", "--file", str(not_json), env=env).returncode == 2
    handler = tmp_path / "handler.py"
    handler.write_text("def handle(events):\n    pass\n")
    worker = run_cli("worker", "handler:handle", "--stream", "orders", "--group", "nope",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert worker.returncode == 2, worker.stderr
    assert "nope" in worker.stderr


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_tail_json_is_strict_json_for_an_infinite_float(redis_url: str) -> None:
    env = cli_env(REDIS_URL=redis_url)
    assert run_cli("publish", "s", '{"x": 1e400, "y": [-1e400]}', env=env).returncode == 0
    tail = run_cli("tail", "s", "--json", env=env)
    assert tail.returncode == 0, tail.stderr
    row = _strict_json(tail.stdout)
    assert isinstance(row, dict)
    assert row["body"] == {"x": "Infinity", "y": ["-Infinity"]}


def test_demo_on_a_given_server_says_which_one_with_the_password_masked(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory(extra_args=["--requirepass", "s3cret#1"])
    url = f"redis://:s3cret%231@127.0.0.1:{server.port}/0"
    demo = run_cli("demo", "--events", "30", env=cli_env(REDIS_URL=url))
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.splitlines()[0] == (
        f"fluxabee demo: using stream fluxabee-demo on redis://:***@127.0.0.1:{server.port}/0 "
        "(--redis/REDIS_URL)"
    )
    assert "s3cret" not in demo.stdout + demo.stderr


def test_worker_help_documents_the_metrics_address() -> None:
    shown = " ".join(run_cli("worker", "--help").stdout.split())
    assert "--metrics-address TEXT Address the metrics server listens on: every interface" in (
        shown
    )
    assert "as Prometheus exporters do (127.0.0.1 keeps it local). [default: 0.0.0.0]" in shown


def test_the_trim_refusal_names_an_entry_that_exists_and_the_option(
    redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "fluxabee.yaml"
    config.write_text(f"default:\n  redis: {redis_url}\n  streams: [orders]\n")
    env = cli_env(FLUXABEE_CONFIG=str(config))
    ids = [run_cli("publish", "orders", str(i), env=env).stdout.strip() for i in range(3)]
    client = redis.Redis.from_url(redis_url)
    try:
        client.xgroup_create("orders", "consumer_group", id="0")  # a group that read nothing
    finally:
        client.close()
    refused = run_cli("trim", "orders", "--maxlen", "1", env=env)
    assert (refused.returncode, refused.stderr) == (
        1,
        f"fluxabee: error: trimming orders below {ids[2]} would remove entries not acked yet "
        f"(groups consumer_group need every entry, from {ids[0]}); nothing was removed "
        "(--force removes them anyway)\n",
    )


STUCK_HANDLERS = """
import asyncio
import time

def stuck(events):
    print("handling", len(events), flush=True)
    time.sleep(50)

async def astuck(events):
    print("handling", len(events), flush=True)
    await asyncio.sleep(50)
"""


@pytest.mark.parametrize("handler", ["stuck", "astuck"])
def test_ctrl_c_says_what_it_does_and_a_second_one_stops_at_once(
    handler: str, redis_url: str, tmp_path: Path, background: Callable[..., Running]
) -> None:
    (tmp_path / "handlers.py").write_text(STUCK_HANDLERS)
    env = cli_env(REDIS_URL=redis_url)
    assert run_cli("publish", "s", '{"n": 1}', env=env).returncode == 0
    worker = background("worker", f"handlers:{handler}", "--stream", "s", "--block", "200ms",
                        env=env, cwd=str(tmp_path))  # fmt: skip
    worker.wait_line(lambda line: line == "handling 1")
    worker.process.send_signal(signal.SIGINT)
    said = worker.wait_line(lambda line: "stopping" in line, which="stderr")
    assert said == (
        "fluxabee worker: stopping after the batch in hand is handled and acked "
        "(Ctrl-C again stops at once, leaving it pending)"
    )
    code, _, err = worker.stop(signal.SIGINT)  # the handler still sleeps: only this ends it
    assert code == 130, err
    assert "fluxabee worker: stopping at once; the events in hand stay pending" in err
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xpending("s", "consumer_group")["pending"] == 1  # not acked: pending
    finally:
        client.close()
