"""Every Redis key name, field name and default in one place.

The layout is FluxaORM's, so Go and Python services can share streams.
"""

from __future__ import annotations

#: Stream entry field holding the MessagePack-encoded body (FluxaORM's layout).
BODY_FIELD = "s"
#: The one consumer group of every stream (FluxaORM's name).
GROUP_NAME = "consumer_group"
#: Name of the consumer created by ``consumer_single`` (FluxaORM's name).
SINGLE_CONSUMER_NAME = "consumer-single"
#: Prefix of the generated names of ``consumer_many`` consumers.
MANY_CONSUMER_PREFIX = "consumer-"
#: How many random digits follow the UTC timestamp in a generated consumer name.
MANY_CONSUMER_RANDOM_DIGITS = 16
#: Suffix of a stream's dead-letter stream: ``<stream>:dead``.
DEAD_LETTER_SUFFIX = ":dead"
#: Prefix of the key holding a ``consumer_single`` lock: ``fluxabee:lock:<stream>``.
LOCK_KEY_PREFIX = "fluxabee:lock:"

#: Default pool code when a config names none.
DEFAULT_POOL_CODE = "default"
#: Default Redis port for ``host`` / ``host:port`` short URIs.
DEFAULT_REDIS_PORT = 6379
#: Seconds to wait for a TCP connection to Redis.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Extra seconds a blocking read may take past its ``BLOCK`` before the socket gives up.
BLOCK_READ_MARGIN = 5.0
#: Socket timeout of non-blocking commands, seconds.
DEFAULT_SOCKET_TIMEOUT = 10.0
#: Most XPENDING rows read to learn the delivery counts of one autoclaim round.
CLAIM_PENDING_SCAN = 100_000
