"""Property tests of fluxabee.config: any input gives a Config or a FluxabeeError."""

from __future__ import annotations

import os
from typing import Any

import redis
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from fluxabee.config import Config, RedisPool
from fluxabee.errors import ConfigError, FluxabeeError

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
NESTED = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.booleans(), children, max_size=4)
    ),
    max_leaves=20,
)
#: Pool settings that look almost right, to reach the deeper checks.
SETTINGS = st.dictionaries(
    st.sampled_from(["redis", "streams"]) | st.text(max_size=6),
    NESTED | st.lists(st.text(max_size=4), max_size=4) | st.text(alphabet="h0123:/", max_size=10),
    max_size=3,
)
URI_ALPHABET = "redis:/unix[]@?=&#.%-_0123456789abhx "


def _names_a_file(text: str) -> bool:
    return "\n" not in text and os.path.isfile(text)


def _config_or_fluxabee_error(build: Any) -> None:
    try:
        result = build()
    except FluxabeeError:
        return
    assert isinstance(result, Config)


@given(NESTED)
def test_any_data_gives_config_or_fluxabee_error(data: Any) -> None:
    _config_or_fluxabee_error(lambda: Config.from_dict(data))


@given(st.dictionaries(st.text(max_size=6) | st.integers(), SETTINGS | NESTED, max_size=3))
def test_any_pool_mapping_gives_config_or_fluxabee_error(data: Any) -> None:
    _config_or_fluxabee_error(lambda: Config.from_dict(data))


@given(st.text())
def test_any_text_gives_config_or_fluxabee_error(text: str) -> None:
    assume(not _names_a_file(text))
    _config_or_fluxabee_error(lambda: Config.from_yaml(text))


@given(NESTED | st.dictionaries(st.text(max_size=6), SETTINGS, max_size=3))
def test_any_yaml_document_gives_config_or_fluxabee_error(data: Any) -> None:
    text = yaml.safe_dump(data)
    assume(not _names_a_file(text))
    _config_or_fluxabee_error(lambda: Config.from_yaml(text))


@given(st.text(alphabet=URI_ALPHABET, max_size=30), st.none() | st.integers(-2, 20))
def test_any_uri_gives_pool_with_url_redis_py_understands(uri: str, database: Any) -> None:
    try:
        pool = RedisPool(uri=uri, database=database)
    except ConfigError:
        return
    kwargs = redis.ConnectionPool.from_url(pool.url).connection_kwargs
    assert kwargs["db"] == pool.db
    assert RedisPool(uri=pool.url).url == pool.url
    assert RedisPool(uri=pool.url, database=pool.db).url == pool.url


HOSTS = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,12}", fullmatch=True)
PORTS = st.integers(1, 65535)
DBS = st.integers(0, 15)


@st.composite
def uris(draw: st.DrawFn) -> tuple[str, str, int]:
    """One URI of any accepted form, with its expected URL and db."""
    host, port, db = draw(HOSTS), draw(PORTS), draw(DBS)
    url = f"redis://{host}:{port}/{db}"
    form = draw(st.sampled_from(["short", "short-port", "short-db", "redis", "rediss", "unix"]))
    if form == "short":
        return host, f"redis://{host}:6379/0", 0
    if form == "short-port":
        return f"{host}:{port}", f"redis://{host}:{port}/0", 0
    if form == "short-db":
        return f"{host}:{port}:{db}", url, db
    if form == "unix":
        return f"unix:///run/{host}.sock?db={db}", f"unix:///run/{host}.sock?db={db}", db
    uri = f"{form}://user:pw@{host}:{port}/{db}"
    return uri, uri, db


#: Names a config accepts: no whitespace or control characters (issue 14, item 27).
STREAM_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=10
)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid FluxaORM-layout dict: unique codes, each stream on one pool."""
    codes = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4, unique=True))
    streams = draw(st.lists(STREAM_NAMES, max_size=12, unique=True))
    cuts = sorted(
        draw(
            st.lists(st.integers(0, len(streams)), min_size=len(codes) - 1, max_size=len(codes) - 1)
        )
    )
    bounds = [0, *cuts, len(streams)]
    data: dict[str, Any] = {}
    for index, code in enumerate(codes):
        settings: dict[str, Any] = {"streams": streams[bounds[index] : bounds[index + 1]]}
        if draw(st.booleans()):
            settings["redis"] = draw(uris())[0]
        data[code] = settings
    return data


@given(valid_configs())
def test_valid_config_round_trips(data: dict[str, Any]) -> None:
    config = Config.from_dict(data)
    assert [pool.code for pool in config.redis_pools] == list(data)
    for code, settings in data.items():
        pool = config.pool(code)
        assert list(pool.streams) == settings["streams"]
        assert pool.uri == settings.get("redis", "127.0.0.1:6379:0")
        for stream in settings["streams"]:
            assert config.pool_for_stream(stream) is pool
    assert list(config.streams) == [s for settings in data.values() for s in settings["streams"]]
    assert Config.from_yaml(yaml.safe_dump(data, sort_keys=False)) == config
    rebuilt = Config(
        redis_pools=[
            RedisPool(code=p.code, uri=p.url, streams=p.streams) for p in config.redis_pools
        ]
    )
    assert [p.url for p in rebuilt.redis_pools] == [p.url for p in config.redis_pools]


@given(uris())
def test_every_uri_form_gives_its_url_and_db(case: tuple[str, str, int]) -> None:
    uri, url, db = case
    pool = RedisPool(uri=uri)
    assert (pool.url, pool.db) == (url, db)
    assert RedisPool(uri=pool.url).url == url
