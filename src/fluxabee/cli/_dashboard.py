"""``fluxabee dashboard``: the web dashboard (:mod:`fluxabee.dashboard`) served by uvicorn."""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from ._app import DURATION, CommandError, Target, cli, err, out, target_options

#: Where the dashboard listens unless ``--host`` says otherwise (loopback only).
DEFAULT_HOST = "127.0.0.1"
#: The dashboard's default port.
DEFAULT_PORT = 8420
#: Said when the dashboard extra is missing.
MISSING = "the dashboard needs its extra: pip install 'fluxabee[dashboard]'"


def loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_host(host: str | None, token: str | None) -> tuple[str, str | None]:
    """Where to listen, and a warning to print: without ``--host``, loopback only; a
    non-loopback ``--host`` without a token serves Redis to anyone who can reach it."""
    if host is None:
        return DEFAULT_HOST, None
    if token is None and not loopback(host):
        return host, (
            f"fluxabee: warning: the dashboard listens on {host} without a token: anyone who "
            "can reach it sees the streams and can act on them (give --token or "
            "FLUXABEE_DASHBOARD_TOKEN, or --read-only)"
        )
    return host, None


@cli.command("dashboard")
@click.option("--host", default=None, help=f"Address to listen on (default {DEFAULT_HOST}).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--read-only", is_flag=True, help="Show no action; refuse them (HTTP 403).")
@click.option(
    "--token",
    envvar="FLUXABEE_DASHBOARD_TOKEN",
    metavar="TOKEN",
    help="Require this token on every request (a login form, or Authorization: Bearer); "
    "default $FLUXABEE_DASHBOARD_TOKEN.",
)
@click.option("--refresh", type=DURATION, default=5.0, help="Sampling and refresh interval.")
@target_options
def dashboard(
    *,
    target: Target,
    host: str | None,
    port: int,
    read_only: bool,
    token: str | None,
    refresh: float,
) -> None:
    """Serve the web dashboard: streams, groups, pending events, dead letters, actions.

    With --redis, name the streams with --stream. Listens on 127.0.0.1 unless --host says
    otherwise (then without a token it warns).
    """
    try:
        import uvicorn  # noqa: PLC0415 - an optional extra

        from ..dashboard import create_app  # noqa: PLC0415
    except ImportError as exc:
        raise CommandError(f"{MISSING} ({exc.name} is missing)") from None
    config = target.config()
    app = create_app(config, read_only=read_only, token=token or None, refresh=refresh)
    bind, warning = bind_host(host, token or None)
    if warning:
        err.print(warning, markup=False)
    shown = f"[{bind}]" if ":" in bind else bind
    mode = " (read-only)" if read_only else ""
    out.print(f"fluxabee dashboard on http://{shown}:{port}/{mode}", markup=False)
    options: dict[str, Any] = {"log_level": "info", "ws": "none", "lifespan": "on"}
    uvicorn.run(app, host=bind, port=port, **options)
