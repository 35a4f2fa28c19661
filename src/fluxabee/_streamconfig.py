"""A stream's settings: its consumer groups, retention and caps (:class:`Stream`).

A config's ``streams`` lists plain names (one group, ``consumer_group``: FluxaORM's layout)
and :class:`Stream` objects, or in YAML mappings::

    streams:
      - stream-1
      - name: orders
        groups: [billing, search]
        max_len: 1000000
        max_age: 7d
        retention: trim

Every bad value is a :class:`~fluxabee.errors.ConfigError` whose message starts with its
key (``default.streams[1].groups[0]: ...``; ``Stream('orders').max_age: ...`` when built
in Python). Durations take ``7d``, ``12h``, ``30m``, ``45s``, seconds or a ``timedelta``.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

from ._constants import GROUP_NAME
from .errors import ConfigError, UnknownGroupError

#: What acking does on a stream (see :class:`Stream`).
Retention = Literal["delete", "trim"]
#: The retention values, in the order messages list them.
RETENTIONS: tuple[str, ...] = ("delete", "trim")
#: The keys a stream mapping may have in the YAML / dict layout.
STREAM_KEYS = ("name", "groups", "max_len", "max_age", "retention")
#: Seconds per unit of a duration string.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
#: Longest duration accepted, seconds (as for every other duration of the API).
_MAX_SECONDS = 9.2e15 / 1000


def _describe(value: object) -> str:
    return "None" if value is None else f"{type(value).__name__} {reprlib.repr(value)}"


def _name(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: a {what} must be a non-empty string, got {_describe(value)}")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        # a YAML indentation slip folds "- orders\n   - payments" into one name
        raise ConfigError(
            f"{where}: a {what} cannot hold whitespace or control characters, "
            f"got {_describe(value)} (a YAML indentation slip?)"
        )
    return value


def _groups(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return (GROUP_NAME,)
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise ConfigError(f"{where}: expected a list of group names, got {_describe(value)}")
    if not value:
        raise ConfigError(f"{where}: at least one group is required (or leave groups out)")
    seen: dict[str, int] = {}
    for index, group in enumerate(value):
        _name(group, f"{where}[{index}]", "group name")
        if group in seen:
            raise ConfigError(
                f"{where}[{index}]: group {reprlib.repr(group)} is listed twice "
                f"(also {where}[{seen[group]}])"
            )
        seen[group] = index
    return tuple(seen)


def _max_len(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected an int >= 1 (entries), got {_describe(value)}")
    return value


def duration(value: object, where: str) -> float:
    """A duration > 0 in seconds: ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, seconds
    (``int`` / ``float``) or a ``timedelta``; :class:`ConfigError` naming ``where``."""
    seconds: float | None = None
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value.strip())
        if match is not None:
            seconds = float(match[1]) * _UNITS[match[2]]
    if seconds is None:
        raise ConfigError(
            f"{where}: expected a duration such as 7d, 12h, 30m, 45s, seconds or a "
            f"timedelta, got {_describe(value)}"
        )
    if not math.isfinite(seconds) or not 0 < seconds <= _MAX_SECONDS:
        raise ConfigError(f"{where}: expected a duration > 0, got {_describe(value)}")
    return seconds


def _retention(value: object, where: str) -> Retention:
    if value == "delete":
        return "delete"
    if value == "trim":
        return "trim"
    expected = " or ".join(RETENTIONS)
    raise ConfigError(f"{where}: expected {expected}, got {_describe(value)}")


@dataclass(frozen=True)
class Stream:
    """One stream's settings: its consumer groups, what acking does, and its caps.

    ``Stream("orders", groups=["billing", "search"], max_len=1_000_000, max_age="7d")``.

    - ``groups``: the consumer groups that each read every event (a list of distinct
      names, stored as a tuple); left out, the stream has the one group ``consumer_group``,
      FluxaORM's. Every declared group is created at ID ``0`` when the first is used.
    - ``retention``: ``"delete"`` (the default) removes an entry as soon as every group
      has acked it: XACK + XDEL with one group, ``XACKDEL ... ACKED`` with several where
      the server has it (Redis 8.2+), else XACK and an exact ``XTRIM MINID`` to the oldest
      entry some group still needs. ``"trim"`` makes acking XACK only, with that trimming
      instead of a per-entry delete, whatever the groups (faster to consume).
    - ``max_len`` (entries) and ``max_age`` (``"7d"``, seconds or a ``timedelta``, stored
      as seconds): caps. fluxabee never removes an entry that a group has not acked to
      meet them; a stream over a cap because a group lags is reported (statistics'
      ``over_cap`` and a warning at a bounded rate), not cut.
    """

    #: The stream's name (its Redis key).
    name: str
    _: KW_ONLY
    #: The consumer groups, in declared order (the first is the default of consumers).
    groups: Sequence[str] = (GROUP_NAME,)
    #: Cap on the stream's length (entries), or ``None``.
    max_len: int | None = None
    #: Cap on the age of the oldest entry, seconds (given as ``"7d"``, seconds or a
    #: ``timedelta``), or ``None``.
    max_age: float | _dt.timedelta | str | None = None
    #: ``"delete"`` or ``"trim"``: what acking does (see the class docstring).
    retention: Retention = "delete"

    def __post_init__(self) -> None:
        """Validate and normalize every field (``groups`` to a tuple, ``max_age`` to
        seconds); :class:`ConfigError` naming the field otherwise."""
        name = _name(self.name, "Stream.name", "stream name")
        where = f"Stream({reprlib.repr(name)})"
        object.__setattr__(self, "groups", _groups(self.groups, f"{where}.groups"))
        object.__setattr__(self, "max_len", _max_len(self.max_len, f"{where}.max_len"))
        if self.max_age is not None:
            object.__setattr__(self, "max_age", duration(self.max_age, f"{where}.max_age"))
        object.__setattr__(self, "retention", _retention(self.retention, f"{where}.retention"))

    @property
    def max_age_seconds(self) -> float | None:
        """``max_age`` in seconds, or ``None``."""
        age: Any = self.max_age
        return None if age is None else float(age)

    def group(self, group: str | None) -> str:
        """The group a consumer (or a look at pending entries) uses: ``group`` when the stream
        declares it (:class:`~fluxabee.UnknownGroupError` otherwise), else the first."""
        if group is None:
            return self.groups[0]
        if group not in self.groups:
            raise UnknownGroupError(self.name, str(group), tuple(self.groups))
        return group

    @property
    def is_plain(self) -> bool:
        """Whether these are the settings a plain name gets (one ``consumer_group``, no
        caps, ``delete``): such a stream is shown as its name."""
        return self == Stream(self.name)


def stream_from(value: object, where: str) -> Stream:
    """A config's stream entry (a name, a :class:`Stream` or a mapping) as a Stream;
    :class:`ConfigError` naming ``where`` (``default.streams[1]``) and the key."""
    if isinstance(value, Stream):
        return value
    if isinstance(value, str):
        return Stream(_name(value, where, "stream name"))
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: expected a stream name or a mapping with keys "
            f"{', '.join(STREAM_KEYS)}, got {_describe(value)}"
        )
    for key in value:
        if key not in STREAM_KEYS:
            raise ConfigError(
                f"{where}.{key}: unknown key (expected one of: {', '.join(STREAM_KEYS)})"
            )
    if "name" not in value:
        raise ConfigError(f"{where}.name: missing (every stream mapping names its stream)")
    max_age = value.get("max_age")
    return Stream(
        _name(value["name"], f"{where}.name", "stream name"),
        groups=_groups(value.get("groups"), f"{where}.groups"),
        max_len=_max_len(value.get("max_len"), f"{where}.max_len"),
        max_age=None if max_age is None else duration(max_age, f"{where}.max_age"),
        retention=_retention(value.get("retention", "delete"), f"{where}.retention"),
    )
