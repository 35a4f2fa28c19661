"""The operator's commands: server, publish, tail, stats, pending, claim, dead-letters, prune."""

from __future__ import annotations

import datetime as _dt
import json
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from types import FrameType
from typing import IO, Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .._localserver import LocalServer
from .._protocol import id_ms
from .._sync.engine import Engine
from .._uris import mask
from ..errors import (
    DecodeError,
    InvalidArgumentError,
    LocalServerError,
    SerializationError,
    TrimRefusedError,
)
from ..event import Event
from ._app import DURATION, CommandError, Target, cli, engine_for, err, out, target_options
from ._format import (
    age,
    body_text,
    jsonable,
    meta_text,
    parse_body,
    parse_meta,
    plural,
    stats_json,
    stats_tables,
)

#: Events published per flush by ``publish --file``.
FILE_BATCH = 500


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def until_interrupted() -> Iterator[None]:
    """Run the block until Ctrl-C or SIGTERM, which end it quietly (exit code 0)."""
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def progress() -> Progress:
    """A progress bar on stderr (stdout stays for results)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,  # a bar in a log file or a pipe is only noise
    )


# -- server ------------------------------------------------------------------------------


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default: free).")
@click.option("--binary", metavar="PATH", help="The server binary (default: found for you).")
def server(port: int | None, binary: str | None) -> int:
    """Run a throwaway Redis server on 127.0.0.1 in the foreground; Ctrl-C stops it.

    It is `redis-server` or `valkey-server` from PATH, else the one `fluxabee[embedded]`
    ships. Its data lives in a temporary directory that is removed when it stops.
    """
    local = LocalServer(binary=binary, port=port)
    with until_interrupted(), local:
        found = local.binary
        out.print(
            f"fluxabee: {found.flavor}-server {found.version_string} ({found.origin}) "
            f"listening on {local.url}"
        )
        out.print(f"use it with: export REDIS_URL={local.url}")
        out.print("Ctrl-C stops it; its data is thrown away")
        while local.running:
            time.sleep(0.2)
        raise LocalServerError(f"the server exited by itself:\n{local.log_tail()}")
    out.print("fluxabee: server stopped")
    return 0


# -- publish -----------------------------------------------------------------------------


def _read_bodies(handle: IO[str]) -> list[tuple[int, Any]]:
    """``(line number, body)`` of every non-blank line."""
    bodies = []
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            bodies.append((number, json.loads(line)))
        except ValueError as exc:
            raise InvalidArgumentError(f"{handle.name} line {number}: not JSON: {exc}") from None
    return bodies


@contextmanager
def bad_body(where: str) -> Iterator[None]:
    """A body the command line gave that cannot be sent is a usage error (exit code 2)."""
    try:
        yield
    except SerializationError as exc:
        raise InvalidArgumentError(f"{where}: {exc}") from None


@cli.command()
@click.argument("stream")
@click.argument("body", required=False)
@click.option(
    "--file",
    "handle",
    type=click.File("r"),
    help="A JSON-lines file, one body per line ('-' reads stdin).",
)
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="A meta field (repeatable).")
@target_options
def publish(
    target: Target, stream: str, body: str | None, handle: IO[str] | None, meta: Sequence[str]
) -> int:
    """Publish an event to STREAM: BODY as JSON when it parses, else as text.

    With --file, every line of a JSON-lines file is one event (a progress bar shows them
    going out, flushed 500 at a time). Prints the new entry IDs.
    """
    if body is not None and handle is not None:
        raise click.UsageError("give BODY or --file, not both")
    try:
        fields = parse_meta(meta)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--meta") from None
    with engine_for(target.config(stream)) as engine:
        broker = engine.new_context().event_broker()
        if handle is None:
            with bad_body("BODY"):
                value = None if body is None else parse_body(body)
                entry_id = broker.publish_now(stream, value, meta=fields)
            out.print(entry_id)
            return 0
        bodies = _read_bodies(handle)
        ids: list[str] = []
        with progress() as bar:
            task = bar.add_task(f"publishing to {stream}", total=len(bodies))
            for start in range(0, len(bodies), FILE_BATCH):
                for number, item in bodies[start : start + FILE_BATCH]:
                    with bad_body(f"{handle.name} line {number}"):
                        broker.publish(stream, item, meta=fields)
                ids += broker.flush()
                bar.update(task, completed=len(ids))
    span = f" ({ids[0]} .. {ids[-1]})" if ids else ""
    out.print(f"published {plural(len(ids), 'event')} to {stream}{span}")
    return 0


# -- tail --------------------------------------------------------------------------------


def _entry_line(event: Event[Any], now_ms: float) -> str:
    ago = age(max(0.0, (now_ms - id_ms(event.id)) / 1000))
    return f"{event.id}  {ago:>7} ago  {meta_text(event.meta)}  {body_text(event)}"


def _body_json(event: Event[Any]) -> Any:
    try:
        return jsonable(event.body)
    except DecodeError:
        return None


def _entry_json(event: Event[Any]) -> str:
    row = {"id": event.id, "meta": event.meta, "body": _body_json(event)}
    return json.dumps(row, ensure_ascii=False, allow_nan=False)


@cli.command()
@click.argument("stream")
@click.option("--count", "-n", default=10, show_default=True, type=click.IntRange(1))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@target_options
def tail(target: Target, stream: str, count: int, follow: bool, as_json: bool) -> int:
    """Print the newest entries of STREAM: ID, age, meta and decoded body.

    It reads without joining a group and acks nothing, so it is safe on a live stream.
    """

    def show(events: list[Event[Any]]) -> None:
        now_ms = time.time() * 1000
        for event in events:
            out.print(_entry_json(event) if as_json else _entry_line(event, now_ms), markup=False)

    config = target.config(stream)
    with until_interrupted() if follow else nullcontext(), engine_for(config) as engine:
        broker = engine.new_context().event_broker()
        events = broker.peek(stream, count)
        show(events)
        last = events[-1].id if events else "0-0"
        while follow:
            events = broker.peek_after(stream, last, count=100, block=1.0)
            if events:
                show(events)
                last = events[-1].id
    return 0


# -- stats -------------------------------------------------------------------------------


def _pools(engine: Engine) -> str:
    return ", ".join(mask(pool.url) for pool in engine.config.redis_pools)


@cli.command()
@click.argument("names", nargs=-1, metavar="[STREAM]...")
@click.option("--watch", type=DURATION, metavar="SECONDS", help="Refresh every SECONDS.")
@click.option("--json", "as_json", is_flag=True, help="JSON (one document per refresh).")
@target_options
def stats(target: Target, names: tuple[str, ...], watch: float | None, as_json: bool) -> int:
    """Statistics of streams (default: every stream of the config).

    Per stream and group: length, lag, pending, the age of the oldest event and of the
    oldest pending one, dead letters, and each consumer with its pending count and idle
    time. --watch refreshes in place; --json is for scripts.
    """
    config = target.config(*names)
    streams = target.selected(config, *names)
    if watch is not None and watch <= 0:
        raise click.BadParameter("must be above 0", param_hint="--watch")
    with engine_for(config) as engine:
        broker = engine.new_context().event_broker()

        def render() -> Any:
            found = broker.streams_statistics(*streams)
            if as_json:
                return json.dumps([stats_json(s) for s in found])
            stamp = _dt.datetime.now().strftime("%H:%M:%S")
            every = f"every {watch:g}s, " if watch else ""
            head = Text(f"fluxabee stats  {_pools(engine)}  ({every}{stamp})", style="bold")
            return Group(head, *stats_tables(found))

        if watch is None:
            out.print(render())
            return 0
        with until_interrupted():
            if as_json or not out.is_terminal:
                while True:
                    out.print(render())
                    if not as_json:
                        out.print()
                    time.sleep(watch)
            with Live(render(), console=out, auto_refresh=False) as live:
                while True:
                    time.sleep(watch)
                    live.update(render(), refresh=True)
    return 0


# -- pending, claim ----------------------------------------------------------------------


def _pending_table(entries: Sequence[Any], holder: str) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column(holder, no_wrap=True)
    table.add_column("IDLE", justify="right", no_wrap=True)
    table.add_column("DELIVERIES", justify="right", no_wrap=True)
    table.add_column("AGE", justify="right", no_wrap=True)
    now_ms = time.time() * 1000
    for entry in entries:
        published = age(max(0.0, (now_ms - entry.published_ms) / 1000))
        table.add_row(entry.id, entry.consumer, age(entry.idle), str(entry.deliveries), published)
    return table


@cli.command()
@click.argument("stream")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1))
@click.option("--consumer", metavar="NAME", help="Only the events this consumer holds.")
@click.option("--min-idle", type=DURATION, default=0.0, help="Only events idle this long.")
@click.option("--group", metavar="NAME", help="The consumer group (default: the stream's first).")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@target_options
def pending(
    *,
    target: Target,
    stream: str,
    count: int,
    consumer: str | None,
    min_idle: float,
    group: str | None,
    as_json: bool,
) -> int:
    """Events of STREAM delivered to a consumer and not acked yet, oldest first."""
    with engine_for(target.config(stream)) as engine:
        broker = engine.new_context().event_broker()
        entries = broker.pending_entries(
            stream, count=count, min_idle=min_idle, consumer=consumer, group=group
        )
    if as_json:
        out.print(json.dumps([vars(e) for e in entries]), markup=False)
    elif not entries:
        out.print(f"no pending events in {stream}")
    else:
        out.print(_pending_table(entries, "CONSUMER"))
        more = " (--count reached)" if len(entries) == count else ""
        out.print(f"{plural(len(entries), 'pending event')}{more}")
    return 0


@cli.command()
@click.argument("stream")
@click.option("--min-idle", type=DURATION, required=True, help="Claim events idle this long.")
@click.option("--to", "consumer", metavar="NAME", help="The consumer to give them to.")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1))
@click.option("--group", metavar="NAME", help="The consumer group (default: the stream's first).")
@target_options
def claim(
    *,
    target: Target,
    stream: str,
    min_idle: float,
    consumer: str | None,
    count: int,
    group: str | None,
) -> int:
    """Move events of STREAM pending longer than --min-idle to a live consumer.

    The default --to is the group's most recently active consumer that is not idle that
    long itself. Delivery counts are kept; the new holder gets them when it re-reads its
    own pending events, or `run` claims them again after its own min_idle.
    """
    with engine_for(target.config(stream)) as engine:
        broker = engine.new_context().event_broker()
        if consumer is None:
            name = engine.config.stream(stream).group(group)
            stats = broker.stream_statistics(stream)
            found = next((g for g in stats.groups if g.name == name), None)
            live = sorted(
                (c for c in (found.consumers if found else ()) if c.idle < min_idle),
                key=lambda c: c.idle,
            )
            if not live:
                raise CommandError(
                    f"no consumer of {stream} was active in the last {age(min_idle)} to claim "
                    "for: name one with --to"
                )
            consumer = live[0].name
        claimed = broker.claim_pending(
            stream, consumer=consumer, min_idle=min_idle, count=count, group=group
        )
    if not claimed:
        out.print(f"no events of {stream} pending longer than {age(min_idle)}")
        return 0
    out.print(_pending_table(claimed, "FROM"))
    out.print(f"claimed {plural(len(claimed), 'event')} of {stream} for {consumer}")
    return 0


# -- dead letters, prune -----------------------------------------------------------------


@cli.command("dead-letters")
@click.argument("stream")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1))
@click.option("--replay", is_flag=True, help="Publish them back to STREAM and remove them.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@target_options
def dead_letters(target: Target, stream: str, count: int, replay: bool, as_json: bool) -> int:
    """The dead letters of STREAM (events that failed too often), or --replay them."""
    with engine_for(target.config(stream)) as engine:
        broker = engine.new_context().event_broker()
        if replay:
            moved = broker.replay_dead_letters(stream)
            out.print(f"replayed {plural(moved, 'dead letter')} to {stream}")
            return 0
        letters = broker.dead_letters(stream, count)
    if as_json:
        rows = [
            {
                "id": letter.id,
                "source_id": letter.event.id,
                "deliveries": letter.deliveries,
                "error": letter.error,
                "meta": letter.event.meta,
                "body": _body_json(letter.event),
            }
            for letter in letters
        ]
        out.print(json.dumps(rows, ensure_ascii=False, allow_nan=False), markup=False)
        return 0
    if not letters:
        out.print(f"no dead letters in {stream}")
        return 0
    table = Table(header_style="bold", box=None, pad_edge=False)
    for name in ("SOURCE ID", "DELIVERIES", "ERROR", "BODY"):
        table.add_column(name, overflow="fold")
    for letter in letters:
        table.add_row(
            letter.event.id, str(letter.deliveries), letter.error, body_text(letter.event, 80)
        )
    out.print(table)
    count_text = plural(len(letters), "dead letter")
    out.print(f"{count_text}; `fluxabee dead-letters {stream} --replay` retries them")
    return 0


@cli.command()
@click.argument("stream")
@click.option("--idle", type=DURATION, required=True, help="Remove consumers idle this long.")
@target_options
def prune(target: Target, stream: str, idle: float) -> int:
    """Remove consumer names of STREAM idle longer than --idle that hold no events.

    Only names `consumer_many` generated; a consumer that holds pending events stays.
    """
    with engine_for(target.config(stream)) as engine:
        removed = engine.new_context().event_broker().prune_consumers(stream, idle=idle)
    if not removed:
        out.print(f"no consumer of {stream} idle longer than {age(idle)} without pending events")
    else:
        out.print(f"removed {plural(len(removed), 'consumer')} from {stream}:")
        for name in removed:
            out.print(f"  {name}")
    return 0


@cli.command()
@click.argument("stream")
@click.option("--maxlen", type=click.IntRange(0), help="Keep the newest N entries.")
@click.option("--minid", metavar="ID", help="Remove the entries below this ID.")
@click.option("--force", is_flag=True, help="Also remove entries not acked by every group.")
@target_options
def trim(*, target: Target, stream: str, maxlen: int | None, minid: str | None, force: bool) -> int:
    """Remove old entries of STREAM.

    Without --maxlen or --minid: every entry all groups acked, as retention does. With
    one of them: down to there, but never an entry still pending or not delivered to a
    group of the stream, unless --force.
    """
    if maxlen is not None and minid is not None:
        raise click.UsageError("give --maxlen or --minid, not both")
    with engine_for(target.config(stream)) as engine:
        broker = engine.new_context().event_broker()
        try:
            removed = broker.trim(stream, min_id=minid, max_len=maxlen, force=force)
        except TrimRefusedError as exc:  # say it in the command's words
            raise CommandError(str(exc).replace("force=True", "--force")) from None
        length = broker.stream_statistics(stream).length
    out.print(f"removed {plural(removed, 'entry', 'entries')} from {stream}; {length} left")
    return 0
