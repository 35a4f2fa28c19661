"""Pure: the Redis URI forms a pool accepts, parsed and normalized.

``redis://``, ``rediss://`` (TLS), ``unix:///path?db=N`` and FluxaORM's short forms
``host``, ``host:port`` and ``host:port:db``. Every error is a
:class:`~fluxabee.errors.ConfigError` naming where the URI came from; passwords are masked
in every message.
"""

from __future__ import annotations

import re
import reprlib
from typing import NamedTuple, NoReturn
from urllib.parse import quote

from fluxabee._constants import DEFAULT_REDIS_PORT
from fluxabee.errors import ConfigError

_SCHEMES = ("redis", "rediss", "unix")
_HOST = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_SHORT_RE = re.compile(rf"({_HOST})(?::([0-9]+)(?::([0-9]+))?)?")
_HOSTPORT_RE = re.compile(rf"({_HOST}|\[[0-9A-Fa-f:.]+\])(?::([0-9]+))?")
#: A URI's ``user:`` (group 1) and its password up to the last ``@`` of the line before the
#: next URI or the end of a quoted URI (``': ``, ``',``, ``')``): a password may hold
#: ``/ ? # @ : % &`` and spaces, unencoded.
_PASSWORD_RE = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)"
    r"(?:(?![A-Za-z][A-Za-z0-9+.-]*://|['\"](?:[\s:,;)\]}]|$))[^\n])*@"
)
#: A secret in a query (``ssl_password=``, ``password=``, ``sentinel_password=``...): the
#: key (group 1) and its value, up to the next ``&name=`` or the end of a quoted URI, so a raw
#: ``&``, ``@`` or space inside it stays hidden too.
_QUERY_SECRET_RE = re.compile(
    r"([?&](?:[A-Za-z0-9_.-]*(?:password|passwd|secret|token)|pass|pwd)=)"
    r"(?:(?!&[A-Za-z0-9_.-]+=|['\"](?:[\s:,;)\]}]|$))[^\n])*",
    re.IGNORECASE,
)
_EXPECTED_URI = "expected redis://, rediss://, unix:///path or host[:port[:db]]"
#: Longest digit string accepted for a port or a db (keeps ``int()`` cheap).
_MAX_DIGITS = 18


class ParsedUri(NamedTuple):
    """The parts of a URI, as given (percent-encoding kept)."""

    raw: str
    scheme: str
    userinfo: str | None
    host: str
    port: int
    path: str
    db: int | None
    query: tuple[str, ...]


def short(value: object) -> str:
    """A bounded repr, so huge values do not flood a message."""
    return reprlib.repr(value)


def describe(value: object) -> str:
    """``type repr`` of a bad value, for messages."""
    return "None" if value is None else f"{type(value).__name__} {short(value)}"


def mask(text: str) -> str:
    """``text`` (a URI, or a message or traceback holding URIs) with every secret replaced by
    ``***``: the password of each URI, and the values of secret query options
    (``ssl_password``, ``password``...).

    The one masking function of the library (``repr``, messages, logs, the command line). It
    errs on the side of hiding: a password may hold any character but a newline, so
    everything from ``user:`` to the last ``@`` of the URI's line is hidden.
    """
    if "://" not in text:
        return text
    return _PASSWORD_RE.sub(r"\1***@", _QUERY_SECRET_RE.sub(r"\1***", text))


def _fail(where: str, uri: str, reason: str) -> NoReturn:
    raise ConfigError(f"{where}: cannot parse {short(mask(uri))}: {reason}")


def _number(text: str, what: str, where: str, uri: str) -> int:
    """A decimal digit string as an int (only ASCII digits, bounded length)."""
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        _fail(where, uri, f"{what} must be a non-negative integer, got {short(text)}")
    return int(text)


def _port(text: str | None, where: str, uri: str) -> int:
    if text is None:
        return DEFAULT_REDIS_PORT
    if len(text) > 5 or not 1 <= _number(text, "port", where, uri) <= 65535:
        _fail(where, uri, f"port must be 1..65535, got {short(text)}")
    return int(text)


def _split_query(query: str, where: str, uri: str) -> tuple[tuple[str, ...], int | None]:
    """Split a query into its options (``db`` removed) and the ``db`` it names."""
    items: list[str] = []
    db: int | None = None
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key != "db":
            if item:
                items.append(item)
            continue
        number = _number(value, "db", where, uri)
        if db is not None and number != db:
            _fail(where, uri, f"db given twice ({db} and {number})")
        db = number
    return tuple(items), db


def parse_uri(uri: object, where: str) -> ParsedUri:
    """Parse every accepted URI form; :class:`ConfigError` naming ``where`` otherwise."""
    if not isinstance(uri, str):
        raise ConfigError(f"{where}: expected a URI string, got {describe(uri)}")
    if not uri:
        _fail(where, uri, "empty")
    if any(ch.isspace() or not ch.isprintable() for ch in uri):
        _fail(where, uri, "whitespace or control characters")
    head, sep, rest = uri.partition("://")
    if not sep:
        match = _SHORT_RE.fullmatch(uri)
        if match is None:
            _fail(where, uri, _EXPECTED_URI)
        host, port, db = match.groups()
        number = None if db is None else _number(db, "db", where, uri)
        return ParsedUri(uri, "redis", None, host, _port(port, where, uri), "", number, ())
    scheme = head.lower()
    if scheme not in _SCHEMES:
        _fail(where, uri, f"unsupported scheme {short(head)}; {_EXPECTED_URI}")
    if "#" in rest:
        _fail(where, uri, "a fragment ('#') is not allowed; percent-encode '#' as %23")
    rest, _, query = rest.partition("?")
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, at, hostport = netloc.rpartition("@")
    options, query_db = _split_query(query, where, uri)
    if scheme == "unix":
        if hostport or path in ("", "/"):
            _fail(where, uri, "a unix URL names an absolute socket path: unix:///path")
        return ParsedUri(uri, scheme, userinfo if at else None, "", 0, path, query_db, options)
    match = _HOSTPORT_RE.fullmatch(hostport)
    if match is None:
        _fail(where, uri, "missing or invalid host" + (" or port" if hostport else ""))
    path_db: int | None = None
    if path not in ("", "/"):
        if not path.startswith("/") or "/" in path[1:]:
            _fail(where, uri, f"the path must be /<db>, got {short(path)}")
        path_db = _number(path[1:], "db", where, uri)
    if None not in (path_db, query_db) and path_db != query_db:
        _fail(where, uri, f"db {path_db} in the path contradicts db={query_db}")
    db = query_db if path_db is None else path_db
    port = _port(match[2], where, uri)
    return ParsedUri(uri, scheme, userinfo if at else None, match[1], port, "", db, options)


def build_url(parsed: ParsedUri, db: int, options: dict[str, str] | None = None) -> str:
    """The normalized URL of ``parsed``, naming ``db``, with ``options`` added to its query."""
    auth = "" if parsed.userinfo is None else f"{parsed.userinfo}@"
    extra = tuple(f"{k}={quote(v, safe='/')}" for k, v in (options or {}).items())
    if parsed.scheme == "unix":
        query = "&".join((f"db={db}", *parsed.query, *extra))
        return f"unix://{auth}{parsed.path}?{query}"
    items = (*parsed.query, *extra)
    query = "?" + "&".join(items) if items else ""
    return f"{parsed.scheme}://{auth}{parsed.host}:{parsed.port}/{db}{query}"
