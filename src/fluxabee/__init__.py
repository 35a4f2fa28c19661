"""fluxabee: an event broker over Redis Streams for sync and asyncio Python.

Streams are declared in a :class:`Config`; ``Engine(config).new_context().event_broker()``
publishes (``publish`` + ``flush``) and makes consumers (``consumer_single``,
``consumer_many``). ``AsyncEngine`` offers the same API as coroutines. The Redis layout is
FluxaORM's, so Go and Python services share streams.

Observers (:class:`Observer`) hear what brokers and consumers do: the optional extras
plug in there, :class:`PrometheusObserver` / :class:`StatisticsCollector`
(``fluxabee[prometheus]``) and :class:`TracingObserver` (``fluxabee[otel]``); those three
are imported on first use, so ``import fluxabee`` needs neither package.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._application import App
from ._async.broker import AsyncEventBroker
from ._async.consumer import AsyncConsumer, AsyncHandler
from ._async.engine import AsyncContext, AsyncEngine
from ._backends import AsyncNetworkBackend, AsyncStream, SyncNetworkBackend, SyncStream
from ._ext import Extension
from ._inspection import PendingEntry
from ._localserver import LocalServer, ServerBinary, ServerTLS, find_server_binary, server_binaries
from ._observe import Batch, Observer, Publication
from ._policy import RetryPolicy
from ._schema import Float32, go_name, wire_names
from ._stats import ConsumerStatistics, GroupStatistics, StreamStatistics
from ._sync.broker import EventBroker
from ._sync.consumer import Consumer, Handler
from ._sync.engine import Context, Engine
from ._window import Retry
from .config import Config, RedisPool, Stream
from .errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    ClosedError,
    ConfigError,
    ConsumerLockedError,
    DecodeError,
    EventTooLargeError,
    FluxabeeError,
    InvalidArgumentError,
    LocalServerError,
    NoGroupError,
    PartialFlushError,
    PermissionDeniedError,
    RedisReplyError,
    RedisUnavailableError,
    ReplicationError,
    SerializationError,
    ServerNotFoundError,
    TrimRefusedError,
    UnknownGroupError,
    UnknownStreamError,
    WrongTypeError,
)
from .event import AsyncDeadLetter, AsyncEvent, DeadLetter, Event, SyncDeadLetter, SyncEvent

if _TYPE_CHECKING:
    from ._otel import TracingObserver
    from ._prometheus import PrometheusObserver, StatisticsCollector

__version__ = "0.1.0"

#: Names imported on first use: (module, the extra that brings its dependency).
_LAZY = {
    "PrometheusObserver": ("._prometheus", "prometheus"),
    "StatisticsCollector": ("._prometheus", "prometheus"),
    "TracingObserver": ("._otel", "otel"),
}


def __getattr__(name: str) -> _Any:
    """Import the optional extras' names on first use, with a hint when one is missing."""
    if name not in _LAZY:
        raise AttributeError(f"module 'fluxabee' has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        value = getattr(_importlib.import_module(module, __name__), name)
    except ImportError as exc:
        raise ImportError(
            f"fluxabee.{name} needs {exc.name or 'a missing package'}: "
            f"pip install 'fluxabee[{extra}]'"
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names only (not the helpers this module imports)."""
    return sorted(__all__)


__all__ = [
    "App",
    "AsyncConsumer",
    "AsyncContext",
    "AsyncDeadLetter",
    "AsyncEngine",
    "AsyncEvent",
    "AsyncEventBroker",
    "AsyncHandler",
    "AsyncNetworkBackend",
    "AsyncStream",
    "Batch",
    "BrokerAuthenticationError",
    "BrokerConnectionError",
    "ClosedError",
    "Config",
    "ConfigError",
    "Consumer",
    "ConsumerLockedError",
    "ConsumerStatistics",
    "Context",
    "DeadLetter",
    "DecodeError",
    "Engine",
    "Event",
    "EventBroker",
    "EventTooLargeError",
    "Extension",
    "Float32",
    "FluxabeeError",
    "GroupStatistics",
    "Handler",
    "InvalidArgumentError",
    "LocalServer",
    "LocalServerError",
    "NoGroupError",
    "Observer",
    "PartialFlushError",
    "PendingEntry",
    "PermissionDeniedError",
    "PrometheusObserver",
    "Publication",
    "RedisPool",
    "RedisReplyError",
    "RedisUnavailableError",
    "ReplicationError",
    "Retry",
    "RetryPolicy",
    "SerializationError",
    "ServerBinary",
    "ServerNotFoundError",
    "ServerTLS",
    "StatisticsCollector",
    "Stream",
    "StreamStatistics",
    "SyncDeadLetter",
    "SyncEvent",
    "SyncNetworkBackend",
    "SyncStream",
    "TracingObserver",
    "TrimRefusedError",
    "UnknownGroupError",
    "UnknownStreamError",
    "WrongTypeError",
    "__version__",
    "find_server_binary",
    "go_name",
    "server_binaries",
    "wire_names",
]
