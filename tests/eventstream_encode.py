"""Builds event-stream messages for tests: the package only decodes (a client never sends one).

``frame`` computes valid CRCs over whatever lengths it is told, so a test can reach the checks
that come after the checksums (a headers length that does not fit, a value past the block).
"""

from __future__ import annotations

import zlib

# The value types of the event-stream header encoding.
TRUE, FALSE, BYTE, SHORT, INT, LONG, BYTES, STRING, TIMESTAMP, UUID = range(10)
_WIDTHS = {BYTE: 1, SHORT: 2, INT: 4, LONG: 8, TIMESTAMP: 8}


def header(name: str | bytes, kind: int, value: object = None) -> bytes:
    """One encoded header. ``value``: an int for the integer types and timestamps, bytes for
    byte arrays and UUIDs, str (or raw bytes) for strings, nothing for booleans."""
    raw_name = name.encode() if isinstance(name, str) else name
    out = bytes([len(raw_name)]) + raw_name + bytes([kind])
    if kind in _WIDTHS:
        assert isinstance(value, int)
        return out + value.to_bytes(_WIDTHS[kind], "big", signed=True)
    if kind in (BYTES, STRING):
        data = value.encode() if isinstance(value, str) else value
        assert isinstance(data, bytes)
        return out + len(data).to_bytes(2, "big") + data
    if kind == UUID:
        assert isinstance(value, bytes) and len(value) == 16
        return out + value
    return out  # TRUE, FALSE, or an unknown type given without a value


def frame(headers: bytes = b"", payload: bytes = b"", *, total: int | None = None,
          headers_length: int | None = None) -> bytes:
    """A message with valid prelude and message CRCs, over the declared lengths."""
    total = 16 + len(headers) + len(payload) if total is None else total
    headers_length = len(headers) if headers_length is None else headers_length
    lengths = total.to_bytes(4, "big") + headers_length.to_bytes(4, "big")
    body = lengths + zlib.crc32(lengths).to_bytes(4, "big") + headers + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def encode_message(headers: list[tuple[str, object]], payload: bytes = b"") -> bytes:
    """A message whose headers are (name, value) with their type from the value: bool, str,
    bytes, or int (as int32, the type Bedrock never sends but tests need)."""
    block = b""
    for name, value in headers:
        if isinstance(value, bool):
            block += header(name, TRUE if value else FALSE)
        elif isinstance(value, int):
            block += header(name, INT, value)
        elif isinstance(value, str):
            block += header(name, STRING, value)
        else:
            block += header(name, BYTES, value)
    return frame(block, payload)
