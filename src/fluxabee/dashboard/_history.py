"""Pure: the in/out rates and lag trend the dashboard samples while it runs.

Nothing here is stored in Redis: the dashboard process records each statistics snapshot it
takes (``entries-added`` of each stream, ``entries-read`` and lag of each group) and keeps
the last :data:`WINDOW` seconds. Rates are per second, per bucket of the window; the clock is
a parameter (monotonic seconds), so the rules are unit-tested without waiting.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._stats import StreamStatistics

#: Seconds of history kept and charted (15 minutes).
WINDOW = 900.0
#: Buckets of a chart over :data:`WINDOW` (10 s each).
BUCKETS = 90
#: Seconds over which a lag must have grown to be flagged as growing.
GROWING_OVER = 60.0
#: Samples the lag must have been seen in, over :data:`GROWING_OVER`, to be called growing.
GROWING_SAMPLES = 3


@dataclass(frozen=True)
class Point:
    """One sample of one stream: when, its ``entries-added``, per group ``entries-read``
    and lag (``None`` where the server cannot tell)."""

    at: float
    added: int | None
    read: dict[str, int | None]
    lag: dict[str, int | None]


@dataclass
class Series:
    """The samples of one stream, oldest first."""

    points: deque[Point] = field(default_factory=deque)


def _rate(
    pairs: Sequence[tuple[float, int | None]], now: float, window: float, buckets: int
) -> list[float | None]:
    """Per-bucket rate (per second) of a counter sampled at ``pairs`` ``(at, value)``.

    A step is counted in the bucket of its later sample; a counter that went back (a stream
    deleted and created again) or a value Redis did not give is skipped. ``None``: no step
    fell in that bucket.
    """
    width = window / buckets
    start = now - window
    sums = [0.0] * buckets
    spans = [0.0] * buckets
    for (t0, v0), (t1, v1) in itertools.pairwise(pairs):
        if v0 is None or v1 is None or v1 < v0 or t1 <= t0 or t1 < start:
            continue
        index = min(buckets - 1, int((t1 - start) // width))
        sums[index] += v1 - v0
        spans[index] += t1 - t0
    return [s / d if d > 0 else None for s, d in zip(sums, spans, strict=True)]


class History:
    """The samples of every stream over the last ``window`` seconds."""

    def __init__(self, window: float = WINDOW, buckets: int = BUCKETS) -> None:
        #: Seconds kept.
        self.window = window
        #: Buckets per chart.
        self.buckets = buckets
        self._series: dict[str, Series] = {}

    def record(self, stats: Sequence[StreamStatistics], now: float) -> None:
        """Add one snapshot taken at ``now``; forget samples older than the window."""
        for s in stats:
            series = self._series.setdefault(s.stream, Series())
            series.points.append(
                Point(
                    now,
                    s.entries_added,
                    {g.name: g.entries_read for g in s.groups},
                    {g.name: g.lag for g in s.groups},
                )
            )
            while series.points and series.points[0].at < now - self.window:
                series.points.popleft()

    def samples(self, stream: str) -> int:
        """How many samples of ``stream`` are kept."""
        series = self._series.get(stream)
        return 0 if series is None else len(series.points)

    def in_rate(self, stream: str, now: float) -> list[float | None]:
        """Entries added per second, per bucket of the window (oldest first)."""
        points = self._points(stream)
        return _rate([(p.at, p.added) for p in points], now, self.window, self.buckets)

    def out_rate(self, stream: str, group: str, now: float) -> list[float | None]:
        """Entries delivered to ``group`` per second, per bucket of the window."""
        points = self._points(stream)
        pairs = [(p.at, p.read.get(group)) for p in points]
        return _rate(pairs, now, self.window, self.buckets)

    def lag_growing(self, stream: str, group: str, now: float) -> bool:
        """Whether the lag of ``group`` grew over the last :data:`GROWING_OVER` seconds: seen
        in at least :data:`GROWING_SAMPLES` samples, never going down, and higher at the
        end than at the start."""
        recent = [p.lag.get(group) for p in self._points(stream) if p.at >= now - GROWING_OVER]
        lags = [lag for lag in recent if lag is not None]
        if len(lags) < GROWING_SAMPLES or len(lags) != len(recent):
            return False
        steady = all(b >= a for a, b in itertools.pairwise(lags))
        return steady and lags[-1] > lags[0]

    def _points(self, stream: str) -> list[Point]:
        series = self._series.get(stream)
        return [] if series is None else list(series.points)
