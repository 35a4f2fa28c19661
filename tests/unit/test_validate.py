"""One validator for every count, block, duration, TTL and handler argument."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest

from fluxabee import InvalidArgumentError
from fluxabee import _validate as validate


def test_durations_accept_seconds_and_timedelta() -> None:
    assert validate.ms(1.5, "block") == 1500
    assert validate.ms(dt.timedelta(minutes=10), "min_idle") == 600_000
    assert validate.ms(0.0001, "block") == 1  # rounded up: not "now"
    assert validate.ms(0, "block") == 0
    assert validate.seconds(3, "idle") == 3.0


@pytest.mark.parametrize("bad", [-1, -0.001, float("inf"), float("nan"), "1", True, None, 1e300])
def test_bad_durations_name_the_argument(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^block"):
        validate.ms(bad, "block")


@pytest.mark.parametrize("bad", [0, 0.0, dt.timedelta(0), -3])
def test_a_ttl_must_be_positive(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^lock_ttl"):
        validate.seconds(bad, "lock_ttl", positive=True)


@pytest.mark.parametrize("bad", [True, None, 1.5, "5", 0, -1, 2**31])
def test_bad_counts_name_the_argument(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^count"):
        validate.count(bad)


def test_good_counts() -> None:
    assert validate.count(1) == 1
    assert validate.count(2**31 - 1) == 2**31 - 1


def test_handlers_are_callables_and_not_async_for_the_sync_api() -> None:
    async def coro(events: list[Any]) -> None:
        pass

    class AsyncCall:
        async def __call__(self, events: list[Any]) -> None:
            pass

    def plain(events: list[Any]) -> None:
        pass

    for handler in (coro, AsyncCall(), functools.partial(coro)):
        with pytest.raises(InvalidArgumentError, match="AsyncEngine"):
            validate.handler(handler, sync=True)
        validate.handler(handler, sync=False)
    validate.handler(plain, sync=True)
    with pytest.raises(InvalidArgumentError, match="callable"):
        validate.handler("not a function", sync=False)
