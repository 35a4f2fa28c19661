"""Chaos test of fluxabee against a real redis-server with AOF (``appendfsync always``).

``python -m tests.chaos.run_chaos --scenario many|single [--duration S] [--long] [--seed N]``

many
    Publisher processes publish ``{"p": name, "n": n}`` bodies and record the IDs ``flush``
    confirmed; ``consumer_many(...).run(...)`` worker processes record every event they
    handle. At random moments a consumer is SIGKILLed (and a replacement started) and the
    server is SIGKILLed and started again on the same port and AOF. Then the publishers stop,
    the chaos stops, and the run waits until every confirmed event was handled and the
    stream is empty (the *drain*). Verified: no confirmed event lost (at-least-once),
    the stream, its pending list and its dead letters empty, every worker exit code 0.
    Printed: events confirmed, handled, duplicates, kills, restarts, drain time.

single
    One publisher publishes a strictly increasing sequence; two ``consumer_single`` worker
    processes (``lock_ttl`` 1 s) run; at random moments the one holding the lock (its PID is
    in the lock token) is SIGKILLed, sometimes the standby, and a replacement is started.
    Verified: the handled order, merged across processes by handling time, is exactly the
    published order 0..N-1, duplicates only in the replay right after a takeover.

The bounded mode (the default, under 60 s) runs in CI through ``tests/test_chaos.py``;
``--long`` runs for 5 minutes with more processes (or ``--duration``). The exit status is 0
only when nothing was lost (and, for single, the order held) and every check passed. Every
process is killed at the end, even on failure; the work directory (records, worker logs,
the server's AOF and log) is removed on success and kept (its path printed) on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from fluxabee._constants import GROUP_NAME
from fluxabee._keys import dead_letter_key, lock_key
from tests.chaos.verify import (
    DeliveryCheck,
    HandledLog,
    OrderCheck,
    check_delivery,
    check_order,
    read_confirmed,
)
from tests.servers import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds a worker gets to exit after SIGTERM before it counts as stuck.
STOP_TIMEOUT = 15.0


@dataclass
class Options:
    """One chaos run. ``bounded(...)`` / ``long(...)`` give the two modes' defaults."""

    scenario: str = "many"
    duration: float = 20.0
    seed: int = 0
    publishers: int = 2
    consumers: int = 3
    #: Events per second per publisher.
    rate: float = 300.0
    #: Seconds between consumer SIGKILLs (uniform in this range).
    kill_every: tuple[float, float] = (0.5, 2.0)
    #: Seconds between server restarts (uniform in this range); (0, 0) disables them.
    restart_every: tuple[float, float] = (3.0, 6.0)
    #: Longest time the server stays down during a restart.
    max_downtime: float = 0.5
    #: ``consumer_many`` claims events pending longer than this on a dead consumer.
    min_idle: float = 2.0
    #: ``consumer_single`` lock TTL.
    lock_ttl: float = 1.0
    #: Longest simulated work per batch (ms), after recording: a kill there is a replay.
    work_ms: float = 3.0
    #: Injected handler failure rate per batch.
    fail_rate: float = 0.02
    #: Longest wait, after the chaos, for every confirmed event to be handled.
    drain_timeout: float = 30.0
    keep: bool = False
    quiet: bool = False

    @classmethod
    def bounded(cls, scenario: str, **overrides: object) -> Options:
        if scenario == "single":
            base = cls(
                scenario="single",
                duration=15.0,
                publishers=1,
                consumers=2,
                kill_every=(0.5, 2.5),
                restart_every=(0.0, 0.0),
                work_ms=20.0,
            )
        else:
            base = cls(scenario="many")
        for key, value in overrides.items():
            setattr(base, key, value)
        return base

    @classmethod
    def long(cls, scenario: str, **overrides: object) -> Options:
        base = cls.bounded(scenario, duration=300.0, drain_timeout=120.0)
        if scenario == "many":
            base.publishers, base.consumers = 3, 4
        for key, value in overrides.items():
            setattr(base, key, value)
        return base


