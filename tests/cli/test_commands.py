"""Every command, run as the real console script in a subprocess against a real server."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

import fluxabee
from fluxabee._localserver import free_port
from tests.cli.conftest import Running, cli_env, run_cli

STREAM = "test-stream"


def _url_env(url: str) -> dict[str, str]:
    return cli_env(REDIS_URL=url)


def _until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``condition`` until it is truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_help_lists_every_command_and_python_m_works() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "server", "publish", "tail", "stats", "pending", "claim",
                    "dead-letters", "prune", "trim", "worker"):  # fmt: skip
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    version = subprocess.run(
        [sys.executable, "-m", "fluxabee", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"fluxabee, version {fluxabee.__version__}"


def test_publish_json_text_and_meta_then_tail_shows_them(redis_url: str) -> None:
    env = _url_env(redis_url)
    first = run_cli("publish", STREAM, '{"order": 1}', "--meta", "source=shop", env=env)
    second = run_cli("publish", STREAM, "not json at all", env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    first_id, second_id = first.stdout.strip(), second.stdout.strip()
    assert re.fullmatch(r"\d+-\d+", first_id)

    tail = run_cli("tail", STREAM, env=env)
    assert tail.returncode == 0
    lines = tail.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(first_id) and "ago" in lines[0]
    assert lines[0].endswith('source=shop  {"order": 1}')
    assert lines[1].startswith(second_id) and lines[1].endswith('-  "not json at all"')

    as_json = run_cli("tail", STREAM, "-n", "1", "--json", env=env)
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"id": second_id, "meta": {}, "body": "not json at all"}
    ]


def test_tail_reads_without_joining_a_group(redis_url: str, rclient: redis.Redis) -> None:
    env = _url_env(redis_url)
    assert run_cli("publish", STREAM, "1", env=env).returncode == 0
    assert run_cli("tail", STREAM, "--count", "5", env=env).returncode == 0
    assert rclient.xinfo_groups(STREAM) == []


def test_publish_file_of_json_lines(redis_url: str, tmp_path: Path, rclient: redis.Redis) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n"three"\n')
    result = run_cli("publish", STREAM, "--file", str(path), "--meta", "k=v",
                     env=_url_env(redis_url))  # fmt: skip
    assert result.returncode == 0, result.stderr
    ids = r"\(\d+-\d+ \.\. \d+-\d+\)"
    assert re.fullmatch(rf"published 3 events to test-stream {ids}\n", result.stdout)
    assert rclient.xlen(STREAM) == 3

    stdin = run_cli("publish", STREAM, "--file", "-", input='{"b": 1}\n', env=_url_env(redis_url))
    assert stdin.returncode == 0 and stdin.stdout.startswith("published 1 event to")

    path.write_text('{"a": 1}\n{broken\n')
    bad = run_cli("publish", STREAM, "--file", str(path), env=_url_env(redis_url))
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"fluxabee: error: {path} line 2: not JSON")
    assert rclient.xlen(STREAM) == 4  # nothing of the bad file went out


def test_tail_follow_prints_new_entries_until_sigterm(
    redis_url: str, background: Callable[..., Running], make_config: Callable[..., Any]
) -> None:
    tail = background("tail", STREAM, "--follow", env=_url_env(redis_url))
    time.sleep(0)  # the command may start reading before or after the publish: both work
    with fluxabee.Engine(make_config()) as engine:
        broker = engine.new_context().event_broker()
        entry_id = broker.publish_now(STREAM, {"late": True})
    line = tail.wait_line(lambda text: text.startswith(entry_id))
    assert line.endswith('{"late": true}')
    code, _, err = tail.stop(signal.SIGTERM)
    assert code == 0, err


def _prepare(config: fluxabee.Config) -> tuple[str, str]:
    """3 events pending on a crashed consumer, 1 dead letter, 1 event waiting: the names of
    the crashed consumer and of a live one."""
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for number in range(4):
            broker.publish(STREAM, {"n": number})
        broker.flush()
        policy = fluxabee.RetryPolicy(max_deliveries=1)
        poison = broker.consumer_many(STREAM, retry_policy=policy)

        def fails(events: list[fluxabee.Event]) -> None:
            raise ValueError("poison")

        with pytest.raises(ValueError):
            poison.consume(1, 0, fails)
        assert poison.consume(1, 0, fails) == 0  # read again: over the limit, dead-lettered
        crashed = broker.consumer_many(STREAM)
        with pytest.raises(ValueError):
            crashed.consume(2, 0, fails)
        crashed.close()  # died holding 2 events
        live = broker.consumer_many(STREAM)
        live.consume(1, 0, lambda events: None)  # handles 1, so 0 wait
        broker.publish_now(STREAM, {"n": 4})
        return crashed.name, live.name


def test_stats_table_and_json(redis_url: str, make_config: Callable[..., fluxabee.Config]) -> None:
    crashed, live = _prepare(make_config())
    env = _url_env(redis_url)
    table = run_cli("stats", STREAM, env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"fluxabee stats  {redis_url}  (")
    assert lines[1].split() == ["STREAM", "GROUP", "LENGTH", "LAG", "PENDING", "OLDEST", "EVENT",
                                "OLDEST", "PENDING", "DEAD", "CONSUMERS"]  # fmt: skip
    row = lines[2].split()
    assert row[:3] == [STREAM, "consumer_group", "3"]
    assert row[3] in ("1", "-")  # XDEL of acked entries leaves Redis unable to tell the lag
    assert row[4] == "2"
    assert row[-2:] == ["1", "3"]
    consumer_rows = [line.split() for line in lines[3:] if line.strip()]
    assert consumer_rows[0][:3] == ["STREAM", "GROUP", "CONSUMER"]
    assert [STREAM, "consumer_group", crashed, "2"] in [r[:4] for r in consumer_rows]
    assert [STREAM, "consumer_group", live, "0"] in [r[:4] for r in consumer_rows]

    found = json.loads(run_cli("stats", STREAM, "--json", env=env).stdout)
    assert len(found) == 1
    stats = found[0]
    assert (stats["stream"], stats["length"], stats["dead_letters"]) == (STREAM, 3, 1)
    assert stats["group"]["pending"] == 2 and stats["group"]["lag"] in (1, None)
    assert stats["oldest_pending_age"] >= 0
    consumers = {c["name"]: c["pending"] for c in stats["group"]["consumers"]}
    assert len(consumers) == 3  # the poison one, the crashed one, the live one
    assert (consumers[crashed], consumers[live]) == (2, 0)


def test_stats_of_every_configured_stream_from_a_config_file(
    redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "fluxabee.yaml"
    config.write_text(f"default:\n  redis: {redis_url}\n  streams: [a, b]\n")
    result = run_cli("stats", "--json", env=cli_env(FLUXABEE_CONFIG=str(config)))
    assert result.returncode == 0, result.stderr
    assert [s["stream"] for s in json.loads(result.stdout)] == ["a", "b"]
    unknown = run_cli("stats", "c", "--config", str(config))
    assert unknown.returncode == 2
    assert unknown.stderr == "fluxabee: error: stream 'c' is not declared in the config\n"


def test_stats_watch_refreshes_until_interrupted(
    redis_url: str, background: Callable[..., Running]
) -> None:
    watch = background("stats", STREAM, "--watch", "0.2", env=_url_env(redis_url))
    watch.wait_line(lambda line: line.startswith("fluxabee stats") and "every 0.2s" in line)
    watch.wait_line(lambda line: line.startswith("fluxabee stats"))  # refreshed
    code, _, err = watch.stop(signal.SIGINT)
    assert code == 0, err
    json_watch = background("stats", STREAM, "--watch", "200ms", "--json", env=_url_env(redis_url))
    for _ in range(2):
        document = json.loads(json_watch.wait_line(lambda line: line.startswith("[")))
        assert document[0]["stream"] == STREAM
    assert json_watch.stop(signal.SIGTERM)[0] == 0


def test_pending_then_claim_to_a_live_consumer(
    redis_url: str, make_config: Callable[..., fluxabee.Config], rclient: redis.Redis
) -> None:
    crashed, live = _prepare(make_config())
    env = _url_env(redis_url)
    listed = run_cli("pending", STREAM, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:-1]]
    assert [row[1] for row in rows] == [crashed, crashed]
    assert listed.stdout.splitlines()[-1] == "2 pending events"
    as_json = json.loads(run_cli("pending", STREAM, "--json", env=env).stdout)
    assert [(e["consumer"], e["deliveries"]) for e in as_json] == [(crashed, 1), (crashed, 1)]

    none = run_cli("claim", STREAM, "--min-idle", "1h", "--to", live, env=env)
    assert (
        none.returncode == 0 and none.stdout == f"no events of {STREAM} pending longer than 1h00m\n"
    )
    _until(lambda: len(json.loads(run_cli("pending", STREAM, "--min-idle", "2s", "--json",
                                          env=env).stdout)) == 2)  # fmt: skip
    with fluxabee.Engine(make_config()) as engine:  # the live consumer is active again
        broker = engine.new_context().event_broker()
        broker.consumer_many(STREAM).consume(1, 0, lambda events: None)
    stale_live = run_cli("claim", STREAM, "--min-idle", "2s", env=env)
    assert stale_live.returncode == 0, stale_live.stderr
    assert stale_live.stdout.splitlines()[-1].startswith(f"claimed 2 events of {STREAM} for ")
    holder = stale_live.stdout.splitlines()[-1].rsplit(" ", 1)[1]
    assert holder not in (crashed,)
    pending = rclient.xpending_range(STREAM, "consumer_group", "-", "+", 10)
    assert {p["consumer"].decode() for p in pending} == {holder}
    assert [p["times_delivered"] for p in pending] == [1, 1]  # JUSTID keeps the counts


def test_claim_without_a_live_consumer_fails(
    redis_url: str, make_config: Callable[..., fluxabee.Config]
) -> None:
    _prepare(make_config())
    result = run_cli("claim", STREAM, "--min-idle", "0", env=_url_env(redis_url))
    assert result.returncode == 1
    assert result.stderr.startswith(f"fluxabee: error: no consumer of {STREAM} was active")


def test_dead_letters_list_and_replay(
    redis_url: str, make_config: Callable[..., fluxabee.Config], rclient: redis.Redis
) -> None:
    _prepare(make_config())
    env = _url_env(redis_url)
    listed = run_cli("dead-letters", STREAM, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "ID", "DELIVERIES", "ERROR", "BODY"]
    assert "ValueError: poison" in lines[1] and '{"n": 0}' in lines[1]
    assert lines[-1].startswith("1 dead letter;")
    letters = json.loads(run_cli("dead-letters", STREAM, "--json", env=env).stdout)
    assert [(d["deliveries"], d["error"], d["body"]) for d in letters] == [
        (1, "ValueError: poison", {"n": 0})
    ]
    length = rclient.xlen(STREAM)
    replay = run_cli("dead-letters", STREAM, "--replay", env=env)
    assert replay.stdout == f"replayed 1 dead letter to {STREAM}\n"
    assert rclient.xlen(STREAM) == length + 1
    assert run_cli("dead-letters", STREAM, env=env).stdout == f"no dead letters in {STREAM}\n"


def test_prune_removes_idle_names_holding_nothing(
    redis_url: str, make_config: Callable[..., fluxabee.Config]
) -> None:
    crashed, live = _prepare(make_config())
    env = _url_env(redis_url)
    none = run_cli("prune", STREAM, "--idle", "1h", env=env)
    assert none.stdout.startswith(f"no consumer of {STREAM} idle longer than 1h00m")
    result = run_cli("prune", STREAM, "--idle", "0", env=env)
    assert result.returncode == 0
    removed = result.stdout.splitlines()[1:]
    assert live in [name.strip() for name in removed]
    assert crashed not in result.stdout  # it still holds 2 events


def test_errors_are_one_line_with_exit_codes_and_no_password(tmp_path: Path) -> None:
    port = free_port()
    refused = run_cli("stats", "s", "--redis", f"redis://me:s3cret@127.0.0.1:{port}/0")
    assert refused.returncode == 1
    assert (
        refused.stderr
        == f"fluxabee: error: Redis at 127.0.0.1:{port}: [Errno 111] Connection refused\n"
    )
    if not _listening(6379):
        default = run_cli("tail", "s")
        assert default.returncode == 1
        assert "tried redis://127.0.0.1:6379/0; `fluxabee server` starts a local one" in (
            default.stderr
        )
    debug = run_cli("--debug", "stats", "s", "--redis", f"redis://me:s3cret@127.0.0.1:{port}/0")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "s3cret" not in debug.stderr + debug.stdout

    bad_uri = run_cli("stats", "s", "--redis", "redis://me:s3cret@host:99999/0")
    assert bad_uri.returncode == 2 and "s3cret" not in bad_uri.stderr
    assert bad_uri.stderr.count("\n") == 1 and "***" in bad_uri.stderr
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("stats", "s", "--watch", "soon").returncode == 2
    assert run_cli("prune", "s").returncode == 2  # --idle is required
    missing = run_cli("stats", "--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and missing.stderr.startswith("fluxabee: error: ")
    assert run_cli("stats").returncode == 2  # no streams named, no config


def test_server_runs_in_the_foreground_until_ctrl_c(background: Callable[..., Running]) -> None:
    server = background("server")
    line = server.wait_line(lambda text: "listening on" in text)
    url = line.rsplit(" ", 1)[1]
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", url)
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        code, out, err = server.stop(signal.SIGINT)
        assert code == 0, err
        assert "server stopped" in out
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        client.close()


def test_a_missing_cli_extra_is_one_line() -> None:
    code = "import sys; sys.modules['click'] = None; from fluxabee.cli import main; main(['stats'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr == (
        "fluxabee: the command needs the cli extra: pip install 'fluxabee[cli]' "
        "(click is missing)\n"
    )


def test_trim_removes_only_what_every_group_acked_unless_forced(
    redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "fluxabee.yaml"
    config.write_text(
        f"default:\n  redis: {redis_url}\n  streams:\n"
        f"    - name: orders\n      groups: [billing, search]\n"
    )
    env = cli_env(FLUXABEE_CONFIG=str(config))
    engine_config = fluxabee.Config.from_yaml(str(config))
    with fluxabee.Engine(engine_config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(5):
            broker.publish("orders", i)
        ids = broker.flush()
        broker.consumer_many("orders", group="billing").consume(5, 0, lambda events: None)
        broker.consumer_many("orders", group="search").consume(2, 0, lambda events: None)
    stats = run_cli("stats", "orders", env=env)
    rows = [line.split()[:2] for line in stats.stdout.splitlines()[2:4]]
    assert rows == [["orders", "billing"], ["orders", "search"]]  # one row per group

    refused = run_cli("trim", "orders", "--maxlen", "1", env=env)
    assert refused.returncode == 1
    assert "not acked yet (groups search need every entry, from " in refused.stderr
    assert "(--force removes them anyway)" in refused.stderr
    assert "nothing was removed" in refused.stderr
    safe = run_cli("trim", "orders", env=env)
    assert safe.returncode == 0, safe.stderr
    assert safe.stdout.strip() in ("removed 2 entries from orders; 3 left",
                                   "removed 0 entries from orders; 3 left")  # fmt: skip
    forced = run_cli("trim", "orders", "--minid", ids[4], "--force", env=env)
    assert forced.stdout.strip() == "removed 2 entries from orders; 1 left", forced.stderr
    both = run_cli("trim", "orders", "--maxlen", "1", "--minid", ids[0], env=env)
    assert both.returncode == 2


def test_pending_and_claim_in_a_chosen_group(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "fluxabee.yaml"
    config.write_text(
        f"default:\n  redis: {redis_url}\n  streams:\n"
        f"    - name: orders\n      groups: [billing, search]\n"
    )
    env = cli_env(FLUXABEE_CONFIG=str(config))
    with fluxabee.Engine(fluxabee.Config.from_yaml(str(config))) as engine:
        broker = engine.new_context().event_broker()
        broker.publish_now("orders", "x")
        crashed = broker.consumer_many("orders", group="search")

        def fail(events: list[Any]) -> None:
            raise RuntimeError("crash")

        with pytest.raises(RuntimeError):
            crashed.consume(1, 0, fail)
    in_search = run_cli("pending", "orders", "--group", "search", "--json", env=env)
    assert [e["consumer"] for e in json.loads(in_search.stdout)] == [crashed.name]
    in_billing = run_cli("pending", "orders", "--json", env=env)  # the first group: billing
    assert json.loads(in_billing.stdout) == []
    claimed = run_cli("claim", "orders", "--group", "search", "--min-idle", "0", "--to", "me",
                      env=env)  # fmt: skip
    assert claimed.returncode == 0, claimed.stderr
    assert "claimed 1 event of orders for me" in claimed.stdout
    unknown = run_cli("pending", "orders", "--group", "nobody", env=env)
    assert unknown.returncode == 2 and "not declared for stream 'orders'" in unknown.stderr
