"""``fluxabee worker`` with a wrong password exits 1 with one line, instead of retrying
forever as if Redis were down (issue 14, item 20)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.servers import RedisServer

HANDLERS = """
def handle(events):
    pass

async def ahandle(events):
    pass
"""


@pytest.mark.parametrize("handler", ["handle", "ahandle"])
@pytest.mark.parametrize("mode", [[], ["--single"]])
def test_a_worker_with_a_wrong_password_exits_1_with_one_line(
    handler: str,
    mode: list[str],
    server_factory: Callable[..., RedisServer],
    tmp_path: Path,
) -> None:
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    server = server_factory(extra_args=["--requirepass", "s3cret"])
    url = f"redis://:wrong@127.0.0.1:{server.port}/0"
    result = run_cli(
        "worker", f"handlers:{handler}", "--stream", "s", *mode,
        env=cli_env(REDIS_URL=url), cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "consuming s as" not in line]
    assert lines == [
        "fluxabee: error: WRONGPASS invalid username-password pair or user is disabled."
    ]
    assert "wrong" not in result.stderr.replace("wrong kind", "")  # the password is not shown
