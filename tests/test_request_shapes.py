"""Request bodies in the shapes the official specs require (found by validating our requests
against openai/openai-openapi and Anthropic's Messages API reference)."""

from __future__ import annotations

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
