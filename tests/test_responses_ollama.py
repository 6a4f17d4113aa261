"""The Responses API and Ollama details of issue 29, each from a recorded exchange or the API's
documentation (tests/data/dialects/): encrypted_content from output_item.done, the newer stream
events, custom tool calls; Ollama's think levels, streamed tool calls with index and id,
done_reason, and Ollama Cloud's key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import loopback_provider, sent_body
from dialect_data import load, send_stream, sequence
from loopback import LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import AuthenticationError, ConfigError, ProviderError, UsageError
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, ToolCall, ToolResult


def events_of(stream: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")]


def sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


# --- Responses --------------------------------------------------------------------------------

def test_encrypted_content_is_taken_from_output_item_done(server: LoopbackServer) -> None:
    data = load("responses-reasoning-phase-stream")
    stream = data["exchanges"][0]["response"]["stream"]
    reasoning = [e["item"] for e in events_of(stream) if e["type"].startswith(
        "response.output_item.") and e["item"]["type"] == "reasoning"]
    added, done = (r["encrypted_content"] for r in reasoning)
    assert added != done  # recorded: the copy in .added is not the final one
    server.reset(lambda ex: send_stream(ex, stream))
    reply = loopback_provider(server, "openai-codex").stream("Capital of PotatoLand?").response
    [item] = [i for i in reply.native["items"] if i["type"] == "reasoning"]
    assert item["encrypted_content"] == done
    [message] = [i for i in reply.native["items"] if i["type"] == "message"]
    assert message["phase"] == "commentary"


def test_reasoning_summary_events_recorded(server: LoopbackServer) -> None:
    """o3-mini's summary stream: four summary parts (part.added/.done skipped), their text
    deltas as reasoning events; the answer's text apart."""
    data = load("responses-reasoning-summary-stream")
    server.reset(lambda ex: send_stream(ex, data["response"]["stream"]))
    with loopback_provider(server, "openai-codex").stream("How do I cross the street?",
                                                          reasoning="high",
                                                          reasoning_summary="detailed") as s:
        events = list(s.events())
    reply = s.response
    reasoning = "".join(e.text for e in events if e.type == "reasoning")
    assert reasoning == reply.reasoning and reasoning.startswith("**Providing")
    [item] = [i for i in reply.native["items"] if i["type"] == "reasoning"]
    assert len(item["summary"]) == 4
    assert "".join(e.text for e in events if e.type == "text") == reply.content
    assert reply.usage["reasoning_tokens"] == 1408


def test_newer_events_tolerated_and_custom_tool_calls(server: LoopbackServer) -> None:
    """Events in the shapes of the SDK's event types (dialects.md section 3): queued and
    annotations skipped, reasoning_text used, a custom tool call's input from its deltas; its
    result goes back as custom_tool_call_output."""
    item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_c1", "name": "shell",
            "input": ""}
    stream = "".join(sse(e) for e in [
        {"type": "response.queued", "sequence_number": 0, "response": {"status": "queued"}},
        {"type": "response.output_item.added", "output_index": 0, "sequence_number": 1,
         "item": {"type": "reasoning", "id": "rs_1", "summary": [], "content": []}},
        {"type": "response.reasoning_text.delta", "item_id": "rs_1", "output_index": 0,
         "content_index": 0, "delta": "list files", "sequence_number": 2},
        {"type": "response.output_item.done", "output_index": 0, "sequence_number": 3,
         "item": {"type": "reasoning", "id": "rs_1", "summary": [], "content": [
             {"type": "reasoning_text", "text": "list files"}]}},
        {"type": "response.output_text.annotation.added", "item_id": "msg_1",
         "output_index": 1, "content_index": 0, "annotation_index": 0, "sequence_number": 4,
         "annotation": {"type": "url_citation", "url": "https://example.com", "title": "x",
                        "start_index": 0, "end_index": 1}},
        {"type": "response.output_item.added", "output_index": 1, "item": item,
         "sequence_number": 5},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 1,
         "delta": "ls ", "sequence_number": 6},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 1,
         "delta": "-la", "sequence_number": 7},
        {"type": "response.custom_tool_call_input.done", "item_id": "ctc_1", "output_index": 1,
         "input": "ls -la", "sequence_number": 8},
        {"type": "response.output_item.done", "output_index": 1, "item": item,
         "sequence_number": 9},
        {"type": "response.some_future_event", "sequence_number": 10},
        {"type": "response.completed", "sequence_number": 11, "response": {
            "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5",
            "output": []}}])
    server.reset(sequence([lambda ex: send_stream(ex, stream),
                           lambda ex: ex.json(400, {"error": {"message": "captured"}})]))
    provider = loopback_provider(server, "openai-codex")
    with provider.stream("List the files") as s:
        events = list(s.events())
    reply = s.response
    assert [e.text for e in events if e.type == "reasoning"] == ["list files"]
    assert reply.tool_calls == [ToolCall("call_c1", "shell", {"input": "ls -la"})]
    assert reply.finish_reason == "tool_calls"
    with pytest.raises(ProviderError, match="captured"):
        provider.complete([Message("user", "List the files"), reply.to_message(),
                           Message.tool(ToolResult("call_c1", "shell", "a.txt"))])
    sent = server.requests[1].json()["input"]
    assert sent[-1] == {"type": "custom_tool_call_output", "call_id": "call_c1",
                        "output": "a.txt"}
    assert sent[2]["input"] == "ls -la"  # the item, filled from its deltas, verbatim


