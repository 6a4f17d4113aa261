"""The common types: value semantics, validation, the tool-loop helpers."""

from __future__ import annotations

import pytest

from missy_providers.config import NetworkConfig, ProviderConfig
from missy_providers.core.errors import UsageError
from missy_providers.core.http import Timeouts
from missy_providers.types import (
    CompletionResponse,
    Message,
    StreamEvent,
    Tool,
    ToolCall,
    ToolResult,
    make_usage,
)


def test_values_compare_hash_and_show_by_field() -> None:
    a, b = ToolResult("c1", "f", "out"), ToolResult("c1", "f", "out")
    assert a == b and hash(a) == hash(b) and a != ToolResult("c1", "f", "out", is_error=True)
    assert len({a, b}) == 1
    assert repr(a) == "ToolResult(tool_call_id='c1', name='f', content='out', is_error=False)"
    assert ToolCall("c1", "f") == ToolCall("c1", "f", {})
    assert StreamEvent("text", "hi") == StreamEvent("text", "hi")
    assert Tool("t").parameters == {"type": "object", "properties": {}}
    assert Timeouts() == Timeouts(10, 60, 600) and Timeouts().read == 60


def test_values_are_immutable() -> None:
    call = ToolCall("c1", "f", {"a": 1})
    with pytest.raises(AttributeError, match="ToolCall is immutable"):
        call.name = "g"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del call.id  # type: ignore[misc]
    with pytest.raises(AttributeError):
        NetworkConfig().default_deny = False  # type: ignore[misc]


def test_settings_refuse_unknown_fields() -> None:
    with pytest.raises(TypeError, match=r"NetworkConfig has no field\(s\) \['default_dney'\]"):
        NetworkConfig(default_dney=False)
    p = ProviderConfig("p", "ollama", "m", "http://localhost:11434", timeout=5.0)
    assert (p.timeout, p.max_retries, p.enabled) == (5.0, 2, True)


def test_message_validation() -> None:
    with pytest.raises(UsageError, match="role must be one of"):
        Message("robot", "hi")
    with pytest.raises(UsageError, match="needs a tool_result"):
        Message("tool", "x")
    with pytest.raises(UsageError, match="only an assistant"):
        Message("user", "x", tool_calls=[ToolCall("1", "f")])
    result = ToolResult("c1", "f", "out")
    assert Message.tool(result) == Message("tool", "out", tool_result=result)


def test_completion_response_is_a_mutable_record_and_becomes_a_message() -> None:
    response = CompletionResponse("hi", "m", "p", tool_calls=[ToolCall("c1", "f")],
                                  finish_reason="tool_calls", native={"provider": "x"})
    assert response.usage == make_usage(0, 0) == {
        "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
        "cached_prompt_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}
    response.content = "changed"
    message = response.to_message()
    assert (message.role, message.content, tuple(message.tool_calls), message.native) == (
        "assistant", "changed", (ToolCall("c1", "f"),), {"provider": "x"})
    with pytest.raises(TypeError):
        hash(response)
    assert make_usage(35, 12, 109)["total_tokens"] == 109  # the server's number is kept
