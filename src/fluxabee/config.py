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

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import yaml

from fluxabee._constants import DEFAULT_POOL_CODE
from fluxabee._streamconfig import Stream, duration, stream_from
from fluxabee._uris import ParsedUri, build_url, describe, mask, parse_uri, short
from fluxabee.errors import ConfigError, UnknownStreamError

#: The TLS options of a pool (files; passed to the TLS context).
_TLS_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
#: The keys a pool may have in the YAML / dict layout.
_POOL_KEYS = ("redis", "streams", "cluster", "sentinels", "master_name", "sentinel_password",
              *_TLS_KEYS, "timeout")  # fmt: skip
#: The Redis of a YAML pool that names none (FluxaORM's default).
_YAML_DEFAULT_REDIS = "127.0.0.1:6379:0"


def _check_code(code: object, where: str) -> str:
    if not isinstance(code, str) or not code:
        raise ConfigError(f"{where}: a pool code must be a non-empty string, got {describe(code)}")
    return code


def _check_database(database: object, where: str) -> int | None:
    if database is None:
        return None
    if isinstance(database, bool) or not isinstance(database, int):
        raise ConfigError(f"{where}: expected an int or None, got {describe(database)}")
    if database < 0:
        raise ConfigError(f"{where}: must be a non-negative int, got {database}")
    return database


def _check_streams(streams: object, where: str) -> tuple[Stream, ...]:
    """A list/tuple of distinct streams (names, :class:`Stream` objects or mappings), as a
    tuple of :class:`Stream`."""
    if isinstance(streams, (str, bytes, bytearray)) or not isinstance(streams, Sequence):
        raise ConfigError(
            f"{where}: expected a list of stream names or Stream settings, got {describe(streams)}"
        )
    seen: dict[str, int] = {}
    out: list[Stream] = []
    for index, item in enumerate(streams):
        stream = stream_from(item, f"{where}[{index}]")
        if stream.name in seen:
            raise ConfigError(
                f"{where}[{index}]: stream {short(stream.name)} is listed twice "
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
                f"{label}.code: pool code {short(pool.code)} is used twice "
                f"(also {code_label[pool.code]})"
            )
        by_code[pool.code] = pool
        code_label[pool.code] = label
        for index, stream in enumerate(pool.stream_names):
            other = by_stream.get(stream)
            if other is not None:
                raise ConfigError(
                    f"{label}.streams[{index}]: stream {short(stream)} is declared on "
                    f"two pools: {short(other.code)} and {short(pool.code)}"
                )
            by_stream[stream] = pool
    return by_code, by_stream


def _check_seeds(uri: object, where: str, *, cluster: bool) -> tuple[ParsedUri, ...]:
    """One URI, or (for a Cluster) a non-empty list of seed URIs."""
    if isinstance(uri, str):
        return (parse_uri(uri, where),)
    if not isinstance(uri, Sequence) or isinstance(uri, (bytes, bytearray)) or not uri:
        raise ConfigError(f"{where}: expected a URI or a list of seed URIs, got {describe(uri)}")
    if not cluster and len(uri) > 1:
        raise ConfigError(f"{where}: a list of URIs needs cluster=True (they are seed nodes)")
    return tuple(parse_uri(item, f"{where}[{i}]") for i, item in enumerate(uri))


