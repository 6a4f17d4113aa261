"""eventstream.py: AWS's and botocore's encoded examples fed whole, byte by byte and in seeded
random splits; every corrupt example refused with its exact message; the bounds at N-1, N and
N+1; every header check; close() and feeding after it. Pure, no sockets."""

from __future__ import annotations

import base64
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from eventstream_encode import (
    BYTE,
    BYTES,
    INT,
    LONG,
    SHORT,
    STRING,
    TIMESTAMP,
    TRUE,
    UUID,
    encode_message,
    frame,
    header,
)

from missy_providers.core.errors import ProtocolError
from missy_providers.eventstream import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_HEADERS,
    EventMessage,
    EventStreamDecoder,
)

DATA = Path(__file__).resolve().parent / "data" / "eventstream"
GO = DATA / "aws-sdk-go"
SEEDS = ("a", "b", "c", "d", "e")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def built(parts: list[dict[str, Any]]) -> bytes:
    return b"".join(bytes.fromhex(p["hex"]) if "hex" in p else
                    bytes.fromhex(p["repeat_hex"]) * p["count"] for p in parts)


def go_value(entry: dict[str, Any]) -> Any:
    """A header of the Go SDK's decoded JSON as our decoder gives it."""
    kind, value = entry["type"], entry["value"]
    if kind in (6, 7, 9):  # byte array, string, UUID: base64 in the JSON
        raw = base64.b64decode(value)
        return raw.decode() if kind == 7 else raw
    return value


def go_case(path: Path) -> tuple[str, list[bytes], EventMessage]:
    decoded = json.loads((GO / "decoded" / "positive" / path.name).read_text(encoding="utf-8"))
    expected = EventMessage([(h["name"], go_value(h)) for h in decoded["headers"]],
                            base64.b64decode(decoded["payload"]))
    return f"aws-sdk-go/{path.name}", [path.read_bytes()], expected


def botocore_case(case: dict[str, Any]) -> tuple[str, list[bytes], EventMessage]:
    headers = [(name, bytes.fromhex(v["bytes_hex"]) if isinstance(v, dict) else v)
               for name, v in case["headers"]]
    return (f"botocore/{case['name']}", [bytes.fromhex(c) for c in case["chunks_hex"]],
            EventMessage(headers, bytes.fromhex(case["payload_hex"])))


GO_POSITIVE = sorted((GO / "encoded" / "positive").iterdir())
GO_NEGATIVE = sorted((GO / "encoded" / "negative").iterdir())
POSITIVE = [go_case(p) for p in GO_POSITIVE] + \
    [botocore_case(c) for c in load("botocore.json")["positive"]]
NEGATIVE_RAW = {f"aws-sdk-go/{p.name}": p.read_bytes() for p in GO_NEGATIVE} | \
    {f"botocore/{c['name']}": built(c["parts"]) for c in load("botocore.json")["negative"]} | \
    {f"aws-c-event-stream/{c['name']}": built(c["parts"])
     for c in load("aws-c-event-stream.json")["negative"]}
AT = "event stream message 1 at byte 0: "


def test_the_examples_are_all_there() -> None:
    """A missing data file is a failure, never a shorter parameter list."""
    assert (len(GO_POSITIVE), len(GO_NEGATIVE), len(POSITIVE), len(NEGATIVE_RAW)) == \
        (5, 4, 16, 13)


def decode(raw: bytes, cuts: list[int] | None = None, **kw: int) -> list[EventMessage]:
    decoder = EventStreamDecoder(**kw)
    out: list[EventMessage] = []
    for a, b in itertools.pairwise([0, *(cuts or []), len(raw)]):
        out += decoder.feed(raw[a:b])
    return out + decoder.close()


def random_cuts(raw: bytes, seed: str, runs: int = 20) -> list[list[int]]:
    """Seeded random places to split ``raw``: the same splits on every run."""
    rng = random.Random(seed)
    return [sorted(rng.sample(range(1, len(raw)), rng.randint(1, min(40, len(raw) - 1))))
            for _ in range(runs)]


# --- the published examples -----------------------------------------------------------------

@pytest.mark.parametrize("name, chunks, expected", POSITIVE, ids=[c[0] for c in POSITIVE])
def test_example_decodes_whole_byte_by_byte_and_in_random_splits(
        name: str, chunks: list[bytes], expected: EventMessage) -> None:
    raw = b"".join(chunks)
    assert decode(raw) == [expected]
    assert decode(raw, list(range(1, len(raw)))) == [expected]
    for seed in SEEDS:
        for cuts in random_cuts(raw, seed):
            assert decode(raw, cuts) == [expected], (seed, cuts)
    decoder = EventStreamDecoder()  # in the reads the example came in
    assert [m for c in chunks for m in decoder.feed(c)] + decoder.close() == [expected]


