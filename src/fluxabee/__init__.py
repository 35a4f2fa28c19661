"""fluxabee: an event broker over Redis Streams for sync and asyncio Python.

Streams are declared in a :class:`Config`; ``Engine(config).new_context().event_broker()``
publishes (``publish`` + ``flush``) and makes consumers (``consumer_single``,
``consumer_many``). ``AsyncEngine`` offers the same API as coroutines. The Redis layout is
FluxaORM's, so Go and Python services share streams.
"""

from ._async.broker import AsyncEventBroker
from ._async.consumer import AsyncConsumer, AsyncHandler
from ._async.engine import AsyncContext, AsyncEngine
from ._backends import AsyncNetworkBackend, AsyncStream, SyncNetworkBackend, SyncStream
from ._localserver import LocalServer, ServerBinary, ServerTLS, find_server_binary, server_binaries
from ._policy import RetryPolicy
from ._schema import Float32, go_name, wire_names
from ._stats import ConsumerStatistics, GroupStatistics, StreamStatistics
from ._sync.broker import EventBroker
from ._sync.consumer import Consumer, Handler
from ._sync.engine import Context, Engine
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
    UnknownGroupError,
    UnknownStreamError,
    WrongTypeError,
)
from .event import AsyncDeadLetter, AsyncEvent, DeadLetter, Event, SyncDeadLetter, SyncEvent

__version__ = "0.1.0"

__all__ = [
    "AsyncConsumer",
    "AsyncContext",
    "AsyncDeadLetter",
    "AsyncEngine",
    "AsyncEvent",
    "AsyncEventBroker",
    "AsyncHandler",
    "AsyncNetworkBackend",
    "AsyncStream",
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
    "Float32",
    "FluxabeeError",
    "GroupStatistics",
    "Handler",
    "InvalidArgumentError",
    "LocalServer",
    "LocalServerError",
    "NoGroupError",
    "PartialFlushError",
    "PermissionDeniedError",
    "RedisPool",
    "RedisReplyError",
    "RedisUnavailableError",
    "ReplicationError",
    "RetryPolicy",
    "SerializationError",
    "ServerBinary",
    "ServerNotFoundError",
    "ServerTLS",
    "Stream",
    "StreamStatistics",
    "SyncDeadLetter",
    "SyncEvent",
    "SyncNetworkBackend",
    "SyncStream",
    "UnknownGroupError",
    "UnknownStreamError",
    "WrongTypeError",
    "__version__",
    "find_server_binary",
    "go_name",
    "server_binaries",
    "wire_names",
]
