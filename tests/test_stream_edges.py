"""streams.py at its exact edges: every byte bound at N-1, N and N+1, the unfinished-line
length across reads, BOM and CR handling split across reads, the full-rules path's fields,
close() after a cut, and feeding after close. Pure, no sockets (mutation-tested)."""

from __future__ import annotations

import pytest

from missy_providers.core.errors import ProtocolError
from missy_providers.streams import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    Event,
    NDJSONDecoder,
    SSEDecoder,
)


def test_default_bounds() -> None:
    assert (DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_EVENT_BYTES) == (4 * 2**20, 16 * 2**20)
    sse = SSEDecoder()
    assert (sse.max_line_bytes, sse.max_event_bytes) == (DEFAULT_MAX_LINE_BYTES,
                                                         DEFAULT_MAX_EVENT_BYTES)
    assert NDJSONDecoder().max_line_bytes == DEFAULT_MAX_LINE_BYTES
    assert (sse.last_event_id, sse.retry, sse.pending) == (None, None, False)


# --- SSE bounds -----------------------------------------------------------------------------

@pytest.mark.parametrize("length, refused", [(9, False), (10, False), (11, True)])
def test_unfinished_line_bound(length: int, refused: bool) -> None:
    sse = SSEDecoder(max_line_bytes=10, max_event_bytes=100)
    if refused:
        with pytest.raises(ProtocolError, match=r"SSE line longer than 10 bytes "
                                                r"\(max_line_bytes\)"):
            sse.feed(b"x" * length)
    else:
        assert sse.feed(b"x" * length) == []
        assert sse.pending


@pytest.mark.parametrize("first, second, refused", [
    (b"data: ab", b"cd", False),      # 10 bytes of one line, over two reads
    (b"data: ab", b"cde", True),      # 11
    (b"id: 1\ndata: ab", b"cd", False),  # the first line ended: only "data: abcd" counts
    (b"id: 1\ndata: ab", b"cde", True),
])
def test_line_length_is_counted_across_reads(first: bytes, second: bytes,
                                             refused: bool) -> None:
    sse = SSEDecoder(max_line_bytes=10, max_event_bytes=100)
    sse.feed(first)
    if refused:
        with pytest.raises(ProtocolError, match="SSE line longer than 10"):
            sse.feed(second)
    else:
        assert sse.feed(second) == []
        assert sse.feed(b"\n\n")[0].data == (first + second).split(b"data: ")[1].decode()


