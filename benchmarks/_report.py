"""Repeat cases, keep medians, print a table. Shared by the ``__main__`` runners."""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable, Mapping

from ._server import flush

#: ``f(url, n) -> events/s``
Case = Callable[[str, int], float]
#: One figure per run: events/s, or an error string for a broken run.
Result = float | str


def measure(case: Case, url: str, n: int) -> Result:
    """Run one case; a failure becomes an error string instead of an exception."""
    try:
        return float(case(url, n))
    except Exception as exc:  # one broken case must not kill the whole run
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
        return f"error: {type(exc).__name__}: {exc}{where}"


def measure_all(
    cases: Mapping[str, Case], url: str, n: int, runs: int = 3
) -> dict[str, list[Result]]:
    """``runs`` runs of every case, flushing the server before each one."""
    results: dict[str, list[Result]] = {}
    for name, case in cases.items():
        results[name] = []
        for _ in range(runs):
            flush(url)
            results[name].append(measure(case, url, n))
            time.sleep(0.05)
    return results


def median(results: list[Result]) -> Result:
    """Median of the numeric runs, or the first error if any run failed."""
    for r in results:
        if isinstance(r, str):
            return r
    return statistics.median([r for r in results if isinstance(r, float)])


def print_table(results: Mapping[str, list[Result]], n: int, runs: int) -> None:
    width = max((len(k) for k in results), default=10)
    print(f"n={n}, runs={runs}, median events/s")
    print(f"{'case':<{width}}  {'median':>12}  runs")
    for name, rs in results.items():
        med = median(rs)
        shown = f"{med:12,.0f}" if isinstance(med, float) else med
        each = ", ".join(f"{r:,.0f}" if isinstance(r, float) else "err" for r in rs)
        print(f"{name:<{width}}  {shown:>12}  [{each}]")
