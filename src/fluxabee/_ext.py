"""Pure: MessagePack extension values fluxabee does not turn into a Python type.

msgpack's own ``ExtType`` takes codes 0 to 127 only, so a body holding an extension with
a negative code other than the timestamp (-1) used to be unreadable as a whole: Go's
github.com/shamaton/msgpack writes ``complex64`` / ``complex128`` as extension -128. Such
a value decodes to an :class:`Extension` (the rest of the body stays readable), and
``unserialize`` into a ``complex`` field reads shamaton's layout.
"""

from __future__ import annotations

import struct
from typing import Any

#: The extension code github.com/shamaton/msgpack gives ``complex64`` and ``complex128``.
COMPLEX_CODE = -128
_COMPLEX128 = struct.Struct(">dd")
_COMPLEX64 = struct.Struct(">ff")


class Extension:
    """A MessagePack extension value in a decoded body: its type ``code`` (-128 to 127)
    and its raw ``data``, as the writer put them.

    Go's shamaton/msgpack writes ``complex64``/``complex128`` as code -128 (two big-endian
    float32/float64, real then imaginary): :attr:`complex` reads them, and
    ``unserialize`` fills a ``complex`` field from them. An extension with a code from 0 to
    127 is written back as it came; fluxabee writes no negative code but the timestamp.
    """

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes) -> None:
        #: The extension type code (-128 to 127).
        self.code = code
        #: The extension's bytes, as written.
        self.data = data

    def __repr__(self) -> str:
        return f"Extension(code={self.code}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Extension):
            return NotImplemented
        return self.code == other.code and self.data == other.data

    def __hash__(self) -> int:
        return hash((Extension, self.code, self.data))

    @property
    def complex(self) -> complex | None:
        """The Go ``complex64``/``complex128`` this holds (shamaton's layout), else ``None``."""
        if self.code != COMPLEX_CODE:
            return None
        if len(self.data) == _COMPLEX128.size:
            return complex(*_COMPLEX128.unpack(self.data))
        if len(self.data) == _COMPLEX64.size:
            return complex(*_COMPLEX64.unpack(self.data))
        return None


def ext_hook(code: int, data: bytes) -> Any:
    """msgpack's ``ext_hook``: every extension but the timestamp as an :class:`Extension`."""
    return Extension(code, data)