@dataclass
class Summary:
    """What a run did and found."""

    scenario: str
    seed: int
    duration: float
    workdir: str = ""
    confirmed: int = 0
    handled_unique: int = 0
    handled_records: int = 0
    lost: int = 0
    lost_sample: list[str] = field(default_factory=list)
    duplicates: int = 0
    unconfirmed_handled: int = 0
    republished: int = 0
    kills: int = 0
    restarts: int = 0
    consumers_started: int = 0
    drain_s: float | None = None
    empty_s: float | None = None
    stream_length: int | None = None
    pending: int | None = None
    dead_letters: int | None = None
    torn_lines: int = 0
    #: single only
    order: OrderCheck | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        order_ok = self.order is None or (
            self.order.violation_count == 0 and self.order.next_n == self.confirmed
        )
        return (
            not self.errors
            and self.lost == 0
            and order_ok
            and self.confirmed > 0
            and self.stream_length == 0
            and self.pending == 0
            and self.dead_letters == 0
        )

    def text(self) -> str:
        drain = "not drained" if self.drain_s is None else f"{self.drain_s:.2f} s"
        empty = "never" if self.empty_s is None else f"after {self.empty_s:.2f} s"
        lines = [
            f"chaos scenario={self.scenario} seed={self.seed} duration={self.duration:g} s"
            f" -> {'OK' if self.ok else 'FAILED'}",
            f"  events confirmed      {self.confirmed}",
            f"  handled (unique IDs)  {self.handled_unique}",
            f"  handled records       {self.handled_records}",
            f"  lost                  {self.lost}"
            + (f"  e.g. {', '.join(self.lost_sample)}" if self.lost_sample else ""),
            f"  duplicates            {self.duplicates}"
            f"  (handled but unconfirmed: {self.unconfirmed_handled},"
            f" republished bodies: {self.republished})",
            f"  consumer kills        {self.kills}  (consumers started: {self.consumers_started})",
            f"  server restarts       {self.restarts}",
            f"  drain time            {drain}  (stream empty {empty})",
            f"  stream left           length={self.stream_length} pending={self.pending}"
            f" dead letters={self.dead_letters}",
        ]
        if self.order is not None:
            lines.append(
                f"  order                 {'OK' if self.order.violation_count == 0 else 'BROKEN'}"
                f"  handled in order up to n={self.order.next_n}, takeovers={self.order.takeovers},"
                f" replayed duplicates={self.order.duplicates}"
                f" (replays inside a run: {self.order.replays_in_process}),"
                f" longest pause={self.order.max_gap_s:.2f} s"
            )
            lines += [f"    ! {v}" for v in self.order.violations]
        if self.torn_lines:
            lines.append(f"  torn record lines     {self.torn_lines} (killed mid-write, ignored)")
        lines += [f"  ERROR {e}" for e in self.errors]
        if self.workdir:
            lines.append(f"  work directory kept: {self.workdir}")
        return "\n".join(lines)


class Worker:
    """A worker subprocess with its record file and log."""

    def __init__(self, role: str, name: str, workdir: Path, args: list[str]) -> None:
        self.role = role
        self.name = name
        self.out = workdir / f"{name}.records"
        self.logpath = workdir / f"{name}.log"
        self._log: IO[bytes] = self.logpath.open("ab")
        self.killed = False  # SIGKILLed by the chaos
        self.stopping = False  # sent SIGTERM
        self.reported = False  # an unexpected exit already reported
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.chaos.worker",
                role,
                "--name",
                name,
                "--out",
                str(self.out),
                *args,
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.killed = True
        self.proc.wait()
        self._log.close()

    def ready(self) -> bool:
        """Whether the worker logged that it runs (its SIGTERM handler is installed)."""
        try:
            return b" running" in self.logpath.read_bytes()
        except OSError:
            return False

    def terminate(self, ready_timeout: float = 15.0) -> None:
        """SIGTERM, once the worker is ready for it (a worker still importing would die
        of the default action, which says nothing about the library)."""
        deadline = time.monotonic() + ready_timeout
        while self.proc.poll() is None and not self.ready() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a log file for a condition, with a deadline
        if self.proc.poll() is None:
            self.stopping = True
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.logpath.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n      ".join(text)


