"""``fluxabee.App``: typed handlers, follow-ups, the registry, run in a test with
``fluxabee.testing.running`` against a real server."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pydantic
import pytest
import redis

from fluxabee import (
    App,
    AsyncEvent,
    Config,
    InvalidArgumentError,
    RetryPolicy,
    Stream,
    UnknownGroupError,
    UnknownStreamError,
)
from fluxabee.testing import running

ONCE = RetryPolicy(max_deliveries=1)


@dataclasses.dataclass
class Order:
    id: int
    sku: str


class Invoice(pydantic.BaseModel):
    order: int
    total: float


def shop_config(url: str) -> Config:
    return Config.from_url(
        url,
        streams=[
            Stream("orders", groups=("billing", "audit", "raw")),
            "invoices",
            "counts",
        ],
    )


class Seen:
    """What the handlers got (thread-safe: sync handlers run in pool threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, Any]] = []

    def add(self, where: str, value: Any) -> None:
        with self.lock:
            self.items.append((where, value))

    def of(self, where: str) -> list[Any]:
        return [v for w, v in self.items if w == where]


async def test_typed_bodies_arrive_as_the_annotated_types_and_follow_ups_are_published(
    redis_url: str,
) -> None:
    app = App(shop_config(redis_url))
    seen = Seen()

    @app.consumer("orders", group="billing", concurrency=4, key="customer")
    async def bill(order: Order, event: AsyncEvent) -> None:
        seen.add("bill", (order, event.meta["customer"]))
        app.publish("invoices", Invoice(order=order.id, total=order.id * 1.5))

    @app.consumer("orders", group="audit")
    async def audit(raw: bytes) -> None:
        seen.add("audit", raw)

    @app.consumer("orders", group="raw", single=True)
    async def whole(event: AsyncEvent) -> None:
        seen.add("raw", event.body)

    @app.consumer("invoices")
    async def invoiced(invoice: Invoice) -> None:
        seen.add("invoice", invoice)

    @app.consumer("counts")
    async def counts(values: list[int]) -> None:
        seen.add("counts", values)

    async with running(app) as run:
        for i in range(20):
            app.publish("orders", {"id": i, "sku": f"s{i}"}, customer=f"c{i % 3}")
        app.publish("counts", [1, 2, 3])
        await run.drained()

    bills = seen.of("bill")
    assert sorted(o.id for o, _ in bills) == list(range(20))
    assert all(type(o) is Order and c == f"c{o.id % 3}" for o, c in bills)
    assert len(seen.of("audit")) == 20 and all(type(r) is bytes for r in seen.of("audit"))
    assert [b["id"] for b in seen.of("raw")] == list(range(20))  # single: stream order
    invoices = seen.of("invoice")
    assert sorted(i.order for i in invoices) == list(range(20))
    assert all(type(i) is Invoice for i in invoices)
    assert seen.of("counts") == [[1, 2, 3]]


async def test_a_body_that_does_not_fit_is_dead_lettered_with_its_path_on_the_first_delivery(
    redis_url: str,
) -> None:
    app = App(shop_config(redis_url))
    seen = Seen()

    @app.consumer("orders", group="billing", retry_policy=RetryPolicy(max_deliveries=10))
    async def bill(order: Order) -> None:
        seen.add("bill", order)

    async with running(app) as run:
        app.publish("orders", {"id": 1, "sku": "ok"})
        app.publish("orders", {"id": 2, "sku": 42})
        await run.drained()
        assert app.runtime is not None
        letters = await app.runtime.broker.dead_letters("orders")

    assert [o.id for o in seen.of("bill")] == [1]
    assert len(letters) == 1
    assert letters[0].deliveries == 1
    assert "DecodeError" in letters[0].error and "sku" in letters[0].error


async def test_a_handler_that_raises_publishes_no_follow_up(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App(shop_config(redis_url))

    @app.consumer("orders", group="billing", retry_policy=ONCE)
    async def bill(order: Order) -> None:
        app.publish("invoices", Invoice(order=order.id, total=1.0))
        if order.id % 2:
            raise RuntimeError("payment refused")

    async with running(app) as run:
        for i in range(6):
            app.publish("orders", {"id": i, "sku": "x"})
        await run.drained()
        assert app.runtime is not None
        letters = await app.runtime.broker.dead_letters("orders")

    invoices = rclient.xrange("invoices")
    assert len(invoices) == 3  # the even orders only
    assert len(letters) == 3


async def test_outside_handlers_publish_and_flush_go_through_the_app_broker(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App(shop_config(redis_url))
    async with app:
        app.publish("invoices", Invoice(order=1, total=2.0))
        ids = await app.flush()
        one = await app.publish_now("invoices", {"order": 2, "total": 3.0})
    assert len(ids) == 1 and isinstance(one, str)
    assert rclient.xlen("invoices") == 2


def test_the_registry_refuses_what_cannot_run(redis_url: str) -> None:
    app = App(shop_config(redis_url))

    @app.consumer("orders", group="billing")
    async def bill(order: Order) -> None:
        pass

    with pytest.raises(InvalidArgumentError, match="already has handler"):
        app.consumer("orders", group="billing")(bill)
    with pytest.raises(UnknownStreamError):
        app.consumer("nope")(bill)
    with pytest.raises(UnknownGroupError):
        app.consumer("orders", group="nope")(bill)
    with pytest.raises(InvalidArgumentError, match="concurrency=1"):
        app.consumer("invoices", single=True, concurrency=4)(bill)
    assert [h.group for h in app.handlers] == ["billing"]