def test_all_examples_in_one_stream() -> None:
    raw = b"".join(b"".join(chunks) for _, chunks, _ in POSITIVE)
    expected = [message for _, _, message in POSITIVE]
    assert decode(raw) == expected
    assert decode(raw, list(range(1, len(raw)))) == expected
    for seed in SEEDS:
        for cuts in random_cuts(raw, seed, runs=10):
            assert decode(raw, cuts) == expected, (seed, cuts)


MESSAGE_CRC = "message checksum mismatch (sent 0x{:08x}, computed 0x{:08x})"
NEGATIVE = [
    ("aws-sdk-go/corrupted_header_len", AT + "prelude checksum mismatch (sent 0x07fd8396, "
     "computed 0x70fab300); the data begins "
     "'\\x00\\x00\\x00=\\x00\\x00\\x00!\\x07\ufffd\ufffd\ufffd'"),
    ("aws-sdk-go/corrupted_headers", AT + MESSAGE_CRC.format(0x8d9c08b1, 0x52c21aa1)),
    ("aws-sdk-go/corrupted_length", AT + "prelude checksum mismatch (sent 0x07fd8396, "
     "computed 0x405df946); the data begins "
     "'\\x00\\x00\\x00>\\x00\\x00\\x00 \\x07\ufffd\ufffd\ufffd'"),
    ("aws-sdk-go/corrupted_payload", AT + MESSAGE_CRC.format(0xc3653936, 0x701b72c3)),
    ("botocore/corrupted_length", AT + "prelude checksum mismatch (sent 0xfd528c5a, "
     "computed 0x31f88cc4); the data begins "
     "'\\x01\\x00\\x00\\x1d\\x00\\x00\\x00\\x00\ufffdR\ufffdZ'"),
    ("botocore/corrupted_payload", AT + MESSAGE_CRC.format(0xc3653936, 0x7ed8cb2a)),
    ("botocore/corrupted_headers", AT + MESSAGE_CRC.format(0x8d9c08b1, 0x395e7671)),
    ("botocore/corrupted_header_length", AT + "prelude checksum mismatch (sent 0x07fd8396, "
     "computed 0x1583f5c2); the data begins "
     "'\\x00\\x00\\x00=\ufffd\\x00\\x01\\x02\\x07\ufffd\ufffd\ufffd'"),
    ("botocore/duplicate_header", AT + "header 'test' is repeated"),
    ("botocore/invalid_headers_length",
     AT + "headers length 4278190338 does not fit in total length 61"),
    ("botocore/invalid_payload_length",
     AT + "total length 25165857 is over 25165824 bytes (max_message_bytes)"),
    ("aws-c-event-stream/illegal_header_length_relationship",
     AT + "headers length 8 does not fit in total length 20"),
    ("aws-c-event-stream/message_too_short", AT + "total length 12 is under the 16-byte minimum"),
]


def test_every_negative_example_has_its_message() -> None:
    assert sorted(name for name, _ in NEGATIVE) == sorted(NEGATIVE_RAW)


@pytest.mark.parametrize("name, message", NEGATIVE, ids=[n for n, _ in NEGATIVE])
def test_negative_example_is_refused_whole_and_byte_by_byte(name: str, message: str) -> None:
    raw = NEGATIVE_RAW[name]
    with pytest.raises(ProtocolError) as whole:
        EventStreamDecoder().feed(raw)
    assert str(whole.value) == message
    decoder = EventStreamDecoder()
    with pytest.raises(ProtocolError) as split:
        for i in range(len(raw)):  # a declared length past the bound fails at byte 12
            decoder.feed(raw[i:i + 1])
    assert str(split.value) == message


# --- bounds -----------------------------------------------------------------------------------

def test_default_bound() -> None:
    assert EventStreamDecoder().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 24 * 2**20
    assert MAX_HEADERS == 1024


@pytest.mark.parametrize("total, refused", [(63, False), (64, False), (65, True)])
def test_max_message_bytes(total: int, refused: bool) -> None:
    message = frame(payload=b"x" * (total - 16))
    if refused:
        with pytest.raises(ProtocolError) as exc:
            EventStreamDecoder(max_message_bytes=64).feed(message[:12])  # the prelude alone
        assert str(exc.value) == AT + f"total length {total} is over 64 bytes (max_message_bytes)"
    else:
        assert decode(message, max_message_bytes=64) == [EventMessage((), b"x" * (total - 16))]


@pytest.mark.parametrize("total, refused", [(15, True), (16, False), (17, False)])
def test_minimum_total_length(total: int, refused: bool) -> None:
    message = frame(payload=b"x" * max(0, total - 16), total=total)
    if refused:
        with pytest.raises(ProtocolError) as exc:
            decode(message)
        assert str(exc.value) == AT + "total length 15 is under the 16-byte minimum"
    else:
        assert decode(message) == [EventMessage((), b"x" * (total - 16))]


