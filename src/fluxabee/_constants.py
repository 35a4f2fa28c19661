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
#: Suffix of a stream's dead-letter stream: ``{<stream>}:dead`` (same Cluster slot).
DEAD_LETTER_SUFFIX = ":dead"
#: Suffix of the key holding a ``consumer_single`` lock: ``{<stream>}:lock``.
LOCK_KEY_SUFFIX = ":lock"
#: Suffix of a ``consumer_single`` lock in a group other than ``consumer_group``:
#: ``{<stream>}:lock:<group>`` (``consumer_group`` keeps ``{<stream>}:lock``).
LOCK_GROUP_SUFFIX = ":lock:"
#: Reserved entry field naming a consumer group: in a dead letter, the group it failed in;
#: in an entry replayed to a stream with several groups, the one group that handles it
#: (consumers of the other groups ack it without handing it over).
GROUP_FIELD = "fluxabee-group"
#: Dead-letter entry field: the last handler error.
DEAD_ERROR_FIELD = "fluxabee-error"
#: Dead-letter entry field: how many times the event was delivered.
DEAD_DELIVERIES_FIELD = "fluxabee-deliveries"
#: Dead-letter entry field: the event's ID in its source stream.
DEAD_SOURCE_ID_FIELD = "fluxabee-source-id"
#: Dead-letter entry field: when it was dead-lettered (ms since the epoch).
DEAD_TIME_FIELD = "fluxabee-dead-at"

#: Deliveries before an event goes to the dead letters (``RetryPolicy.max_deliveries``).
DEFAULT_MAX_DELIVERIES = 10
#: First retry delay in seconds (``RetryPolicy.backoff``), doubled per delivery.
DEFAULT_BACKOFF = 1.0
#: Longest retry delay in seconds (``RetryPolicy.max_backoff``).
DEFAULT_MAX_BACKOFF = 60.0
#: First reconnect delay of ``run()`` after a connection failure, seconds.
RECONNECT_BASE_DELAY = 0.1
#: Longest reconnect delay of ``run()``, seconds.
RECONNECT_MAX_DELAY = 5.0
#: Seconds a ``consumer_single`` lock lives without a refresh (refreshed every third).
DEFAULT_LOCK_TTL = 10.0
#: ``run()`` claims events pending on any consumer longer than this many seconds.
DEFAULT_MIN_IDLE = 60.0
#: ``run()`` blocks at most this long per read, so ``stop()`` is noticed quickly.
RUN_BLOCK_SLICE = 1.0
#: A consumer re-reads its own pending list at least this often, seconds (and after every
#: read of new entries that came back empty): entries claimed to it by another process
#: (``fluxabee claim``, XCLAIM) are handed over within seconds, not after ``min_idle``.
OWN_PENDING_INTERVAL = 5.0
#: Most handler errors a consumer remembers (by event ID) for its dead letters.
MAX_REMEMBERED_ERRORS = 10_000

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
#: Seconds ``flush(wait_replicas=...)`` waits for the replicas by default.
DEFAULT_WAIT_TIMEOUT = 1.0
#: Dead letters moved per round trip by ``replay_dead_letters``.
DEAD_LETTER_PAGE = 500
#: A consumer whose acks leave entries for a trim (XACK only) trims at most this often,
#: seconds, once it acked something since its last trim ...
TRIM_INTERVAL = 1.0
#: ... and at the latest after acking this many entries (10 batches of 1000).
TRIM_AFTER_ACKS = 10_000
#: How often a consumer checks the caps (``max_len`` / ``max_age``) of its stream when its
#: acks delete entries themselves, seconds.
CAP_CHECK_INTERVAL = 10.0
#: A consumer logs that its stream is over a cap (or that a trim failed) at most this
#: often, seconds.
RETENTION_WARNING_INTERVAL = 60.0
#: A consumer of a stream with one declared group, on a server without XACKDEL, looks for
#: groups its config does not declare (a newer deploy or a Go service added them) at its
#: first ack and then at least this often, seconds: its XDELs would remove what they need.
GROUP_CHECK_INTERVAL = 10.0
#: ``trim(max_len=N)`` finds where to cut by walking the stream on the server (a script),
#: at most this many entries per call, so one call never blocks Redis long ...
TRIM_WALK_BUDGET = 5_000
#: ... reading this many entries at a time inside the script (its memory stays bounded).
TRIM_WALK_PAGE = 100
