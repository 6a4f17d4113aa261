"""Every fast path gives what the full rules give (STYLE.md: a fast path falls back to the full
rules), fed the shapes real servers send and the ones they could: the chunked-body reader's
whole-chunks step, and the accumulators' text-delta steps."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from missy_providers.config import config_from_dict
from missy_providers.core.errors import MissyError
from missy_providers.core.h1 import ResponseReader
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.streaming import NOT_QUICK, quick_json
from missy_providers.registry import ProviderRegistry
from missy_providers.streams import Event

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(pieces: list[bytes], rng: random.Random) -> bytes:
    """Chunk framing in the forms the general rules accept: hex in either case, an extension,
    a bare LF now and then, then the last chunk, trailers and the blank line."""
    out = [HEAD]
    for piece in pieces:
        size = f"{len(piece):x}" if rng.random() < 0.8 else f"{len(piece):X}"
        ext = ";ext=1" if rng.random() < 0.05 else ""
        eol = b"\n" if rng.random() < 0.05 else b"\r\n"
        out.append(size.encode() + ext.encode() + eol + piece + b"\r\n")
    out.append(b"0\r\n" + (b"X-Trailer: 1\r\n" if rng.random() < 0.3 else b"") + b"\r\n")
    return b"".join(out)


def read(wire: bytes, cuts: list[int], quick: bool) -> tuple[bytes, bool, bool]:
    reader = ResponseReader("GET")
    if not quick:
        reader._whole_chunks = lambda buf, out: 0  # type: ignore[method-assign]
    body, last = [], 0
    for cut in [*cuts, len(wire)]:
        body.append(reader.feed(wire[last:cut]))
        last = cut
    return b"".join(body), reader.done, reader.reusable


@pytest.mark.parametrize("seed", range(40))
def test_whole_chunks_read_as_the_general_rules_read_them(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 40, 300])))
              for _ in range(rng.randrange(1, 60))]
    pieces += [b"data with \r\n inside\r\n", b"\r\n"] if seed % 3 == 0 else []
    wire = chunked(pieces, rng)
    cuts = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randrange(0, 12))))
    assert read(wire, cuts, quick=True) == read(wire, cuts, quick=False) == \
        (b"".join(pieces), True, True)


@pytest.mark.parametrize("bad", [b"1_0\r\n" + b"x" * 16, b"+a\r\n" + b"x" * 10,
                                 b"0x5\r\nxxxxx", b" 5\r\nxxxxx", b"5\r\nxxxxxx\r\n",
                                 b"fffffffffffffffff\r\nx", b"\r\nabc"])
def test_a_malformed_chunk_is_refused_as_the_general_rules_refuse_it(bad: bytes) -> None:
    outcomes = []
    for quick in (True, False):
        try:
            outcomes.append(read(HEAD + bad + b"\r\n0\r\n\r\n", [], quick))
        except MissyError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def provider(ptype: str) -> Any:
    config = config_from_dict({"providers": {"p": {
        "name": ptype, "model": "m", "api_key": "sk-test-123456",
        "base_url": "http://127.0.0.1:9" + ("/v1" if ptype == "openai" else "")}}}, env={})
    return ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy())).get("p")


def outcome(acc: Any, items: list[Event]) -> Any:
    """What an accumulator makes of ``items``: every item's output, then the final response
    (or the error), compared by value."""
    out: list[Any] = []
    try:
        for item in items:
            out.append(list(acc.feed(item)))
        final = acc.finish()
        out.append((final.content, final.finish_reason, final.usage, final.reasoning,
                    final.tool_calls, final.refusal, final.native))
    except MissyError as exc:
        out.append(type(exc).__name__ + str(exc))
    return out


def openai_chunks(rng: random.Random) -> list[Event]:
    head = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    shapes: list[Any] = [
        {"content": "plain"}, {"content": ""}, {"content": None}, {"content": "é 🦅"},
        {"content": "x", "role": "assistant"}, {"reasoning_content": "thinks"},
        {"content": "x", "reasoning": None}, {"refusal": "no"}, {"content": 5},
        {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]},
    ]
    items = []
    for _ in range(rng.randrange(1, 30)):
        delta = rng.choice(shapes)
        choice: dict[str, Any] = {"index": rng.choice([0, 0, 0, 1]), "delta": delta,
                                  "finish_reason": rng.choice([None, None, None, "stop"])}
        if rng.random() < 0.05:
            choice["content_filter_results"] = {"hate": {"filtered": False}}
        chunk: dict[str, Any] = {**head, "choices": [choice]}
        if rng.random() < 0.05:
            chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        if rng.random() < 0.03:
            chunk = {"error": {"message": "boom"}}
        if rng.random() < 0.03:
            chunk["choices"].append(choice)
        text = json.dumps(chunk, separators=rng.choice([(",", ":"), (", ", ": ")]))
        if rng.random() < 0.03:
            text = " " + text
        items.append(Event("message", text))
    if rng.random() < 0.9:
        items.append(Event("message", "[DONE]"))
    return items


def anthropic_events(rng: random.Random) -> list[Event]:
    items = [Event("message_start", json.dumps({"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "m", "content": [],
        "usage": {"input_tokens": 1, "output_tokens": 1}}}))]
    for _ in range(rng.randrange(1, 30)):
        index = rng.choice([0, 0, 1, 2])
        kind = rng.random()
        if kind < 0.1:
            block = rng.choice([{"type": "text", "text": ""}, {"type": "thinking",
                                                               "thinking": ""}])
            items.append(Event("content_block_start", json.dumps(
                {"type": "content_block_start", "index": index, "content_block": block})))
        elif kind < 0.15:
            items.append(Event("content_block_stop", json.dumps(
                {"type": "content_block_stop", "index": index})))
        else:
            delta = rng.choice([{"type": "text_delta", "text": "more"},
                                {"type": "text_delta", "text": ""},
                                {"type": "text_delta", "text": 7},
                                {"type": "thinking_delta", "thinking": "hm"},
                                {"type": "text_delta"}])
            items.append(Event("content_block_delta", json.dumps(
                {"type": "content_block_delta", "index": index, "delta": delta})))
    items += [Event("message_delta", json.dumps({"type": "message_delta", "delta": {
        "stop_reason": "end_turn"}, "usage": {"output_tokens": 3}})),
              Event("message_stop", json.dumps({"type": "message_stop"}))]
    return items


@pytest.mark.parametrize("ptype, make", [("openai", openai_chunks),
                                         ("anthropic", anthropic_events)])
@pytest.mark.parametrize("seed", range(60))
def test_the_quick_text_path_gives_what_the_full_rules_give(
        ptype: str, make: Any, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    items = make(random.Random(seed))
    quick = outcome(provider(ptype).new_accumulator(), items)
    import missy_providers.providers.anthropic as anthropic_module
    import missy_providers.providers.openai as openai_module

    for module in (openai_module, anthropic_module):  # the full rules only
        monkeypatch.setattr(module, "quick_json", lambda text: NOT_QUICK)
    assert outcome(provider(ptype).new_accumulator(), items) == quick


@pytest.mark.parametrize("text, value", [('{"a":1}', {"a": 1}), ("[1]", [1]), ('"s"', "s"),
                                         (" {}", NOT_QUICK), ("{} ", NOT_QUICK),
                                         ("{", NOT_QUICK), ("", NOT_QUICK),
                                         ("[DONE]", NOT_QUICK), ("NaN", float("nan"))])
def test_quick_json_takes_only_a_whole_well_formed_value(text: str, value: Any) -> None:
    got = quick_json(text)
    assert got is NOT_QUICK if value is NOT_QUICK else \
        (got == value or (got != got and value != value))
