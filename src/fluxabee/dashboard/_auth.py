"""The token gate: every request needs the token, as a cookie (set by the login form) or
as ``Authorization: Bearer <token>`` (for scripts).

The cookie holds an HMAC of the token, not the token; it is ``HttpOnly`` and
``SameSite=Strict``. Tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The session cookie's name.
COOKIE = "fluxabee_dashboard"
#: Paths open without the token (the login form and its stylesheet).
OPEN_PATHS = ("/login", "/static/dashboard.css")


def cookie_value(token: str) -> str:
    """What the session cookie holds for ``token`` (an HMAC of it, never the token)."""
    return hmac.new(token.encode(), b"fluxabee-dashboard-session", hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a token."""
    return hmac.compare_digest(given.encode(), token.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def authorized(headers: dict[str, str], token: str) -> bool:
    """Whether a request's headers carry ``token`` (bearer) or its session cookie."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and token_matches(auth[7:].strip(), token):
        return True
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no session
        return False
    morsel = cookies.get(COOKIE)
    return morsel is not None and token_matches(morsel.value, cookie_value(token))


def route_path(scope: Scope) -> str:
    """The path inside the app (without the prefix it is mounted under)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class TokenGate:
    """ASGI middleware: lets a request through only with the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 303 (to the login form) or 401."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope) or "/"
        headers = _headers(scope)
        if path in OPEN_PATHS or authorized(headers, self.token):
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        wants_page = scope["method"] == "GET" and "text/html" in headers.get("accept", "")
        if wants_page:
            target = f"{root}/login?next={quote(path, safe='')}"
            answer = [(b"location", target.encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 303, "headers": answer})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b'{"ok": false, "message": "the dashboard token is required"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="fluxabee"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