def _check_text(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {describe(value)}")
    return value


def _tls_options(pool: RedisPool, where: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for key in _TLS_KEYS:
        value = _check_text(getattr(pool, key), f"{where}.{key}")
        if value is not None:
            options[key] = value
    return options


@dataclass(frozen=True, kw_only=True)
class RedisPool:
    """One Redis deployment (a server, a Sentinel-managed master, or a Cluster) and the
    streams that live on it.

    - A single server: ``uri`` takes every accepted form (see the module docstring);
      ``database``, when given, must agree with a db named in ``uri``.
    - A Redis Cluster: ``cluster=True``; ``uri`` names one seed node or a list of them
      (``["host:port", "redis://host:port", ...]``); database 0 only.
    - Sentinel: ``sentinels=["host:port", ...]`` and ``master_name``; the master's
      credentials, database and scheme (``rediss`` for TLS) come from ``uri``, its host and
      port are asked of the sentinels. ``sentinel_password`` authenticates to them.
    - TLS: a ``rediss://`` URI, plus ``ssl_ca_certs`` (a CA bundle to verify the server)
      and ``ssl_certfile`` / ``ssl_keyfile`` (a client certificate).
    - ``timeout``: seconds (a number, a ``timedelta`` or ``"30s"``) to wait for a
      connection to open and for the replies of a command, on every node, sentinel and
      master of the pool; a blocking read waits its block time plus 5 s. ``None`` (the
      default): 5 s to connect, 10 s for replies. Stored as seconds (``float``).

    ``streams`` accepts any list of distinct streams, each a name or a :class:`Stream` (its
    groups, retention and caps), and is stored as a tuple of names; :attr:`stream_settings`
    keeps the settings. Invalid values raise :class:`~fluxabee.errors.ConfigError`;
    passwords are masked in ``repr`` and in every message.
    """

    code: str = DEFAULT_POOL_CODE
    uri: str | Sequence[str] = "redis://127.0.0.1:6379"
    database: int | None = None
    streams: Sequence[str | Stream] = ()
    """Streams on this pool: names or :class:`Stream` settings (stored as a tuple of names)."""
    cluster: bool = False
    sentinels: Sequence[str] = ()
    master_name: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    timeout: float | _dt.timedelta | str | None = None
    """Connect and command timeout, seconds (``None``: 5 s to connect, 10 s for replies)."""
    _urls: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _sentinel_urls: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _db: int = field(init=False, repr=False, compare=False)
    _settings: tuple[Stream, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate every field, store sequences as tuples, compute the URLs."""
        code = _check_code(self.code, "RedisPool.code")
        where = f"RedisPool({short(code)})"
        if not isinstance(self.cluster, bool):
            raise ConfigError(
                f"{where}.cluster: expected true or false, got {describe(self.cluster)}"
            )
        seeds = _check_seeds(self.uri, f"{where}.uri", cluster=self.cluster)
        database = _check_database(self.database, f"{where}.database")
        settings = _check_streams(self.streams, f"{where}.streams")
        dbs = {p.db for p in seeds if p.db is not None}
        if len(dbs) > 1:
            raise ConfigError(f"{where}.uri: the seeds name different databases {sorted(dbs)}")
        uri_db = dbs.pop() if dbs else None
        if database is not None and uri_db is not None and uri_db != database:
            raise ConfigError(
                f"{where}.database: {database} contradicts db {uri_db} "
                f"in uri {short(mask(seeds[0].raw))}"
            )
        db = database if database is not None else (uri_db or 0)
        options = _tls_options(self, where)
        if options and any(p.scheme != "rediss" for p in seeds):
            raise ConfigError(f"{where}.{next(iter(options))}: TLS options need a rediss:// uri")
        sentinels = self._check_sentinels(where, seeds)
        if self.timeout is not None:
            object.__setattr__(self, "timeout", duration(self.timeout, f"{where}.timeout"))
        if self.cluster:
            if db != 0:
                raise ConfigError(f"{where}.database: a Redis Cluster has database 0 only")
            if any(p.scheme == "unix" for p in seeds):
                raise ConfigError(f"{where}.uri: Cluster nodes are reached over TCP, not unix")
        object.__setattr__(self, "streams", tuple(s.name for s in settings))
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "sentinels", sentinels)
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "_urls", tuple(build_url(p, db, options) for p in seeds))
        auth = (
            "" if self.sentinel_password is None else f":{quote(self.sentinel_password, safe='')}@"
        )
        sentinel_urls = []
        for index, item in enumerate(sentinels):
            parsed = parse_uri(item, f"{where}.sentinels[{index}]")
            if parsed.userinfo is None and auth:
                parsed = parsed._replace(userinfo=auth[:-1])
            sentinel_urls.append(build_url(parsed, 0))
        object.__setattr__(self, "_sentinel_urls", tuple(sentinel_urls))

    def _check_sentinels(self, where: str, seeds: tuple[ParsedUri, ...]) -> tuple[str, ...]:
        sentinels: object = self.sentinels
        if isinstance(sentinels, (str, bytes)) or not isinstance(sentinels, Sequence):
            raise ConfigError(
                f"{where}.sentinels: expected a list of host:port, got {describe(sentinels)}"
            )
        names = tuple(sentinels)
        master = _check_text(self.master_name, f"{where}.master_name")
        _check_text(self.sentinel_password, f"{where}.sentinel_password")
        if not names:
            if master is not None or self.sentinel_password is not None:
                raise ConfigError(f"{where}.sentinels: master_name needs a list of sentinels")
            return ()
        if master is None:
            raise ConfigError(f"{where}.master_name: a Sentinel pool needs the master's name")
        if self.cluster:
            raise ConfigError(f"{where}.sentinels: a pool is a Cluster or uses Sentinel, not both")
        if seeds[0].scheme == "unix":
            raise ConfigError(f"{where}.uri: a Sentinel-managed master is reached over TCP")
        return names

    def __repr__(self) -> str:
        """The dataclass repr, with every password masked."""
        uri = mask(self.uri) if isinstance(self.uri, str) else [mask(u) for u in self.uri]
        parts = [f"code={self.code!r}", f"uri={uri!r}", f"database={self.database!r}",
                 f"streams={self._shown_streams()!r}"]  # fmt: skip
        if self.cluster:
            parts.append("cluster=True")
        if self.sentinels:
            parts += [f"sentinels={[mask(s) for s in self.sentinels]!r}",
                      f"master_name={self.master_name!r}"]  # fmt: skip
            if self.sentinel_password is not None:
                parts.append("sentinel_password='***'")
        parts += [f"{k}={getattr(self, k)!r}" for k in _TLS_KEYS if getattr(self, k)]
        if self.timeout is not None:
            parts.append(f"timeout={self.timeout!r}")
        return f"RedisPool({', '.join(parts)})"

    @property
    def timeout_seconds(self) -> float | None:
        """``timeout`` in seconds, or ``None`` (the defaults)."""
        timeout: Any = self.timeout
        return None if timeout is None else float(timeout)

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
        """The normalized URL (the first seed's for a Cluster), always naming the database.

        E.g. ``redis://127.0.0.1:6379/0``, ``rediss://user:pw@host:6380/2``,
        ``unix:///tmp/r.sock?db=1``; credentials and query options (TLS files) are kept.
        """
        return self._urls[0]

    @property
    def urls(self) -> tuple[str, ...]:
        """Every seed's normalized URL (one for a single server)."""
        return self._urls

    @property
    def sentinel_urls(self) -> tuple[str, ...]:
        """The sentinels' normalized URLs (with ``sentinel_password``); empty without."""
        return self._sentinel_urls

    @property
    def topology(self) -> str:
        """``"cluster"``, ``"sentinel"`` or ``"single"``."""
        if self.cluster:
            return "cluster"
        return "sentinel" if self.sentinels else "single"

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
            raise ConfigError(f"redis_pools: expected a list of RedisPool, got {describe(pools)}")
        if not pools:
            raise ConfigError("redis_pools: at least one pool is required")
        for index, pool in enumerate(pools):
            if not isinstance(pool, RedisPool):
                raise ConfigError(
                    f"redis_pools[{index}]: expected a RedisPool, got {describe(pool)}"
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
            raise ConfigError(f"pool {short(code)} is not in the config ({known})") from None

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
                f"got {describe(data)}"
            )
        if not data:
            raise ConfigError("config: no pools declared")
        pools: list[RedisPool] = []
        for key, settings in data.items():
            code = _check_code(key, f"config[{short(key)}]")
            if not isinstance(settings, Mapping):
                raise ConfigError(
                    f"{code}: expected a mapping with keys redis, streams, got {describe(settings)}"
                )
            for name in settings:
                if name not in _POOL_KEYS:
                    expected = ", ".join(_POOL_KEYS)
                    raise ConfigError(f"{code}.{name}: unknown key (expected one of: {expected})")
            cluster = settings.get("cluster", False)
            if not isinstance(cluster, bool):
                raise ConfigError(
                    f"{code}.cluster: expected true or false, got {describe(cluster)}"
                )
            redis = settings.get("redis", _YAML_DEFAULT_REDIS)
            seeds = _check_seeds(redis, f"{code}.redis", cluster=cluster)
            streams = _check_streams(settings.get("streams", ()), f"{code}.streams")
            extra = {k: settings[k] for k in _POOL_KEYS[3:] if k in settings}
            try:
                pool = RedisPool(
                    code=code,
                    uri=seeds[0].raw if isinstance(redis, str) else [p.raw for p in seeds],
                    streams=streams,
                    cluster=cluster,
                    **extra,
                )
            except ConfigError as exc:  # name the YAML key, not the Python field
                raise ConfigError(str(exc).replace(f"RedisPool({short(code)})", code)) from None
            pools.append(pool)
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
            raise ConfigError(f"config: expected YAML text or a path, got {describe(source)}")
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ConfigError(f"{origin or 'config'}: invalid YAML: {exc}") from exc
        if not origin and isinstance(data, str) and "\n" not in text.strip():
            raise ConfigError(
                f"config: {short(text)} is neither an existing file nor a YAML mapping"
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