@pytest.mark.parametrize("size, refused", [(19, False), (20, False), (21, True)])
def test_event_bound(size: int, refused: bool) -> None:
    sse = SSEDecoder(max_line_bytes=8, max_event_bytes=20)
    lines = b"data:ab\n" * (size // 8) + b"d" * (size % 8)  # lines of 8 bytes, each ended
    assert len(lines) == size
    if refused:
        with pytest.raises(ProtocolError, match=r"SSE event larger than 20 bytes "
                                                r"\(max_event_bytes\)"):
            sse.feed(lines)
    else:
        sse.feed(lines)
        assert sse.pending


def test_a_dispatched_event_frees_its_bytes() -> None:
    sse = SSEDecoder(max_line_bytes=8, max_event_bytes=20)
    for _ in range(10):  # 10 events of 16 bytes: each is under the bound, all of them are not
        assert sse.feed(b"data:ab\ndata:cd\n\n") == [Event("message", "ab\ncd")]
    assert not sse.pending


# --- SSE framing ----------------------------------------------------------------------------

@pytest.mark.parametrize("reads, data", [
    ([b"\xef\xbb\xbfdata: x\n\n"], "x"),
    ([b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"], "x"),  # a BOM split over three reads
    ([b"\xef\xbb", b"data: x\n\n"], None),  # not a BOM after all: a field named "\ufffd..."
    ([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n"], None),  # only one BOM is stripped
    ([b"data: x\r", b"\n\r\n"], "x"),  # a CRLF split between reads
    ([b"data: x\r\r"], "x"),
    ([b"data: x\r", b"", b"\n\n"], "x"),  # an empty read between CR and LF
    ([b"data:x\n\n"], "x"),  # no space after the colon
    ([b"data:  x\n\n"], " x"),  # only one space removed
    ([b"data\n\n"], ""),  # a field without a colon: empty value
])
def test_framing(reads: list[bytes], data: str | None) -> None:
    sse = SSEDecoder()
    events = [e for chunk in reads for e in sse.feed(chunk)]
    assert [e.data for e in events] == ([] if data is None else [data])


def test_blank_lines_after_whole_events() -> None:
    sse = SSEDecoder()
    sse.feed(b"x")  # past the start
    sse.feed(b"\n\n")
    assert sse.feed(b"data: a\n\n\n") == [Event("message", "a")]
    assert sse.feed(b"\ndata: b\n\n") == [Event("message", "b")]
    assert sse.feed(b"data: c\n\n\n\n") == [Event("message", "c")]
    assert sse.feed(b"data: d\n\ndata: e\n\n") == [Event("message", "d"),
                                                  Event("message", "e")]
    assert not sse.pending


def test_full_rules_path_fields() -> None:
    sse = SSEDecoder()
    block = (b": comment\nid: 7\nevent: update\nretry: 250\ndata: a\ndata: b\nunknown: z\n"
             b"\n")
    assert sse.feed(block) == [Event("update", "a\nb", "7", 250)]
    assert (sse.last_event_id, sse.retry) == ("7", 250)
    # The id persists; an id with NUL is ignored; a bad retry changes nothing.
    assert sse.feed(b"id: x\0y\nretry: 1e3\nretry: 12345678901\ndata: c\n\n") == [
        Event("message", "c", "7", None)]
    assert sse.retry == 250
    assert sse.feed(b"data: d\n\n") == [Event("message", "d", "7", None)]  # fast path keeps id
    assert sse.feed(b"event: e\ndata: f\n\n") == [Event("e", "f", "7", None)]
    assert sse.feed(b"id\ndata: g\n\n") == [Event("message", "g", "", None)]  # empty id
    assert sse.feed(b"event: only\n\n") == []  # no data: nothing dispatched
    assert sse.feed(b"retry: 0123456789\n\n") == [] and sse.retry == 123456789
    assert sse.feed(b"event:\ndata: h\n\n") == [Event("message", "h", "", None)]


def test_retry_applies_when_its_line_arrives() -> None:
    sse = SSEDecoder()
    sse.feed(b"retry: 3000\ndata: partial")
    assert sse.retry == 3000  # before the event is dispatched
    sse.feed(b"retry: 99999999999\nretry: x\nretry:")  # too long, not digits, unfinished
    assert sse.retry == 3000
    sse.feed(b" 7\n")
    assert sse.retry == 7
    sse.feed(b"ret")
    sse.feed(b"ry: 5\n")  # the field name itself split across reads
    assert sse.retry == 5


def test_close_after_a_cut() -> None:
    cut = SSEDecoder()
    cut.feed(b"event: a\ndata: half")
    assert cut.pending
    assert cut.close() == []  # the spec discards an unterminated event
    with pytest.raises(ProtocolError, match="SSE data fed after close"):
        cut.feed(b"\n\n")
    kept = SSEDecoder()
    kept.feed(b"data: last\n")
    assert kept.close(dispatch_unterminated=True) == [Event("message", "last")]
    blank = SSEDecoder()
    blank.feed(b"data: x\n\n\n")
    assert blank.close(dispatch_unterminated=True) == []  # only blank lines left
    early = SSEDecoder()
    early.feed(b"\xef")
    assert early.close(dispatch_unterminated=True) == [] and not early.pending
    assert SSEDecoder().feed(b"") == []


# --- NDJSON ---------------------------------------------------------------------------------

@pytest.mark.parametrize("length, refused", [(9, False), (10, False), (11, True)])
def test_ndjson_unfinished_line_bound(length: int, refused: bool) -> None:
    nd = NDJSONDecoder(max_line_bytes=10)
    if refused:
        with pytest.raises(ProtocolError, match=r"NDJSON line longer than 10 bytes "
                                                r"\(max_line_bytes\)"):
            nd.feed(b"1" * length)
    else:
        assert nd.feed(b"1" * length) == []
        assert nd.close() == [int("1" * length)]


@pytest.mark.parametrize("tail, refused", [(b"2" * 10, False), (b"2" * 11, True)])
def test_ndjson_bound_after_a_whole_line(tail: bytes, refused: bool) -> None:
    nd = NDJSONDecoder(max_line_bytes=10)
    if refused:
        with pytest.raises(ProtocolError, match="NDJSON line longer than 10"):
            nd.feed(b"1\n" + tail)
    else:
        assert nd.feed(b"1\n" + tail) == [1]


def test_ndjson_lines() -> None:
    nd = NDJSONDecoder()
    assert nd.feed(b'{"a": 1}\r\n\n  \n{"b"') == [{"a": 1}]
    assert nd.feed(b": 2}\n") == [{"b": 2}]
    assert nd.feed(b"[3]") == []
    assert nd.close() == [[3]]
    with pytest.raises(ProtocolError, match="NDJSON data fed after close"):
        nd.feed(b"4\n")
    bad = NDJSONDecoder()
    with pytest.raises(ProtocolError, match="NDJSON line 3 is not valid JSON: 'nope'"):
        bad.feed(b"1\n\nnope\n")
    assert NDJSONDecoder().close() == []


# --- the fast paths give what the full rules give -------------------------------------------

@pytest.mark.parametrize("block, event", [
    (b"event: \ndata: x", Event("message", "x")),  # an empty event name is "message"
    (b"event: a\ndata: b\ndata: c", Event("a", "b\nc")),  # three lines: the full rules
    (b"event: a\nid: 1\ndata: x", Event("a", "x", "1")),
    (b"event: a\ndata:x", Event("a", "x")),
    (b"event: a\n data: x", None),  # " data" is another field
    (b"data: caf\xc3\xa9 \xff", Event("message", "caf\xe9 \ufffd")),  # invalid UTF-8 replaced
    (b"event: \xff\ndata: \xfe", Event("\ufffd", "\ufffd")),
    (b"\ndata: x", Event("message", "x")),
    (b"data: x\r", Event("message", "x")),
])
def test_shapes(block: bytes, event: Event | None) -> None:
    for reads in ([b"x\n\n", block + b"\n\n"], [b"x\n\n" + block + b"\n\n"],
                  [b"x\n\n", block, b"\n\n"]):
        sse = SSEDecoder()
        got = [e for chunk in reads for e in sse.feed(chunk)]
        assert got == ([] if event is None else [event]), reads


def test_cr_in_a_read_of_whole_events() -> None:
    sse = SSEDecoder()
    sse.feed(b"x\n\n")
    assert sse.feed(b"data: x\r\n\n") == [Event("message", "x")]
    assert sse.feed(b"data: y\r\r") == [Event("message", "y")]


def test_a_blank_line_split_from_its_event_dispatches_at_once() -> None:
    sse = SSEDecoder()
    assert sse.feed(b"data: x\n") == []
    assert sse.feed(b"\n") == [Event("message", "x")]


@pytest.mark.parametrize("reads, retry", [
    ([b"data: a", b"\nretry: 5\n"], 5),
    ([b"retry: 5", b"\n"], 5),
    ([b"data: a\nret", b"ry: 6\n"], 6),  # split inside the field name
    ([b"ret", b"ry: 6\n"], 6),
    ([b"data: a", b"\nretry:7\n"], 7),  # no space after the colon
    ([b"data: a", b"\nretry: 1234567890\n"], 1234567890),  # ten digits
    ([b"data: a", b"\nretry: 12345678901\n"], None),  # eleven: ignored
    ([b"data: a", b"\nretry: 5"], None),  # the line has not ended
])
def test_retry_lines_of_an_unfinished_event(reads: list[bytes], retry: int | None) -> None:
    sse = SSEDecoder()
    sse.feed(b"x\n\n")
    for chunk in reads:
        assert sse.feed(chunk) == []
    assert sse.retry == retry


def test_line_length_restarts_after_a_newline_at_the_seam() -> None:
    sse = SSEDecoder(max_line_bytes=10, max_event_bytes=100)
    sse.feed(b"x\n\n")
    sse.feed(b"data: ab")  # a line of 8
    sse.feed(b"\nxyz")  # a new line of 3: 8 + 4 would be over the bound
    sse.feed(b"abcdefg")  # 10
    with pytest.raises(ProtocolError, match="SSE line longer than 10"):
        sse.feed(b"h")


def test_close_dispatches_the_unterminated_event_as_it_is() -> None:
    sse = SSEDecoder()
    sse.feed(b"x\n\n")
    sse.feed(b"data: x \n")
    assert sse.close(dispatch_unterminated=True) == [Event("message", "x ")]


def test_exact_messages() -> None:
    closed = SSEDecoder()
    closed.close()
    with pytest.raises(ProtocolError) as info:
        closed.feed(b"x")
    assert info.value.message == "SSE data fed after close()"
    nd = NDJSONDecoder(max_line_bytes=4)
    with pytest.raises(ProtocolError) as info:
        nd.feed(b"1\n12345")
    assert info.value.message == "NDJSON line longer than 4 bytes (max_line_bytes)"
    nd = NDJSONDecoder()
    nd.close()
    with pytest.raises(ProtocolError) as info:
        nd.feed(b"1\n")
    assert info.value.message == "NDJSON data fed after close()"


def test_a_blank_line_starting_the_next_read_dispatches_at_once() -> None:
    sse = SSEDecoder()
    assert sse.feed(b"data: x\n") == []
    assert sse.feed(b"\ndata: y") == [Event("message", "x")]
    assert sse.close(dispatch_unterminated=True) == [Event("message", "y")]


def test_ndjson_a_newline_alone_ends_nothing_pending() -> None:
    nd = NDJSONDecoder(max_line_bytes=10)
    assert nd.feed(b"\n") == []
    assert nd.feed(b"1234567890") == []  # a line of 10: the earlier newline is not part of it
    assert nd.close() == [1234567890]
