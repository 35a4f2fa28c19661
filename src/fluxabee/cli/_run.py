"""``fluxabee run module:app``: run every handler of a :class:`~fluxabee.App`; and
``fluxabee asyncapi module:app``: its AsyncAPI 3.0 document.

One process by default; ``--processes N`` forks N workers under a small supervisor
(:mod:`fluxabee._supervise`) that restarts one that dies and stops them all on SIGTERM.
``--health-port`` serves ``/healthz`` and ``/readyz``; ``--metrics-port`` Prometheus
metrics (worker ``i`` of ``--processes N`` on port ``P + i``); ``--trace`` spans.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import click
import yaml

from .._application import App
from .._asyncapi import document
from .._constants import SINGLE_CONSUMER_NAME
from .._supervise import HealthServer, Supervisor
from .._sync.engine import Engine
from .._validate import consumer_name
from ..config import Config
from ._app import cli, err
from ._format import plural
from ._worker import LEVELS, _observers

logger = logging.getLogger("fluxabee")


def load_app(path: str) -> App:
    """``package.module:app`` -> the :class:`App` (the current directory is importable)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected MODULE:APP, got {path!r}", param_hint="APP")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint="APP"
        ) from None
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, App):
        raise click.BadParameter(f"{module_name}.{attr} is not a fluxabee.App", param_hint="APP")
    return found


def redis_reachable(config: Config, stream: str) -> Callable[[], bool]:
    """``/readyz``: one look at ``stream`` through a short-lived engine of its own (the
    probe shares no connection with the handlers, and the parent keeps none open)."""

    def check() -> bool:
        with Engine(config) as engine:
            engine.new_context().event_broker().stream_statistics(stream)
        return True

    return check


def _serve_one(app: App, index: int | None, metrics: tuple[int | None, str], trace: bool) -> int:
    """Run the app in this process until SIGTERM / SIGINT: exit code 0."""
    port, address = metrics
    if port is not None and index is not None:
        port += index
    if index is not None:  # a restarted worker takes its predecessor's name, and its pending
        base = app.name or f"{socket.gethostname()}-{os.getppid()}"
        app.name = consumer_name(f"{base}-{index}", reserved=SINGLE_CONSUMER_NAME)
    streams = sorted({h.stream for h in app.handlers})
    app._observers.extend(_observers(app.config, streams, port, address, trace))
    who = "fluxabee run" if index is None else f"fluxabee run: worker {index}"
    err.print(
        f"{who} (pid {os.getpid()}): {plural(len(app.handlers), 'handler')} on "
        f"{', '.join(streams)} (SIGTERM or Ctrl-C stops after the events in flight)",
        markup=False,
    )
    total = app.run()
    err.print(f"{who}: stopped after {plural(total, 'event')} handled", markup=False)
    return 0


@cli.command("run")
@click.argument("app_path", metavar="MODULE:APP")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1),
              help="Worker processes (forked; one that dies is restarted).")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Serve Prometheus metrics (worker i of --processes on PORT+i).")  # fmt: skip
@click.option("--metrics-address", default="0.0.0.0", show_default=True,
              help="Address of the metrics server.")  # fmt: skip
@click.option("--health-port", type=click.IntRange(0, 65535),
              help="Serve /healthz and /readyz (Kubernetes probes).")  # fmt: skip
@click.option("--health-address", default="0.0.0.0", show_default=True,
              help="Address of the health server.")  # fmt: skip
@click.option("--name", metavar="NAME",
              help="A stable consumer name (say the pod name; worker i of --processes is "
                   "NAME-i, by default HOST-PID-i): a restart re-reads what it left pending "
                   "at once.")  # fmt: skip
@click.option("--trace", is_flag=True, help="OpenTelemetry spans (global tracer provider).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(LEVELS, case_sensitive=False))  # fmt: skip
def run_app(
    *,
    app_path: str,
    processes: int,
    metrics_port: int | None,
    metrics_address: str,
    health_port: int | None,
    health_address: str,
    name: str | None,
    trace: bool,
    log_level: str,
) -> int:
    """Run every handler of MODULE:APP (a fluxabee.App) until SIGTERM or Ctrl-C.

    A stop lets the events in flight finish, acks them and hands back the rest; the
    command then exits 0. With --processes N, N workers are forked and one that dies is
    restarted (with a backoff); /healthz then says whether all N run.
    """
    app = load_app(app_path)
    if name is not None:
        app.name = consumer_name(name, reserved=SINGLE_CONSUMER_NAME)
    if not app.handlers:
        raise click.UsageError(f"{app_path} has no handlers (decorate some with app.consumer)")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    ready = redis_reachable(app.config, app.handlers[0].stream)
    metrics = (metrics_port, metrics_address)
    if processes == 1:
        health = None
        if health_port is not None:

            def reading() -> bool:
                runtime = app.runtime
                return runtime is not None and runtime.reading == len(app.handlers)

            health = HealthServer(health_address, health_port, reading, ready)
            health.serve_in_thread()
            err.print(f"fluxabee run: health on port {health.port}", markup=False)
        try:
            return _serve_one(app, None, metrics, trace)
        finally:
            if health is not None:
                health.close()
    supervisor: Supervisor | None = None
    health = None
    if health_port is not None:
        health = HealthServer(
            health_address,
            health_port,
            lambda: supervisor is not None and supervisor.all_running(),
            ready,
        )
        err.print(f"fluxabee run: health on port {health.port}", markup=False)
    supervisor = Supervisor(
        processes, lambda index: _serve_one(app, index, metrics, trace), health=health
    )
    err.print(
        f"fluxabee run: supervising {plural(processes, 'worker')} (pid {os.getpid()})",
        markup=False,
    )
    try:
        code = supervisor.run()
    finally:
        if health is not None:
            health.close()
    err.print("fluxabee run: every worker stopped", markup=False)
    return code


@cli.command("asyncapi")
@click.argument("app_path", metavar="MODULE:APP")
@click.option("--yaml", "as_yaml", is_flag=True, help="YAML instead of JSON.")
@click.option("--title", default="fluxabee app", show_default=True, help="info.title")
@click.option("--app-version", default="1.0.0", show_default=True, help="info.version")
def asyncapi(*, app_path: str, as_yaml: bool, title: str, app_version: str) -> int:
    """Write the AsyncAPI 3.0 document of MODULE:APP to standard output.

    Its streams are channels, each handler a receive operation (with its consumer group),
    each handler's annotation the message payload's JSON schema (through pydantic).
    """
    app = load_app(app_path)
    data = document(app, title=title, version=app_version)
    if as_yaml:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    click.echo(text, nl=False)
    return 0
