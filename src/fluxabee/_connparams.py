"""Pure: a pool URL -> how to connect (address, TLS, credentials, db) and the handshake.

URLs are parsed by redis-py's ``parse_url`` (the same rules as ``Redis.from_url``) so every
documented ``redis://`` / ``rediss://`` / ``unix://`` option keeps its meaning.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from redis.connection import parse_url

from .errors import ConfigError

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


@dataclass(frozen=True)
class ConnParams:
    """Where and how to connect to one Redis server."""

    host: str | None
    port: int
    path: str | None
    db: int
    username: str | None
    password: str | None
    tls: ssl.SSLContext | None
    server_hostname: str | None

    def handshake(self) -> list[list[bytes | str | int]]:
        """The commands sent on every new connection (AUTH, SELECT)."""
        commands: list[list[bytes | str | int]] = []
        if self.password is not None:
            if self.username:
                commands.append([b"AUTH", self.username, self.password])
            else:
                commands.append([b"AUTH", self.password])
        if self.db:
            commands.append([b"SELECT", self.db])
        return commands

    def describe(self) -> str:
        """A password-free address for messages."""
        return self.path or f"{self.host}:{self.port}"


def _tls_context(options: dict[str, Any], host: str) -> tuple[ssl.SSLContext, str | None]:
    cafile = options.get("ssl_ca_certs")
    context = ssl.create_default_context(cafile=cafile, capath=options.get("ssl_ca_path"))
    reqs = options.get("ssl_cert_reqs", "required")
    if isinstance(reqs, str):
        reqs = _CERT_REQS.get(reqs.lower(), ssl.CERT_REQUIRED)
    check_hostname = str(options.get("ssl_check_hostname", "true")).lower() not in ("false", "0")
    if reqs == ssl.CERT_NONE:
        check_hostname = False
    context.check_hostname = check_hostname
    context.verify_mode = reqs
    certfile = options.get("ssl_certfile")
    if certfile:
        context.load_cert_chain(certfile, options.get("ssl_keyfile"), options.get("ssl_password"))
    return context, host if check_hostname else None


def conn_params(url: str) -> ConnParams:
    """Parse a normalized pool URL (``RedisPool.url``)."""
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(f"cannot parse Redis URL: {exc}") from exc
    path = options.get("path")
    host = None if path else str(options.get("host", "localhost"))
    tls = None
    server_hostname = None
    if url.lower().startswith("rediss://"):
        tls, server_hostname = _tls_context(options, host or "localhost")
    return ConnParams(
        host=host,
        port=int(options.get("port", 6379)),
        path=path,
        db=int(options.get("db", 0) or 0),
        username=options.get("username"),
        password=options.get("password"),
        tls=tls,
        server_hostname=server_hostname,
    )
