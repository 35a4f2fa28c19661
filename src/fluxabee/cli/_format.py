"""Pure helpers of the command: durations, ages, bodies, statistics as tables/JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from .._stats import StreamStatistics
from ..errors import DecodeError
from ..event import Event

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NON_FINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def parse_duration(text: str) -> float:
    """``"10m"``, ``"1h30m"``, ``"250ms"``, ``"5s"``, ``"1.5"`` (seconds) -> seconds.

    Raises ``ValueError`` with a message for the user."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"{text!r} is not a duration >= 0")
        return seconds
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration (use 250ms, 5s, 10m, 1h, 1h30m or seconds)")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def age(seconds: float | None) -> str:
    """``None`` -> ``-``; else ``850ms``, ``4.2s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 event``, ``2 events`` (``many`` for an irregular plural: ``entries``)."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many or word + 's'}"


def parse_body(text: str) -> Any:
    """A body given on the command line: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; ``ValueError`` naming a pair without ``=``."""
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta takes key=value, got {pair!r}")
        meta[key] = value
    return meta


def jsonable(value: Any) -> Any:
    """A decoded body made printable as strict JSON (bytes as text or a hex string,
    infinities and NaN as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``)."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"hex": value.hex()}
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[str(value)]  # JSON has no Infinity or NaN: strings, as proto3 JSON
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def body_text(event: Event[Any], limit: int = 200) -> str:
    """The event's body as one line of JSON (or a note when it does not decode)."""
    try:
        text = json.dumps(jsonable(event.body), ensure_ascii=False)
    except DecodeError:
        size = 0 if event.raw_body is None else len(event.raw_body)
        return f"<undecodable body, {size} bytes>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def meta_text(meta: dict[str, str]) -> str:
    """``k=v k2=v2`` (``-`` when empty)."""
    return " ".join(f"{k}={v}" for k, v in meta.items()) or "-"


def stats_json(stats: StreamStatistics) -> dict[str, Any]:
    """One stream's statistics as a JSON object (ages in seconds, ``null`` when none);
    ``groups`` has every declared group, ``group`` is the first."""
    return dataclasses.asdict(stats)


def stats_tables(all_stats: Sequence[StreamStatistics]) -> list[Table | Text]:
    """The statistics table (one row per stream and group) and, when some stream has
    consumers, the consumers table."""
    streams = Table(title=None, header_style="bold", box=None, pad_edge=False)
    for name, justify in (
        ("STREAM", "left"),
        ("GROUP", "left"),
        ("LENGTH", "right"),
        ("LAG", "right"),
        ("PENDING", "right"),
        ("OLDEST EVENT", "right"),
        ("OLDEST PENDING", "right"),
        ("DEAD", "right"),
        ("CONSUMERS", "right"),
    ):
        streams.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    consumers = Table(header_style="bold", box=None, pad_edge=False)
    for name, justify in (("STREAM", "left"), ("GROUP", "left"), ("CONSUMER", "left")):
        consumers.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    consumers.add_column("PENDING", justify="right", no_wrap=True)
    consumers.add_column("IDLE", justify="right", no_wrap=True)
    for stats in all_stats:
        groups = stats.groups or ((stats.group,) if stats.group is not None else ())
        if not groups:
            streams.add_row(
                stats.stream, "-", str(stats.length), "-", "-",
                age(stats.oldest_event_age), "-", str(stats.dead_letters), "0",
            )  # fmt: skip
            continue
        for group in groups:  # one row per group: each reads every event at its own pace
            streams.add_row(
                stats.stream,
                group.name,
                str(stats.length),
                "-" if group.lag is None else str(group.lag),
                str(group.pending),
                age(stats.oldest_event_age),
                age(group.lowest_pending_age),
                str(stats.dead_letters),
                str(len(group.consumers)),
            )
            for consumer in group.consumers:
                consumers.add_row(
                    stats.stream,
                    group.name,
                    consumer.name,
                    str(consumer.pending),
                    age(consumer.idle),
                )
    return [streams, Text(""), consumers] if consumers.row_count else [streams]
