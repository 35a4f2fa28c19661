"""Run the real ``fluxabee`` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

#: The console script pip installed next to the interpreter.
FLUXABEE = str(Path(sys.executable).with_name("fluxabee"))


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a command: no config or URL inherited, wide output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "FLUXABEE_CONFIG", "FLUXABEE_SERVER_BINARY")
    }
    env.update(COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``fluxabee ARGS`` to its end."""
    return subprocess.run(
        [FLUXABEE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        input=input,
        timeout=timeout,
        check=False,
    )


class Running:
    """A ``fluxabee`` command running in the background; lines are read with a deadline."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.process = subprocess.Popen(
            [FLUXABEE, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        #: Every line read so far, per stream.
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._queues: dict[str, queue.Queue[str | None]] = {}
        self._threads: list[threading.Thread] = []
        for which in ("stdout", "stderr"):
            self._queues[which] = queue.Queue()
            thread = threading.Thread(target=self._pump, args=(which,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, which: str) -> None:
        stream: IO[str] = getattr(self.process, which)
        for line in stream:
            self._queues[which].put(line.rstrip("\n"))
        self._queues[which].put(None)

    def wait_line(
        self, predicate: Callable[[str], bool], which: str = "stdout", timeout: float = 30
    ) -> str:
        """The first new line (of ``which``) that satisfies ``predicate``; fails at the
        deadline or when the stream ends."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queues[which].get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = None
                remaining = -1
            if line is None:
                raise AssertionError(
                    f"no such line on {which} ({'deadline' if remaining < 0 else 'ended'}); "
                    f"got {self.lines!r}"
                )
            self.lines[which].append(line)
            if predicate(line):
                return line

    def rest(self, which: str) -> str:
        """Everything ``which`` printed after the lines already read (the process ended)."""
        found = []
        while True:
            line = self._queues[which].get(timeout=30)
            if line is None:
                return "\n".join(found)
            self.lines[which].append(line)
            found.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        """Send ``sig``; the exit code and the rest of stdout and stderr."""
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        out, err = self.rest("stdout"), self.rest("stderr")
        self.close()
        return code, out, err

    def close(self) -> None:
        """SIGKILL it if it still runs; close its pipes once they are read to the end."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for thread in self._threads:
            thread.join(30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def background() -> Iterator[Callable[..., Running]]:
    """Start commands in the background: ``background("tail", "s", "-f", env=...)``;
    any still running at teardown is killed."""
    started: list[Running] = []

    def start(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Running:
        running = Running(list(args), env or cli_env(), **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()
