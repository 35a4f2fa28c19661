"""Pure: the dashboard's pages as HTML, from the library's statistics and entries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .._constants import MANY_CONSUMER_PREFIX, SINGLE_CONSUMER_NAME
from .._inspection import PendingEntry
from .._stats import GroupStatistics, StreamStatistics
from ..config import Config
from ..event import DeadLetter, Event
from ._history import History
from ._html import (
    action_form,
    ago,
    body_json,
    cell,
    checkbox,
    esc,
    hidden,
    id_time,
    masked,
    num,
    spark,
    table,
    tags,
)


def q(name: str) -> str:
    """A stream or group name as a URL path segment."""
    return quote(name, safe="")


def pools(config: Config) -> str:
    """The pools and where they are, passwords masked."""
    items = []
    for pool in config.redis_pools:
        where = ", ".join(masked(u) for u in pool.urls)
        kind = "" if pool.topology == "single" else f" ({pool.topology})"
        items.append(f"<li><b>{esc(pool.code)}</b>{esc(kind)}: <code>{where}</code></li>")
    return f'<ul class="pools">{"".join(items)}</ul>'


def _row_flags(stats: StreamStatistics, growing: bool) -> tuple[str, str]:
    flags = []
    if stats.over_cap:
        flags.append('<span class="flag">over cap</span>')
    if growing:
        flags.append('<span class="flag">lag growing</span>')
    return ("alert" if flags else ""), "".join(flags)


def overview_rows(
    all_stats: Sequence[StreamStatistics], history: History, now: float, base: str
) -> str:
    """The overview's table rows: one per stream and group."""
    rows = []
    for s in all_stats:
        link = f'<a href="{esc(base)}/streams/{q(s.stream)}">{esc(s.stream)}</a>'
        dead = f'<a href="{esc(base)}/dead/{q(s.stream)}">{s.dead_letters}</a>'
        incoming = history.in_rate(s.stream, now)
        groups: Sequence[GroupStatistics | None] = s.groups or (None,)
        for g in groups:
            growing = g is not None and history.lag_growing(s.stream, g.name, now)
            cls, flags = _row_flags(s, growing)
            outgoing = history.out_rate(s.stream, g.name, now) if g else [None] * len(incoming)
            rows.append(
                f'<tr class="{cls}" data-stream="{esc(s.stream)}" '
                f'data-group="{esc(g.name if g else "")}">'
                f'<td data-col="stream">{link} {flags}</td>'
                + cell(g.name if g else "-", "group")
                + cell(s.length, "length")
                + cell(num(g.lag) if g else "-", "lag")
                + cell(g.pending if g else "-", "pending")
                + cell(ago(g.lowest_pending_age) if g else "-", "oldest-pending")
                + f'<td data-col="dead">{dead}</td>'
                + cell(len(g.consumers) if g else 0, "consumers")
                + f'<td data-col="rate">{spark(incoming, outgoing)}</td></tr>'
            )
    return "".join(rows)


OVERVIEW_HEADERS = (
    "Stream", "Group", "Length", "Lag", "Pending", "Oldest pending", "Dead letters",
    "Consumers", "In / out, 15 min",
)  # fmt: skip


def overview(
    config: Config,
    all_stats: Sequence[StreamStatistics],
    history: History,
    now: float,
    base: str,
    *,
    every: float,
    started: str,
) -> str:
    """The overview page's body."""
    rows = overview_rows(all_stats, history, now, base)
    grid = table(
        OVERVIEW_HEADERS,
        [rows],
        cls="grid",
        attrs=f'id="overview" data-refresh="{esc(base)}/fragments/overview" '
        f'data-every="{int(every * 1000)}"',
    )
    return (
        pools(config)
        + grid
        + f'<p class="note">Refreshes every {every:g} s (one round trip per Redis pool). '
        f"The in (blue) / out (green) rates are sampled by this dashboard process itself "
        f"while it runs (since {esc(started)}); they are not stored in Redis, and need "
        f"Redis 7.0+. Rows over their caps or with a growing lag are marked.</p>"
    )


