"""Process supervision for ``fluxabee run --processes N``, and the health endpoints.

A small parent, as gunicorn, dramatiq and arq have: it forks N workers (each runs the
app), restarts one that dies (after a backoff that grows while workers keep dying soon
after their start, logged), and on SIGTERM / SIGINT forwards SIGTERM to every worker and
waits for them to stop gracefully, then exits 0. The parent never opens a connection it
keeps and runs no thread, so forking is safe; it waits in short slices, serving the
health endpoints between them. Nothing here knows what a consumer is.

:class:`HealthServer` answers ``/healthz`` (the process is up and its consumers are
reading) and ``/readyz`` (Redis is reachable), 200 or 503, for Kubernetes probes.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("fluxabee")

#: First delay before a dead worker is started again, seconds (doubled per quick death).
RESTART_BACKOFF = 0.5
#: Longest delay before a dead worker is started again, seconds.
MAX_RESTART_BACKOFF = 30.0
#: A worker that ran this long before it died counts as healthy: its backoff starts over.
STABLE_AFTER = 30.0
#: Seconds the parent waits at a time (between looks at its workers).
TICK = 0.05


def restart_delay(quick_deaths: int) -> float:
    """Seconds before a worker that died is started again, after ``quick_deaths`` deaths
    in a row that each came sooner than :data:`STABLE_AFTER` after a start (>= 1)."""
    return float(min(RESTART_BACKOFF * 2 ** max(quick_deaths - 1, 0), MAX_RESTART_BACKOFF))


def describe_status(status: int) -> str:
    """``os.waitpid``'s status in words: ``exited with 3`` / ``killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"killed by {name}"
    return f"exited with {os.waitstatus_to_exitcode(status)}"


@dataclass
class Slot:
    """One worker place: its process while it runs, its restart schedule when it died."""

    index: int
    pid: int | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0


class Supervisor:
    """Fork ``processes`` workers running ``work(index)`` (its return value is the
    worker's exit code), keep them running, stop them on SIGTERM / SIGINT."""

    def __init__(
        self,
        processes: int,
        work: Callable[[int], int],
        *,
        health: HealthServer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [Slot(i) for i in range(processes)]
        self._work = work
        self._health = health
        self._clock = clock
        self._stopping = False
        self._forwarded = False

    def all_running(self) -> bool:
        """Whether every worker is running (``/healthz`` of the parent)."""
        return not self._stopping and all(s.pid is not None for s in self._slots)

    def stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Stop every worker gracefully (a signal handler)."""
        self._stopping = True

    def run(self) -> int:
        """Supervise until SIGTERM / SIGINT and every worker has stopped: exit code 0."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self._slots:
                self._spawn(slot)
            while True:
                self._reap()
                if self._stopping:
                    self._forward()
                    if all(s.pid is None for s in self._slots):
                        return 0
                else:
                    now = self._clock()
                    for slot in self._slots:
                        if slot.pid is None and now >= slot.restart_at:
                            self._spawn(slot)
                self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait(self) -> None:
        if self._health is not None:
            self._health.poll(TICK)
        else:
            time.sleep(TICK)

    def _spawn(self, slot: Slot) -> None:
        # Signals are blocked across the fork: one that comes in between is delivered
        # after it, to the parent's handler (which forwards it) or to a worker whose
        # handlers are the defaults again, never to a copy of the parent's handler in a
        # worker (which would swallow it, and the worker would never stop).
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in stops:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                if self._health is not None:
                    self._health.close()
                code = self._work(slot.index)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        slot.pid = pid
        slot.started = self._clock()
        logger.info("fluxabee run: worker %d started (pid %d)", slot.index, pid)

    def _reap(self) -> None:
        for slot in self._slots:
            if slot.pid is None:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = slot.pid, 0
            if pid == 0:
                continue
            gone, slot.pid = slot.pid, None
            if self._stopping:
                logger.info("fluxabee run: worker %d (pid %d) stopped", slot.index, gone)
                continue
            now = self._clock()
            slot.quick_deaths = slot.quick_deaths + 1 if now - slot.started < STABLE_AFTER else 1
            delay = restart_delay(slot.quick_deaths)
            slot.restart_at = now + delay
            logger.warning(
                "fluxabee run: worker %d (pid %d) %s; restarting it in %.1f s",
                slot.index,
                gone,
                describe_status(status),
                delay,
            )

    def _forward(self) -> None:
        if self._forwarded:
            return
        self._forwarded = True
        for slot in self._slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGTERM)


class HealthServer:
    """``/healthz`` and ``/readyz`` on ``address:port``: 200 when ``healthy()`` /
    ``ready()`` say so, 503 otherwise (a check that raises counts as not so)."""

    def __init__(
        self, address: str, port: int, healthy: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        checks = {"/healthz": healthy, "/readyz": ready}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = checks.get(self.path.split("?", 1)[0])
                if check is None:
                    self.send_error(404)
                    return
                try:
                    ok = bool(check())
                except Exception:
                    logger.debug("health check %s failed", self.path, exc_info=True)
                    ok = False
                body = b"ok\n" if ok else b"unavailable\n"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes are not logged."""

        self._server = http.server.HTTPServer((address, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def poll(self, timeout: float) -> None:
        """Answer at most one request, waiting up to ``timeout`` seconds for it."""
        self._server.timeout = timeout
        self._server.handle_request()

    def serve_in_thread(self) -> None:
        """Answer requests in a daemon thread (a single-process ``fluxabee run``)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fluxabee-health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
