"""The dashboard's pure parts: sampled rates and lag trends (an injected clock), the token
check, the HTML (escaping, masking), the CLI's choice of address."""

from __future__ import annotations

import pytest

from fluxabee import ConsumerStatistics, GroupStatistics, StreamStatistics
from fluxabee._stats import build_statistics
from fluxabee._streamconfig import Stream
from fluxabee.cli._dashboard import bind_host, loopback
from fluxabee.config import Config, RedisPool
from fluxabee.dashboard import create_app
from fluxabee.dashboard._app import local_path
from fluxabee.dashboard._auth import authorized, cookie_value, route_path
from fluxabee.dashboard._history import History
from fluxabee.dashboard._html import spark
from fluxabee.dashboard._pages import groups_section, overview_rows, pools, prunable
from fluxabee.errors import InvalidArgumentError


def stats(
    added: int | None, read: int | None, lag: int | None, name: str = "s"
) -> StreamStatistics:
    group = GroupStatistics("g", lag, 0, "0-0", 0.0, None, None, (), entries_read=read)
    return StreamStatistics(name, "default", 0, None, group, None, 0, (group,), False, added)


def test_rates_are_the_counters_steps_per_second_in_the_bucket_of_the_later_sample() -> None:
    history = History(window=100.0, buckets=10)
    history.record([stats(0, 0, 0)], now=1000.0)
    history.record([stats(50, 20, 30)], now=1005.0)  # 10/s in, 4/s out, in the last bucket
    history.record([stats(50, 20, 30)], now=1009.0)
    rates_in = history.in_rate("s", now=1009.0)
    rates_out = history.out_rate("s", "g", now=1009.0)
    assert rates_in[-1] == 50 / 9 and rates_out[-1] == 20 / 9
    assert rates_in[:-1] == [None] * 9


def test_a_counter_that_went_back_or_that_redis_cannot_give_is_skipped() -> None:
    history = History(window=100.0, buckets=10)
    history.record([stats(100, None, 0)], now=0.0)
    history.record([stats(5, None, 0)], now=5.0)  # the stream was deleted and made again
    assert history.in_rate("s", now=5.0) == [None] * 10
    assert history.out_rate("s", "g", now=5.0) == [None] * 10


def test_samples_older_than_the_window_are_forgotten() -> None:
    history = History(window=60.0, buckets=6)
    for at in range(0, 200, 10):
        history.record([stats(at, at, 0)], now=float(at))
    assert history.samples("s") == 7  # 130 .. 190


def test_a_lag_is_growing_when_it_only_went_up_over_the_last_minute() -> None:
    history = History()
    for at, lag in ((0, 5), (20, 5), (40, 9), (60, 12)):
        history.record([stats(0, 0, lag)], now=float(at))
    assert history.lag_growing("s", "g", now=60.0)
    history.record([stats(0, 0, 11)], now=70.0)  # it went down: being worked off
    assert not history.lag_growing("s", "g", now=70.0)


def test_a_lag_seen_too_few_times_or_unknown_is_not_called_growing() -> None:
    history = History()
    history.record([stats(0, 0, 1)], now=0.0)
    history.record([stats(0, 0, 9)], now=10.0)
    assert not history.lag_growing("s", "g", now=10.0)
    history.record([stats(0, 0, None)], now=20.0)
    assert not history.lag_growing("s", "g", now=20.0)


def test_the_session_cookie_holds_no_token_and_either_form_of_it_passes() -> None:
    token = "s3cret-token"
    cookie = cookie_value(token)
    assert token not in cookie
    assert authorized({"authorization": f"Bearer {token}"}, token)
    assert authorized({"cookie": f"other=1; fluxabee_dashboard={cookie}"}, token)
    assert not authorized({"authorization": "Bearer wrong"}, token)
    assert not authorized({"cookie": f"fluxabee_dashboard={token}"}, token)
    assert not authorized({"cookie": '"unbalanced'}, token)
    assert not authorized({}, token)


def test_the_route_path_drops_the_mount_prefix() -> None:
    assert route_path({"path": "/ops/x/login", "root_path": "/ops/x"}) == "/login"
    assert route_path({"path": "/login", "root_path": ""}) == "/login"


