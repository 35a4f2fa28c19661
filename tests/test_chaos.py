"""Chaos tests (bounded mode): SIGKILLed consumers and a restarted AOF server lose nothing.

The scenarios live in ``tests/chaos/run_chaos.py`` (run it by hand for the long mode:
``python -m tests.chaos.run_chaos --scenario many --long``). ``FLUXABEE_CHAOS_SEED`` fixes
the RNG seed; otherwise each run draws one and prints it in the summary.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.run_chaos import Options, Summary, run_scenario
from tests.chaos.verify import Handled, HandledLog, check_delivery, check_order


def seed() -> int:
    value = os.environ.get("FLUXABEE_CHAOS_SEED")
    return int(value) if value else random.randrange(2**31)


def report(capsys: pytest.CaptureFixture[str], summary: Summary) -> None:
    with capsys.disabled():
        print("\n" + summary.text())


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_chaos_many_consumers_kills_and_server_restarts_lose_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = run_scenario(Options.bounded("many", duration=18.0, seed=seed(), quiet=True))
    report(capsys, summary)
    assert summary.kills > 0
    assert summary.restarts > 0
    assert summary.lost == 0, summary.text()
    assert summary.ok, summary.text()


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_chaos_single_consumer_takeovers_keep_the_published_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = run_scenario(Options.bounded("single", duration=12.0, seed=seed(), quiet=True))
    report(capsys, summary)
    assert summary.kills > 0
    assert summary.order is not None
    assert summary.lost == 0, summary.text()
    assert summary.order.violation_count == 0, summary.text()
    assert summary.order.next_n == summary.confirmed, summary.text()
    assert summary.ok, summary.text()


# -- the checkers themselves (fast, no processes) -------------------------------------


def records(*runs: tuple[str, list[int]]) -> list[Handled]:
    """Records of consecutive runs ``(worker, [n, ...])``, one millisecond apart."""
    out: list[Handled] = []
    t = 0
    for worker, numbers in runs:
        for index, n in enumerate(numbers):
            t += 1_000_000
            out.append(Handled(t, f"{n}-{worker}-{index}", "p0", n, worker, index))
    return out


def test_order_check_accepts_the_exact_order_and_takeover_replays() -> None:
    result = check_order(records(("c0", [0, 1, 2, 3]), ("c1", [2, 3, 4, 5]), ("c2", [6])))
    assert result.violation_count == 0
    assert result.next_n == 7
    assert result.duplicates == 2
    assert result.takeovers == 2


@pytest.mark.parametrize(
    ("runs", "kind"),
    [
        ((("c0", [0, 2, 3]),), "a gap"),
        ((("c0", [0, 1, 2, 1, 3]),), "a repeat"),  # a repeat inside one process's run
        ((("c0", [0, 1]), ("c1", [2, 0, 3])), "a repeat"),  # a repeat after new numbers
        ((("c0", [1, 0]),), "a gap"),
        ((("c0", [0, 1, 2, 3]), ("c1", [1, 3, 4])), "a repeat"),  # a replay that skips
    ],
)
def test_order_check_reports_breaks(runs: tuple[tuple[str, list[int]], ...], kind: str) -> None:
    result = check_order(records(*runs))
    assert result.violation_count >= 1
    assert kind in result.violations[0]


def test_delivery_check_counts_lost_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "c0.records").write_text("1 1-0 p0 0\n2 2-0 p0 1\n3 2-0 p0 1\n4 9-0 p0 5")
    log = HandledLog()
    log.update({"c0": tmp_path / "c0.records"})
    confirmed = {"1-0": ("p0", 0), "2-0": ("p0", 1), "3-0": ("p0", 2)}
    result = check_delivery(confirmed, log)
    assert result.lost == ["3-0"]
    assert result.duplicates == 1
    assert result.handled_unique == 2  # the torn last line (no newline) is ignored
    assert log.reader.count_torn([tmp_path / "c0.records"]) == 1


def test_order_check_allows_replays_inside_a_run_only_when_asked() -> None:
    runs = (("c0", [0, 1, 2, 1, 2, 3]), ("c1", [3, 4]))
    assert check_order(records(*runs)).violation_count == 2  # the 1 and the 2
    result = check_order(records(*runs), replays_anywhere=True)
    assert result.violation_count == 0
    assert result.duplicates == 3
    assert result.replays_in_process == 1
    assert result.next_n == 5
