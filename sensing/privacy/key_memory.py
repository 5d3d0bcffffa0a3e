"""A secret key in memory: only ever in a ``bytearray`` that can be zeroed in place.

The node's keys (the pseudonym key, the list key) must be erasable, so nothing
may hold an immutable copy of them (see :mod:`sensing.privacy.pseudonym`,
"Erasure"). This module holds what that takes: a fresh random key read straight
into a ``bytearray`` (:func:`random_key`), the overwriting of the one ``bytes``
copy HMAC cannot avoid (:func:`wipe_bytes`), and hex digits of a key decoded
from / encoded into a JSON text held in a ``bytearray``, without a ``str`` copy
(:func:`take_hex_key`, :func:`hex_into`, :func:`json_with_key`).

>>> buf = json_with_key({"v": 1}, bytearray(range(32)))
>>> key = take_hex_key(buf)
>>> key == bytearray(range(32)), bytes(buf)
(True, b'{"v": 1, "key": "0000000000000000000000000000000000000000000000000000000000000000"}')
"""

from __future__ import annotations

import json
import os
import re
import sys

__all__ = [
    "KEY_BYTES",
    "hex_into",
    "json_with_key",
    "random_key",
    "take_hex_key",
    "wipe_bytes",
]

KEY_BYTES = 32
"""length of a node key (HMAC-SHA256 key), bytes"""
_HEX_DIGITS = b"0123456789abcdef"
_HEX_VALUE = {c: i for i, c in enumerate(b"0123456789abcdef")} | {
    c: 10 + i for i, c in enumerate(b"ABCDEF")
}
_PLACEHOLDER = "@" * (2 * KEY_BYTES)


def wipe_bytes(b: bytes) -> None:
    """Overwrite the buffer of an immutable ``bytes`` object with zeros, in place.

    For the one unavoidable ``bytes`` copy of secret material: the digest that
    ``hmac.digest`` returns. Only on CPython (whose ``bytes`` keep their data at a
    fixed offset after the object header); a no-op elsewhere and for objects that
    may be shared (empty and one-byte ``bytes`` are cached singletons).
    """
    if type(b) is not bytes or len(b) < 2 or sys.implementation.name != "cpython":
        return
    import ctypes

    header = sys.getsizeof(b) - len(b) - 1  # PyBytesObject header, data, trailing NUL
    ctypes.memset(id(b) + header, 0, len(b))


def random_key() -> bytearray:
    """32 random bytes read straight into a ``bytearray`` (no ``bytes`` copy)."""
    out = bytearray(KEY_BYTES)
    try:
        with open("/dev/urandom", "rb", buffering=0) as f:
            if f.readinto(out) == KEY_BYTES:
                return out
    except OSError:
        pass
    r = os.urandom(KEY_BYTES)  # platforms without /dev/urandom
    out[:] = r
    wipe_bytes(r)
    return out


def take_hex_key(buf: bytearray, field: str = "key") -> bytearray:
    """Decode the 64-hex-digit JSON string ``field`` of ``buf`` into a 32-byte
    ``bytearray`` and blank its digits in ``buf`` (so the rest can be parsed as
    JSON without making a copy of the key). Raises ``ValueError`` if absent."""
    m = re.search(rb'"' + field.encode() + rb'"\s*:\s*"([0-9A-Fa-f]{64})"', buf)
    if m is None:
        raise ValueError(f"no 64-hex-digit {field!r}")
    s, e = m.span(1)
    key = bytearray(KEY_BYTES)
    hv = _HEX_VALUE
    for i in range(KEY_BYTES):
        key[i] = hv[buf[s + 2 * i]] << 4 | hv[buf[s + 2 * i + 1]]
    buf[s:e] = b"0" * (e - s)
    return key


def hex_into(key: bytearray, buf: bytearray, at: int) -> None:
    """Write ``key`` as lowercase hex digits into ``buf[at:]`` (no ``str`` copy)."""
    for i, b in enumerate(key):
        buf[at + 2 * i] = _HEX_DIGITS[b >> 4]
        buf[at + 2 * i + 1] = _HEX_DIGITS[b & 15]


def json_with_key(doc: dict[str, object], key: bytearray, field: str = "key") -> bytearray:
    """``doc`` as JSON bytes with ``key`` (hex) in ``field``, built in a ``bytearray``.

    The caller zeroes the result after writing it."""
    text = json.dumps({**doc, field: _PLACEHOLDER})
    buf = bytearray(text.encode())
    hex_into(key, buf, buf.index(b'"' + _PLACEHOLDER.encode() + b'"') + 1)
    return buf
