"""Broker configuration: which Redis pools exist and which streams live on each.

The layout is FluxaORM's, one top-level key per pool code::

    default:
      redis: 127.0.0.1:6379:0
      streams: [stream-1, stream-2]
    other:
      redis: redis://127.0.0.1:6380/1
      streams:
        - stream-3
        - name: orders               # a stream with settings: see fluxabee.Stream
          groups: [billing, search]
          max_age: 7d

``redis`` accepts ``redis://``, ``rediss://`` (TLS), ``unix:///path?db=N`` and the short
forms ``host``, ``host:port`` and ``host:port:db``; :attr:`RedisPool.url` is always a
normalized redis-py URL that names the database. Every error is a
:class:`~fluxabee.errors.ConfigError` whose message starts with the offending key, e.g.
``default.streams[2]: ...``. Passwords are masked in messages and in ``repr``.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

import yaml

from fluxabee._constants import DEFAULT_POOL_CODE, DEFAULT_REDIS_PORT
from fluxabee._streamconfig import Stream, stream_from
from fluxabee.errors import ConfigError, UnknownStreamError

#: The keys a pool may have in the YAML / dict layout.
_POOL_KEYS = ("redis", "streams")
#: The Redis of a YAML pool that names none (FluxaORM's default).
_YAML_DEFAULT_REDIS = "127.0.0.1:6379:0"
_SCHEMES = ("redis", "rediss", "unix")
_HOST = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_SHORT_RE = re.compile(rf"({_HOST})(?::([0-9]+)(?::([0-9]+))?)?")
_HOSTPORT_RE = re.compile(rf"({_HOST}|\[[0-9A-Fa-f:.]+\])(?::([0-9]+))?")
_PASSWORD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:)[^/?#]*@")
_EXPECTED_URI = "expected redis://, rediss://, unix:///path or host[:port[:db]]"
#: Longest digit string accepted for a port or a db (keeps ``int()`` cheap).
_MAX_DIGITS = 18


class _ParsedUri(NamedTuple):
    """The parts of a URI, as given (percent-encoding kept)."""

    raw: str
    scheme: str
    userinfo: str | None
    host: str
    port: int
    path: str
    db: int | None
    query: tuple[str, ...]


def _short(value: object) -> str:
    """A bounded repr, so huge values do not flood a message."""
    return reprlib.repr(value)


def _describe(value: object) -> str:
    """``type repr`` of a bad value, for messages."""
    return "None" if value is None else f"{type(value).__name__} {_short(value)}"


def _mask(uri: str) -> str:
    """The URI with its password replaced by ``***``."""
    return _PASSWORD_RE.sub(r"\1***@", uri)


def _fail(where: str, uri: str, reason: str) -> NoReturn:
    raise ConfigError(f"{where}: cannot parse {_short(_mask(uri))}: {reason}")


def _number(text: str, what: str, where: str, uri: str) -> int:
    """A decimal digit string as an int (only ASCII digits, bounded length)."""
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        _fail(where, uri, f"{what} must be a non-negative integer, got {_short(text)}")
    return int(text)


def _port(text: str | None, where: str, uri: str) -> int:
    if text is None:
        return DEFAULT_REDIS_PORT
    if len(text) > 5 or not 1 <= _number(text, "port", where, uri) <= 65535:
        _fail(where, uri, f"port must be 1..65535, got {_short(text)}")
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


def _parse_uri(uri: object, where: str) -> _ParsedUri:
    """Parse every accepted URI form; :class:`ConfigError` naming ``where`` otherwise."""
    if not isinstance(uri, str):
        raise ConfigError(f"{where}: expected a URI string, got {_describe(uri)}")
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
        return _ParsedUri(uri, "redis", None, host, _port(port, where, uri), "", number, ())
    scheme = head.lower()
    if scheme not in _SCHEMES:
        _fail(where, uri, f"unsupported scheme {_short(head)}; {_EXPECTED_URI}")
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
        return _ParsedUri(uri, scheme, userinfo if at else None, "", 0, path, query_db, options)
    match = _HOSTPORT_RE.fullmatch(hostport)
    if match is None:
        _fail(where, uri, "missing or invalid host" + (" or port" if hostport else ""))
    path_db: int | None = None
    if path not in ("", "/"):
        if not path.startswith("/") or "/" in path[1:]:
            _fail(where, uri, f"the path must be /<db>, got {_short(path)}")
        path_db = _number(path[1:], "db", where, uri)
    if None not in (path_db, query_db) and path_db != query_db:
        _fail(where, uri, f"db {path_db} in the path contradicts db={query_db}")
    db = query_db if path_db is None else path_db
    port = _port(match[2], where, uri)
    return _ParsedUri(uri, scheme, userinfo if at else None, match[1], port, "", db, options)


def _build_url(parsed: _ParsedUri, db: int) -> str:
    """The normalized redis-py URL of ``parsed``, naming ``db``."""
    auth = "" if parsed.userinfo is None else f"{parsed.userinfo}@"
    if parsed.scheme == "unix":
        query = "&".join((f"db={db}", *parsed.query))
        return f"unix://{auth}{parsed.path}?{query}"
    query = "?" + "&".join(parsed.query) if parsed.query else ""
    return f"{parsed.scheme}://{auth}{parsed.host}:{parsed.port}/{db}{query}"


def _check_code(code: object, where: str) -> str:
    if not isinstance(code, str) or not code:
        raise ConfigError(f"{where}: a pool code must be a non-empty string, got {_describe(code)}")
    return code


def _check_database(database: object, where: str) -> int | None:
    if database is None:
        return None
    if isinstance(database, bool) or not isinstance(database, int):
        raise ConfigError(f"{where}: expected an int or None, got {_describe(database)}")
    if database < 0:
        raise ConfigError(f"{where}: must be a non-negative int, got {database}")
    return database


def _check_streams(streams: object, where: str) -> tuple[Stream, ...]:
    """A list/tuple of distinct streams (names, :class:`Stream` objects or mappings), as a
    tuple of :class:`Stream`."""
    if isinstance(streams, (str, bytes, bytearray)) or not isinstance(streams, Sequence):
        raise ConfigError(
            f"{where}: expected a list of stream names or Stream settings, got {_describe(streams)}"
        )
    seen: dict[str, int] = {}
    out: list[Stream] = []
    for index, item in enumerate(streams):
        stream = stream_from(item, f"{where}[{index}]")
        if stream.name in seen:
            raise ConfigError(
                f"{where}[{index}]: stream {_short(stream.name)} is listed twice "
                f"(also {where}[{seen[stream.name]}])"
            )
        seen[stream.name] = index
        out.append(stream)
    return tuple(out)


def _index(
    pools: Sequence[RedisPool], labels: Sequence[str]
) -> tuple[dict[str, RedisPool], dict[str, RedisPool]]:
    """Pools by code and by stream; a code or a stream used twice is a ConfigError."""
    by_code: dict[str, RedisPool] = {}
    code_label: dict[str, str] = {}
    by_stream: dict[str, RedisPool] = {}
    for pool, label in zip(pools, labels, strict=True):
        if pool.code in by_code:
            raise ConfigError(
                f"{label}.code: pool code {_short(pool.code)} is used twice "
                f"(also {code_label[pool.code]})"
            )
        by_code[pool.code] = pool
        code_label[pool.code] = label
        for index, stream in enumerate(pool.stream_names):
            other = by_stream.get(stream)
            if other is not None:
                raise ConfigError(
                    f"{label}.streams[{index}]: stream {_short(stream)} is declared on "
                    f"two pools: {_short(other.code)} and {_short(pool.code)}"
                )
            by_stream[stream] = pool
    return by_code, by_stream


@dataclass(frozen=True, kw_only=True)
class RedisPool:
    """One Redis server (and database) and the streams that live on it.

    ``uri`` takes every accepted form (see the module docstring); ``database``, when
    given, must agree with a db named in ``uri``. ``streams`` accepts any list of
    distinct streams, each a name or a :class:`Stream` (its groups, retention and caps),
    and is stored as a tuple of names; :attr:`stream_settings` keeps the settings.
    Invalid values raise :class:`~fluxabee.errors.ConfigError`.
    """

    code: str = DEFAULT_POOL_CODE
    uri: str = "redis://127.0.0.1:6379"
    database: int | None = None
    streams: Sequence[str | Stream] = ()
    """Streams on this pool: names or :class:`Stream` settings (stored as a tuple of names)."""
    _settings: tuple[Stream, ...] = field(init=False, repr=False)
    _url: str = field(init=False, repr=False, compare=False)
    _db: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate every field, store ``streams`` as a tuple, compute the URL."""
        code = _check_code(self.code, "RedisPool.code")
        where = f"RedisPool({_short(code)})"
        parsed = _parse_uri(self.uri, f"{where}.uri")
        database = _check_database(self.database, f"{where}.database")
        settings = _check_streams(self.streams, f"{where}.streams")
        if database is None:
            db = 0 if parsed.db is None else parsed.db
        elif parsed.db is not None and parsed.db != database:
            raise ConfigError(
                f"{where}.database: {database} contradicts db {parsed.db} "
                f"in uri {_short(_mask(parsed.raw))}"
            )
        else:
            db = database
        object.__setattr__(self, "streams", tuple(s.name for s in settings))
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "_url", _build_url(parsed, db))

    def __repr__(self) -> str:
        """The dataclass repr, with the password of ``uri`` masked."""
        return (
            f"RedisPool(code={self.code!r}, uri={_mask(self.uri)!r}, "
            f"database={self.database!r}, streams={self._shown_streams()!r})"
        )

    def _shown_streams(self) -> tuple[str | Stream, ...]:
        return tuple(s.name if s.is_plain else s for s in self._settings)

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The names of the streams on this pool, in config order (what ``streams`` holds,
        typed as names)."""
        return tuple(s.name for s in self._settings)

    @property
    def stream_settings(self) -> tuple[Stream, ...]:
        """The settings of every stream on this pool, in config order (a plain name has
        the one group ``consumer_group``)."""
        return self._settings

    @property
    def url(self) -> str:
        """The normalized redis-py URL, always naming the database.

        E.g. ``redis://127.0.0.1:6379/0``, ``rediss://user:pw@host:6380/2``,
        ``unix:///tmp/r.sock?db=1``; credentials and query options are kept.
        """
        return self._url

    @property
    def db(self) -> int:
        """The effective database number: ``database``, else the URI's db, else 0."""
        return self._db


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every Redis pool of the broker; each stream lives on exactly one pool.

    ``redis_pools`` accepts a list and is stored as a tuple. Pool codes and stream
    names must be unique across the config; at least one pool is required.
    """

    redis_pools: Sequence[RedisPool]
    """The pools (any sequence; stored as a tuple)."""
    _by_code: dict[str, RedisPool] = field(init=False, repr=False, compare=False)
    _by_stream: dict[str, RedisPool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the pools, store them as a tuple and index them by code and stream."""
        pools: object = self.redis_pools
        if isinstance(pools, (str, bytes, bytearray)) or not isinstance(pools, Sequence):
            raise ConfigError(f"redis_pools: expected a list of RedisPool, got {_describe(pools)}")
        if not pools:
            raise ConfigError("redis_pools: at least one pool is required")
        for index, pool in enumerate(pools):
            if not isinstance(pool, RedisPool):
                raise ConfigError(
                    f"redis_pools[{index}]: expected a RedisPool, got {_describe(pool)}"
                )
        checked: tuple[RedisPool, ...] = tuple(pools)
        labels = [f"redis_pools[{i}]" for i in range(len(checked))]
        by_code, by_stream = _index(checked, labels)
        object.__setattr__(self, "redis_pools", checked)
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_by_stream", by_stream)

    @property
    def streams(self) -> tuple[str, ...]:
        """Every declared stream, in config order (pool order, then stream order)."""
        return tuple(self._by_stream)

    def pool(self, code: str) -> RedisPool:
        """The pool named ``code``; :class:`ConfigError` naming it when there is none."""
        try:
            return self._by_code[code]
        except KeyError:
            known = ", ".join(self._by_code)
            raise ConfigError(f"pool {_short(code)} is not in the config ({known})") from None

    def pool_for_stream(self, stream: str) -> RedisPool:
        """The pool that declares ``stream``; :class:`UnknownStreamError` when none does."""
        try:
            return self._by_stream[stream]
        except KeyError:
            raise UnknownStreamError(stream) from None

    def stream(self, stream: str) -> Stream:
        """The settings of ``stream`` (groups, retention, caps); :class:`UnknownStreamError`
        when no pool declares it."""
        pool = self.pool_for_stream(stream)
        return next(s for s in pool.stream_settings if s.name == stream)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build a config from FluxaORM's layout: ``{code: {redis: ..., streams: [...]}}``."""
        if data is None:
            raise ConfigError("config: empty document (expected pool code -> {redis, streams})")
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"config: expected a mapping of pool code -> {{redis, streams}}, "
                f"got {_describe(data)}"
            )
        if not data:
            raise ConfigError("config: no pools declared")
        pools: list[RedisPool] = []
        for key, settings in data.items():
            code = _check_code(key, f"config[{_short(key)}]")
            if not isinstance(settings, Mapping):
                raise ConfigError(
                    f"{code}: expected a mapping with keys redis, streams, "
                    f"got {_describe(settings)}"
                )
            for name in settings:
                if name not in _POOL_KEYS:
                    expected = ", ".join(_POOL_KEYS)
                    raise ConfigError(f"{code}.{name}: unknown key (expected one of: {expected})")
            parsed = _parse_uri(settings.get("redis", _YAML_DEFAULT_REDIS), f"{code}.redis")
            streams = _check_streams(settings.get("streams", ()), f"{code}.streams")
            pools.append(RedisPool(code=code, uri=parsed.raw, streams=streams))
        _index(pools, [pool.code for pool in pools])
        return cls(redis_pools=tuple(pools))

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> Config:
        """Build a config from YAML (``yaml.safe_load``).

        A :class:`os.PathLike`, or a ``str`` naming an existing file, is read as UTF-8;
        any other ``str`` is the YAML text itself.
        """
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source and os.path.isfile(source)
        ):
            origin = os.fsdecode(source)
            try:
                with open(source, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{origin}: cannot read the config file: {exc}") from exc
        elif isinstance(source, str):
            origin, text = "", source
        else:
            raise ConfigError(f"config: expected YAML text or a path, got {_describe(source)}")
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ConfigError(f"{origin or 'config'}: invalid YAML: {exc}") from exc
        if not origin and isinstance(data, str) and "\n" not in text.strip():
            raise ConfigError(
                f"config: {_short(text)} is neither an existing file nor a YAML mapping"
            )
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            if not origin:
                raise
            raise ConfigError(f"{origin}: {exc}") from exc

    @classmethod
    def from_url(
        cls, url: str, *, streams: Sequence[str | Stream], code: str = DEFAULT_POOL_CODE
    ) -> Config:
        """A config of one pool: ``code`` on ``url``, declaring ``streams`` (names or
        :class:`Stream` settings)."""
        names = _check_streams(streams, "from_url.streams")
        return cls(redis_pools=(RedisPool(code=code, uri=url, streams=names),))


__all__ = ["Config", "RedisPool", "Stream"]
