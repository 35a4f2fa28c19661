"""The pure rules of an App: what a handler's signature says, which handlers may live
together, and the app's retry policy (no Redis)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import msgpack
import pydantic
import pytest

from fluxabee import (
    AsyncEvent,
    Config,
    DecodeError,
    Event,
    InvalidArgumentError,
    RetryPolicy,
    Stream,
    SyncEvent,
)
from fluxabee._app import BODY, EVENT, RAW, TYPED, HandlerSpec, Registry, app_policy


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


@dataclasses.dataclass
class Order:
    id: int
    items: list[Item]


class Model(pydantic.BaseModel):
    name: str


def event_of(body: Any, **meta: str) -> Event[None]:
    return Event("1-0", "orders", msgpack.packb(body), dict(meta), lambda e: None)


def test_the_first_parameter_says_what_the_handler_gets() -> None:
    def typed(order: Order) -> None: ...
    def model(m: Model) -> None: ...
    def raw(data: bytes) -> None: ...
    def plain(body): ...  # type: ignore[no-untyped-def]
    def sync_event(event: SyncEvent) -> None: ...
    async def async_event(event: AsyncEvent) -> None: ...
    def hinted(values: list[int]) -> None: ...

    assert HandlerSpec.of(typed).kind == TYPED
    assert HandlerSpec.of(model).kind == TYPED
    assert HandlerSpec.of(raw).kind == RAW
    assert HandlerSpec.of(plain).kind == BODY
    assert HandlerSpec.of(sync_event).kind == EVENT
    spec = HandlerSpec.of(async_event)
    assert spec.kind == EVENT and spec.is_async
    assert HandlerSpec.of(hinted).hint == list[int]


def test_arguments_are_built_from_the_event() -> None:
    def handler(order: Order, event: Event[Any], *, again: SyncEvent, note: str = "") -> None:
        """Typed body, then the event positionally and by keyword."""

    spec = HandlerSpec.of(handler)
    event = event_of({"id": 7, "items": [{"sku": "a", "qty": 2}]})
    args, kwargs = spec.arguments(event)
    assert args == (Order(7, [Item("a", 2)]), event)
    assert kwargs == {"again": event}
    assert HandlerSpec.of(lambda data: None).arguments(event)[0] == (event.body,)

    def raw(data: bytes) -> None: ...

    assert HandlerSpec.of(raw).arguments(event)[0] == (event.raw_body,)


def test_a_body_that_does_not_fit_raises_decode_error_with_its_path() -> None:
    def handler(order: Order) -> None: ...

    spec = HandlerSpec.of(handler)
    with pytest.raises(DecodeError, match=r"items\[1\]\.qty"):
        spec.arguments(event_of({"id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b"}]}))


def test_handlers_fluxabee_cannot_call_are_refused_at_decoration() -> None:
    def nothing() -> None: ...
    def extra(order: Order, other: int) -> None: ...
    def keyword(order: Order, *, other: int) -> None: ...
    def unresolved(order: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    for bad in (nothing, extra, keyword, unresolved, 42):
        with pytest.raises(InvalidArgumentError):
            HandlerSpec.of(bad)  # type: ignore[arg-type]


def test_a_callable_object_is_read_through_its_call() -> None:
    class Handler:
        async def __call__(self, order: Order) -> None: ...

    spec = HandlerSpec.of(Handler())
    assert spec.kind == TYPED and spec.is_async and spec.hint is Order


def test_a_partial_is_read_through_its_function() -> None:
    def handler(order: Order, event: SyncEvent, *, tag: str) -> None: ...

    spec = HandlerSpec.of(functools.partial(handler, tag="x"))
    assert spec.kind == TYPED and spec.hint is Order and spec.event_positional == 1


def test_the_app_policy_dead_letters_decode_errors_at_once() -> None:
    policy = app_policy(RetryPolicy(max_deliveries=5, dead_letter_on=(KeyError,)))
    assert policy.max_deliveries == 5
    assert policy.dead_letters_at_once(DecodeError("x"))
    assert policy.dead_letters_at_once(KeyError("x"))
    assert not policy.dead_letters_at_once(RuntimeError("x"))
    assert app_policy(None).dead_letters_at_once(DecodeError("x"))
    with pytest.raises(InvalidArgumentError):
        app_policy("no")  # type: ignore[arg-type]


def test_one_handler_per_stream_and_group() -> None:
    registry = Registry(
        Config.from_url("redis://127.0.0.1:1/0", streams=[Stream("s", groups=("a", "b"))])
    )

    def handler(body: Any) -> None: ...

    options: dict[str, Any] = {
        "single": False, "concurrency": 1, "key": None, "retry_policy": None, "min_idle": None
    }  # fmt: skip
    first = registry.add(handler, "s", group=None, **options)
    assert first.group == "a"
    registry.add(handler, "s", group="b", **options)
    with pytest.raises(InvalidArgumentError, match="already has handler"):
        registry.add(handler, "s", group="a", **options)
    with pytest.raises(InvalidArgumentError, match="single=True claims nothing"):
        registry.add(handler, "s", group="b", **{**options, "single": True, "min_idle": 5})
    with pytest.raises(InvalidArgumentError, match="key"):
        registry.add(handler, "s", group="b", **{**options, "key": ""})
    assert len(registry) == 2 and not registry.any_async
