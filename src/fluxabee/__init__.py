"""fluxabee: an event broker over Redis Streams for sync and asyncio Python.

Streams are declared in a :class:`Config`; ``Engine(config).new_context().event_broker()``
publishes (``publish`` + ``flush``) and makes consumers (``consumer_single``,
``consumer_many``). ``AsyncEngine`` offers the same API as coroutines. The Redis layout is
FluxaORM's, so Go and Python services share streams.
"""

from ._async.broker import AsyncEventBroker
from ._async.consumer import AsyncConsumer, AsyncHandler
from ._async.engine import AsyncContext, AsyncEngine
from ._policy import RetryPolicy
from ._schema import Float32, go_name, wire_names
from ._stats import ConsumerStatistics, GroupStatistics, StreamStatistics
from ._sync.broker import EventBroker
from ._sync.consumer import Consumer, Handler
from ._sync.engine import Context, Engine
from .config import Config, RedisPool
from .errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    ConfigError,
    ConsumerLockedError,
    DecodeError,
    FluxabeeError,
    InvalidArgumentError,
    NoGroupError,
    PartialFlushError,
    PermissionDeniedError,
    RedisReplyError,
    RedisUnavailableError,
    SerializationError,
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
    "BrokerAuthenticationError",
    "BrokerConnectionError",
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
    "Float32",
    "FluxabeeError",
    "GroupStatistics",
    "Handler",
    "InvalidArgumentError",
    "NoGroupError",
    "PartialFlushError",
    "PermissionDeniedError",
    "RedisPool",
    "RedisReplyError",
    "RedisUnavailableError",
    "RetryPolicy",
    "SerializationError",
    "StreamStatistics",
    "SyncDeadLetter",
    "SyncEvent",
    "UnknownStreamError",
    "WrongTypeError",
    "__version__",
    "go_name",
    "wire_names",
]