def test_names_from_redis_are_escaped_and_passwords_masked() -> None:
    config = Config(
        redis_pools=[RedisPool(uri="redis://user:pa55word@127.0.0.1:1/0", streams=["<s>"])]
    )
    assert "pa55word" not in pools(config) and "***" in pools(config)
    raw = {"name": b"<b>g</b>", "consumers": 1, "pending": 0, "last-delivered-id": b"0-0"}
    built = build_statistics(
        stream=Stream("<s>", groups=["<b>g</b>"]),
        pool="default",
        time_reply=[b"1000", b"0"],
        info_stream=[b"length", 1, b"first-entry", None, b"entries-added", 1],
        info_groups=[[k.encode() if isinstance(k, str) else k for kv in raw.items() for k in kv]],
        pending_summaries=[None],
        info_consumers=[[[b"name", b"<i>c</i>", b"pending", 0, b"idle", 5]]],
    )
    html = overview_rows([built], History(), 0.0, "/base")
    assert "<b>" not in html and "<i>" not in html and "&lt;b&gt;g&lt;/b&gt;" in html
    assert 'href="/base/streams/%3Cs%3E"' in html


def test_a_chart_draws_each_run_of_known_buckets_and_says_when_it_has_none() -> None:
    drawn = spark([None, 1.0, 2.0, None, 3.0], [0.0] * 5)
    assert drawn.count('class="in"') == 2 and drawn.count('class="out"') == 1
    assert "no rate yet" in spark([None] * 5, [None] * 5)


def test_the_prune_preview_is_the_scripts_rule() -> None:
    assert prunable(3600.0, 0, "consumer-ab12", 60.0)
    assert not prunable(3600.0, 1, "consumer-ab12", 60.0)
    assert not prunable(10.0, 0, "consumer-ab12", 60.0)
    assert not prunable(3600.0, 0, "consumer-single", 60.0)
    assert not prunable(3600.0, 0, "worker-7", 60.0)
    assert ConsumerStatistics("c", 0, 1.0).name == "c"


def test_without_a_token_the_dashboard_listens_on_loopback_or_warns() -> None:
    assert bind_host(None, None) == ("127.0.0.1", None)
    assert bind_host("::1", None) == ("::1", None)
    assert bind_host("localhost", None) == ("localhost", None)
    host, warning = bind_host("0.0.0.0", None)
    assert host == "0.0.0.0" and warning is not None and "without a token" in warning
    assert bind_host("0.0.0.0", "t") == ("0.0.0.0", None)
    assert loopback("127.0.0.2") and not loopback("example.com")


def test_the_login_form_sends_back_only_to_a_path_of_the_dashboard() -> None:
    assert local_path("/streams/orders?group=a") == "/streams/orders?group=a"
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example", "", "x"):
        assert local_path(elsewhere) == "/"
    assert local_path("/a\nb") == "/"


def test_consumers_idle_past_the_threshold_are_marked_as_likely_dead() -> None:
    group = GroupStatistics(
        "g", 0, 3, "0-0", 0.0, None, None,
        (ConsumerStatistics("consumer-gone", 3, 120.0), ConsumerStatistics("consumer-up", 0, 1.0)),
    )  # fmt: skip
    stream = StreamStatistics("s", "default", 3, None, group, None, 0, (group,))
    html = groups_section(stream, stale=60.0)
    gone = html.split('data-consumer="consumer-gone"')[1].split("</tr>")[0]
    up = html.split('data-consumer="consumer-up"')[1].split("</tr>")[0]
    assert "likely a dead worker" in gone and "likely a dead worker" not in up


def test_create_app_refuses_an_empty_token_or_a_bad_config() -> None:
    config = Config(redis_pools=[RedisPool(uri="redis://127.0.0.1:1/0", streams=["s"])])
    for bad in ({"token": ""}, {"refresh": 0.0}):
        with pytest.raises(InvalidArgumentError):
            create_app(config, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        create_app("redis://127.0.0.1")  # type: ignore[arg-type]
    assert create_app(config, token="t", read_only=True).service.config is config
