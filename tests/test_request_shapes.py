"""Request bodies in the shapes the official specs require (found by validating our requests
against openai/openai-openapi and Anthropic's Messages API reference)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import sent_body
from loopback import LoopbackServer

from missy_providers.types import Message, Tool, ToolCall, ToolResult

NO_ARGS = Tool("now", "the time", {})
STRICT = Tool("add", "adds", {"type": "object", "properties": {"a": {"type": "integer"}},
                              "required": ["a"], "additionalProperties": False}, strict=True)


def test_anthropic_input_schema_is_always_an_object(server: LoopbackServer) -> None:
    body = sent_body(server, "anthropic", [Message("user", "hi")], [NO_ARGS, STRICT])
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tools"][1]["input_schema"]["type"] == "object"


def test_chat_strict_only_when_asked(server: LoopbackServer) -> None:
    body = sent_body(server, "openai", [Message("user", "hi")], [NO_ARGS, STRICT])
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "now", "description": "the time", "parameters": {"type": "object"}}}
    assert body["tools"][1]["function"]["strict"] is True


def test_responses_shapes(server: LoopbackServer) -> None:
    history = [Message("user", "hi"),
               Message("assistant", "calling", tool_calls=[ToolCall("c1", "now", {})]),
               Message.tool(ToolResult("c1", "now", "12:00"))]
    body = sent_body(server, "openai-codex", history, [NO_ARGS, STRICT])
    assert [t["strict"] for t in body["tools"]] == [False, True]  # always explicit
    assert body["tools"][0]["parameters"] == {"type": "object"}
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    assert body["input"][1] == {"role": "assistant", "content": "calling"}  # an input message
    assert body["input"][2] == {"type": "function_call", "call_id": "c1", "name": "now",
                                "arguments": "{}"}


def test_responses_max_output_tokens_minimum(server: LoopbackServer) -> None:
    from conftest import loopback_provider

    from missy_providers.core.errors import UsageError

    assert sent_body(server, "openai-codex", "hi", max_tokens=16)["max_output_tokens"] == 16
    with pytest.raises(UsageError, match="at least 16"):
        loopback_provider(server, "openai-codex").complete("hi", max_tokens=15)


# --- issue 29: the new body shapes ------------------------------------------------------------

# Fields of the specs' request types: Anthropic MessageCountTokensParams, openai-openapi
# TokenCountsBody, ChatCompletionRequestAssistantMessage (+ the compatible servers' reasoning
# keys), Ollama's api.Message and ShowRequest.
COUNT_TOKENS_FIELDS = {"messages", "model", "system", "tools", "tool_choice", "thinking",
                       "output_config", "cache_control"}
INPUT_TOKENS_FIELDS = {"model", "input", "instructions", "tools", "tool_choice",
                       "parallel_tool_calls", "previous_response_id", "conversation",
                       "reasoning", "text", "truncation", "personality"}
CHAT_ASSISTANT_FIELDS = {"role", "content", "refusal", "name", "audio", "tool_calls",
                         "function_call", "reasoning_content", "reasoning",
                         "reasoning_details", "extra_content"}
OLLAMA_MESSAGE_FIELDS = {"role", "content", "thinking", "images", "tool_calls", "tool_name",
                         "tool_call_id"}


def captured(server: LoopbackServer, call: Any) -> dict[str, Any]:
    from missy_providers.core.errors import ProviderError

    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    with pytest.raises(ProviderError, match="captured"):
        call()
    body: dict[str, Any] = json.loads(server.requests[-1].body)
    return body


def test_count_tokens_bodies(server: LoopbackServer) -> None:
    from conftest import loopback_provider

    history = [Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye")]
    for ptype, fields in (("anthropic", COUNT_TOKENS_FIELDS),
                          ("openai-codex", INPUT_TOKENS_FIELDS)):
        provider = loopback_provider(server, ptype)
        body = captured(server, lambda p=provider: p.count_tokens(history, [STRICT],
                                                                  system="terse"))
        assert set(body) <= fields and {"model", "tools"} <= set(body)


def test_chat_assistant_turn_with_what_the_server_sent(server: LoopbackServer) -> None:
    from missy_providers.providers.dialects import tagged

    signature = {"google": {"thought_signature": "sig-A"}}
    details = [{"type": "reasoning.encrypted", "data": "gAAA", "index": 0}]
    turn = Message("assistant", "calling", [ToolCall("c1", "now", {})], native=tagged(
        "p", "openai", message={"reasoning_content": "think", "reasoning_details": details},
        tool_calls={"c1": {"extra_content": signature}}))
    written = Message("assistant", "", [ToolCall("c2", "now", {})])
    history = [Message("user", "hi"), turn, Message.tool(ToolResult("c1", "now", "12:00")),
               written, Message.tool(ToolResult("c2", "now", "12:01"))]
    sent = sent_body(server, "openai", history, [NO_ARGS])["messages"]
    assert sent[1] == {"role": "assistant", "content": "calling", "reasoning_content": "think",
                       "reasoning_details": details, "tool_calls": [{
                           "id": "c1", "type": "function", "function": {
                               "name": "now", "arguments": "{}"},
                           "extra_content": signature}]}
    assert sent[3] == {"role": "assistant", "content": None, "reasoning_content": "",
                       "tool_calls": [{"id": "c2", "type": "function", "function": {
                           "name": "now", "arguments": "{}"}}]}
    assert all(set(m) <= CHAT_ASSISTANT_FIELDS for m in sent if m["role"] == "assistant")


def test_responses_custom_tool_call_output_item(server: LoopbackServer) -> None:
    from missy_providers.providers.dialects import tagged

    item = {"type": "custom_tool_call", "call_id": "k1", "name": "shell", "input": "ls"}
    turn = Message("assistant", "", [ToolCall("k1", "shell", {"input": "ls"})],
                   native=tagged("p", "openai-codex", items=[item]))
    body = sent_body(server, "openai-codex", [Message("user", "hi"), turn,
                                              Message.tool(ToolResult("k1", "shell", "a"))])
    assert body["input"][1:] == [item, {"type": "custom_tool_call_output", "call_id": "k1",
                                        "output": "a"}]


def test_ollama_assistant_turn_think_and_show(server: LoopbackServer) -> None:
    from conftest import loopback_provider

    from missy_providers.providers.dialects import tagged

    turn = Message("assistant", "", [ToolCall("call_1", "now", {}), ToolCall("call_2", "now")],
                   native=tagged("p", "ollama", thinking="time twice"))
    body = sent_body(server, "ollama", [Message("user", "hi"), turn], think="max")
    assert body["think"] == "max"
    assert body["messages"][1] == {"role": "assistant", "content": "", "thinking": "time twice",
                                   "tool_calls": [
                                       {"id": "call_1", "function": {"index": 0, "name": "now",
                                                                     "arguments": {}}},
                                       {"id": "call_2", "function": {"index": 1, "name": "now",
                                                                     "arguments": {}}}]}
    assert all(set(m) <= OLLAMA_MESSAGE_FIELDS for m in body["messages"])
    provider = loopback_provider(server, "ollama")
    assert captured(server, lambda: provider.model_info("llava")) == {"model": "llava"}
