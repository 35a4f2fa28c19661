"""Pure checks of the chaos records: lost events, duplicates, and (single) the order.

Record files (written by :mod:`tests.chaos.worker`):

- publisher ``<n> <entry id>`` per confirmed event;
- consumer ``<time_ns> <entry id> <p> <n>`` per handled event.

A process killed by SIGKILL may leave a torn last line (no newline): it is ignored, which
is safe, since the handler that wrote it never returned, so the event was never acked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Handled:
    """One handled event, as a consumer recorded it."""

    time_ns: int
    id: str
    p: str
    n: int
    worker: str
    index: int  # line number in the worker's file: order within one process


class RecordReader:
    """Reads record files incrementally (complete lines only), tolerating torn tails."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}
        self.torn = 0

    def new_lines(self, path: Path) -> list[str]:
        """The complete lines appended to ``path`` since the last call."""
        offset = self._offsets.get(path, 0)
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._offsets[path] = offset + end
        return data[:end].decode("ascii").splitlines()

    def count_torn(self, paths: list[Path]) -> int:
        """How many files end with an incomplete line (after a final :meth:`new_lines`)."""
        self.torn = 0
        for path in paths:
            if path.exists() and path.stat().st_size > self._offsets.get(path, 0):
                self.torn += 1
        return self.torn


class HandledLog:
    """Every handled record of every consumer file, read incrementally."""

    def __init__(self) -> None:
        self.reader = RecordReader()
        self.records: list[Handled] = []
        self.ids: set[str] = set()
        self._lines: Counter[str] = Counter()

    def update(self, files: dict[str, Path]) -> None:
        for worker, path in files.items():
            for line in self.reader.new_lines(path):
                t, entry_id, p, n = line.split()
                index = self._lines[worker]
                self._lines[worker] += 1
                self.records.append(Handled(int(t), entry_id, p, int(n), worker, index))
                self.ids.add(entry_id)


def read_confirmed(files: dict[str, Path]) -> dict[str, tuple[str, int]]:
    """``entry id -> (publisher, n)`` of every event whose flush was confirmed."""
    reader = RecordReader()
    confirmed: dict[str, tuple[str, int]] = {}
    for publisher, path in files.items():
        for line in reader.new_lines(path):
            n, entry_id = line.split()
            confirmed[entry_id] = (publisher, int(n))
    return confirmed


@dataclass
class DeliveryCheck:
    """At-least-once: every confirmed event handled; duplicates counted."""

    confirmed: int
    handled_records: int
    handled_unique: int
    lost: list[str]
    #: Records beyond the first for the same entry ID (redeliveries).
    duplicates: int
    #: Handled entries whose flush never confirmed them (landed, but the reply was lost).
    unconfirmed_handled: int
    #: (publisher, n) bodies that landed under more than one entry ID (republished).
    republished: int


def check_delivery(confirmed: dict[str, tuple[str, int]], log: HandledLog) -> DeliveryCheck:
    lost = sorted(set(confirmed) - log.ids)
    bodies = Counter((r.p, r.n) for r in {r.id: r for r in log.records}.values())
    return DeliveryCheck(
        confirmed=len(confirmed),
        handled_records=len(log.records),
        handled_unique=len(log.ids),
        lost=lost,
        duplicates=len(log.records) - len(log.ids),
        unconfirmed_handled=len(log.ids - set(confirmed)),
        republished=sum(1 for c in bodies.values() if c > 1),
    )


@dataclass
class OrderCheck:
    """The handled order of a ``consumer_single`` stream against the published order."""

    #: The next number expected: every n below it was handled in order.
    next_n: int
    #: Records that repeat an earlier n in a replay (allowed).
    duplicates: int
    #: Changes of the handling process.
    takeovers: int
    #: Replays that started inside a process's run (only with ``replays_anywhere``).
    replays_in_process: int = 0
    #: How many records broke the order (0 when it is exactly the published one).
    violation_count: int = 0
    #: Descriptions of the first order breaks.
    violations: list[str] = field(default_factory=list)
    #: Longest pause between two consecutive handled records, seconds.
    max_gap_s: float = 0.0


def handling_order(records: list[Handled]) -> list[Handled]:
    """Records in handling order: wall time, then the order within one process."""
    return sorted(records, key=lambda r: (r.time_ns, r.worker, r.index))


def check_order(
    records: list[Handled], *, replays_anywhere: bool = False, max_violations: int = 20
) -> OrderCheck:
    """Check that the handled sequence is exactly 0, 1, 2, ... apart from replays.

    Reading the records in handling order (wall time), each record's ``n`` must be the
    next expected number, or belong to a *replay*: a run of numbers already handled,
    consecutive (k, k+1, k+2, ...), that starts at the first record of a process following
    another process's records (a takeover re-reading the dead holder's pending events).
    With ``replays_anywhere`` (server restarts: an ack lost with the connection makes the
    same process re-read its pending batch) a replay may also start inside a process's
    run; those are counted apart. Anything else (a gap, a repeat elsewhere, a replay
    that skips) is a violation.
    """
    result = OrderCheck(next_n=0, duplicates=0, takeovers=0)
    previous: Handled | None = None
    replay_next: int | None = None  # the n expected next inside a replay
    for record in handling_order(records):
        takeover = previous is not None and record.worker != previous.worker
        if previous is not None:
            result.max_gap_s = max(result.max_gap_s, (record.time_ns - previous.time_ns) / 1e9)
        if takeover:
            result.takeovers += 1
        starts_segment = previous is None or takeover
        if record.n == result.next_n:
            result.next_n += 1
            replay_next = None
        elif record.n < result.next_n and record.n == replay_next and not takeover:
            replay_next += 1  # a replay goes on
            result.duplicates += 1
        elif record.n < result.next_n and (starts_segment or replays_anywhere):
            replay_next = record.n + 1  # a replay starts
            result.duplicates += 1
            if not starts_segment:
                result.replays_in_process += 1
        else:
            result.violation_count += 1
            where = "after a takeover" if starts_segment else f"inside the run of {record.worker}"
            kind = "a repeat" if record.n < result.next_n else "a gap (skipped numbers)"
            if len(result.violations) < max_violations:
                result.violations.append(
                    f"{record.worker} handled n={record.n} (id {record.id}) when "
                    f"n={result.next_n} was expected: {kind} {where}"
                )
            if record.n > result.next_n:  # resynchronise, so each break is counted once
                result.next_n = record.n + 1
            replay_next = None
        previous = record
    return result
