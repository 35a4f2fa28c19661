"""Extension values: Go's complex64/complex128 (shamaton's extension -128) no longer make
a whole body unreadable."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from fluxabee import DecodeError, Event, Extension, SerializationError
from fluxabee.codec import decode_body, encode_body, unserialize

#: Go: msgpack.Marshal(struct{Name string; C complex128}{"c", 1.5-2i}) with
#: github.com/shamaton/msgpack (FluxaORM's encoder).
GO_COMPLEX128 = bytes.fromhex("82a44e616d65a163a143d8803ff8000000000000c000000000000000")


@dataclasses.dataclass
class WithComplex:
    Name: str
    C: complex


def test_a_go_complex128_field_leaves_the_rest_of_the_body_readable() -> None:
    body = Event("1-0", "s", GO_COMPLEX128, {}, lambda event: None).body
    assert body == {"Name": "c", "C": Extension(-128, struct.pack(">dd", 1.5, -2.0))}
    assert body["C"].complex == 1.5 - 2j
    assert repr(body["C"]).startswith("Extension(code=-128, data=")


def test_unserialize_reads_shamatons_complex128_and_complex64() -> None:
    assert unserialize(decode_body(GO_COMPLEX128), WithComplex) == WithComplex("c", 1.5 - 2j)
    complex64 = {"Name": "d", "C": Extension(-128, struct.pack(">ff", 0.5, 4.0))}
    assert unserialize(complex64, WithComplex) == WithComplex("d", 0.5 + 4j)
    assert unserialize({"Name": "e", "C": 3}, WithComplex) == WithComplex("e", 3 + 0j)
    with pytest.raises(DecodeError, match=r"at C: expected complex"):
        unserialize({"Name": "f", "C": Extension(5, b"xx")}, WithComplex)


def test_other_extension_codes_decode_and_positive_ones_are_written_back() -> None:
    assert decode_body(bytes.fromhex("d40501")) == Extension(5, b"\x01")  # fixext1 code 5
    assert decode_body(bytes.fromhex("d4f001")) == Extension(-16, b"\x01")
    assert encode_body(Extension(5, b"\x01")) == bytes.fromhex("d40501")
    with pytest.raises(SerializationError, match="extension type -128 cannot be written"):
        encode_body({"C": Extension(-128, b"\x00" * 16)})
