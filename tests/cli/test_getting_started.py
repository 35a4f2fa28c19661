"""The getting-started tutorial (docs/getting-started.md) run as a reader runs it: its
``fluxabee.yaml`` and ``shop.py`` written as the page shows them (the test server's address
in place of the page's), ``fluxabee run shop:app``, the page's ``fluxabee publish`` lines,
then ``fluxabee stats`` and ``fluxabee dead-letters`` print what the page prints, save for
IDs, ages and names."""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import redis

from tests.cli.conftest import Running, cli_env, run_cli

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
#: The server address the page's config names (its `fluxabee server --port 16411`).
PAGE_ADDRESS = "127.0.0.1:16411:0"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def shown(command: str) -> list[str]:
    """The output lines the page shows under ``$ fluxabee COMMAND``."""
    for block in blocks("text"):
        lines = block.splitlines()
        if lines and lines[0] == f"$ fluxabee {command}":
            return lines[1:]
    raise AssertionError(f"the page shows no `fluxabee {command}`")


def words(line: str, *, drop: tuple[int, ...] = ()) -> list[str]:
    """A table row's cells, entry IDs masked, the cells at ``drop`` left out."""
    cells = re.sub(r"\b\d{13}-\d+\b", "<id>", line).split()
    return [cell for i, cell in enumerate(cells) if i not in drop]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached: {what}"
        time.sleep(0.02)


def test_the_tutorial_runs_as_the_page_shows(
    redis_url: str,
    rclient: redis.Redis,
    tmp_path: Path,
    background: Callable[..., Running],
) -> None:
    url = urlparse(redis_url)
    address = f"{url.hostname}:{url.port}:{url.path.strip('/') or 0}"
    (config,) = blocks("yaml")
    assert PAGE_ADDRESS in config
    (tmp_path / "fluxabee.yaml").write_text(config.replace(PAGE_ADDRESS, address))
    (shop,) = blocks("python")
    (tmp_path / "shop.py").write_text(shop)
    env = cli_env(FLUXABEE_CONFIG="fluxabee.yaml")

    worker = background("run", "shop:app", env=env, cwd=str(tmp_path))
    shown_lines = [line for block in blocks("text") for line in block.splitlines()]
    publishes = [line[2:] for line in shown_lines if line.startswith("$ fluxabee publish ")]
    assert len(publishes) == 4
    for line in publishes:
        done = run_cli(*shlex.split(line)[1:], env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"\d+-\d+\n", done.stdout)

    logged = [line.partition(" INFO ")[2] for line in shown_lines]  # the handlers' log lines
    expected = {line for line in logged if line.startswith(("mail to ", "billing "))}
    assert len(expected) == 6
    # and the body that is not an order, dead-lettered in each group on its first delivery
    dead = "of orders moved to dead letters after 1 delivery"
    seen: set[str] = set()
    dead_lettered = 0
    while seen != expected or dead_lettered < 2:
        line = worker.wait_line(
            lambda line: line.partition(" INFO ")[2] in expected or dead in line, "stderr"
        )
        if dead in line:
            dead_lettered += 1
        else:
            seen.add(line.partition(" INFO ")[2])
    wait_until(lambda: rclient.xlen("invoices") == 3, "the three invoices flushed")
    wait_until(lambda: rclient.xlen("orders") == 0, "every order acked by both groups")

    stats = run_cli("stats", env=env, cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    table = stats.stdout.splitlines()[1:5]
    # the age of the oldest event (cell 5) and the clock in the title vary
    assert [words(line, drop=(5,)) for line in table] == [
        words(line, drop=(5,)) for line in shown("stats")[1:5]
    ]
    letters = run_cli("dead-letters", "orders", env=env, cwd=tmp_path)
    assert letters.returncode == 0, letters.stderr
    assert [words(line) for line in letters.stdout.splitlines()] == [
        words(line) for line in shown("dead-letters orders")
    ]

    code, out, err = worker.stop(signal.SIGINT)
    assert code == 0, err
    assert "fluxabee run: stopped after 6 events handled" in out + err
    assert "^Cfluxabee run: stopped after 6 events handled" in PAGE.read_text()
