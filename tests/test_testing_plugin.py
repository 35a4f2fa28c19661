"""fluxabee.testing, as a user's test suite enables it: in a pytest run of its own."""

from __future__ import annotations

import pytest

USER_TESTS = """
import pytest
import fluxabee


def handle(events):
    for event in events:
        assert event.body["order"] in (1, 2)


def test_sync_engine(engine, redis_server):
    assert isinstance(redis_server, fluxabee.LocalServer) and redis_server.running
    broker = engine.new_context().event_broker()
    broker.publish("events", {"order": 1})
    broker.flush()
    with broker.consumer_single("events") as consumer:
        assert consumer.consume(10, 1.0, handle) == 1


@pytest.mark.asyncio
async def test_async_engine(async_engine):
    broker = async_engine.new_context().event_broker()
    broker.publish("events", {"order": 2})
    await broker.flush()
    async with broker.consumer_many("events") as consumer:
        assert await consumer.consume(10, 1.0, handle) == 1


@pytest.mark.parametrize("round", [1, 2])
def test_each_test_starts_on_a_clean_database(fluxabee_config, round):
    config = fluxabee_config("orders", "payments")
    assert config.streams == ("orders", "payments")
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        assert broker.stream_statistics("orders").length == 0  # the other round's is gone
        broker.publish_now("orders", round)


class TestOtherStreams:
    @pytest.fixture
    def fluxabee_streams(self):
        return ["a", "b"]

    def test_streams_are_overridable(self, engine):
        assert engine.config.streams == ("a", "b")
"""


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_the_plugin_gives_a_users_tests_a_real_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "fluxabee.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_the_plugin_from_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest('pytest_plugins = ["fluxabee.testing"]\n')
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "test_sync_engine or clean"
    )
    result.assert_outcomes(passed=3, deselected=2)
