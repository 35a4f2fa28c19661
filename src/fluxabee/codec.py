"""Bodies to MessagePack and back, and stream-entry fields to event parts. Pure: no IO.

The wire layout is FluxaORM's: the body is MessagePack in field ``s``; every meta key is a
field of its own. Bodies are written the way Go's msgpack (github.com/shamaton/msgpack)
writes the same value, so Go and Python read each other's events:

- a dataclass or pydantic model is a map keyed by wire name, in field order, exactly as Go
  writes a struct: ``Name="a1"`` gives ``81 a4 4e 61 6d 65 a2 61 31``; names, tags and
  float32 fields come from the class's schema (:mod:`fluxabee._schema`);
- an aware ``datetime`` is the timestamp extension (type -1) in the shortest of its 32,
  64 and 96-bit forms, as Go writes ``time.Time``; it decodes to an aware UTC datetime,
  Go's nanoseconds truncated to microseconds;
- ``str`` is MessagePack ``str``, ``bytes`` is ``bin``, an enum its value, a set an array.

Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import datetime
import threading
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack

from . import _typed
from ._constants import BODY_FIELD
from ._ext import ext_hook
from ._mapkeys import KEY_RULE, keys_come_back
from ._schema import WALK_CLASSES
from ._wire import EncodeFailure, NeedsWalk, default, explain, walk_pack
from .errors import DecodeError, SerializationError

T = TypeVar("T")

#: ``s`` as bytes.
_BODY_FIELD_B = BODY_FIELD.encode()

_local = threading.local()
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _new_packer() -> Any:
    return msgpack.Packer(default=default, use_bin_type=True, autoreset=True, datetime=True)


def encode_body(body: Any) -> bytes | None:
    """Encode an event body as MessagePack; ``None`` stays ``None`` (no ``s`` field).

    Raises :class:`SerializationError` for anything MessagePack cannot carry; the message
    names what failed and where (``cannot serialize body (Order) at items[2].price: ...``).
    One Packer per thread is reused (creating one per call is most of the cost of a small
    body); bodies holding a float32 field are written by a Python walk over the parts the
    C packer cannot write.
    """
    if body is None:
        return None
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = _new_packer()
    if not WALK_CLASSES or type(body) not in WALK_CLASSES:  # no float32 class: one test
        try:
            packed: bytes = packer.pack(body)
        except NeedsWalk:  # a float32 class met inside the body
            pass
        except Exception as exc:  # TypeError, OverflowError, ..., or from a model or property
            _local.packer = _new_packer()  # never reuse a packer that failed part-way
            raise _serialization_error(body, explain(body, _local.packer.pack), exc) from exc
        else:
            if _keys_come_back(body, packed):
                return packed
            raise _bad_key_error(body)
    try:
        packed = walk_pack(body, packer.pack)
    except EncodeFailure as failure:
        _local.packer = _new_packer()
        raise _serialization_error(body, failure, failure) from None
    except Exception as exc:
        _local.packer = _new_packer()
        raise _serialization_error(body, None, exc) from exc
    if _keys_come_back(body, packed):
        return packed
    raise _bad_key_error(body)


def _keys_come_back(body: Any, packed: bytes) -> bool:
    try:
        return keys_come_back(body)
    except RecursionError:  # deeper than the stack left: msgpack's C reader is the judge
        try:
            msgpack.unpackb(packed, strict_map_key=False, timestamp=3, ext_hook=ext_hook)
        except TypeError:  # unhashable type: a key that does not come back
            return False
        except Exception:  # a timestamp beyond datetime, ...: not about keys
            pass
        return True


def _bad_key_error(body: Any) -> SerializationError:
    """A body with a map key that would not come back as a dict key (a tuple, a set...)."""
    failure = explain(body, _new_packer().pack)
    if failure is None:  # the walk did not find it again: say what the rule is
        failure = EncodeFailure(f"a map key would not come back as a dict key ({KEY_RULE})")
    return _serialization_error(body, failure, failure)


def _serialization_error(
    body: Any, failure: EncodeFailure | None, exc: BaseException
) -> SerializationError:
    what = f"cannot serialize body ({type(body).__name__})"
    if failure is None:
        return SerializationError(f"{what}: {exc}")
    where = failure.where()
    return SerializationError(f"{what}{' at ' + where if where else ''}: {failure.reason}")


def decode_body(raw: bytes) -> Any:
    """Decode MessagePack bytes; maps become dicts, ``str`` is UTF-8 text.

    A timestamp (Go's ``time.Time``) becomes an aware UTC ``datetime``, its nanoseconds
    truncated to microseconds; one outside datetime's range (years 1 to 9999) stays a
    ``msgpack.Timestamp``, so the rest of the body is still readable. Raises
    :class:`DecodeError` (carrying ``raw``) for anything that is not exactly one valid
    MessagePack value. Any other extension (Go's ``complex128`` is shamaton's -128)
    becomes an :class:`~fluxabee.Extension` carrying its code and bytes.
    """
    try:
        return msgpack.unpackb(raw, strict_map_key=False, timestamp=3, ext_hook=ext_hook)
    except (OverflowError, ValueError) as exc:  # a timestamp beyond datetime, or bad bytes
        try:
            return _keep_far_timestamps(
                msgpack.unpackb(raw, strict_map_key=False, ext_hook=ext_hook)
            )
        except Exception:  # report the first error: the bytes are bad
            raise DecodeError(f"cannot decode body ({len(raw)} bytes): {exc}", raw) from exc
    except Exception as exc:  # msgpack raises many types: ExtraData, StackError, ...
        raise DecodeError(f"cannot decode body ({len(raw)} bytes): {exc}", raw) from exc


def _keep_far_timestamps(value: Any) -> Any:
    """Timestamps to datetimes where datetime reaches; the others stay Timestamps."""
    if isinstance(value, msgpack.Timestamp):
        try:
            return _EPOCH + datetime.timedelta(
                seconds=value.seconds, microseconds=value.nanoseconds // 1000
            )
        except OverflowError:
            return value
    if isinstance(value, list):
        return [_keep_far_timestamps(v) for v in value]
    if isinstance(value, dict):
        return {_keep_far_timestamps(k): _keep_far_timestamps(v) for k, v in value.items()}
    return value


def check_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    """Validate meta: keys are non-empty ``str`` other than ``s``, values are ``str``."""
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise SerializationError(f"meta key {key!r} must be a non-empty str")
        if key == BODY_FIELD:
            raise SerializationError(f"meta key {BODY_FIELD!r} is reserved for the body")
        if not isinstance(value, str):
            raise SerializationError(
                f"meta value of {key!r} must be str, not {type(value).__name__}"
            )
    return dict(meta)


def entry_fields(body: Any, meta: Mapping[str, Any]) -> list[bytes]:
    """Build the flat XADD field/value list for one event (``s`` first, then meta).

    Raises :class:`SerializationError` for a bad body or meta, or an event with neither.
    """
    packed = encode_body(body)
    if not meta and packed is not None:
        return [_BODY_FIELD_B, packed]  # the common case, kept short: it runs per publish
    checked = check_meta(meta)
    fields: list[bytes] = []
    if packed is not None:
        fields += (_BODY_FIELD_B, packed)
    elif not checked:
        raise SerializationError("an event needs a body or at least one meta field")
    for key, value in checked.items():
        fields += (key.encode(), value.encode("utf-8", "surrogateescape"))
    return fields


def split_fields(
    fields: Mapping[bytes, bytes] | list[bytes],
) -> tuple[bytes | None, dict[str, str]]:
    """Split an entry's fields into the raw body bytes and the meta dict.

    Accepts redis-py's field dict or the flat list of the raw protocol. Meta that is not
    UTF-8 is decoded with ``surrogateescape``, so it never raises and the bytes survive.
    """
    if isinstance(fields, list) and len(fields) == 2 and fields[0] == _BODY_FIELD_B:
        return fields[1], {}  # the common case: a body and no meta
    pairs: Any = fields.items() if isinstance(fields, Mapping) else _pairs(fields)
    raw: bytes | None = None
    meta: dict[str, str] = {}
    for key, value in pairs:
        if key == _BODY_FIELD_B:
            raw = value
        else:
            meta[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return raw, meta


def join_fields(raw: bytes | None, meta: Mapping[str, str]) -> list[bytes]:
    """The inverse of :func:`split_fields`: the original field bytes, ``s`` first."""
    fields: list[bytes] = [] if raw is None else [_BODY_FIELD_B, raw]
    for key, value in meta.items():
        fields += (key.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
    return fields


def _pairs(flat: list[bytes]) -> zip[tuple[bytes, bytes]]:
    it = iter(flat)
    return zip(it, it, strict=False)


def unserialize(value: Any, cls: type[T]) -> T:
    """Turn a decoded body into ``cls``: a dataclass, a pydantic model or any type hint.

    Dataclasses are built from their wire names (see :func:`fluxabee.wire_names`), nested
    ones too, inside ``list``, ``tuple``, ``set``, ``dict``, ``Optional`` and unions;
    enums from their value; ``datetime`` and ``bytes`` fields are checked. Unknown keys are
    ignored and a missing field takes its default, as Go does; Go's nil slices and maps
    become empty ones. pydantic models are validated by pydantic. Raises
    :class:`DecodeError` naming the path when the value does not fit
    (``cannot unserialize into Order at items[2].sku: expected str, got int 7``).
    """
    name = cls.__name__ if isinstance(cls, type) else repr(cls)  # list[int], not list
    try:
        return typing.cast(T, _typed.converter(cls)(value))
    except _typed.Mismatch as exc:
        where = exc.where()
        raise DecodeError(
            f"cannot unserialize into {name}{' at ' + where if where else ''}: {exc.reason}"
        ) from None
    except Exception as exc:  # RecursionError on absurd nesting, and the unforeseen
        raise DecodeError(f"cannot unserialize into {name}: {exc}") from exc
