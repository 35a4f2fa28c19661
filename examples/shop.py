"""One fluxabee.App for a web process (FastAPI) and its worker processes.

The worker runs every handler::

    REDIS_URL=redis://127.0.0.1:6379/0 fluxabee run shop:app --processes 2

The web process opens the same app in FastAPI's lifespan and publishes with publish_now::

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn shop:web --port 8000
    curl -X POST localhost:8000/orders -H 'content-type: application/json' \
         -d '{"id": 1, "customer": "ada", "total": 9.5}'

(run both from this directory; ``fluxabee asyncapi shop:app`` prints its AsyncAPI document).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

import fastapi
import pydantic

import fluxabee

logger = logging.getLogger("shop")


class OrderPlaced(pydantic.BaseModel):
    """An order, as the web process publishes it."""

    id: int
    customer: str
    total: float


class Invoice(pydantic.BaseModel):
    """The follow-up of a billed order."""

    order: int
    amount: float


config = fluxabee.Config.from_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    streams=[fluxabee.Stream("orders", groups=("billing", "email")), "invoices"],
)
app = fluxabee.App(config)


@app.consumer("orders", group="billing", concurrency=50, key="customer")
async def bill(order: OrderPlaced, event: fluxabee.AsyncEvent) -> None:
    """Bill an order: the invoice is published before the order is acked."""
    app.publish("invoices", Invoice(order=order.id, amount=order.total))


@app.consumer("orders", group="email")
def send_mail(order: OrderPlaced) -> None:
    """A plain def: it runs in a thread."""
    logger.info("mail to %s about order %d", order.customer, order.id)


@contextlib.asynccontextmanager
async def lifespan(_: fastapi.FastAPI) -> AsyncIterator[None]:
    """Open the app (its connections) for the web process's lifetime."""
    async with app:
        yield


web = fastapi.FastAPI(lifespan=lifespan)


@web.post("/orders")
async def place_order(order: OrderPlaced) -> dict[str, str]:
    """Publish the order at once; the entry ID comes back."""
    entry_id: str = await app.publish_now("orders", order, customer=order.customer)
    return {"id": entry_id}
