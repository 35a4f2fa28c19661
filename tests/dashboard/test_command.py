"""``fluxabee dashboard`` run as a user would: the console script in a subprocess."""

from __future__ import annotations

import re
import signal

import httpx

from tests.cli.conftest import Running, cli_env

from .conftest import SECRET, Scene


def test_the_command_serves_the_dashboard_on_loopback_and_requires_its_token(
    scene: Scene,
) -> None:
    uri = f"redis://:{SECRET}@127.0.0.1:{scene.server.port}/0"
    running = Running(
        ["dashboard", "--redis", uri, "--stream", "orders", "--port", "0", "--read-only"],
        cli_env(FLUXABEE_DASHBOARD_TOKEN="tok-123"),
    )
    try:
        running.wait_line(lambda line: "fluxabee dashboard on http://127.0.0.1:" in line)
        line = running.wait_line(lambda line: "Uvicorn running on" in line, which="stderr")
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found is not None, line
        url = f"http://127.0.0.1:{found[1]}"
        assert httpx.get(url + "/").status_code == 401
        page = httpx.get(url + "/", headers={"authorization": "Bearer tok-123"})
        assert page.status_code == 200
        assert 'data-stream="orders"' in page.text and "read-only" in page.text
        assert SECRET not in page.text
        refused = httpx.post(
            url + "/actions/prune",
            data={"idle": "0s"},
            headers={"authorization": "Bearer tok-123", "x-fluxabee-action": "1"},
        )
        assert refused.status_code == 403
        code, out, err = running.stop(signal.SIGTERM)
    finally:
        running.close()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutting down
    assert "Application shutdown complete" in err  # the lifespan closed the connections
    assert SECRET not in "\n".join(running.lines["stdout"] + running.lines["stderr"]) + out + err
