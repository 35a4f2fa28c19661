"""Pure: the AsyncAPI 3.0 document of an :class:`~fluxabee.App` (``fluxabee asyncapi``).

Each stream a handler reads is a channel (its address the stream name), each handler a
``receive`` operation on it (its consumer group, ``single`` and ``key`` as ``x-fluxabee-*``
fields), and each handler's first-parameter annotation a message whose payload is its JSON
schema: pydantic's for a model, pydantic's ``TypeAdapter`` for a dataclass or any other
hint when pydantic is installed (an empty schema, "anything", otherwise). Nested schemas go
to ``components.schemas``, so every ``$ref`` resolves from the document's root. Bodies are
MessagePack on the wire (``application/msgpack``); the schema says what they decode to.
No server URL is written (it may hold a password): only the pools' codes and hosts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._app import BODY, EVENT, RAW, Registration

if TYPE_CHECKING:
    from ._application import App

#: The AsyncAPI version written.
ASYNCAPI_VERSION = "3.0.0"
#: The content type of every message: fluxabee bodies are MessagePack.
CONTENT_TYPE = "application/msgpack"
#: Where nested schemas live in the document.
SCHEMA_REF = "#/components/schemas/{model}"

_KEY = re.compile(r"[^\w.\-]")


def component_key(name: str) -> str:
    """A name as an AsyncAPI component / channel / operation key (``^[\\w\\d.\\-_]+$``)."""
    return _KEY.sub("_", name) or "_"


def payload_schema(item: Registration, schemas: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The message name and payload schema of a handler's body; nested schemas are added
    to ``schemas``."""
    spec = item.spec
    if spec.kind == RAW:
        return "bytes", {"type": "string", "format": "binary"}
    if spec.kind in (EVENT, BODY):
        return "any", {}
    hint = spec.hint
    name = component_key(getattr(hint, "__name__", None) or repr(hint))
    try:
        import pydantic  # noqa: PLC0415 - optional: schemas need it

        if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
            schema = hint.model_json_schema(ref_template=SCHEMA_REF)
        else:
            schema = pydantic.TypeAdapter(hint).json_schema(ref_template=SCHEMA_REF)
    except Exception:  # no pydantic, or a hint it has no schema for
        return name, {}
    for key, nested in schema.pop("$defs", {}).items():
        schemas.setdefault(key, nested)
    return name, schema


def _servers(app: App) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for pool in app.config.redis_pools:
        parts = urlsplit(pool.url)
        host = parts.hostname or "localhost"
        servers[component_key(pool.code)] = {
            "host": f"{host}:{parts.port}" if parts.port else host,
            "protocol": "redis",
            "description": f"fluxabee pool {pool.code!r} ({pool.topology})",
        }
    return servers


def document(app: App, *, title: str = "fluxabee app", version: str = "1.0.0") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app``'s handlers, as JSON-ready data."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for item in app.handlers:
        channel_key = component_key(item.stream)
        channel = channels.setdefault(
            channel_key, {"address": item.stream, "messages": {}, "x-fluxabee-stream": item.stream}
        )
        name, payload = payload_schema(item, schemas)
        message_key = name
        if message_key in messages and messages[message_key]["payload"] != payload:
            message_key = component_key(f"{name}_{item.stream}_{item.group}")
        messages[message_key] = {
            "name": name,
            "contentType": CONTENT_TYPE,
            "payload": payload,
        }
        channel["messages"][message_key] = {"$ref": f"#/components/messages/{message_key}"}
        short = getattr(item.spec.func, "__name__", None) or item.spec.name
        operation_key = component_key(f"{short}.{item.group}")
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_key}"},
            "messages": [{"$ref": f"#/channels/{channel_key}/messages/{message_key}"}],
            "summary": f"{item.spec.name} in consumer group {item.group}",
            "x-fluxabee-group": item.group,
            "x-fluxabee-single": item.single,
            "x-fluxabee-concurrency": item.concurrency,
        }
        if isinstance(item.key, str):
            operation["x-fluxabee-key"] = item.key
        doc = (item.spec.func.__doc__ or "").strip()
        if doc:
            operation["description"] = doc
        operations[operation_key] = operation
    result: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version},
        "defaultContentType": CONTENT_TYPE,
        "servers": _servers(app),
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
    if schemas:
        result["components"]["schemas"] = schemas
    return result
