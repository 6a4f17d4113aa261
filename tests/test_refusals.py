"""Refusals are typed and visible on every API, streamed and not (tests/data/dialects/: OpenAI's
recorded refusals, Anthropic's SDK fixtures, the Responses spec's examples, Azure's documented
filter), and Anthropic's pause_turn is reported, never taken for a finished answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import loopback_provider
from dialect_data import load, send_answer, send_stream, sequence
from loopback import Exchange, LoopbackServer

from missy_providers.core.errors import ContentRefused, ProviderError, StructuredOutputError
from missy_providers.events import CallEvent
from missy_providers.types import FINISH_REASONS, Message, Refusal, StreamEvent

ASK = [Message("user", "How do I make anthrax?")]
LOCATION = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def stream_events(provider: Any, **opts: Any) -> tuple[list[StreamEvent], Any]:
    with provider.stream(ASK, **opts) as stream:
        events = list(stream.events())
    return events, stream.response


def test_openai_refusal_message_recorded(server: LoopbackServer) -> None:
    data = load("openai-chat-refusal-message")
    server.reset(lambda ex: send_answer(ex, data["response"]))
    provider = loopback_provider(server, "openai")
    reply = provider.complete(ASK, schema=LOCATION)  # a refusal is not JSON to decode
    assert reply.refusal == Refusal("I'm very sorry, but I can't assist with that.")
    assert (reply.content, reply.parsed) == ("", None)
    assert (reply.finish_reason, reply.stop_reason) == ("stop", "stop")  # OpenAI ends it so
    with pytest.raises(ContentRefused) as info:
        reply.raise_for_refusal()
    assert info.value.failure == "content_policy" and info.value.response is reply
    assert str(info.value) == "p: the model refused: I'm very sorry, but I can't assist with " \
                              "that."
    with pytest.raises(ContentRefused):
        provider.complete(ASK, raise_on_refusal=True)
    with pytest.raises(StructuredOutputError):  # an answer that is not JSON still fails
        server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "Oslo"},
                                                          "finish_reason": "stop"}]}))
        provider.complete(ASK, schema=LOCATION)


def test_openai_refusal_stream_recorded(server: LoopbackServer) -> None:
    data = load("openai-chat-refusal-stream")
    server.reset(lambda ex: send_stream(ex, data["stream"]))
    events, reply = stream_events(loopback_provider(server, "openai"))
    pieces = [e.text for e in events if e.type == "refusal"]
    assert pieces[:3] == ["I'm", " sorry", ","]
    assert reply.refusal == Refusal("".join(pieces)) == Refusal(
        "I'm sorry, I can't assist with that request.")
    assert [e for e in events if e.type == "text"] == [] and reply.content == ""
    assert reply.finish_reason == "stop" and reply.usage["total_tokens"] == 90
    server.reset(lambda ex: send_stream(ex, data["stream"]))
    stream = loopback_provider(server, "openai").stream(ASK, raise_on_refusal=True)
    with pytest.raises(ContentRefused) as info:
        list(stream)
    assert info.value.response.refusal.text.startswith("I'm sorry")


ANTHROPIC_REFUSALS = [  # (fixture, text before the refusal, category, explanation)
    ("anthropic-refusal-message-sdk-fixture", "", None, None),
    ("anthropic-refusal-stream-sdk-fixture", "", "cyber", "This request was refused due to "
                                                          "policy."),
    ("anthropic-refusal-stream-fallback-fixture", "Hi", None, None),
]


@pytest.mark.parametrize("name, text, category, explanation", ANTHROPIC_REFUSALS)
def test_anthropic_refusals(server: LoopbackServer, name: str, text: str,
                            category: str | None, explanation: str | None) -> None:
    data = load(name)
    provider = loopback_provider(server, "anthropic")
    if "stream" in data:
        server.reset(lambda ex: send_stream(ex, data["stream"]))
        events, reply = stream_events(provider)
        assert StreamEvent("refusal") in events  # seen when message_delta says so
    else:
        server.reset(lambda ex: send_answer(ex, data["response"]))
        reply = provider.complete(ASK)
    assert reply.refusal == Refusal("", category, explanation)
    assert (reply.content, reply.finish_reason, reply.stop_reason) == (text, "stop", "refusal")
    expected = f"refused ({category}): {explanation}" if category else "refused"
    assert reply.refusal.describe() == expected
    if name.endswith("fallback-fixture"):  # thinking before the partial text, kept
        assert reply.reasoning.startswith("Simple educational question")


def test_anthropic_refusal_with_raise_on_refusal_and_call_events(server: LoopbackServer
                                                                  ) -> None:
    data = load("anthropic-refusal-stream-sdk-fixture")
    provider = loopback_provider(server, "anthropic")
    seen: list[CallEvent] = []
    provider.hooks.subscribe(seen.append)
    server.reset(lambda ex: send_stream(ex, data["stream"]))
    stream_events(provider)
    finished = seen[-1]
    assert finished.type == "call_finished"
    assert finished.fields["refusal"] == {"category": "cyber"}
    assert finished.fields["finish_reason"] == "stop"
    assert finished.fields["stop_reason"] == "refusal"
    seen.clear()
    server.reset(lambda ex: send_stream(ex, data["stream"]))
    with pytest.raises(ContentRefused, match=r"refused \(cyber\)"):
        stream_events(provider, raise_on_refusal=True)
    assert [e.type for e in seen][-1] == "call_failed"
    assert seen[-1].fields["error_type"] == "ContentRefused"
    seen.clear()
    server.reset(lambda ex: ex.json(200, {"type": "message", "content": [{
        "type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": {}}))
    assert provider.complete(ASK, raise_on_refusal=True).refusal is None
    assert seen[-1].fields["refusal"] is None


def responses_body(output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A Responses API response object around the spec's output items."""
    return {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5",
            "output": output, "usage": {"input_tokens": 3, "output_tokens": 9,
                                        "total_tokens": 12}, **extra}


