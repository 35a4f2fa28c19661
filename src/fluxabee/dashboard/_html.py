"""Pure: small HTML building blocks (escaping, tables, charts, bodies) of the dashboard.

Every text that comes from Redis or the config goes through :func:`esc`; URIs go through
the library's one mask function first, so no password reaches a page.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from .._protocol import id_ms
from .._uris import mask
from ..cli._format import age, jsonable
from ..errors import DecodeError
from ..event import Event

#: Longest body shown in a table cell (characters of JSON).
BODY_LIMIT = 400


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def masked(text: str) -> str:
    """``text`` with the password of a URI at its start masked, then escaped."""
    return esc(mask(text))


def num(value: int | None) -> str:
    """A count, ``-`` when Redis cannot tell."""
    return "-" if value is None else str(value)


def ago(seconds: float | None) -> str:
    """An age as the CLI writes it (``4.2s``, ``3m05s``; ``-`` for none)."""
    return age(seconds)


def id_time(entry_id: str) -> str:
    """The UTC time an entry ID was made, to the millisecond."""
    try:
        moment = _dt.datetime.fromtimestamp(id_ms(entry_id) / 1000, _dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _dates(value: Any) -> Any:
    """Timestamps (Go's ``time.Time``) as ISO 8601 text, for showing a body as JSON."""
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dates(v) for v in value]
    if type(value).__name__ == "Timestamp":  # msgpack.Timestamp beyond datetime's range
        return f"timestamp {value}"
    return value


def body_json(event: Event[Any], limit: int = BODY_LIMIT) -> str:
    """The event's body as JSON (MessagePack decoded, timestamps as dates), escaped."""
    try:
        text = json.dumps(jsonable(_dates(event.body)), ensure_ascii=False)
    except DecodeError:
        size = 0 if event.raw_body is None else len(event.raw_body)
        text = f"<undecodable body, {size} bytes>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f'<code class="body">{esc(text)}</code>'


def tags(meta: dict[str, str]) -> str:
    """Meta as tags (``key=value``)."""
    return "".join(f'<span class="tag">{esc(k)}={esc(v)}</span>' for k, v in meta.items())


def table(headers: Sequence[str], rows: Iterable[str], *, cls: str = "", attrs: str = "") -> str:
    """A table: ``rows`` are ``<tr>`` elements already built."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}" class="none">none</td></tr>'
    return (
        f'<table class="{cls}" {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def cell(value: object, col: str = "", cls: str = "") -> str:
    """One ``<td>`` with escaped text; ``col`` names the column for scripts and tests."""
    data = f' data-col="{esc(col)}"' if col else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<td{data}{klass}>{esc(value)}</td>"


def _segments(values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    parts: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                parts.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        parts.append(current)
    return parts


def spark(
    incoming: Sequence[float | None],
    outgoing: Sequence[float | None],
    *,
    width: int = 120,
    height: int = 26,
) -> str:
    """A small SVG chart of two rates over the same buckets (in: blue, out: green)."""
    known = [v for v in (*incoming, *outgoing) if v is not None]
    top = max(known, default=0.0) or 1.0
    slots = max(len(incoming), len(outgoing), 2) - 1

    def line(values: Sequence[float | None], cls: str) -> str:
        out = []
        step = width / slots
        for segment in _segments(values):
            part = segment
            if len(segment) == 1:  # one bucket alone: a short stroke ending at its place
                index, value = segment[0]
                part = [(max(0.0, index - 0.8), value), (index, value)]
            points = " ".join(
                f"{i * step:.1f},{height - 2 - v / top * (height - 4):.1f}" for i, v in part
            )
            out.append(f'<polyline class="{cls}" points="{points}"/>')
        return "".join(out)

    last_in = next((v for v in reversed(incoming) if v is not None), None)
    last_out = next((v for v in reversed(outgoing) if v is not None), None)
    title = (
        f"in {'-' if last_in is None else f'{last_in:.1f}'}/s, "
        f"out {'-' if last_out is None else f'{last_out:.1f}'}/s (last 10 s)"
    )
    if not known:
        title = "no rate yet (needs two samples; Redis 7.0+)"
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{esc(title)}</title>'
        f'<rect class="bg" width="{width}" height="{height}"/>'
        f"{line(incoming, 'in')}{line(outgoing, 'out')}</svg>"
    )


def checkbox(value: str, form: str) -> str:
    """A row's selection box, belonging to the action form ``form``."""
    return f'<td><input type="checkbox" name="ids" value="{esc(value)}" form="{esc(form)}"></td>'


def action_form(  # noqa: PLR0917 - one positional per part of the form, in its order
    form_id: str,
    base: str,
    action: str,
    label: str,
    confirm: str,
    fields: str = "",
    *,
    danger: bool = False,
) -> str:
    """A form the script sends (after a confirmation) to ``{base}/actions/{action}``;
    ``confirm`` is the question, ``{n}`` in it the number of selected rows."""
    klass = "danger" if danger else ""
    return (
        f'<form id="{esc(form_id)}" class="action" data-action="{esc(base)}/actions/{esc(action)}"'
        f' data-confirm="{esc(confirm)}">{fields}'
        f'<button type="submit" class="{klass}">{esc(label)}</button></form>'
    )


def hidden(name: str, value: str) -> str:
    """A hidden form field."""
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def page(
    title: str,
    body: str,
    *,
    base: str,
    read_only: bool,
    active: str = "",
    login: bool = False,
) -> str:
    """A whole page: navigation, the flash message area, the confirmation dialog."""
    links = [("", "Overview"), ("/dead", "Dead letters"), ("/consumers", "Consumers")]
    items = [
        f'<a href="{esc(base)}{path or "/"}" class="{"on" if path == active else ""}">'
        f"{esc(text)}</a>"
        for path, text in links
    ]
    nav = "" if login else "".join(items)
    mode = '<span class="ro">read-only</span>' if read_only else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} - fluxabee</title>
<link rel="stylesheet" href="{esc(base)}/static/dashboard.css">
<script src="{esc(base)}/static/dashboard.js" defer></script>
</head><body data-base="{esc(base)}">
<header><strong>fluxabee</strong><nav>{nav}</nav>{mode}</header>
<main><h1>{esc(title)}</h1><div id="flash" role="status"></div>
{body}</main>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<button value="cancel">Cancel</button> <button value="ok" id="confirm-ok">Confirm</button>
</form></dialog>
</body></html>"""
