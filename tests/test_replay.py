"""Replay every recorded exchange in tests/data/real-traffic/ through the real providers.

A loopback server answers each request with the recorded status, headers and body, byte for
byte (streams one event per network write). The provider is reached by the recorded host name
(resolved to 127.0.0.1 through an explicit allowed_cidrs entry), at the recorded path. Each test
checks that our request is equivalent to the recorded one (same model, conversation, tools,
options we model, stream flag) and that every ``expect`` field matches what we parsed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import RECORDED_EXCHANGES, recorded_exchanges
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.content import Document, Image, Part, Text
from missy_providers.core.errors import (
    AuthenticationError,
    ProviderError,
    RateLimitError,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.base import BaseProvider
from missy_providers.registry import provider_class
from missy_providers.types import (
    FINISH_REASONS,
    CompletionResponse,
    Message,
    Tool,
    ToolCall,
    ToolResult,
)

EXCHANGES = recorded_exchanges()
PROVIDER_TYPES = {"anthropic-messages": "anthropic", "openai-chat": "openai",
                  "openai-responses": "openai-codex", "ollama": "ollama"}
ENDPOINTS = {"anthropic": "/v1/messages", "openai": "/chat/completions",
             "openai-codex": "/responses", "ollama": "/api/chat"}
HOP_BY_HOP = {"transfer-encoding", "content-length", "connection", "content-encoding",
              "keep-alive"}
# Recorded errors whose cause the client now catches itself (the 400 said the same thing).
REFUSED_BEFORE_SENDING = {"responses-error-400": "option temperature must be a number from 0"}
FINISH = {"function_call": "tool_calls", "content_filter": "stop"}  # onto our 3-word vocabulary


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def serve(exchange: dict[str, Any]) -> Any:
    response = exchange["response"]
    body = response["body"].encode()
    headers = [(k, v) for k, v in response["headers"] if k.lower() not in HOP_BY_HOP]

    def handler(ex: Exchange) -> None:
        if not exchange["streaming"]:
            ex.send(response["status"], body, headers)
            return
        ex.h.send_response(response["status"])
        for name, value in headers:
            ex.h.send_header(name, value)
        ex.h.send_header("Transfer-Encoding", "chunked")
        ex.h.end_headers()
        sep = b"\n" if exchange["stream_format"] == "ndjson" else b"\n\n"
        pieces = body.split(sep)
        for i, piece in enumerate(pieces):  # one event (or line) per network write
            ex.chunk(piece + (sep if i < len(pieces) - 1 else b""))
        ex.end_chunked()

    return handler


@pytest.fixture(scope="module")
def replay_server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.stop()


def make_provider(exchange: dict[str, Any], server: LoopbackServer) -> BaseProvider:
    ptype = PROVIDER_TYPES[exchange["api"]]
    url = urlsplit(exchange["request"]["url"])
    host = url.hostname or ""
    path = url.path
    prefix = path[: -len(ENDPOINTS[ptype])] if path.endswith(ENDPOINTS[ptype]) else ""
    if ptype == "ollama":
        prefix = ""
    if ptype == "anthropic":
        prefix = ""
    if path.endswith("/count_tokens"):  # recorded against another endpoint of the same API
        prefix = ""
    base_url = f"http://{host}:{server.port}{prefix}"
    config = config_from_dict({"providers": {"p": {
        "name": ptype, "model": "configured-model", "base_url": base_url, "max_retries": 0,
        **({"api_key": "test-key"} if ptype != "ollama" or host == "ollama.com" else {}),
    }}}, env={})
    policy = NetworkPolicy(allowed_hosts=[host], allowed_cidrs=["127.0.0.0/8", "::1/128"])
    client = PolicyHTTPClient(policy, resolver=lambda h, p: ["127.0.0.1"])
    return provider_class(ptype)(config.providers["p"], client)


# --- recorded request -> our call ---------------------------------------------------------------


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") in
                   ("text", "input_text", "output_text"))


MEDIA = ("image", "document", "image_url", "file", "input_image", "input_file")


def _decoded(url: str) -> tuple[bytes, str]:
    head, _, data = url.partition(",")
    return base64.b64decode(data), head[5:].partition(";")[0]


def as_part(block: dict[str, Any]) -> Part:
    """One recorded content block of any API as our provider-neutral part."""
    kind = block["type"]
    if kind in ("text", "input_text"):
        return Text(block["text"])
    if kind in ("image", "document"):  # Anthropic
        source = block["source"]
        if source["type"] == "url":
            return Image.from_url(source["url"])
        data = base64.b64decode(source["data"])
        return Image(data, source["media_type"]) if kind == "image" else Document(data)
    if kind == "image_url":  # Chat Completions
        url, detail = block["image_url"]["url"], block["image_url"].get("detail")
        return Image(*_decoded(url), detail=detail) if url.startswith("data:") else \
            Image.from_url(url, detail)
    if kind == "input_image":  # Responses
        url, detail = block["image_url"], block.get("detail")
        return Image(*_decoded(url), detail=detail) if url.startswith("data:") else \
            Image.from_url(url, detail)
    file = block.get("file", block)  # Chat `file` / Responses `input_file`
    return Document(_decoded(file["file_data"])[0], name=file.get("filename"))


def user_content(blocks: list[dict[str, Any]]) -> str | list[Part]:
    if any(b["type"] in MEDIA for b in blocks):
        return [as_part(b) for b in blocks]
    return _text(blocks)


def media(content: Any) -> list[Any]:
    """The image and document blocks of a recorded or sent content list, as sent."""
    return [b for b in content if b.get("type") in MEDIA] if isinstance(content, list) else []


def anthropic_call(body: dict[str, Any]) -> tuple[list[Message], list[Tool], dict[str, Any]]:
    messages: list[Message] = []
    for m in body["messages"]:
        blocks = m["content"] if isinstance(m["content"], list) else \
            [{"type": "text", "text": m["content"]}]
        if m["role"] == "user":
            if any(b["type"] == "text" for b in blocks):
                messages.append(Message("user", user_content(blocks)))
            for b in blocks:
                if b["type"] == "tool_result":
                    messages.append(Message.tool(ToolResult(b["tool_use_id"], "", _text(
                        b["content"]), b.get("is_error", False))))
        else:
            calls = [ToolCall(b["id"], b["name"], b["input"]) for b in blocks
                     if b["type"] == "tool_use"]
            messages.append(Message("assistant", _text(blocks), calls))
    tools = [Tool(t["name"], t.get("description", ""), t["input_schema"])
             for t in body.get("tools", []) if "input_schema" in t]
    system = body.get("system")
    opts = {"model": body["model"], "max_tokens": body.get("max_tokens"),
            "temperature": body.get("temperature"), "stop": body.get("stop_sequences"),
            "system": _text(system) if system else None}
    return messages, tools, opts


def openai_call(body: dict[str, Any]) -> tuple[list[Message], list[Tool], dict[str, Any]]:
    messages: list[Message] = []
    for m in body["messages"]:
        role = "system" if m["role"] == "developer" else m["role"]
        if role == "tool":
            messages.append(Message.tool(ToolResult(m["tool_call_id"], "", _text(m["content"]))))
            continue
        calls = [ToolCall(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in m.get("tool_calls") or []]
        content = m.get("content")
        messages.append(Message(role, user_content(content) if isinstance(content, list) else
                                _text(content), calls))
    raw_tools = [t["function"] for t in body.get("tools", [])] + body.get("functions", [])
    tools = [Tool(t["name"], t.get("description", ""), t.get("parameters", {})) for t in raw_tools]
    opts = {"model": body["model"],
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
            "temperature": body.get("temperature"), "stop": body.get("stop")}
    return messages, tools, opts


def ollama_call(body: dict[str, Any]) -> tuple[list[Message], list[Tool], dict[str, Any]]:
    messages: list[Message] = []
    for m in body["messages"]:
        if m["role"] == "tool":
            messages.append(Message.tool(ToolResult(m.get("tool_call_id", ""),
                                                    m.get("tool_name", ""), m["content"])))
            continue
        calls = [ToolCall(c.get("id", f"call_{i}"), c["function"]["name"],
                          c["function"]["arguments"]) for i, c in
                 enumerate(m.get("tool_calls") or [])]
        messages.append(Message(m["role"], m["content"], calls))
    tools = [Tool(t["function"]["name"], t["function"].get("description", ""),
                  t["function"].get("parameters", {})) for t in body.get("tools", [])]
    options = body.get("options") or {}
    opts = {"model": body["model"], "max_tokens": options.get("num_predict"),
            "temperature": options.get("temperature"), "stop": options.get("stop"),
            "think": body.get("think")}
    return messages, tools, opts


def responses_call(body: dict[str, Any]) -> tuple[list[Message], list[Tool], dict[str, Any]]:
    messages: list[Message] = []
    pending: list[dict[str, Any]] = []  # reasoning + function_call items of one assistant turn

    def flush() -> None:
        if pending:
            calls = [ToolCall(i["call_id"], i["name"], json.loads(i["arguments"]))
                     for i in pending if i["type"] == "function_call"]
            native = {"provider": "p", "api": "openai-codex", "items": list(pending)}
            messages.append(Message("assistant", "", calls, native=native))
            pending.clear()

    for item in body["input"]:
        kind = item.get("type", "message")
        if kind in ("reasoning", "function_call"):
            pending.append(item)
            continue
        flush()
        if kind == "function_call_output":
            messages.append(Message.tool(ToolResult(item["call_id"], "", item["output"])))
        else:
            content = item["content"]
            messages.append(Message(item["role"], user_content(content) if isinstance(
                content, list) else _text(content)))
    flush()
    tools = [Tool(t["name"], t.get("description", ""), t.get("parameters", {}))
             for t in body.get("tools", [])]
    opts = {"model": body["model"], "system": body.get("instructions"),
            "temperature": body.get("temperature"), "max_tokens": body.get("max_output_tokens")}
    return messages, tools, opts


CALLS = {"anthropic": anthropic_call, "openai": openai_call, "ollama": ollama_call,
         "openai-codex": responses_call}


# --- request equivalence ------------------------------------------------------------------------


def normal_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    def block(b: dict[str, Any]) -> dict[str, Any]:
        keep = ("type", "text", "id", "name", "input", "tool_use_id", "is_error", "source",
                "title")
        out = {k: b[k] for k in keep if k in b and b[k] is not False}  # is_error: false
        if b["type"] == "tool_result":
            out["content"] = _text(b["content"])
        return out

    return {
        "model": body["model"], "max_tokens": body.get("max_tokens"),
        "temperature": body.get("temperature"), "stop": body.get("stop_sequences"),
        "system": _text(body.get("system")), "stream": bool(body.get("stream")),
        "messages": [(m["role"], [block(b) for b in (m["content"] if isinstance(
            m["content"], list) else [{"type": "text", "text": m["content"]}])])
            for m in body["messages"]],
        "tools": [(t["name"], t.get("description", ""), t["input_schema"])
                  for t in body.get("tools", []) if "input_schema" in t],
    }


def normal_openai(body: dict[str, Any]) -> dict[str, Any]:
    tokens = {k: body[k] for k in ("max_tokens", "max_completion_tokens") if k in body}
    return {
        "model": body["model"], "tokens": tokens, "temperature": body.get("temperature"),
        "stop": body.get("stop"), "stream": bool(body.get("stream")),
        "messages": [("system" if m["role"] == "developer" else m["role"], _text(m.get("content")),
                      media(m.get("content")),
                      [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                       for c in m.get("tool_calls") or []], m.get("tool_call_id"))
                     for m in body["messages"]],
        "tools": sorted(t["function"]["name"] for t in body.get("tools", [])) +
        sorted(f["name"] for f in body.get("functions", [])),
    }


def normal_ollama(body: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in (body.get("options") or {}).items()
               if k in ("temperature", "num_predict", "stop")}
    return {
        "model": body["model"], "options": options, "think": body.get("think"),
        "stream": body.get("stream", True),  # Ollama's default
        "messages": [(m["role"], m["content"], [(c["function"]["name"], c["function"]["arguments"])
                                                for c in m.get("tool_calls") or []])
                     for m in body["messages"]],
        "tools": [t["function"] for t in body.get("tools", [])],
    }


def normal_responses(body: dict[str, Any]) -> dict[str, Any]:
    items = []
    for item in body["input"]:
        kind = item.get("type", "message")
        if kind == "message":
            items.append(("message", item["role"], _text(item["content"]),
                          media(item["content"])))
        else:
            items.append((kind, json.dumps(item, sort_keys=True)))
    return {
        "model": body["model"], "stream": bool(body.get("stream")),
        "store": body.get("store", False), "temperature": body.get("temperature"),
        "items": items, "tools": [(t["name"], t.get("description", ""), t.get("parameters"))
                                  for t in body.get("tools", [])],
    }


NORMAL = {"anthropic": normal_anthropic, "openai": normal_openai, "ollama": normal_ollama,
          "openai-codex": normal_responses}


# --- the test -----------------------------------------------------------------------------------


def call_provider(provider: BaseProvider, exchange: dict[str, Any]) -> CompletionResponse:
    body = json.loads(exchange["request"]["body"])
    messages, tools, opts = CALLS[provider.provider_type](body)
    opts = {k: v for k, v in opts.items() if v is not None}
    if "think" in opts and provider.provider_type != "ollama":
        del opts["think"]
    streaming = body.get("stream", provider.provider_type == "ollama")  # Ollama's default
    if not streaming:
        if tools:
            return provider.complete_with_tools(messages, tools, **opts)  # type: ignore[no-any-return]
        return provider.complete(messages, **opts)
    stream = provider.complete_with_tools(messages, tools, stream=True, **opts) if tools \
        else provider.stream(messages, **opts)
    deltas = list(stream)
    response: CompletionResponse = stream.response
    assert "".join(deltas) == response.content
    return response


def check_request(provider: BaseProvider, exchange: dict[str, Any], server: LoopbackServer
                  ) -> None:
    [sent] = server.requests
    recorded_url = urlsplit(exchange["request"]["url"])
    assert sent.path == recorded_url.path
    assert sent.headers["host"] == f"{recorded_url.hostname}:{server.port}"
    normal = NORMAL[provider.provider_type]
    ours, theirs = normal(sent.json()), normal(json.loads(exchange["request"]["body"]))
    if provider.provider_type == "openai-codex" and not json.loads(
            exchange["request"]["body"]).get("instructions"):
        assert sent.json()["instructions"]  # always sent (the Codex backend requires it)
    assert ours == theirs


def check_expect(provider: BaseProvider, exchange: dict[str, Any],
                 response: CompletionResponse) -> None:
    expect = exchange["expect"]
    ptype = provider.provider_type
    assert response.model == expect["model"]
    assert response.provider == "p"
    assert response.content == (expect["text"] or "")
    reason = expect["finish_reason_normalized"]
    if reason is None:  # the server never said: inferred from what arrived
        reason = "tool_calls" if expect["tool_calls"] else "stop"
    assert response.finish_reason == FINISH.get(reason, reason)
    assert response.finish_reason in FINISH_REASONS
    calls = [(c.name, c.arguments) for c in response.tool_calls]
    assert calls == [(c["name"], c["arguments"]) for c in expect["tool_calls"]]
    ids = [c.id for c in response.tool_calls]
    assert len(set(ids)) == len(ids) and all(ids)
    usage = expect["usage"]
    if ptype == "anthropic":
        prompt = usage["input_tokens"] + usage["cache_creation_input_tokens"] + \
            usage["cache_read_input_tokens"]
        assert response.usage == {"prompt_tokens": prompt,
                                  "completion_tokens": usage["output_tokens"],
                                  "total_tokens": prompt + usage["output_tokens"],
                                  "cached_prompt_tokens": usage["cache_read_input_tokens"],
                                  "cache_write_tokens": usage["cache_creation_input_tokens"],
                                  "reasoning_tokens": 0}
        assert response.raw["id"] == expect["message_id"]
        assert ids == [c["id"] for c in expect["tool_calls"]]
        check_anthropic_blocks(response, expect)
    elif ptype == "openai":
        details = recorded_openai_usage(exchange)
        assert response.usage == {**usage, "cache_write_tokens": 0,
                                  "cached_prompt_tokens": (details.get("prompt_tokens_details")
                                                           or {}).get("cached_tokens", 0),
                                  "reasoning_tokens": (details.get("completion_tokens_details")
                                                       or {}).get("reasoning_tokens", 0)}
        assert response.raw["id"] == expect["id"]
        for ours, theirs in zip(ids, expect["tool_calls"], strict=True):
            if theirs["id"] and theirs["id"] != "0":
                assert ours == theirs["id"]
        if "reasoning" in expect:
            reasoning = response.raw.get("reasoning") or \
                response.raw["choices"][0]["message"].get("reasoning")
            assert reasoning == expect["reasoning"]
    elif ptype == "openai-codex":
        assert response.usage == {"prompt_tokens": usage["input_tokens"],
                                  "completion_tokens": usage["output_tokens"],
                                  "total_tokens": usage["total_tokens"],
                                  "cached_prompt_tokens": usage["cached_tokens"],
                                  "cache_write_tokens": 0,
                                  "reasoning_tokens": usage["reasoning_tokens"]}
        assert response.raw["id"] == expect["response_id"]
        assert response.raw["status"] == expect["status"]
        assert ids == [c["call_id"] for c in expect["tool_calls"]]
        reasoning = [i for i in response.native["items"] if i["type"] == "reasoning"]
        assert [i["id"] for i in reasoning] == [r["id"] for r in expect["reasoning_items"]]
        assert all(bool(i.get("encrypted_content")) == r["has_encrypted_content"]
                   for i, r in zip(reasoning, expect["reasoning_items"], strict=True))
    else:
        assert response.usage["prompt_tokens"] == usage["prompt_eval_count"]
        assert response.usage["completion_tokens"] == usage["eval_count"]
        assert response.raw["done_reason"] == expect["done_reason"]
        assert response.raw.get("thinking", "") == expect.get("thinking", "")
        for ours, theirs in zip(ids, expect["tool_calls"], strict=True):
            if theirs.get("id"):
                assert ours == theirs["id"]


def check_anthropic_blocks(response: CompletionResponse, expect: dict[str, Any]) -> None:
    blocks = response.native["content"]
    assert [b["type"] for b in blocks] == [b["type"] for b in expect["content"]]
    for ours, theirs in zip(blocks, expect["content"], strict=True):
        if theirs["type"] == "thinking":
            assert ours["thinking"] == theirs["thinking"]
            assert len(ours["signature"]) == theirs["signature_length"]
        elif theirs["type"] == "redacted_thinking":
            assert len(ours["data"]) == theirs["data_length"]
        elif theirs["type"] in ("tool_use", "server_tool_use"):
            assert (ours["id"], ours["name"], ours["input"]) == (
                theirs["id"], theirs["name"], theirs["input"])
        elif theirs["type"] == "text":
            assert ours["text"] == theirs["text"]
    assert response.raw["stop_reason"] == expect["stop_reason"]
    assert response.raw.get("stop_sequence") == expect["stop_sequence"]
    assert "thinking" not in response.content or not any(
        b["type"] == "thinking" and b["thinking"] in response.content for b in blocks)


def check_error(exc: ProviderError, exchange: dict[str, Any]) -> None:
    expect = exchange["expect"]["error"]
    wanted = {429: RateLimitError, 401: AuthenticationError, 403: AuthenticationError}.get(
        expect["status"], ProviderError)
    assert type(exc) is wanted
    assert exc.status == expect["status"]
    assert exc.provider == "p"
    assert expect["message"] in exc.message
    if expect.get("type"):
        assert exc.error_type == expect["type"]
    if expect.get("request_id"):
        assert exc.request_id == expect["request_id"]
    if expect["status"] == 404:
        assert exc.message.startswith("model or endpoint not found")


@pytest.mark.parametrize("path", EXCHANGES, ids=lambda p: p.stem)
def test_replay(path: Path, replay_server: LoopbackServer) -> None:
    exchange = load(path)
    replay_server.reset(serve(exchange))
    provider = make_provider(exchange, replay_server)
    if exchange["request"]["method"] == "GET":  # ollama /api/tags and /api/ps
        models = provider.list_models() if path.stem.endswith("tags") else \
            provider.running_models()  # type: ignore[attr-defined]
        assert models == exchange["expect"]["models"]
        assert replay_server.requests[0].path == urlsplit(exchange["request"]["url"]).path
        return
    if path.stem in REFUSED_BEFORE_SENDING:
        # The server's 400 answered a value we now refuse before any I/O: same verdict, no
        # round trip.
        with pytest.raises(UsageError, match=REFUSED_BEFORE_SENDING[path.stem]):
            call_provider(provider, exchange)
        assert replay_server.requests == []
        return
    if "error" in exchange["expect"]:
        with pytest.raises(ProviderError) as info:
            call_provider(provider, exchange)
        check_error(info.value, exchange)
        if not exchange["request"]["url"].split("?")[0].endswith("count_tokens"):
            check_request(provider, exchange, replay_server)
        return
    response = call_provider(provider, exchange)
    check_request(provider, exchange, replay_server)
    check_expect(provider, exchange, response)


def recorded_openai_usage(exchange: dict[str, Any]) -> dict[str, Any]:
    """The usage object exactly as the server sent it (the last one, in a stream)."""
    body = exchange["response"]["body"]
    if not exchange["streaming"]:
        return dict(json.loads(body).get("usage") or {})
    found: dict[str, Any] = {}
    for line in body.splitlines():
        if line.startswith("data: {"):
            found = json.loads(line[6:]).get("usage") or found
    return found


def test_every_exchange_is_replayed() -> None:
    assert len(EXCHANGES) == RECORDED_EXCHANGES