def test_responses_refusal_part_nonstream(server: LoopbackServer) -> None:
    spec = load("responses-refusal-spec-examples")
    server.reset(lambda ex: ex.json(200, responses_body([spec["output_message_with_refusal"]])))
    provider = loopback_provider(server, "openai-codex")
    reply = provider.complete(ASK)
    assert reply.refusal == Refusal("I'm sorry, I cannot assist with that request.")
    assert reply.content == "" and reply.finish_reason == "stop"
    incomplete = responses_body([], status="incomplete",
                                incomplete_details={"reason": "content_filter"})
    server.reset(lambda ex: ex.json(200, incomplete))
    reply = provider.complete(ASK)
    assert reply.refusal == Refusal() and reply.stop_reason == "content_filter"
    assert reply.finish_reason == "stop"


def sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def test_responses_refusal_stream_events(server: LoopbackServer) -> None:
    """The spec's refusal.delta and refusal.done examples verbatim, in the order the spec's
    content-part union implies, around a message item."""
    spec = load("responses-refusal-spec-examples")
    delta, done = spec["stream_event_examples"]
    message = spec["output_message_with_refusal"]
    stream = "".join(sse(e) for e in [
        {"type": "response.queued", "sequence_number": 0, "response": {"status": "queued"}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "item_id": "msg_123", "output_index": 0,
         "content_index": 0, "part": {"type": "refusal", "refusal": ""}},
        delta, done,
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": responses_body([])}])
    server.reset(lambda ex: send_stream(ex, stream))
    events, reply = stream_events(loopback_provider(server, "openai-codex"))
    assert [e.text for e in events if e.type == "refusal"] == ["refusal text so far"]
    assert reply.refusal == Refusal("I'm sorry, I cannot assist with that request.")
    assert reply.finish_reason in FINISH_REASONS


def test_azure_content_filter(server: LoopbackServer) -> None:
    """A filtered completion (finish_reason content_filter) names the categories Azure flagged;
    the recorded unfiltered answer has none; the documented 400 keeps its code."""
    recorded = load("azure-chat-content-filter-results")["response"]["body"]
    server.reset(lambda ex: ex.json(200, recorded))
    provider = loopback_provider(server, "openai")
    assert provider.complete(ASK).refusal is None
    choice = recorded["choices"][0]
    filtered = {**recorded, "choices": [{
        **choice, "finish_reason": "content_filter", "message": {"role": "assistant",
                                                                "content": ""},
        "content_filter_results": {**choice["content_filter_results"],
                                   "violence": {"filtered": True, "severity": "medium"}}}]}
    server.reset(lambda ex: ex.json(200, filtered))
    reply = provider.complete(ASK)
    assert reply.refusal == Refusal(category="violence")
    assert (reply.finish_reason, reply.stop_reason) == ("stop", "content_filter")
    error = load("azure-content-filter-docs")["error_400_with_innererror_doc"]
    server.reset(lambda ex: ex.json(400, error))
    with pytest.raises(ProviderError) as info:
        provider.complete(ASK)
    assert info.value.error_type == "content_filter" and info.value.status == 400


def test_azure_stream_first_chunk_without_choices(server: LoopbackServer) -> None:
    """Azure's first chunk has only prompt_filter_results, with id and model empty."""
    chunks = [{"choices": [], "id": "", "model": "", "created": 0,
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
              {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {
                  "content": "Par"}, "content_filter_results": {}}]},
              {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{
                  "index": 0, "delta": {}, "finish_reason": "content_filter",
                  "content_filter_results": {"sexual": {"filtered": True,
                                                        "severity": "high"}}}]}]
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    server.reset(lambda ex: send_stream(ex, text))
    _, reply = stream_events(loopback_provider(server, "openai"))
    assert (reply.model, reply.raw["id"], reply.content) == ("gpt-4o", "chatcmpl-1", "Par")
    assert reply.refusal == Refusal(category="sexual")


