"""The AsyncAPI document of an App (pure: no Redis)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fluxabee import App, AsyncEvent, Config, Stream
from fluxabee._asyncapi import component_key, document


@dataclasses.dataclass
class Line:
    sku: str


@dataclasses.dataclass
class Basket:
    lines: list[Line]


def test_nested_schemas_go_to_components_and_every_stream_is_a_channel() -> None:
    config = Config.from_url(
        "redis://:secret@127.0.0.1:6390/0",
        streams=[Stream("shop:{baskets}", groups=("a", "b")), "raw"],
    )
    app = App(config)

    @app.consumer("shop:{baskets}", group="a", key="customer")
    async def take(basket: Basket) -> None: ...

    @app.consumer("shop:{baskets}", group="b")
    async def look(event: AsyncEvent) -> None: ...

    @app.consumer("raw")
    def raw(data: bytes) -> None: ...

    doc: dict[str, Any] = document(app)
    key = component_key("shop:{baskets}")
    assert key == "shop__baskets_"
    assert doc["channels"][key]["address"] == "shop:{baskets}"
    assert set(doc["channels"][key]["messages"]) == {"Basket", "any"}
    basket = doc["components"]["messages"]["Basket"]["payload"]
    assert basket["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    assert doc["components"]["schemas"]["Line"]["properties"]["sku"]["type"] == "string"
    assert doc["components"]["messages"]["bytes"]["payload"]["format"] == "binary"
    assert doc["operations"]["take.a"]["x-fluxabee-key"] == "customer"
    assert doc["servers"]["default"]["host"] == "127.0.0.1:6390"
    assert "secret" not in repr(doc)
