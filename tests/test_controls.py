"""Request controls (#19): structured output, reasoning, tool choice, headers and
provider_options, model lists. The exact JSON each option produces on each provider, and the
typed error where a provider cannot honour it, against loopback servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import loopback_provider, sent_body
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import ConfigError, StructuredOutputError, UsageError
from missy_providers.types import Message, Tool

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
WEATHER = Tool("weather", "the weather", {"properties": {"city": {"type": "string"}}})
CLOCK = Tool("clock", "the time")
ALL = ["anthropic", "openai", "openai-codex", "ollama"]


# --- structured output ----------------------------------------------------------------------

def test_schema_on_the_wire(server: LoopbackServer) -> None:
    shapes = {p: sent_body(server, p, "Where?", schema=SCHEMA, schema_name="place")
              for p in ALL}
    assert shapes["openai"]["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "place", "schema": SCHEMA, "strict": True}}
    assert shapes["openai-codex"]["text"] == {"format": {
        "type": "json_schema", "name": "place", "schema": SCHEMA, "strict": True}}
    assert shapes["anthropic"]["output_config"] == {"format": {"type": "json_schema",
                                                               "schema": SCHEMA}}
    assert shapes["ollama"]["format"] == SCHEMA
    assert sent_body(server, "openai", "x", schema=SCHEMA)["response_format"][
        "json_schema"]["name"] == "answer"  # the default name


def anthropic_answer(text: str) -> Any:
    return lambda ex: ex.json(200, {"type": "message", "id": "m", "model": "c",
                                    "stop_reason": "end_turn",
                                    "content": [{"type": "text", "text": text}],
                                    "usage": {"input_tokens": 1, "output_tokens": 1}})


def test_parsed_answer_and_typed_error(server: LoopbackServer) -> None:
    provider = loopback_provider(server, "anthropic")
    server.reset(anthropic_answer('{"city": "Oslo"}'))
    assert provider.complete("Where?", schema=SCHEMA).parsed == {"city": "Oslo"}
    assert provider.complete("Where?").parsed is None  # only when asked
    for text, message in [("Oslo!", "not JSON"), ("[1]", "not a object"),
                          ('{"town": "Oslo"}', "lacks the required key 'city'")]:
        server.reset(anthropic_answer(text))
        with pytest.raises(StructuredOutputError, match=message) as info:
            provider.complete("Where?", schema=SCHEMA)
        assert info.value.raw == text


def test_streams_give_parsed_on_the_final_response(server: LoopbackServer) -> None:
    def stream(ex: Exchange) -> None:
        ex.start_chunked(content_type="application/x-ndjson")
        for piece in ('{"message": {"content": "{\\"city\\": "}}\n',
                      '{"message": {"content": "\\"Oslo\\"}"}}\n',
                      '{"done": true, "done_reason": "stop", "model": "m"}\n'):
            ex.chunk(piece.encode())
        ex.end_chunked()

    server.reset(stream)
    with loopback_provider(server, "ollama").stream("Where?", schema=SCHEMA) as s:
        assert "".join(s) == '{"city": "Oslo"}'
    assert s.response.parsed == {"city": "Oslo"}


# --- reasoning ------------------------------------------------------------------------------

@pytest.mark.parametrize("ptype, opts, wire", [
    ("openai", {"reasoning": "minimal"}, {"reasoning_effort": "minimal"}),
    ("openai-codex", {"reasoning": "high", "reasoning_summary": "auto"},
     {"reasoning": {"effort": "high", "summary": "auto"}}),
    ("anthropic", {"reasoning": "medium"},
     {"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}}),
    ("anthropic", {"reasoning_budget": 2048, "max_tokens": 8000},
     {"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    ("anthropic", {"reasoning": "none"}, {"thinking": {"type": "disabled"}}),
    ("ollama", {"reasoning": "low"}, {"think": "low"}),
    ("ollama", {"reasoning": "none"}, {"think": False}),
])
def test_reasoning_on_the_wire(server: LoopbackServer, ptype: str, opts: dict[str, Any],
                               wire: dict[str, Any]) -> None:
    body = sent_body(server, ptype, "think", **opts)
    assert {k: body.get(k) for k in wire} == wire


@pytest.mark.parametrize("ptype, opts, message", [
    ("anthropic", {"reasoning": "minimal"}, "'minimal' is not an Anthropic effort"),
    ("anthropic", {"reasoning": "high", "temperature": 0.5}, "does not take temperature"),
    ("anthropic", {"reasoning_budget": 4096, "max_tokens": 4096}, "below max_tokens"),
    ("anthropic", {"reasoning_budget": 1023}, "a whole number >= 1024"),
    ("anthropic", {"reasoning": "none", "reasoning_budget": 2048}, "conflict"),
    ("ollama", {"reasoning": "low", "think": True}, "not both"),
    ("ollama", {"reasoning": "minimal"}, "not 'minimal'"),
    ("openai", {"reasoning": "max"}, "must be one of"),
    ("openai", {"reasoning_summary": "auto"}, "unknown option"),
])
def test_reasoning_refusals(server: LoopbackServer, ptype: str, opts: dict[str, Any],
                            message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loopback_provider(server, ptype).complete("think", **opts)
    assert server.requests == []


def test_forced_tool_with_a_thinking_budget_is_refused(server: LoopbackServer) -> None:
    with pytest.raises(UsageError, match="cannot force a tool"):
        loopback_provider(server, "anthropic").complete_with_tools(
            "x", [CLOCK], tool_choice="required", reasoning_budget=2048, max_tokens=9000)


def anthropic_thinking_stream(ex: Exchange) -> None:
    ex.start_chunked()
    for name, data in [
        ("message_start", {"type": "message_start", "message": {"id": "m", "model": "c",
                                                                "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "thinking_delta", "thinking": "Two plus "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "thinking_delta", "thinking": "two."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "signature_delta", "signature": "sig"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "text_delta", "text": "4"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]:
        ex.chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    ex.end_chunked()


def test_reasoning_events_apart_from_text(server: LoopbackServer) -> None:
    server.reset(anthropic_thinking_stream)
    stream = loopback_provider(server, "anthropic").stream("2+2?", reasoning="low")
    events = [(e.type, e.text) for e in stream.events() if e.type in ("text", "reasoning")]
    assert events == [("reasoning", "Two plus "), ("reasoning", "two."), ("text", "4")]
    assert stream.response.reasoning == "Two plus two." and stream.response.content == "4"
    server.reset(anthropic_thinking_stream)
    assert list(loopback_provider(server, "anthropic").stream("2+2?")) == ["4"]  # text only


def test_reasoning_text_of_whole_answers(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"id": "r", "object": "response", "model": "m",
                                          "status": "completed", "output": [
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "enc",
         "summary": [{"type": "summary_text", "text": "Adding."}]},
        {"type": "message", "content": [{"type": "output_text", "text": "4"}]}]}))
    codex = loopback_provider(server, "openai-codex")
    assert codex.complete("2+2?").reasoning == "Adding."
    server.reset(lambda ex: ex.json(200, {"model": "m", "done": True, "message": {
        "content": "4", "thinking": "Adding."}}))
    assert loopback_provider(server, "ollama").complete("2+2?").reasoning == "Adding."
    server.reset(lambda ex: ex.json(200, {"id": "c", "model": "m", "choices": [
        {"message": {"content": "4", "reasoning_content": "Adding."},
         "finish_reason": "stop"}]}))
    assert loopback_provider(server, "openai").complete("2+2?").reasoning == "Adding."


def test_responses_tool_loop_replays_encrypted_reasoning(server: LoopbackServer) -> None:
    """Turn two of a tool loop with a reasoning model carries turn one's reasoning item with
    its encrypted content (store is false: replaying it by id alone is refused)."""
    turn_one = {"id": "resp_1", "object": "response", "model": "m", "status": "completed",
                "output": [
                    {"type": "reasoning", "id": "rs_1", "summary": [],
                     "encrypted_content": "gAAAA-opaque"},
                    {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                     "name": "clock", "arguments": "{}"}]}
    server.reset(lambda ex: ex.json(200, turn_one))
    codex = loopback_provider(server, "openai-codex")
    first = codex.complete_with_tools("time?", [CLOCK], reasoning="low")
    assert server.requests[-1].json()["include"] == ["reasoning.encrypted_content"]
    from missy_providers.types import ToolResult

    history = [Message("user", "time?"), first.to_message(),
               Message.tool(ToolResult("call_1", "clock", "12:00"))]
    body = sent_body(server, "openai-codex", history, [CLOCK], reasoning="low")
    assert body["input"][1] == turn_one["output"][0]  # verbatim, encrypted content included
    assert body["input"][2]["call_id"] == "call_1"
    assert body["input"][3] == {"type": "function_call_output", "call_id": "call_1",
                                "output": "12:00"}


# --- tool choice ----------------------------------------------------------------------------

@pytest.mark.parametrize("ptype, choice, parallel, wire", [
    ("openai", "required", False, {"tool_choice": "required", "parallel_tool_calls": False}),
    ("openai", "clock", None, {"tool_choice": {"type": "function",
                                               "function": {"name": "clock"}}}),
    ("openai-codex", "clock", False, {"tool_choice": {"type": "function", "name": "clock"},
                                      "parallel_tool_calls": False}),
    ("openai-codex", "none", None, {"tool_choice": "none", "parallel_tool_calls": True}),
    ("anthropic", "required", None, {"tool_choice": {"type": "any"}}),
    ("anthropic", "clock", False, {"tool_choice": {"type": "tool", "name": "clock",
                                                   "disable_parallel_tool_use": True}}),
    ("anthropic", None, False, {"tool_choice": {"type": "auto",
                                                "disable_parallel_tool_use": True}}),
    ("anthropic", "none", None, {"tool_choice": {"type": "none"}}),
])
def test_tool_choice_on_the_wire(server: LoopbackServer, ptype: str, choice: str | None,
                                 parallel: bool | None, wire: dict[str, Any]) -> None:
    opts: dict[str, Any] = {}
    if choice is not None:
        opts["tool_choice"] = choice
    if parallel is not None:
        opts["parallel_tool_calls"] = parallel
    body = sent_body(server, ptype, "x", [WEATHER, CLOCK], **opts)
    assert {k: body.get(k) for k in wire} == wire


@pytest.mark.parametrize("ptype, opts, message", [
    ("openai", {"tool_choice": "sundial"}, "'sundial' is not one of this call's tools"),
    ("anthropic", {"tool_choice": ""}, "tool_choice must be one of"),
    ("ollama", {"tool_choice": "required"}, "no tool_choice or parallel_tool_calls"),
    ("ollama", {"parallel_tool_calls": False}, "no tool_choice or parallel_tool_calls"),
    ("openai", {"parallel_tool_calls": "yes"}, "must be True or False"),
])
def test_tool_choice_refusals(server: LoopbackServer, ptype: str, opts: dict[str, Any],
                              message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loopback_provider(server, ptype).complete_with_tools("x", [CLOCK], **opts)
    with pytest.raises(UsageError, match="'required' needs tools"):
        loopback_provider(server, "openai").complete("x", tool_choice="required")
    assert server.requests == []


# --- headers and provider_options -----------------------------------------------------------

def test_configured_and_per_call_headers(server: LoopbackServer) -> None:
    from missy_providers.core.http import PolicyHTTPClient
    from missy_providers.core.policy import NetworkPolicy
    from missy_providers.registry import ProviderRegistry

    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    secret = "gateway-secret-0123456789"
    config = config_from_dict({"providers": {"p": {
        "name": "anthropic", "model": "m", "base_url": server.url, "api_key": "sk-x-12345678",
        "max_retries": 0, "headers": {"anthropic-beta": "files-api-2025-04-14",
                                      "x-gateway-key": "$GW_KEY"}}}}, env={"GW_KEY": secret})
    headers = dict(config.providers["p"].headers)
    assert secret not in repr(config) and secret not in repr(headers)
    provider = ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
    with pytest.raises(Exception, match="captured") as info:
        provider.complete("hi", headers={"x-trace": "t-1"})
    assert secret not in str(info.value)
    sent = server.requests[-1].headers
    assert sent["anthropic-beta"] == "files-api-2025-04-14" and sent["x-trace"] == "t-1"
    assert sent["x-gateway-key"] == secret


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "anthropic-version", "Host",
                                    "content-length", "Transfer-Encoding", "connection"])
def test_owned_headers_are_refused(server: LoopbackServer, header: str) -> None:
    with pytest.raises(ConfigError, match=f"providers.p.headers.{header}"):
        config_from_dict({"providers": {"p": {"name": "anthropic", "model": "m",
                                              "headers": {header: "x"}}}}, env={})
    with pytest.raises(UsageError, match="set by the client itself"):
        loopback_provider(server, "anthropic").complete("hi", headers={header: "x"})
    assert server.requests == []


def test_unset_header_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\$GW_KEY is not set"):
        config_from_dict({"providers": {"p": {"name": "openai", "model": "m",
                                              "headers": {"x-gw": "$GW_KEY"}}}}, env={})


def test_provider_options_merge_into_the_body(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(400, {"error": "captured"}))
    ollama = loopback_provider(server, "ollama", options={"keep_alive": "5m",
                                                          "options": {"num_ctx": 8192}})
    with pytest.raises(Exception, match="captured"):
        ollama.complete("hi", temperature=0.2, provider_options={"options": {"seed": 7}})
    body = server.requests[-1].json()
    assert body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.2, "num_ctx": 8192, "seed": 7}
    body = sent_body(server, "openai", "hi", provider_options={"seed": 1, "top_p": 0.5,
                                                              "service_tier": "flex"})
    assert (body["seed"], body["top_p"], body["service_tier"]) == (1, 0.5, "flex")
    body = sent_body(server, "anthropic", "hi", provider_options={"top_k": 5,
                                                                 "metadata": {"user_id": "u"}})
    assert (body["top_k"], body["metadata"]) == (5, {"user_id": "u"})


@pytest.mark.parametrize("ptype, extra, message", [
    ("openai", {"model": "other"}, "cannot set 'model': the library sets it"),
    ("openai", {"messages": []}, "cannot set 'messages'"),
    ("anthropic", {"thinking": {}}, "cannot set 'thinking'"),
    ("openai-codex", {"store": True}, "cannot set 'store'"),
    ("ollama", {"options": {"temperature": 1}}, "cannot set options.temperature"),
])
def test_provider_options_cannot_override_the_library(server: LoopbackServer, ptype: str,
                                                      extra: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loopback_provider(server, ptype).complete("hi", temperature=0.5,
                                                  provider_options=extra)
    assert server.requests == []


def test_configured_options_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"providers\.p\.options\.stream"):
        config_from_dict({"providers": {"p": {"name": "ollama", "model": "m",
                                              "options": {"stream": False}}}}, env={})


# --- model lists ----------------------------------------------------------------------------

@pytest.mark.parametrize("ptype, path, answer", [
    ("anthropic", "/v1/models", {"data": [{"id": "claude-a"}, {"id": "claude-b"}]}),
    ("openai", "/v1/models", {"data": [{"id": "gpt-a"}, {"id": "gpt-b"}]}),
    ("ollama", "/api/tags", {"models": [{"name": "claude-a"}, {"name": "claude-b"}]}),
])
def test_list_models(server: LoopbackServer, ptype: str, path: str,
                     answer: dict[str, Any]) -> None:
    server.reset(lambda ex: ex.json(200, answer))
    models = loopback_provider(server, ptype).list_models()
    assert len(models) == 2 and models[0].endswith("-a")
    assert server.requests[-1].path == path


def test_codex_backend_has_no_model_list() -> None:
    from missy_providers.core.http import PolicyHTTPClient
    from missy_providers.core.policy import NetworkPolicy
    from missy_providers.registry import ProviderRegistry

    config = config_from_dict({"providers": {"c": {"name": "openai-codex",
                                                   "model": "gpt-5-codex"}}}, env={})
    codex = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy())).get("c")
    with pytest.raises(UsageError, match="has no endpoint that lists models"):
        codex.list_models()
