"""Pure: a pool URL -> how to connect (address, TLS, credentials, db) and the handshake.

The URL is the normalized one :class:`~fluxabee.RedisPool` builds (``redis://``,
``rediss://`` or ``unix://``, always naming the database), so a small parser over the
standard library suffices. User name and password are percent-decoded. TLS options come
from the query: ``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_password``, ``ssl_cert_reqs`` (none / optional / required) and ``ssl_check_hostname``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from .errors import ConfigError

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class ConnParams:
    """Where and how to connect to one Redis server."""

    host: str | None
    port: int
    path: str | None
    db: int
    username: str | None
    password: str | None = field(repr=False)
    tls: ssl.SSLContext | None = field(repr=False)
    server_hostname: str | None
    #: Seconds to wait for a TCP / TLS / unix connection to open.
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    #: Seconds to wait for the replies of a command that does not block on the server.
    command_timeout: float = DEFAULT_SOCKET_TIMEOUT

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
        """A password-free address for messages: ``host:port`` or the socket path."""
        return self.path or f"{self.host}:{self.port}"


def _tls_context(options: dict[str, str], host: str) -> tuple[ssl.SSLContext, str | None]:
    context = ssl.create_default_context(
        cafile=options.get("ssl_ca_certs") or None, capath=options.get("ssl_ca_path") or None
    )
    reqs_text = options.get("ssl_cert_reqs", "required").lower()
    if reqs_text not in _CERT_REQS:
        raise ConfigError(f"ssl_cert_reqs must be none, optional or required, got {reqs_text!r}")
    reqs = _CERT_REQS[reqs_text]
    check_hostname = options.get("ssl_check_hostname", "true").lower() not in _FALSE
    if reqs == ssl.CERT_NONE:
        check_hostname = False
    context.check_hostname = check_hostname
    context.verify_mode = reqs
    certfile = options.get("ssl_certfile")
    if certfile:
        try:
            context.load_cert_chain(
                certfile, options.get("ssl_keyfile") or None, options.get("ssl_password") or None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ssl_certfile: cannot load the client certificate: {exc}") from exc
    return context, host if check_hostname else None


def conn_params(url: str, timeout: float | None = None) -> ConnParams:
    """Parse a normalized pool URL (``RedisPool.url``); ``timeout`` (``RedisPool.timeout``)
    is both the connect and the command timeout, ``None`` keeps the defaults."""
    timeouts = {} if timeout is None else {"connect_timeout": timeout, "command_timeout": timeout}
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme == "unix":
        return ConnParams(
            host=None,
            port=0,
            path=unquote(parts.path),
            db=int(options.get("db", "0") or 0),
            username=username,
            password=password,
            tls=None,
            server_hostname=None,
            **timeouts,
        )
    host = parts.hostname or "localhost"
    db_text = parts.path.lstrip("/")
    tls = None
    server_hostname = None
    if parts.scheme == "rediss":
        tls, server_hostname = _tls_context(options, host)
    return ConnParams(
        host=host,
        port=parts.port or 6379,
        path=None,
        db=int(db_text) if db_text else 0,
        username=username,
        password=password,
        tls=tls,
        server_hostname=server_hostname,
        **timeouts,
    )