# --- Ollama -----------------------------------------------------------------------------------

@pytest.mark.parametrize("opts, think", [
    ({"think": True}, True), ({"think": False}, False), ({"think": "low"}, "low"),
    ({"think": "medium"}, "medium"), ({"think": "high"}, "high"), ({"think": "max"}, "max"),
    ({"reasoning": "high"}, "high"), ({"reasoning": "none"}, False), ({}, None)])
def test_ollama_think_levels(server: LoopbackServer, opts: dict[str, Any], think: Any) -> None:
    body = sent_body(server, "ollama", "hi", **opts)
    assert body.get("think") == think


def test_ollama_think_refuses_other_values(server: LoopbackServer) -> None:
    provider = loopback_provider(server, "ollama")
    with pytest.raises(UsageError, match=r"option think must be True, False or one of "
                                         r"\['low', 'medium', 'high', 'max'\]"):
        provider.complete("hi", think="extreme")
    assert server.requests == []


def test_ollama_streamed_tool_call_documented(server: LoopbackServer) -> None:
    """The docs' stream verbatim (no id: one is made), then the current shape from the source:
    ids, and calls in separate lines numbered by function.index."""
    doc = load("ollama-chat-stream-tool-call-docs")
    server.reset(lambda ex: send_stream(ex, doc["stream"], ndjson=True))
    provider = loopback_provider(server, "ollama")
    reply = provider.stream("what is the weather in tokyo?").response
    [call] = reply.tool_calls
    assert (call.name, call.arguments, call.id.startswith("call_")) == (
        "get_weather", {"city": "Tokyo"}, True)
    assert (reply.finish_reason, reply.stop_reason) == ("tool_calls", "stop")
    line = doc["current_server_line_shape_from_source"]
    second = json.loads(json.dumps(line))
    second["message"]["tool_calls"][0].update(id="call_zz99yy88")
    second["message"]["tool_calls"][0]["function"].update(index=1, arguments={"city": "Oslo"})
    final = json.loads(doc["stream"].splitlines()[-1])
    text = "\n".join(json.dumps(x) for x in (second, line, final)) + "\n"
    server.reset(lambda ex: send_stream(ex, text, ndjson=True))
    reply = provider.stream("weather in tokyo and oslo?").response
    assert [(c.id, c.arguments["city"]) for c in reply.tool_calls] == [
        ("call_ab12cd34", "Tokyo"), ("call_zz99yy88", "Oslo")]  # by function.index


def test_ollama_done_reason_length(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"model": "llama3.2", "done": True,
                                          "done_reason": "length", "message": {
                                              "role": "assistant", "content": "Once"}}))
    reply = loopback_provider(server, "ollama").complete("story")
    assert (reply.finish_reason, reply.stop_reason) == ("length", "length")


def cloud(server: LoopbackServer, env: dict[str, str], base: str = "ollama.com",
          **settings: Any) -> Any:
    """An Ollama provider whose base_url names ``base``, reached on the loopback server."""
    config = config_from_dict({"providers": {"o": {
        "name": "ollama", "model": "gpt-oss:120b", "base_url": f"http://{base}:{server.port}",
        "max_retries": 0, **settings}}}, env=env)
    policy = NetworkPolicy(allowed_hosts=[base], allowed_cidrs=["127.0.0.0/8"])
    client = PolicyHTTPClient(policy, resolver=lambda h, p: ["127.0.0.1"])
    return ProviderRegistry(config, client).get("o")


def test_ollama_cloud_key_from_the_environment(server: LoopbackServer) -> None:
    env = {"OLLAMA_API_KEY": "ollama-key-1234567890"}
    server.reset(lambda ex: ex.json(200, {"model": "gpt-oss:120b", "done": True,
                                          "message": {"role": "assistant", "content": "hi"}}))
    provider = cloud(server, env)
    assert provider.credential_source() == "env OLLAMA_API_KEY"
    assert provider.complete("hi").content == "hi"
    assert server.requests[0].headers["authorization"] == "Bearer ollama-key-1234567890"
    local = cloud(server, env, base="localhost")  # a local server never gets it
    assert local.credential_source() == "none"
    local.complete("hi")
    assert "authorization" not in server.requests[1].headers
    with pytest.raises(ConfigError, match=r"OLLAMA_API_KEY is sent only to ollama\.com"):
        cloud(server, env, base="localhost", api_key="$OLLAMA_API_KEY")
    keyless = cloud(server, {})
    with pytest.raises(AuthenticationError, match="OLLAMA_API_KEY"):
        keyless.complete("hi")
    assert len(server.requests) == 2