class ChaosRun:
    """The orchestrator of one run: server, workers, chaos loop, drain, verification."""

    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.stream = f"chaos-{options.scenario}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"fluxabee-chaos-{options.scenario}-"))
        self.server = RedisServer(appendonly=True, workdir=self.workdir / "redis")
        self.server.workdir.mkdir()
        self.summary = Summary(
            scenario=options.scenario, seed=options.seed, duration=options.duration
        )
        self.publishers: list[Worker] = []
        self.consumers: list[Worker] = []  # every consumer ever started, live or not
        self.handled = HandledLog()
        self.started = time.monotonic()

    # -- helpers -----------------------------------------------------------------------

    def say(self, message: str) -> None:
        if not self.o.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[chaos {elapsed:6.1f}s] {message}", flush=True)

    def error(self, message: str) -> None:
        self.summary.errors.append(message)
        self.say(f"ERROR {message}")

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=5)

    def common_args(self) -> list[str]:
        return ["--url", self.server.url, "--stream", self.stream]

    def start_consumer(self) -> Worker:
        index = len(self.consumers)
        api = "async" if index % 2 else "sync"
        role = self.o.scenario
        args = [
            *self.common_args(),
            "--api",
            api,
            "--seed",
            str(self.rng.randrange(2**31)),
            "--min-idle",
            str(self.o.min_idle),
            "--lock-ttl",
            str(self.o.lock_ttl),
            "--fail-rate",
            str(self.o.fail_rate),
            "--work-ms",
            str(self.o.work_ms),
        ]
        if role == "many":
            # Fail after recording: the batch is handed over again (a duplicate, never a loss).
            args.append("--fail-after-record")
        worker = Worker(role, f"c{index}", self.workdir, args)
        self.consumers.append(worker)
        self.summary.consumers_started += 1
        return worker

    def live_consumers(self) -> list[Worker]:
        return [w for w in self.consumers if w.alive() and not w.killed]

    def start_publishers(self, until_wall: float) -> None:
        for index in range(self.o.publishers):
            args = [
                *self.common_args(),
                "--api",
                "async" if index % 2 else "sync",
                "--seed",
                str(self.rng.randrange(2**31)),
                "--until",
                str(until_wall),
                "--rate",
                str(self.o.rate),
            ]
            self.publishers.append(Worker("publish", f"p{index}", self.workdir, args))

    def check_crashes(self) -> None:
        """A consumer that died without being killed is a failure; replace it."""
        for worker in self.consumers:
            if worker.killed or worker.stopping or worker.reported or worker.alive():
                continue
            worker.reported = True
            code = worker.proc.returncode
            self.error(
                f"consumer {worker.name} exited by itself with code {code}:\n      "
                + worker.log_tail()
            )
            worker.kill()  # reap, close the log
            self.start_consumer()

    # -- chaos -------------------------------------------------------------------------

    def pick_victim(self) -> Worker | None:
        live = self.live_consumers()
        if not live:
            return None
        if self.o.scenario != "single" or self.rng.random() < 0.2:
            return self.rng.choice(live)
        holder = self.lock_holder(live)
        return holder or self.rng.choice(live)

    def lock_holder(self, live: list[Worker]) -> Worker | None:
        """The consumer_single process holding the lock (its token is "host:pid:random")."""
        try:
            with contextlib.closing(self.redis()) as client:
                token = client.get(lock_key(self.stream))
        except redis.RedisError:
            token = None
        if token:
            with contextlib.suppress(ValueError, IndexError):
                pid = int(token.decode().split(":")[-2])
                for worker in live:
                    if worker.pid == pid:
                        return worker
        return None

    def restart_server(self) -> None:
        self.server.kill()
        time.sleep(self.rng.uniform(0, self.o.max_downtime))
        self.server.start(timeout=30)
        self.summary.restarts += 1
        self.say(f"server restarted (#{self.summary.restarts})")

    def chaos(self, until: float) -> None:
        o = self.o
        next_kill = time.monotonic() + self.rng.uniform(*o.kill_every)
        restarts = o.restart_every[1] > 0
        next_restart = time.monotonic() + (self.rng.uniform(*o.restart_every) if restarts else 0)
        while time.monotonic() < until:
            now = time.monotonic()
            if now >= next_kill:
                victim = self.pick_victim()
                if victim is not None:
                    role = ""
                    if o.scenario == "single":
                        holder = self.lock_holder([victim])
                        role = " (lock holder)" if holder else " (standby)"
                    victim.kill()
                    self.summary.kills += 1
                    self.say(f"SIGKILL consumer {victim.name} (pid {victim.pid}){role}")
                    self.start_consumer()
                next_kill = now + self.rng.uniform(*o.kill_every)
            if restarts and now >= next_restart:
                self.restart_server()
                next_restart = time.monotonic() + self.rng.uniform(*o.restart_every)
            self.check_crashes()
            for pub in self.publishers:
                if not pub.reported and not pub.alive() and pub.proc.returncode != 0:
                    pub.reported = True
                    self.error(
                        f"publisher {pub.name} exited with code {pub.proc.returncode}:\n      "
                        + pub.log_tail()
                    )
            time.sleep(0.05)

    # -- drain and verification --------------------------------------------------------

    def consumer_files(self) -> dict[str, Path]:
        return {w.name: w.out for w in self.consumers}

    def stream_state(self) -> tuple[int, int, int]:
        with contextlib.closing(self.redis()) as client:
            length = client.xlen(self.stream)
            try:
                pending = int(client.xpending(self.stream, GROUP_NAME)["pending"])
            except redis.ResponseError:  # no group (nothing was ever read)
                pending = 0
            dead = client.xlen(dead_letter_key(self.stream))
        return int(length), pending, int(dead)

    def wait_publishers(self, deadline: float) -> dict[str, Path]:
        for pub in self.publishers:
            code = pub.wait(deadline - time.monotonic())
            if code is None:
                self.error(f"publisher {pub.name} did not finish its final flush in time")
            elif code != 0 and not pub.reported:
                self.error(f"publisher {pub.name} exited with code {code}:\n      {pub.log_tail()}")
        return {p.name: p.out for p in self.publishers}

    def drain(self, chaos_end: float) -> dict[str, tuple[str, int]]:
        """Wait until every confirmed event is handled and the stream is empty."""
        deadline = chaos_end + self.o.drain_timeout
        confirmed_files = self.wait_publishers(deadline)
        confirmed = read_confirmed(confirmed_files)
        missing = set(confirmed)
        length: int | str = "not checked"
        while time.monotonic() < deadline:
            self.check_crashes()
            self.handled.update(self.consumer_files())
            missing -= self.handled.ids
            now = time.monotonic()
            if not missing and self.summary.drain_s is None:
                self.summary.drain_s = now - chaos_end
            if not missing:
                length = self.stream_state()[0]
                if length == 0:
                    self.summary.empty_s = time.monotonic() - chaos_end
                    break
            time.sleep(0.1)
        else:
            self.error(
                f"drain timed out after {self.o.drain_timeout:g} s: {len(missing)} confirmed "
                f"events not handled, stream length {length}"
            )
        return confirmed

    def stop_consumers(self) -> None:
        live = self.live_consumers()
        for worker in live:
            worker.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in live:
            code = worker.wait(deadline - time.monotonic())
            if code is None:
                self.error(
                    f"consumer {worker.name} did not stop on SIGTERM:\n      {worker.log_tail()}"
                )
            elif code != 0:
                self.error(
                    f"consumer {worker.name} exited with code {code} on SIGTERM:\n      "
                    + worker.log_tail()
                )

    def verify(self, confirmed: dict[str, tuple[str, int]]) -> None:
        s = self.summary
        files = self.consumer_files()
        self.handled.update(files)
        s.torn_lines = self.handled.reader.count_torn(list(files.values()))
        delivery: DeliveryCheck = check_delivery(confirmed, self.handled)
        s.confirmed = delivery.confirmed
        s.handled_unique = delivery.handled_unique
        s.handled_records = delivery.handled_records
        s.lost = len(delivery.lost)
        s.lost_sample = delivery.lost[:10]
        s.duplicates = delivery.duplicates
        s.unconfirmed_handled = delivery.unconfirmed_handled
        s.republished = delivery.republished
        s.stream_length, s.pending, s.dead_letters = self.stream_state()
        if self.o.scenario == "single":
            # Server restarts make a process re-read its own unacked batch (the ack was lost
            # with the connection) and a publisher resend what landed unconfirmed: replays.
            restarts = self.o.restart_every[1] > 0
            s.order = check_order(self.handled.records, replays_anywhere=restarts)

    # -- the whole run -----------------------------------------------------------------

    def run(self) -> Summary:
        o = self.o
        self.server.start()
        self.say(
            f"scenario {o.scenario}: redis-server :{self.server.port} (AOF, fsync always), "
            f"workdir {self.workdir}"
        )
        for _ in range(o.consumers):
            self.start_consumer()
        until = time.monotonic() + o.duration
        self.start_publishers(time.time() + o.duration)
        self.chaos(until)
        chaos_end = time.monotonic()
        self.say("chaos over: draining")
        confirmed = self.drain(chaos_end)
        self.say("stopping consumers (SIGTERM)")
        self.stop_consumers()
        self.verify(confirmed)
        return self.summary

    def close(self) -> None:
        """Kill every process this run started, even after a failure."""
        for worker in self.publishers + self.consumers:
            worker.kill()
        self.server.kill()
        if self.summary.ok and not self.o.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.summary.workdir = str(self.workdir)