@pytest.mark.parametrize("headers_length, error", [
    (3, "header 1 runs past the headers block"),  # the name's 3 bytes, not its type byte
    (4, None),
    (5, "headers length 5 does not fit in total length 20"),
])
def test_headers_length_within_total_length(headers_length: int, error: str | None) -> None:
    message = frame(header("ab", TRUE), headers_length=headers_length)
    assert len(message) == 20
    if error:
        with pytest.raises(ProtocolError) as exc:
            decode(message)
        assert str(exc.value) == AT + error
    else:
        assert decode(message) == [EventMessage([("ab", True)])]


@pytest.mark.parametrize("count, refused", [(1023, False), (1024, False), (1025, True)])
def test_header_count_bound(count: int, refused: bool) -> None:
    message = frame(b"".join(header(f"h{i}", TRUE) for i in range(count)))
    if refused:
        with pytest.raises(ProtocolError) as exc:
            decode(message)
        assert str(exc.value) == AT + "more than 1024 headers"
    else:
        assert len(decode(message)[0].headers) == count


def test_a_huge_declared_length_is_refused_before_anything_is_buffered() -> None:
    prelude = frame(total=2**32 - 1)[:12]  # a valid prelude CRC over the largest length
    decoder = EventStreamDecoder()
    assert decoder.feed(prelude[:11]) == [] and decoder.pending
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(prelude[11:])
    assert str(exc.value) == AT + "total length 4294967295 is over 25165824 bytes " \
                                  "(max_message_bytes)"


def test_a_large_message_in_small_reads() -> None:
    """4 MiB in 1 KiB reads: joined once when complete (joining on every read would copy
    about 8 GB and take this suite far past its time)."""
    message = frame(header(":event-type", STRING, "chunk"), b"z" * (4 * 2**20))
    decoder = EventStreamDecoder()
    got = [m for i in range(0, len(message), 1024) for m in decoder.feed(message[i:i + 1024])]
    assert [m.payload == b"z" * (4 * 2**20) for m in got] == [True]
    assert not decoder.pending


# --- reads and the end of the stream ----------------------------------------------------------

def test_messages_come_out_with_the_read_that_completes_them() -> None:
    messages = [encode_message([(":event-type", f"e{i}")], b"p" * (i * 7)) for i in range(3)]
    fourth = encode_message([(":event-type", "cut")], b"never completed")
    raw = b"".join(messages) + fourth[:20]
    ends = list(itertools.accumulate(len(m) for m in messages))
    decoder = EventStreamDecoder()
    for start in range(0, len(raw), 5):
        got = decoder.feed(raw[start:start + 5])
        done = [i for i, end in enumerate(ends) if start < end <= start + 5]
        assert [m.event_type for m in got] == [f"e{i}" for i in done]
    assert decoder.pending
    with pytest.raises(ProtocolError) as exc:
        decoder.close()
    assert str(exc.value) == (f"event stream ended inside message 4 at byte {ends[-1]}: 20 of "
                              f"the {len(fourth)} bytes of the message arrived")


def test_close_inside_a_prelude() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(frame()[:5]) == []
    with pytest.raises(ProtocolError) as exc:
        decoder.close()
    assert str(exc.value) == ("event stream ended inside message 1 at byte 0: 5 of the 12 "
                              "bytes of its prelude arrived")


def test_close_after_whole_messages_and_feeding_after_close() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(b"") == [] and not decoder.pending
    assert decoder.feed(frame()) == [EventMessage()]
    assert decoder.feed(b"") == [] and not decoder.pending
    assert decoder.close() == []
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(frame())
    assert str(exc.value) == "event stream data fed after close() or an error"


def test_empty_reads_inside_a_message_change_nothing() -> None:
    message = encode_message([(":message-type", "event")], b"{}")
    decoder = EventStreamDecoder()
    got = [m for piece in (message[:3], b"", message[3:14], b"", message[14:], b"")
           for m in decoder.feed(piece)]
    assert got == [EventMessage([(":message-type", "event")], b"{}")]


def test_an_error_names_the_message_and_its_offset() -> None:
    first, second = encode_message([("a", "1")]), encode_message([("b", "2")], b"xyz")
    bad = bytearray(encode_message([("c", "3")], b"payload"))
    bad[-5] ^= 1
    decoder = EventStreamDecoder()
    assert len(decoder.feed(first) + decoder.feed(second)) == 2
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(bytes(bad))
    assert str(exc.value).startswith(f"event stream message 3 at byte "
                                     f"{len(first) + len(second)}: message checksum mismatch")


