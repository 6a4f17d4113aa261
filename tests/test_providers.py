"""Provider behaviour against loopback servers: streams are incremental, tool loops, errors."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    AuthenticationError,
    ContextLengthError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    ToolArgumentsError,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.base import BaseProvider
from missy_providers.registry import provider_class
from missy_providers.types import Message, Tool, ToolResult

HI = [Message("user", "hi")]
WEATHER = Tool("get_weather", "Weather for a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}})


def provider(server: LoopbackServer, ptype: str, host: str = "127.0.0.1", path: str = "",
             **settings: Any) -> BaseProvider:
    """A provider of ``ptype`` talking to ``server`` under the name ``host``."""
    base = {"name": ptype, "model": "m", "base_url": f"http://{host}:{server.port}{path}",
            "max_retries": 0}  # retries have their own tests (test_faults.py)
    if ptype in ("anthropic", "openai", "openai-codex"):
        base["api_key"] = CANARY
    config = config_from_dict({"providers": {"p": {**base, **settings}}}, env={})
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=[host], allowed_cidrs=["127.0.0.0/8"]),
                              resolver=lambda h, p: ["127.0.0.1"])
    return provider_class(ptype)(config.providers["p"], client)


def sse(*events: tuple[str | None, Any]) -> list[str]:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return out


ANTHROPIC_TEXT = sse(
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "model": "claude-x", "content": [], "usage": {"input_tokens": 5,
                                                                    "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Hel"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "lo"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 3}}),
    ("message_stop", {"type": "message_stop"}),
)
OPENAI_TEXT = sse(
    (None, {"id": "c1", "model": "gpt-x", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
    (None, {"id": "c1", "model": "gpt-x", "choices": [{"index": 0, "delta": {"content": "lo"},
                                                       "finish_reason": "stop"}]}),
    (None, {"id": "c1", "model": "gpt-x", "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
    (None, "[DONE]"),
)
CODEX_TEXT = sse(
    ("response.created", {"type": "response.created", "response": {"id": "r1"}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hel",
                                    "item_id": "msg_1", "output_index": 0}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "lo",
                                    "item_id": "msg_1", "output_index": 0}),
    ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                   "item": {"id": "msg_1", "type": "message", "content": [
                                       {"type": "output_text", "text": "Hello"}]}}),
    ("response.completed", {"type": "response.completed", "response": {
        "id": "r1", "model": "gpt-5-codex", "status": "completed", "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}}),
)
OLLAMA_TEXT = [json.dumps(x) + "\n" for x in (
    {"model": "llama", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama", "message": {"role": "assistant", "content": "lo"}, "done": False},
    {"model": "llama", "message": {"role": "assistant", "content": ""}, "done": True,
     "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2},
)]
STREAMS = {"anthropic": ANTHROPIC_TEXT, "openai": OPENAI_TEXT, "openai-codex": CODEX_TEXT,
           "ollama": OLLAMA_TEXT}


def chunked(pieces: list[str], gate: threading.Event | None = None,
            content_type: str = "text/event-stream",
            resumed: threading.Event | None = None) -> Any:
    """Sends the first piece; with a ``gate``, waits for it before the rest (and then sets
    ``resumed``)."""
    def handler(ex: Exchange) -> None:
        ex.start_chunked(content_type=content_type)
        for i, piece in enumerate(pieces):
            ex.chunk(piece)
            if gate is not None and i == 0:
                gate.wait(timeout=5)
                if resumed is not None:
                    resumed.set()
        ex.end_chunked()

    return handler


@pytest.mark.parametrize("ptype", ["anthropic", "openai", "openai-codex", "ollama"])
def test_stream_is_incremental(server: LoopbackServer, ptype: str) -> None:
    """The server sends its first piece and then waits for the test: the first delta must reach
    the caller while the server still holds the rest."""
    pieces = STREAMS[ptype]
    if ptype == "anthropic":  # first delta in the first write
        pieces = ["".join(pieces[:3]), *pieces[3:]]
    elif ptype == "openai-codex":
        pieces = ["".join(pieces[:2]), *pieces[2:]]
    gate, resumed = threading.Event(), threading.Event()
    server.reset(chunked(pieces, gate, resumed=resumed))
    stream = provider(server, ptype, host="chatgpt.com" if ptype == "openai-codex" else
                      "127.0.0.1", path="/backend-api/codex" if ptype == "openai-codex"
                      else "").stream(HI)
    texts = iter(stream)
    first = next(texts)
    assert not resumed.is_set()  # the server still holds the rest: this delta came early
    gate.set()
    assert first == "Hel"
    assert list(texts) == ["lo"]
    response = stream.response
    assert (response.content, response.finish_reason) == ("Hello", "stop")
    assert response.usage["total_tokens"] in (7, 8)


@pytest.mark.parametrize("ptype", ["anthropic", "openai", "ollama"])
def test_complete_consumes_the_same_wire(server: LoopbackServer, ptype: str) -> None:
    server.reset(chunked(STREAMS[ptype]))
    stream = provider(server, ptype).stream(HI, system="be brief")
    assert stream.response.content == "Hello"
    body = server.requests[0].json()
    assert body["stream"] is True
    if ptype == "anthropic":
        assert body["system"] == "be brief"
    else:
        assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_closing_a_stream_early_closes_the_connection(server: LoopbackServer) -> None:
    gate = threading.Event()
    server.reset(chunked(["".join(ANTHROPIC_TEXT[:3]), *ANTHROPIC_TEXT[3:]], gate))
    p = provider(server, "anthropic")
    with p.stream(HI) as stream:
        assert next(iter(stream)) == "Hel"
    gate.set()
    assert p.client.idle_connections() == 0
    with pytest.raises(ProtocolError, match="closed before it completed"):
        _ = stream.response


def test_truncated_streams_are_errors(server: LoopbackServer) -> None:
    for ptype, pieces in STREAMS.items():
        server.reset(chunked(pieces[:-1] if ptype != "openai" else pieces[:1]))
        path = "/backend-api/codex" if ptype == "openai-codex" else ""
        host = "chatgpt.com" if ptype == "openai-codex" else "127.0.0.1"
        with pytest.raises(ProtocolError, match="truncated"):
            _ = provider(server, ptype, host=host, path=path).stream(HI).response


# --- tool loops -----------------------------------------------------------------------------


def test_anthropic_tool_loop(server: LoopbackServer) -> None:
    replies = [
        {"type": "message", "id": "m1", "model": "claude-x", "stop_reason": "tool_use",
         "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                     {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                      "input": {"city": "Oslo"}}],
         "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}},
        {"type": "message", "id": "m2", "model": "claude-x", "stop_reason": "end_turn",
         "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "cold."}],
         "usage": {"input_tokens": 20, "output_tokens": 3}},
    ]
    server.reset(lambda ex: ex.json(200, replies[len(server.requests) - 1]))
    p = provider(server, "anthropic")
    messages = [Message("system", "be brief"), Message("user", "Weather in Oslo?")]
    first = p.complete_with_tools(messages, [WEATHER])
    assert first.finish_reason == "tool_calls"
    assert first.usage == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                           "cached_prompt_tokens": 2, "cache_write_tokens": 0,
                           "reasoning_tokens": 0}
    assert first.content == ""  # thinking stays out of content
    [call] = first.tool_calls
    messages += [first.to_message(),
                 Message.tool(ToolResult(call.id, call.name, "-3 C")),
                 Message.tool(ToolResult("toolu_x", "other", "boom", is_error=True))]
    second = p.complete_with_tools(messages, [WEATHER])
    assert (second.content, second.finish_reason) == ("It is cold.", "stop")
    sent = server.requests[1].json()
    assert sent["system"] == "be brief"
    assert sent["tools"] == [{"name": "get_weather", "description": "Weather for a city.",
                              "input_schema": dict(WEATHER.parameters)}]
    assert sent["messages"][1] == {"role": "assistant", "content": replies[0]["content"]}
    assert sent["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3 C"},
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "boom", "is_error": True}]}
    headers = server.requests[0].headers
    assert headers["x-api-key"] == CANARY and headers["anthropic-version"] == "2023-06-01"


def test_openai_tool_loop_streamed_fragments(server: LoopbackServer) -> None:
    frag = [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city"'}},
        {"index": 1, "id": "call_b", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": ': "Oslo"}'}},
    ]
    pieces = sse(*[(None, {"id": "c", "model": "g", "choices": [
        {"index": 0, "delta": {"tool_calls": [f]}}]}) for f in frag],
        (None, {"id": "c", "model": "g", "choices": [{"index": 0, "delta": {},
                                                      "finish_reason": "tool_calls"}]}),
        (None, "[DONE]"))
    server.reset(chunked(pieces))
    p = provider(server, "openai", organization="org-1", project="proj-1")
    stream = p.complete_with_tools(HI, [WEATHER], stream=True)
    calls = [e.tool_call for e in stream.events() if e.type == "tool_call"]
    assert [(c.id, c.name, c.arguments) for c in calls if c] == [
        ("call_a", "get_weather", {"city": "Oslo"}), ("call_b", "get_weather", {})]
    response = stream.response
    assert response.finish_reason == "tool_calls"
    headers = server.requests[0].headers
    assert headers["authorization"] == f"Bearer {CANARY}"
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-1")
    server.reset(lambda ex: ex.json(200, {"id": "c2", "model": "g", "choices": [
        {"index": 0, "message": {"content": "cold"}, "finish_reason": "stop"}]}))
    messages = [*HI, response.to_message(),
                *[Message.tool(ToolResult(c.id, c.name, "-3")) for c in response.tool_calls]]
    assert p.complete(messages).content == "cold"
    sent = server.requests[0].json()["messages"]
    assert sent[1]["tool_calls"][0] == {"id": "call_a", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert sent[2:] == [{"role": "tool", "tool_call_id": "call_a", "content": "-3"},
                        {"role": "tool", "tool_call_id": "call_b", "content": "-3"}]


def test_malformed_tool_arguments_keep_the_raw_text(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"id": "c", "model": "g", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "x", "function": {"name": "f", "arguments": '{"a": 1'}}]}}]}))
    with pytest.raises(ToolArgumentsError) as info:
        provider(server, "openai").complete(HI)
    assert info.value.raw == '{"a": 1'
    server.reset(lambda ex: ex.json(200, {"id": "c", "model": "g", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "x", "function": {"name": "f", "arguments": "[1, 2]"}}]}}]}))
    with pytest.raises(ToolArgumentsError, match="not a JSON object"):
        provider(server, "openai").complete(HI)


def test_openai_token_parameter_names(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"id": "c", "model": "g", "choices": [
        {"index": 0, "message": {"content": "x"}, "finish_reason": "length"}]}))
    compat = provider(server, "openai")
    assert compat.complete(HI, max_tokens=5).finish_reason == "length"
    compat.complete(HI, max_tokens=5, model="o3-mini")
    openai = provider(server, "openai", host="api.openai.com", path="/v1")
    openai.complete(HI, max_tokens=5, temperature=0, stop=["\n"])
    bodies = [r.json() for r in server.requests]
    assert bodies[0]["max_tokens"] == 5 and "max_completion_tokens" not in bodies[0]
    assert bodies[1]["max_completion_tokens"] == 5 and "max_tokens" not in bodies[1]
    assert bodies[2]["max_completion_tokens"] == 5
    assert (bodies[2]["temperature"], bodies[2]["stop"]) == (0, ["\n"])
    assert server.requests[2].path == "/v1/chat/completions"


def test_compatible_server_without_key(server: LoopbackServer) -> None:
    config = config_from_dict({"providers": {"local": {
        "name": "openai", "model": "m", "base_url": f"http://127.0.0.1:{server.port}/v1"}}},
        env={"OPENAI_API_KEY": CANARY})
    p = provider_class("openai")(config.providers["local"], PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"])))
    server.reset(lambda ex: ex.json(200, {"data": []} if ex.req.path.endswith("/models") else {
        "id": "c", "model": "m", "choices": [{"index": 0, "message": {"content": "ok"}}]}))
    assert p.has_credentials() and p.is_available()
    assert p.complete(HI).content == "ok"
    assert "authorization" not in server.requests[-1].headers  # the env key stays with OpenAI
    server.reset(lambda ex: ex.json(404, {"error": "nope"}))
    assert p.is_available() is False


def test_unknown_options_are_refused(server: LoopbackServer) -> None:
    with pytest.raises(UsageError, match="unknown option"):
        provider(server, "anthropic").complete(HI, temprature=1)
    assert server.requests == []


def test_missing_key_is_an_authentication_error_before_sending(server: LoopbackServer) -> None:
    config = config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m"}}}, env={})
    p = provider_class("anthropic")(config.providers["a"],
                                    PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])))
    assert not p.is_available()
    with pytest.raises(AuthenticationError, match=r"providers\.a"):
        p.complete(HI)


# --- errors ---------------------------------------------------------------------------------

ERRORS = [
    # (status, body, headers, error class, attribute checks)
    (401, {"type": "error", "error": {"type": "authentication_error",
                                      "message": f"invalid x-api-key {CANARY}"}}, [],
     AuthenticationError, {}),
    (403, {"error": {"type": "permission_error", "message": "no"}}, [], AuthenticationError, {}),
    (429, {"error": {"type": "rate_limit_error", "message": "slow down"}},
     [("retry-after", "7")], RateLimitError, {"retry_after": 7.0}),
    (429, {"error": {"message": "slow"}}, [("retry-after-ms", "1500")], RateLimitError,
     {"retry_after": 1.5}),
    (429, {"error": {"message": "slow"}}, [("x-ratelimit-reset-requests", "1m30s"),
                                           ("x-ratelimit-reset-tokens", "6ms")],
     RateLimitError, {"retry_after": 90.0}),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, [],
     OverloadedError, {}),
    (500, {"error": {"type": "api_error", "message": "internal"}}, [], ProviderUnavailable, {}),
    (503, "<html>upstream down</html>", [], ProviderUnavailable, {}),
    (400, {"error": {"type": "invalid_request_error", "message":
                     "prompt is too long: 210000 tokens > 200000 maximum"}}, [],
     ContextLengthError, {}),
    (400, {"error": {"code": "context_length_exceeded", "message": "This model's maximum context "
                     "length is 128000 tokens."}}, [], ContextLengthError, {}),
    (413, {"error": {"type": "request_too_large", "message": "Request exceeds the maximum size"}},
     [], ProviderError, {}),
    (404, {"error": {"type": "not_found_error", "message": "model: nope"}}, [], ProviderError, {}),
    (400, {"detail": "Instructions are required"}, [], ProviderError, {}),
]


@pytest.mark.parametrize(("status", "body", "headers", "cls", "attrs"), ERRORS,
                         ids=[f"{e[0]}-{e[3].__name__}" for e in ERRORS])
def test_error_mapping(server: LoopbackServer, status: int, body: Any,
                       headers: list[tuple[str, str]], cls: type, attrs: dict[str, Any]) -> None:
    server.reset(lambda ex: ex.send(status, body if isinstance(body, str) else json.dumps(body),
                                    headers))
    with pytest.raises(ProviderError) as info:
        provider(server, "anthropic").complete(HI)
    err = info.value
    assert type(err) is cls
    assert err.status == status and err.provider == "p"
    for name, value in attrs.items():
        assert getattr(err, name) == value
    assert CANARY not in str(err) and CANARY not in repr(err)
    if status == 401:
        assert "[REDACTED]" in str(err)


def test_errors_inside_a_200_stream(server: LoopbackServer) -> None:
    cases = [
        ("anthropic", [*ANTHROPIC_TEXT[:3], *sse(("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}))], OverloadedError),
        ("openai", [*OPENAI_TEXT[:1], *sse((None, {"error": {"message": "server_error boom",
                                                               "type": "server_error"}}))],
         ProviderUnavailable),
        ("ollama", [OLLAMA_TEXT[0], json.dumps({"error": "model crashed"}) + "\n"],
         ProviderError),
    ]
    for ptype, pieces, cls in cases:
        server.reset(chunked(pieces))
        stream = provider(server, ptype).stream(HI)
        texts = []
        with pytest.raises(ProviderError) as info:
            texts.extend(stream)
        assert texts == ["Hel"]
        assert type(info.value) is cls
    assert "model crashed" in str(info.value)


def test_malformed_sse_json_is_a_protocol_error(server: LoopbackServer) -> None:
    server.reset(chunked(["data: {not json\n\n"]))
    with pytest.raises(ProtocolError, match="not JSON"):
        _ = provider(server, "openai").stream(HI).response
    server.reset(chunked([*ANTHROPIC_TEXT[1:]]))
    with pytest.raises(ProtocolError, match="before message_start"):
        _ = provider(server, "anthropic").stream(HI).response


# --- Ollama -----------------------------------------------------------------------------------


def test_ollama_request_shape_and_tool_ids(server: LoopbackServer) -> None:
    reply = {"model": "llama", "done": True, "done_reason": "stop", "message": {
        "role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
            {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]}}
    server.reset(lambda ex: ex.json(200, reply))
    p = provider(server, "ollama")
    response = p.complete_with_tools(HI, [WEATHER], max_tokens=9, temperature=0.2, stop="###",
                                     think=True)
    ids = [c.id for c in response.tool_calls]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    assert response.finish_reason == "tool_calls"
    assert response.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                              "cached_prompt_tokens": 0, "cache_write_tokens": 0,
                              "reasoning_tokens": 0}
    body = server.requests[0].json()
    assert body["stream"] is False and body["think"] is True
    assert body["options"] == {"temperature": 0.2, "num_predict": 9, "stop": ["###"]}
    assert "authorization" not in server.requests[0].headers
    messages = [*HI, response.to_message(),
                Message.tool(ToolResult(ids[0], "get_weather", "-3"))]
    server.reset(lambda ex: ex.json(200, {"model": "llama", "done": True, "message": {
        "content": "cold"}, "prompt_eval_count": 3, "eval_count": 1}))
    assert p.complete(messages).usage["total_tokens"] == 4
    sent = server.requests[0].json()["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"index": 0, "name": "get_weather",
                                                    "arguments": {"city": "Oslo"}}
    assert sent[2] == {"role": "tool", "content": "-3", "tool_name": "get_weather",
                       "tool_call_id": ids[0]}


def test_ollama_availability_and_models(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"models": [{"name": "llama3.2:latest"}]}))
    p = provider(server, "ollama")
    assert p.is_available() and p.list_models() == ["llama3.2:latest"]
    assert server.requests[0].path == "/api/tags"
    server.reset(lambda ex: ex.json(500, {"error": "down"}))
    assert p.is_available() is False
    gone = provider(server, "ollama", path="")
    gone.client.policy = NetworkPolicy()  # refused by policy: still a plain False
    assert gone.is_available() is False


def test_probe_reasons(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"data": [{"id": "claude-x"}]}))
    ok = provider(server, "anthropic").probe()
    assert ok.ok and ok.reason == "OK" and ok.models == ["claude-x"]
    assert ok.latency_ms is not None and ok.latency_ms >= 0
    assert server.requests[0].path == "/v1/models"
    assert server.requests[0].headers["x-api-key"] == CANARY
    server.reset(lambda ex: ex.json(403, {"error": {"message": "no"}}))
    assert provider(server, "anthropic").probe().reason == "auth failed (HTTP 403)"
    rebinding = provider(server, "anthropic", host="api.example.com")
    # The name resolves to loopback, and this policy does not allow that address.
    rebinding.client.policy = NetworkPolicy(allowed_hosts=["api.example.com"])
    refused = rebinding.probe()
    assert not refused.ok and refused.reason.startswith("refused by policy: host "
                                                        "'api.example.com' resolved to")
    assert len(server.requests) == 1


def test_ollama_error_object_in_200(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"error": "model 'x' not found, try pulling it first"}))
    with pytest.raises(ProviderError, match="try pulling it first"):
        provider(server, "ollama").complete(HI)