def run_scenario(options: Options) -> Summary:
    """Run one chaos scenario; always cleans up its processes."""
    chaos = ChaosRun(options)
    try:
        chaos.run()
    except BaseException as exc:
        chaos.summary.errors.append(f"orchestrator failed: {exc!r}")
        raise
    finally:
        chaos.close()
    return chaos.summary


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.run_chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=["many", "single"], default="many")
    parser.add_argument("--long", action="store_true", help="5 minutes, more processes")
    parser.add_argument("--duration", type=float, help="seconds of chaos (publishing)")
    parser.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    parser.add_argument("--publishers", type=int)
    parser.add_argument("--consumers", type=int)
    parser.add_argument("--rate", type=float, help="events per second per publisher")
    parser.add_argument("--fail-rate", type=float, help="injected handler failures per batch")
    parser.add_argument("--drain-timeout", type=float)
    parser.add_argument("--work-ms", type=float, help="longest simulated work per batch")
    parser.add_argument("--kill-every", type=float, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--restart-every", type=float, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--max-downtime", type=float, help="longest server downtime")
    parser.add_argument("--no-restarts", action="store_true", help="never restart the server")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {
        key: value
        for key, value in {
            "duration": args.duration,
            "publishers": args.publishers,
            "consumers": args.consumers,
            "rate": args.rate,
            "fail_rate": args.fail_rate,
            "drain_timeout": args.drain_timeout,
            "work_ms": args.work_ms,
            "kill_every": tuple(args.kill_every) if args.kill_every else None,
            "restart_every": tuple(args.restart_every) if args.restart_every else None,
            "max_downtime": args.max_downtime,
        }.items()
        if value is not None
    }
    overrides["seed"] = args.seed if args.seed is not None else random.randrange(2**31)
    overrides["keep"] = args.keep
    overrides["quiet"] = args.quiet
    if args.no_restarts:
        overrides["restart_every"] = (0.0, 0.0)
    make = Options.long if args.long else Options.bounded
    return make(args.scenario, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    summary = run_scenario(options)
    print(summary.text(), flush=True)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