def _stale(idle: float, stale: float) -> str:
    return ' <span class="flag">idle: likely a dead worker</span>' if idle >= stale else ""


def groups_section(s: StreamStatistics, stale: float) -> str:
    """A stream's groups and their consumers."""
    rows = [
        f'<tr data-group="{esc(g.name)}">' + cell(g.name, "group") + cell(num(g.lag), "lag")
        + cell(g.pending, "pending") + cell(g.last_delivered_id, "last-delivered")
        + cell(ago(g.lowest_pending_age), "oldest-pending") + cell(len(g.consumers), "consumers")
        + "</tr>"
        for g in s.groups
    ]  # fmt: skip
    consumers = [
        f'<tr data-group="{esc(g.name)}" data-consumer="{esc(c.name)}">' + cell(g.name, "group")
        + f'<td data-col="consumer">{esc(c.name)}{_stale(c.idle, stale)}</td>'
        + cell(c.pending, "pending") + cell(ago(c.idle), "idle") + "</tr>"
        for g in s.groups
        for c in g.consumers
    ]  # fmt: skip
    return (
        f"<p>Length {s.length}, oldest entry {esc(ago(s.oldest_event_age))}, "
        f"{s.dead_letters} dead letters, pool {esc(s.pool)}"
        f"{' <span class=flag>over cap</span>' if s.over_cap else ''}.</p>"
        "<h2>Groups</h2>"
        + table(("Group", "Lag", "Pending", "Last delivered", "Oldest pending", "Consumers"), rows)
        + f"<h2>Consumers</h2><p class='note'>Marked: idle for {ago(stale)} or more.</p>"
        + table(("Group", "Consumer", "Pending", "Idle"), consumers, attrs='id="consumers"')
    )


def pending_section(
    stream: str,
    group: GroupStatistics,
    groups: Sequence[str],
    entries: Sequence[PendingEntry],
    base: str,
    *,
    consumer: str,
    min_idle: str,
    size: int,
    after: str | None,
    now_ms: float,
    stale: float,
    read_only: bool,
) -> str:
    """The pending list of one group: filters, a page of entries, the actions on them."""
    url = f"{esc(base)}/streams/{q(stream)}"
    choices = "".join(
        f"<option {'selected' if g == group.name else ''}>{esc(g)}</option>" for g in groups
    )
    holders = "".join(
        f"<option {'selected' if c.name == consumer else ''}>{esc(c.name)}</option>"
        for c in group.consumers
    )
    filters = (
        f'<form class="filters" method="get" action="{url}">'
        f'<label>Group <select name="group">{choices}</select></label> '
        f'<label>Holder <select name="consumer"><option value="">any</option>{holders}'
        f"</select></label> "
        f'<label>Idle at least <input name="min_idle" value="{esc(min_idle)}" size="6"></label> '
        f'<button type="submit">Filter</button></form>'
    )
    form = "pending-form"
    rows = [
        f'<tr data-id="{esc(e.id)}">'
        + ("" if read_only else checkbox(e.id, form))
        + cell(e.id, "id") + cell(e.consumer, "holder") + cell(ago(e.idle), "idle")
        + cell(e.deliveries, "deliveries")
        + cell(ago(max(0.0, (now_ms - e.published_ms) / 1000)), "age")
        + "</tr>"
        for e in entries
    ]  # fmt: skip
    headers: tuple[str, ...] = ("ID", "Holder", "Idle", "Deliveries", "Age")
    if not read_only:
        headers = ("", *headers)
    more = ""
    if len(entries) >= size and entries:
        more = (
            f'<a class="more" href="{url}?group={q(group.name)}&consumer={q(consumer)}'
            f'&min_idle={q(min_idle)}&after={q(entries[-1].id)}">next page</a>'
        )
    first = f' <a href="{url}?group={q(group.name)}">first page</a>' if after else ""
    out = (
        f"<h2>Pending in {esc(group.name)}</h2>{filters}"
        + table(headers, rows, attrs='id="pending"')
        + f"<p>{more}{first}</p>"
    )
    if read_only:
        return out
    live = sorted((c for c in group.consumers if c.idle < stale), key=lambda c: c.idle)
    targets = "".join(f"<option>{esc(c.name)}</option>" for c in live)
    common = hidden("stream", stream) + hidden("group", group.name)
    to = (
        '<label>to consumer <input name="consumer" list="live-consumers" required '
        'placeholder="a live consumer"></label>'
        f'<datalist id="live-consumers">{targets}</datalist> '
    )
    actions = (
        action_form(
            form, base, "claim", "Claim selected", "Claim the {n} selected entries?", common + to
        )
        + action_form(
            "claim-idle-form",
            base,
            "claim-idle",
            "Claim all idle",
            "Claim every entry of this group idle that long?",
            common
            + to.replace("live-consumers", "live-consumers-2")
            + '<label>idle at least <input name="min_idle" value="60s" size="6"></label> ',
        )
        + action_form("ack-form", base, "ack", "Ack selected", "Ack the {n} selected entries?",
                      common)
        + action_form("dead-form", base, "dead-letter", "Move selected to dead letters",
                      "Move the {n} selected entries to the dead letters?", common)
        + action_form("delete-form", base, "delete", "Delete selected",
                      "Delete the {n} selected entries from the stream?", common, danger=True)
    )  # fmt: skip
    script_note = '<p class="note">Selection applies to every action below.</p>'
    return out + script_note + f'<div class="actions" data-selection="{form}">{actions}</div>'