def test_after_an_error_the_decoder_takes_no_more_data() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(frame()[:14]) == []
    with pytest.raises(ProtocolError):
        decoder.feed(b"\xff" * 20)  # the rest of a 16-byte message: a bad message CRC
    assert not decoder.pending and decoder.close() == []
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(frame())
    assert str(exc.value) == "event stream data fed after close() or an error"


def test_bytes_like_input_gives_bytes_payloads() -> None:
    message = encode_message([], b"payload")
    for data in (bytearray(message), memoryview(message)):
        (got,) = EventStreamDecoder().feed(data)  # type: ignore[arg-type]
        assert type(got.payload) is bytes and got.payload == b"payload"


# --- headers ----------------------------------------------------------------------------------

def test_every_value_type() -> None:
    uuid = bytes(range(16))
    block = b"".join([
        header("t", TRUE), header("f", 1), header("b", BYTE, -128), header("s", SHORT, -32768),
        header("i", INT, 2**31 - 1), header("l", LONG, -(2**63)), header("ba", BYTES, b"\x00\xff"),
        header("str", STRING, "héllo ✓"), header("ts", TIMESTAMP, 1718927999000),
        header("u", UUID, uuid), header("", TRUE),  # an empty name: the framing allows it
    ])
    (got,) = decode(frame(block, b"{}"))
    assert got.headers == (("t", True), ("f", False), ("b", -128), ("s", -32768),
                           ("i", 2**31 - 1), ("l", -(2**63)), ("ba", b"\x00\xff"),
                           ("str", "héllo ✓"), ("ts", 1718927999000), ("u", uuid), ("", True))


def test_the_headers_consumers_dispatch_on() -> None:
    (got,) = decode(encode_message([(":message-type", "exception"),
                                    (":exception-type", "throttlingException"),
                                    (":content-type", "application/json")], b'{"message":"x"}'))
    assert (got.message_type, got.exception_type, got.content_type, got.event_type) == \
        ("exception", "throttlingException", "application/json", None)
    assert got.header(":content-type") == "application/json" and got.header("nope") is None
    assert EventMessage([(":event-type", 5)]).event_type is None  # built by hand, not decoded


@pytest.mark.parametrize("block, error", [
    (header("x", 10), "header 'x' has unknown value type 10"),
    (header("x", 255), "header 'x' has unknown value type 255"),
    (header("a\x1b[2J", 10), "header 'a\\x1b[2J' has unknown value type 10"),
    (b"\x05ab", "header 1 runs past the headers block"),
    (b"\x02ab", "header 1 runs past the headers block"),  # no type byte
    (header("a", TRUE) + b"\x09ab", "header 2 runs past the headers block"),
    (header("s", STRING, "abc")[:-1], "the value of header 's' runs past the headers block"),
    (header("s", BYTES, b"abc")[:-3], "the value of header 's' runs past the headers block"),
    (header("s", BYTES, b"abc")[:-4], "the value of header 's' runs past the headers block"),
    (header("i", INT, 7)[:-2], "the value of header 'i' runs past the headers block"),
    (header("u", UUID, bytes(16))[:-1], "the value of header 'u' runs past the headers block"),
    (header(b"\xff", TRUE), "header 1 has a name that is not UTF-8"),
    (header("s", STRING, b"\xff\xfe"), "the value of header 's' is not UTF-8"),
    (header(":event-type", BYTES, b"x"), "header ':event-type' is not a string (value type 6)"),
    (header(":message-type", TRUE), "header ':message-type' is not a string (value type 0)"),
    (header("a", TRUE) + header("a", STRING, "x"), "header 'a' is repeated"),
    (header(":event-type", STRING, "x") * 2, "header ':event-type' is repeated"),
])
def test_bad_headers(block: bytes, error: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode(frame(block, b"payload"))
    assert str(exc.value) == AT + error


def test_random_header_blocks_only_ever_give_protocol_errors() -> None:
    """Valid CRCs around random header bytes: every path of the header parser, and nothing
    but a message or a ProtocolError (never an IndexError or a hang)."""
    rng = random.Random("headers")
    outcomes = set()
    for _ in range(3000):
        block = bytes(rng.choice((0, 1, 2, 3, 7, 9, 10, 255, rng.randrange(256)))
                      for _ in range(rng.randrange(1, 24)))
        try:
            decode(frame(block))
            outcomes.add("message")
        except ProtocolError as exc:
            outcomes.add(str(exc).split(": ", 1)[1].split("'")[0])
    assert "message" in outcomes and len(outcomes) >= 6


def test_event_message_is_a_frozen_value() -> None:
    a = EventMessage([(":event-type", "x")], b"p")
    assert a == EventMessage(((":event-type", "x"),), b"p") and hash(a) == hash(
        EventMessage([(":event-type", "x")], b"p"))
    assert a != EventMessage([(":event-type", "y")], b"p")
    with pytest.raises(AttributeError):
        a.payload = b"q"
