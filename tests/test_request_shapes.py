"""Request bodies in the shapes the official specs require (found by validating our requests
against openai/openai-openapi and Anthropic's Messages API reference)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from loopback import LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.errors import ProviderError
from missy_providers.http import PolicyHTTPClient
from missy_providers.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, Tool, ToolCall, ToolResult

NO_ARGS = Tool("now", "the time", {})
STRICT = Tool("add", "adds", {"type": "object", "properties": {"a": {"type": "integer"}},
                              "required": ["a"], "additionalProperties": False}, strict=True)


def sent_body(server: LoopbackServer, ptype: str, messages: list[Message],
              tools: list[Tool]) -> dict[str, Any]:
    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    base = server.url + ("/v1" if ptype in ("openai", "openai-codex") else "")
    config = config_from_dict({"providers": {"p": {"name": ptype, "model": "m",
                                                   "base_url": base, "api_key": "sk-test-123456",
                                                   "max_retries": 0}}}, env={})
    provider = ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
    with pytest.raises(ProviderError, match="captured"):
        provider.complete_with_tools(messages, tools)
    body: dict[str, Any] = json.loads(server.requests[-1].body)
    return body


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
