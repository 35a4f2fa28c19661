"""What a new user hits on the command line: secrets, exit codes, Ctrl-C, small outputs.

Each runs the real console script in a subprocess against a real server."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.cli.conftest import cli_env, run_cli
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
