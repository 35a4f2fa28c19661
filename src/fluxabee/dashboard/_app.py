"""The dashboard's routes (Starlette): pages, fragments the script refreshes, actions."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .._constants import DEFAULT_MIN_IDLE
from .._uris import mask
from ..cli._format import parse_duration
from ..config import Config
from ..errors import (
    FluxabeeError,
    InvalidArgumentError,
    TrimRefusedError,
    UnknownGroupError,
    UnknownStreamError,
)
from . import _pages as pages
from ._auth import COOKIE, TokenGate, cookie_value, token_matches
from ._html import esc, page
from ._service import MAX_IDS, Done, Service

logger = logging.getLogger("fluxabee.dashboard")

#: Entries on one page of a pending list.
PAGE_SIZE = 50
#: Newest entries shown on a stream page.
NEWEST = 20
#: Header every action request must carry (a cross-site form cannot send it).
ACTION_HEADER = "x-fluxabee-action"
#: Headers of every page: nothing loads from elsewhere, no framing (clickjacking), no cache.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
_ID = re.compile(r"\d{1,20}-\d{1,20}")
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


class BadRequest(FluxabeeError):
    """A request the dashboard cannot act on (HTTP 400)."""


class Dashboard(Starlette):
    """The dashboard as an ASGI app (:func:`fluxabee.dashboard.create_app` makes it).

    Its connections open on the first request; :meth:`aclose` closes them and stops the
    sampler. Run on its own, its lifespan does that at shutdown; mounted in another app
    (whose lifespan does not run a mounted app's), call ``await dashboard.aclose()`` from
    the host app's shutdown.
    """

    #: The connections, the sampler and the actions.
    service: Service

    async def aclose(self) -> None:
        """Stop the sampler and close the Redis connections."""
        await self.service.aclose()


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _duration(text: str, default: float) -> float:
    if not text.strip():
        return default
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def local_path(target: str) -> str:
    """``target`` when it is a path of this site, else ``/`` (the login form's ``next`` must
    not send anyone elsewhere: ``//host``, ``/\\host`` and schemes are refused)."""
    odd = "\\" in target or any(not ch.isprintable() for ch in target)
    if not target.startswith("/") or target.startswith("//") or odd:
        return "/"
    return target


def _ids(values: list[str]) -> list[str]:
    if not values:
        raise BadRequest("select at least one entry")
    if len(values) > MAX_IDS:
        raise BadRequest(f"at most {MAX_IDS} entries at once")
    for value in values:
        if not _ID.fullmatch(value):
            raise BadRequest(f"not an entry ID: {value[:40]!r}")
    return values


def _max_len(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit():
        raise BadRequest(f"max_len must be a number of entries, got {text[:40]!r}")
    return int(text)


def _trim_target(min_id: str, max_len: str) -> tuple[str | None, int | None]:
    length = _max_len(max_len)
    target = min_id.strip() or None
    if (target is None) == (length is None):
        raise BadRequest("give a length to keep or an ID to trim below (one of them)")
    if target is not None and not _ID.fullmatch(target):
        raise BadRequest(f"not an entry ID: {target[:40]!r}")
    return target, length


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def create_app(
    config: Config,
    *,
    read_only: bool = False,
    token: str | None = None,
    refresh: float = 5.0,
) -> Dashboard:
    """The dashboard of ``config`` as an ASGI app; see :mod:`fluxabee.dashboard`."""
    if not isinstance(config, Config):
        raise InvalidArgumentError(f"config must be a fluxabee.Config, got {type(config)}")
    if token is not None and (not isinstance(token, str) or not token):
        raise InvalidArgumentError("token must be a non-empty str (or None)")
    if not refresh > 0:
        raise InvalidArgumentError(f"refresh must be > 0 seconds, got {refresh!r}")
    service = Service(config, every=refresh)
    static = {
        name: (resources.files(__package__) / "static" / name).read_bytes() for name in _STATIC
    }

    def html(
        request: Request, title: str, body: str, active: str = "", status: int = 200
    ) -> Response:
        text = page(title, body, base=_base(request), read_only=read_only, active=active)
        return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)

    def guarded(title: str, active: str = "") -> Callable[[Handler], Handler]:
        def wrap(func: Handler) -> Handler:
            async def run(request: Request) -> Response:
                try:
                    return await func(request)
                except (UnknownStreamError, UnknownGroupError) as exc:
                    return html(
                        request, "Not found", f'<p class="error">{esc(exc)}</p>', status=404
                    )
                except BadRequest as exc:
                    return html(request, title, f'<p class="error">{esc(exc)}</p>', status=400)
                except (FluxabeeError, OSError) as exc:
                    text = esc(mask(str(exc)))
                    return html(request, title, f'<p class="error">Redis: {text}</p>', active, 502)

            return run

        return wrap

    @guarded("Overview", "")
    async def overview(request: Request) -> Response:
        now, stats = await service.snapshot(1.0)
        body = pages.overview(
            config, stats, service.history, now, _base(request), every=refresh,
            started=service.started,
        )  # fmt: skip
        return html(request, "Overview", body)

    async def overview_rows(request: Request) -> Response:
        try:
            now, stats = await service.snapshot(refresh / 2)
        except (FluxabeeError, OSError) as exc:
            return Response(mask(str(exc)), status_code=502)
        rows = pages.overview_rows(stats, service.history, now, _base(request))
        return HTMLResponse(rows, headers={"cache-control": "no-store"})

    @guarded("Stream")
    async def stream(request: Request) -> Response:
        name = request.path_params["name"]
        settings = config.stream(name)
        params = request.query_params
        group = settings.group(params.get("group") or None)
        stale = _duration(params.get("stale", ""), DEFAULT_MIN_IDLE)
        min_idle = params.get("min_idle", "")
        after = params.get("after") or None
        if after is not None and not _ID.fullmatch(after):
            raise BadRequest("after must be an entry ID")
        broker = service.broker()
        stats = await broker.stream_statistics(name)
        body = pages.groups_section(stats, stale)
        found = next((g for g in stats.groups if g.name == group), None)
        if found is not None:
            entries = await service.pending_page(
                name, group, count=PAGE_SIZE,
                min_idle_ms=int(_duration(min_idle, 0) * 1000),
                consumer=params.get("consumer") or None, after=after,
            )  # fmt: skip
            body += pages.pending_section(
                name, found, settings.groups, entries, _base(request),
                consumer=params.get("consumer", ""), min_idle=min_idle, size=PAGE_SIZE,
                after=after, now_ms=await service.server_ms(name), stale=stale,
                read_only=read_only,
            )  # fmt: skip
        else:
            body += f"<h2>Pending</h2><p>The group {esc(group)} does not exist yet.</p>"
        body += pages.newest_section(name, await broker.peek(name, NEWEST), _base(request))
        if not read_only:
            body += pages.trim_section(name, _base(request))
        return html(request, name, body)

    async def tail(request: Request) -> Response:
        name = request.query_params.get("stream", "")
        after = request.query_params.get("after", "0-0")
        try:
            config.stream(name)
            if not _ID.fullmatch(after):
                raise BadRequest("after must be an entry ID")
            events = await service.broker().peek_after(name, after, count=100)
        except (FluxabeeError, OSError) as exc:
            return Response(mask(str(exc)), status_code=400)
        last = events[-1].id if events else after
        return HTMLResponse(
            pages.entry_rows(events), headers={"x-last-id": last, "cache-control": "no-store"}
        )

    async def trim_preview(request: Request) -> Response:
        params = request.query_params
        try:
            name = params.get("stream", "")
            config.stream(name)
            min_id, max_len = _trim_target(params.get("min_id", ""), params.get("max_len", ""))
            preview = await service.trim_preview(name, min_id=min_id, max_len=max_len)
        except (FluxabeeError, OSError) as exc:
            return JSONResponse({"ok": False, "message": mask(str(exc))}, status_code=400)
        return JSONResponse(
            {"ok": True, "count": preview.count, "refused": preview.refused,
             "message": preview.message}
        )  # fmt: skip

    @guarded("Dead letters", "/dead")
    async def dead_index(request: Request) -> Response:
        _, stats = await service.snapshot(1.0)
        return html(request, "Dead letters", pages.dead_index(stats, _base(request)), "/dead")

    @guarded("Dead letters", "/dead")
    async def dead(request: Request) -> Response:
        name = request.path_params["name"]
        config.stream(name)
        letters = await service.broker().dead_letters(name, 200)
        body = pages.letters_section(name, letters, _base(request), read_only=read_only)
        return html(request, f"Dead letters of {name}", body, "/dead")

    @guarded("Consumers", "/consumers")
    async def consumers(request: Request) -> Response:
        idle = _duration(request.query_params.get("idle", ""), 3600.0)
        _, stats = await service.snapshot(1.0)
        body = pages.consumers_page(stats, _base(request), idle=idle, read_only=read_only)
        return html(request, "Consumers", body, "/consumers")

    async def act(action: str, form: dict[str, list[str]]) -> Done:
        def one(key: str) -> str:
            return (form.get(key) or [""])[0]

        if action == "prune":
            return await service.prune(_duration(one("idle"), 3600.0))
        name = one("stream")
        settings = config.stream(name)
        if action == "trim":
            min_id, max_len = _trim_target(one("min_id"), one("max_len"))
            return await service.trim(name, min_id=min_id, max_len=max_len)
        if action == "replay-all":
            return await service.replay(name, None)
        if action == "replay":
            return await service.replay(name, _ids(form.get("ids", [])))
        if action == "delete-letters":
            return await service.delete_letters(name, _ids(form.get("ids", [])))
        group = settings.group(one("group") or None)
        if action == "claim-idle":
            consumer = one("consumer")
            if not consumer:
                raise BadRequest("name the consumer to claim to")
            return await service.claim_idle(name, group, consumer, _duration(one("min_idle"), 0))
        ids = _ids(form.get("ids", []))
        if action == "claim":
            if not one("consumer"):
                raise BadRequest("name the consumer to claim to")
            return await service.claim(name, group, one("consumer"), ids)
        if action == "ack":
            return await service.ack(name, group, ids)
        if action == "dead-letter":
            return await service.dead_letter(name, group, ids)
        if action == "delete":
            return await service.delete(name, group, ids)
        raise BadRequest(f"no such action: {action[:40]!r}")

    async def action(request: Request) -> Response:
        name = request.path_params["action"]
        if read_only:
            return JSONResponse({"ok": False, "message": "read-only dashboard"}, status_code=403)
        if request.headers.get(ACTION_HEADER) != "1":
            message = f"actions are sent by the dashboard's page (the {ACTION_HEADER} header)"
            return JSONResponse({"ok": False, "message": message}, status_code=403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        who = request.client.host if request.client else "?"
        try:
            done = await act(name, form)
        except (BadRequest, InvalidArgumentError, UnknownStreamError, UnknownGroupError) as exc:
            return JSONResponse({"ok": False, "message": mask(str(exc))}, status_code=400)
        except TrimRefusedError as exc:
            logger.warning("fluxabee dashboard: %s refused (from %s): %s", name, who, exc)
            return JSONResponse({"ok": False, "message": mask(str(exc))}, status_code=409)
        except (FluxabeeError, OSError) as exc:
            logger.warning("fluxabee dashboard: %s failed (from %s): %s", name, who, mask(str(exc)))
            return JSONResponse({"ok": False, "message": mask(str(exc))}, status_code=502)
        finally:
            service.invalidate()
        logger.info(
            "fluxabee dashboard: %s (from %s): %s %s", name, who, done.message, " ".join(done.ids)
        )
        return JSONResponse({"ok": True, "message": done.message, "ids": list(done.ids)})

    async def login(request: Request) -> Response:
        base = _base(request)
        next_url = request.query_params.get("next", "/")
        failed = False
        if request.method == "POST":
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            next_url = (form.get("next") or ["/"])[0]
            given = (form.get("token") or [""])[0]
            if token is None or token_matches(given, token):
                response = RedirectResponse(base + local_path(next_url), status_code=303)
                if token is not None:
                    response.set_cookie(
                        COOKIE, cookie_value(token), httponly=True, samesite="strict",
                        path=base or "/", secure=request.url.scheme == "https",
                    )  # fmt: skip
                return response
            failed = True
            logger.warning("fluxabee dashboard: a wrong token (from %s)",
                           request.client.host if request.client else "?")  # fmt: skip
        text = page("Sign in", pages.login(base, next_url, failed), base=base,
                    read_only=read_only, login=True)  # fmt: skip
        return HTMLResponse(text, status_code=401 if failed else 200, headers=PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["file"]
        if name not in static:
            return Response("not found", status_code=404)
        return Response(static[name], media_type=_STATIC[name],
                        headers={"cache-control": "no-cache"})  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.aclose()

    middleware = [] if token is None else [Middleware(TokenGate, token=token)]
    app = Dashboard(
        routes=[
            Route("/", overview),
            Route("/fragments/overview", overview_rows),
            Route("/tail", tail),
            Route("/trim-preview", trim_preview),
            Route("/streams/{name:path}", stream),
            Route("/dead", dead_index),
            Route("/dead/{name:path}", dead),
            Route("/consumers", consumers),
            Route("/actions/{action}", action, methods=["POST"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/static/{file}", asset),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.service = service
    return app