def entry_rows(events: Sequence[Event[Any]]) -> str:
    """Rows of entries, newest first: ID, time, meta tags, body."""
    return "".join(
        f'<tr data-id="{esc(e.id)}">' + cell(e.id, "id") + cell(id_time(e.id), "time")
        + f'<td data-col="meta">{tags(e.meta)}</td><td data-col="body">{body_json(e)}</td></tr>'
        for e in reversed(events)
    )  # fmt: skip


def newest_section(stream: str, events: Sequence[Event[Any]], base: str) -> str:
    """The newest entries with a live tail."""
    last = events[-1].id if events else "0-0"
    return "<h2>Newest entries <small>(live)</small></h2>" + table(
        ("ID", "Published", "Meta", "Body"),
        [entry_rows(events)],
        attrs=f'id="tail" data-tail="{esc(base)}/tail?stream={q(stream)}" data-after="{esc(last)}"',
    )


def trim_section(stream: str, base: str) -> str:
    """Trim to an ID or a length, with a preview."""
    fields = (
        hidden("stream", stream)
        + '<label>keep the newest <input name="max_len" size="8"> entries</label> or '
        '<label>remove below ID <input name="min_id" size="16"></label> '
        f'<button type="button" class="preview" data-preview="{esc(base)}/trim-preview">'
        'Preview</button> <output id="trim-preview"></output> '
    )
    return (
        "<h2>Trim</h2><p class='note'>Refused when it would remove an entry a group has not "
        "acked (nothing is removed then).</p>"
        + action_form("trim-form", base, "trim", "Trim", "Trim the stream as previewed?",
                      fields, danger=True)
    )  # fmt: skip


