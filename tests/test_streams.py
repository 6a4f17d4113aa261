"""The sans-IO decoders: WHATWG SSE rules, NDJSON, bounds, and split-proofness on real traffic."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import recorded_exchanges

from missy_providers.core.errors import ProtocolError
from missy_providers.streams import Event, NDJSONDecoder, SSEDecoder

EXCHANGES = recorded_exchanges()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


SSE_BODIES = [p for p in EXCHANGES if load(p)["stream_format"] == "sse"]
NDJSON_BODIES = [p for p in EXCHANGES if load(p)["stream_format"] == "ndjson"]


def decode_sse(raw: bytes, splits: list[int] | None = None, *,
               dispatch_unterminated: bool = False) -> list[Event]:
    decoder = SSEDecoder()
    out: list[Event] = []
    cuts = [0, *(splits or []), len(raw)]
    for a, b in itertools.pairwise(cuts):
        out += decoder.feed(raw[a:b])
    return out + decoder.close(dispatch_unterminated=dispatch_unterminated)


def random_cuts(raw: bytes, seed: str, runs: int = 50) -> list[list[int]]:
    """Seeded random places to split ``raw``: the same splits on every run."""
    rng = random.Random(seed)
    return [sorted(rng.sample(range(1, len(raw)), rng.randint(1, 40))) for _ in range(runs)]


def assert_decodes(raw: bytes, expected: list[Event], **kw: bool) -> None:
    assert decode_sse(raw, **kw) == expected
    assert decode_sse(raw, list(range(1, len(raw))), **kw) == expected  # byte by byte


def test_simple_event() -> None:
    assert_decodes(b"data: hi\n\n", [Event(data="hi")])


def test_one_optional_space_removed() -> None:
    assert_decodes(b"data:x\n\ndata: x\n\ndata:  x\n\n",
                   [Event(data="x"), Event(data="x"), Event(data=" x")])


def test_multiple_data_lines_join_with_newline() -> None:
    assert_decodes(b"data: a\ndata: b\ndata\ndata: c\n\n", [Event(data="a\nb\n\nc")])


def test_line_ends_crlf_lf_cr_mixed() -> None:
    raw = b"data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata: d\r\r"
    assert_decodes(raw, [Event(data="a\nb\nc"), Event(event="e", data="d")])


def test_cr_at_end_of_one_chunk_and_lf_at_start_of_next_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [Event(data="a\nb")]
    assert decoder.feed(b"\ndata: c\n\n") == [Event(data="c")]  # that LF was the CRLF's


def test_comments_ignored() -> None:
    assert_decodes(b": OPENROUTER PROCESSING\n\n:keepalive\ndata: x\n: mid\n\n",
                   [Event(data="x")])


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert_decodes(b"data\n\n", [Event(data="")])
    assert_decodes(b"event\ndata: x\n\n", [Event(event="message", data="x")])


def test_block_without_data_is_not_dispatched() -> None:
    assert_decodes(b"event: ping\n\nid: 7\n\nretry: 10\n\n: c\n\n", [])


def test_field_names_are_case_sensitive_and_unknown_ignored() -> None:
    assert_decodes(b"Data: no\n data: no\nfoo: bar\ndata: yes\n\n", [Event(data="yes")])


def test_id_persists_and_nul_is_ignored() -> None:
    raw = b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert_decodes(raw, [Event(data="a", id="1"), Event(data="b", id="1"),
                         Event(data="c", id="1"), Event(data="d", id="")])


def test_retry_applies_when_its_line_is_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 2500\ndata: not yet terminated") == []
    assert decoder.retry == 2500
    assert decoder.feed(b"\n\n") == [Event(data="not yet terminated", retry=2500)]
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\n") == [] and decoder.retry == 2500


def test_empty_feed_between_cr_and_lf_keeps_one_line_ending() -> None:
    decoder = SSEDecoder()
    # CR + (nothing) + LF is one line ending: one event "a\nb", not "a" then "b".
    got = decoder.feed(b"data: a\r") + decoder.feed(b"") + decoder.feed(b"\ndata: b\n\n")
    assert got == [Event(data="a\nb")]


def test_retry_only_digits() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry: -1\n\n")
    assert events == [Event(data="a", retry=1500), Event(data="b")]
    assert decoder.retry == 1500


def test_event_type_resets_after_dispatch() -> None:
    assert_decodes(b"event: x\ndata: 1\n\ndata: 2\n\n",
                   [Event(event="x", data="1"), Event(data="2")])


def test_bom_stripped_only_at_start_even_split() -> None:
    raw = b"\xef\xbb\xbfdata: a\n\ndata: \xef\xbb\xbfb\n\n"
    assert_decodes(raw, [Event(data="a"), Event(data="\ufeffb")])
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == [] and decoder.feed(b"\xbb") == []
    assert decoder.feed(b"\xbfdata: z\n\n") == [Event(data="z")]


def test_many_blank_lines() -> None:
    assert_decodes(b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n", [Event(data="a"), Event(data="b")])


def test_u2028_inside_json_survives() -> None:
    payload = json.dumps({"t": "a\u2028b\u2029c\x85d\x0ce"}, ensure_ascii=False)
    raw = f"data: {payload}\n\n".encode()
    [event] = decode_sse(raw)
    assert json.loads(event.data)["t"] == "a\u2028b\u2029c\x85d\x0ce"
    assert decode_sse(raw, list(range(1, len(raw)))) == [event]


def test_multibyte_character_split_across_reads() -> None:
    raw = "data: pelican 🦅 é\n\n".encode()
    assert decode_sse(raw, list(range(1, len(raw)))) == [Event(data="pelican 🦅 é")]


def test_invalid_utf8_is_replaced() -> None:
    assert decode_sse(b"data: a\xffb\n\n") == [Event(data="a\ufffdb")]


def test_padding_after_json_kept_for_the_json_parser() -> None:
    [event] = decode_sse(b'data: {"type":"content_block_stop","index":0     }\n\n')
    assert json.loads(event.data) == {"type": "content_block_stop", "index": 0}


def test_missing_final_blank_line_is_a_documented_choice() -> None:
    raw = b"data: a\n\ndata: last"
    assert_decodes(raw, [Event(data="a")])  # the spec: discard
    assert_decodes(raw, [Event(data="a"), Event(data="last")], dispatch_unterminated=True)
    assert_decodes(b"data: a\n\ndata: last\n", [Event(data="a"), Event(data="last")],
                   dispatch_unterminated=True)


def test_pending_reports_an_unterminated_event() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")
    assert not decoder.pending
    decoder.feed(b"data: b\n")
    assert decoder.pending


def test_line_and_event_bounds() -> None:
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=1000)
    with pytest.raises(ProtocolError, match="SSE line longer than 100 bytes"):
        for _ in range(10):
            decoder.feed(b"x" * 20)
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=1000)
    with pytest.raises(ProtocolError, match="SSE event larger than 1000 bytes"):
        for _ in range(100):
            decoder.feed(b"data: 0123456789\n")
    decoder = SSEDecoder(max_line_bytes=100)
    decoder.feed(b"data: " + b"x" * 90 + b"\n\n")  # under the bound: fine


def test_feed_after_close_is_an_error() -> None:
    decoder = SSEDecoder()
    decoder.close()
    with pytest.raises(ProtocolError):
        decoder.feed(b"data: x\n\n")


@pytest.mark.parametrize("path", SSE_BODIES, ids=lambda p: p.stem)
def test_real_sse_bodies_split_anywhere(path: Path) -> None:
    exchange = load(path)
    raw = exchange["response"]["body"].encode()
    whole = decode_sse(raw)
    assert whole, "every recorded stream has events"
    assert decode_sse(raw, list(range(1, len(raw)))) == whole
    for cuts in random_cuts(raw, path.stem):
        assert decode_sse(raw, cuts) == whole
    sse = exchange["expect"].get("sse", {})
    if "event_counts" in sse:
        assert dict(Counter(e.event for e in whole)) == sse["event_counts"]
    if "data_chunks" in sse:  # OpenAI style: data-only events, then [DONE]
        assert len(whole) == sse["data_chunks"] + int(sse["done_sentinel"])
    assert len(whole) == sse["events_total"]


@pytest.mark.parametrize("path", SSE_BODIES, ids=lambda p: p.stem)
def test_real_sse_bodies_with_crlf_and_cr(path: Path) -> None:
    raw = load(path)["response"]["body"].encode()
    whole = decode_sse(raw)
    for ending in (b"\r\n", b"\r"):
        converted = raw.replace(b"\n", ending)
        assert decode_sse(converted) == whole
        rng = random.Random(f"{path.stem}-{ending!r}")
        cuts = sorted(rng.sample(range(1, len(converted)), 30))
        assert decode_sse(converted, cuts) == whole


# --- NDJSON ----------------------------------------------------------------------------------


def decode_ndjson(raw: bytes, splits: list[int] | None = None) -> list[Any]:
    decoder = NDJSONDecoder()
    out: list[Any] = []
    cuts = [0, *(splits or []), len(raw)]
    for a, b in itertools.pairwise(cuts):
        out += decoder.feed(raw[a:b])
    return out + decoder.close()


def test_ndjson_lines_blank_lines_crlf_and_partial_last_line() -> None:
    raw = b'{"a":1}\n\n{"b":2}\r\n  \n{"c":"x\xe2\x80\xa8y"}'
    expected = [{"a": 1}, {"b": 2}, {"c": "x\u2028y"}]
    assert decode_ndjson(raw) == expected
    assert decode_ndjson(raw, list(range(1, len(raw)))) == expected


def test_ndjson_holds_a_partial_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":') == []
    assert decoder.feed(b'1}\n{"b"') == [{"a": 1}]
    assert decoder.feed(b":2}") == []
    assert decoder.close() == [{"b": 2}]


def test_ndjson_malformed_line_names_line_and_shows_short_excerpt() -> None:
    decoder = NDJSONDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b'{"ok":1}\n\n{"broken": ' + b"x" * 500 + b"\n")
    message = str(info.value)
    assert message.startswith("NDJSON line 3 is not valid JSON: '{\"broken\": xxx")
    assert len(message) < 150


def test_ndjson_line_bound() -> None:
    decoder = NDJSONDecoder(max_line_bytes=64)
    with pytest.raises(ProtocolError, match="NDJSON line longer than 64 bytes"):
        for _ in range(10):
            decoder.feed(b"0123456789")


@pytest.mark.parametrize("path", NDJSON_BODIES, ids=lambda p: p.stem)
def test_real_ndjson_bodies_split_anywhere(path: Path) -> None:
    exchange = load(path)
    raw = exchange["response"]["body"].encode()
    whole = decode_ndjson(raw)
    assert len(whole) == exchange["expect"]["lines"]
    assert decode_ndjson(raw, list(range(1, len(raw)))) == whole
    for cuts in random_cuts(raw, path.stem):
        assert decode_ndjson(raw, cuts) == whole