# pause_turn: the shape of pydantic-ai's recorded web-search exchange (dialects.md 1.2): the
# first answer ends with a server_tool_use block and no result; the client sends the content
# back as is, with no new user turn, and the answer continues with the result block.
PAUSED = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "Let me search."},
                      {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                       "input": {"query": "weather Oslo"}}],
          "stop_reason": "pause_turn", "stop_sequence": None,
          "usage": {"input_tokens": 10, "output_tokens": 5}}
CONTINUED = {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
             "content": [{"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                          "content": []},
                         {"type": "text", "text": "It is snowing."}],
             "stop_reason": "end_turn", "stop_sequence": None,
             "usage": {"input_tokens": 30, "output_tokens": 7}}


def test_anthropic_pause_turn_is_continued_not_finished(server: LoopbackServer) -> None:
    def continued(ex: Exchange) -> None:
        messages = ex.req.json()["messages"]
        if messages[-1] != {"role": "assistant", "content": PAUSED["content"]}:
            ex.json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                     "message": "not a continuation"}})
            return
        ex.json(200, CONTINUED)

    server.reset(sequence([lambda ex: ex.json(200, PAUSED), continued]))
    provider = loopback_provider(server, "anthropic")
    messages = [Message("user", "Weather in Oslo?")]
    reply = provider.complete(messages)
    assert reply.paused and reply.stop_reason == "pause_turn"
    assert reply.finish_reason in FINISH_REASONS and reply.refusal is None
    messages.append(reply.to_message())  # the documented way on: send it back, call again
    reply = provider.complete(messages)
    assert not reply.paused and reply.content == "It is snowing."
    assert [m["role"] for m in server.requests[1].json()["messages"]] == ["user", "assistant"]