def letters_section(
    stream: str, letters: Sequence[DeadLetter[Any]], base: str, *, read_only: bool
) -> str:
    """A stream's dead letters and the actions on them."""
    form = "letters-form"
    rows = [
        f'<tr data-id="{esc(d.id)}">'
        + ("" if read_only else checkbox(d.id, form))
        + cell(d.id, "id") + cell(d.event.id, "source") + cell(d.group or "-", "group")
        + cell(d.deliveries, "deliveries") + cell(d.error, "error", "error")
        + f'<td data-col="meta">{tags(d.event.meta)}</td>'
        + f'<td data-col="body">{body_json(d.event)}</td></tr>'
        for d in letters
    ]  # fmt: skip
    headers: tuple[str, ...] = (
        "Letter", "Source ID", "Group", "Deliveries", "Last error", "Meta", "Body",
    )  # fmt: skip
    if not read_only:
        headers = ("", *headers)
    out = f"<h2>{esc(stream)}</h2>" + table(headers, rows, attrs=f'data-letters="{esc(stream)}"')
    if read_only or not letters:
        return out
    common = hidden("stream", stream)
    return out + (
        '<div class="actions">'
        + action_form(form, base, "replay", "Replay selected",
                      "Replay the {n} selected dead letters to their groups?", common)
        + action_form(f"replay-all-{q(stream)}", base, "replay-all", "Replay all",
                      f"Replay every dead letter of {stream}?", common)
        + action_form("delete-letters-form", base, "delete-letters", "Delete selected",
                      "Delete the {n} selected dead letters for good?", common, danger=True)
        + "</div>"
    )  # fmt: skip


def dead_index(all_stats: Sequence[StreamStatistics], base: str) -> str:
    """Every stream with its number of dead letters."""
    rows = [
        f'<tr data-stream="{esc(s.stream)}"><td><a href="{esc(base)}/dead/{q(s.stream)}">'
        f"{esc(s.stream)}</a></td>" + cell(s.dead_letters, "dead") + "</tr>"
        for s in all_stats
    ]
    return table(("Stream", "Dead letters"), rows)


def prunable(idle: float, pending: int, name: str, threshold: float) -> bool:
    """Whether ``prune_consumers`` would remove this consumer (a preview; the server's
    script decides, atomically)."""
    generated = name.startswith(MANY_CONSUMER_PREFIX) and name != SINGLE_CONSUMER_NAME
    return pending == 0 and idle >= threshold and generated


def consumers_page(
    all_stats: Sequence[StreamStatistics], base: str, *, idle: float, read_only: bool
) -> str:
    """Every consumer of every group, those ``prune`` would remove marked."""
    rows = [
        f'<tr data-stream="{esc(s.stream)}" data-group="{esc(g.name)}" '
        f'data-consumer="{esc(c.name)}">'
        + cell(s.stream, "stream") + cell(g.name, "group") + cell(c.name, "consumer")
        + cell(c.pending, "pending") + cell(ago(c.idle), "idle")
        + cell("yes" if prunable(c.idle, c.pending, c.name, idle) else "", "prunable")
        + "</tr>"
        for s in all_stats
        for g in s.groups
        for c in g.consumers
    ]  # fmt: skip
    filters = (
        f'<form class="filters" method="get" action="{esc(base)}/consumers">'
        f'<label>Idle at least <input name="idle" value="{esc(ago(idle))}" size="6"></label> '
        '<button type="submit">Show</button></form>'
    )
    out = filters + table(
        ("Stream", "Group", "Consumer", "Pending", "Idle", "Would be pruned"), rows
    )
    out += (
        "<p class='note'>Pruning removes generated consumer names idle that long that hold "
        "nothing pending; consumer-single and names fluxabee did not generate stay.</p>"
    )
    if read_only:
        return out
    fields = f'<label>idle at least <input name="idle" value="{esc(ago(idle))}" size="6"></label> '
    return out + action_form(
        "prune-form", base, "prune", "Prune", "Prune the idle consumers of every group?", fields
    )


def login(base: str, next_url: str, failed: bool) -> str:
    """The login form (a token)."""
    error = '<p class="error">Wrong token.</p>' if failed else ""
    return (
        f'{error}<form method="post" action="{esc(base)}/login" class="login">'
        f"{hidden('next', next_url)}"
        '<label>Token <input type="password" name="token" autofocus required></label> '
        '<button type="submit">Sign in</button></form>'
    )
