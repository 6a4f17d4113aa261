"""AWS Bedrock (Converse, ConverseStream) replayed from recorded and documented exchanges
(tests/data/bedrock/, sources and licences in its README) against a loopback server: the
requests we send equal the recorded ones, the recorded answers (streams as their original
event-stream bytes, split at random) map onto our types, and errors are typed."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from eventstream_encode import encode_message
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.content import Document, Image, Text
from missy_providers.core.errors import (
    ContextLengthError,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.sigv4 import path_label
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, Refusal, Tool, ToolResult

DATA = Path(__file__).parent / "data" / "bedrock"
AKID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's examples
SIGV4 = {"aws_access_key_id": AKID, "aws_secret_access_key": SECRET}
WEATHER = Tool("get_weather", "Get the weather for a location.",
               {"properties": {"location": {"type": "string"}}, "required": ["location"],
                "type": "object"})
COUNTRY = Tool("get_user_country", "", {"additionalProperties": False, "properties": {},
                                        "type": "object"})


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def sent(body: dict[str, Any]) -> dict[str, Any]:
    """A Converse body without the empty members boto3 sends (``system: []``,
    ``inferenceConfig: {}``) and we leave out: the same request."""
    return {k: v for k, v in body.items() if v not in ({}, [])}


def bedrock(server: LoopbackServer, model: str = "us.anthropic.claude-sonnet-5",
            env: dict[str, str] | None = None, name: str = "b", **settings: Any) -> Any:
    credentials = {} if {"api_key", "aws_profile", "api_key_file"} & set(settings) else SIGV4
    config = config_from_dict({"providers": {name: {
        "name": "bedrock", "model": model, "region": "us-west-2", "base_url": server.url,
        "max_retries": 0, **credentials, **settings}}}, env=env or {})
    return ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get(name)


def answer(response: dict[str, Any]) -> Any:
    """A handler answering with a recorded response (its status, its real headers)."""
    headers = [(k, v) for k, v in response.get("headers", {}).items()
               if v != "**REDACTED**" and k.lower() not in ("content-length", "connection")]

    def handler(ex: Exchange) -> None:
        body = response.get("body_text") or json.dumps(response["body"])
        ex.send(response["status"], body, headers)
    return handler


def frames(raw: bytes, seed: int) -> Any:
    """A handler streaming ``raw`` in random pieces (a frame split anywhere)."""
    def handler(ex: Exchange) -> None:
        ex.start_chunked(200, "application/vnd.amazon.eventstream")
        rng, at = random.Random(seed), 0
        while at < len(raw):
            size = rng.choice((1, 2, 7, 64, 500, 4096))
            ex.chunk(raw[at:at + size])
            at += size
        ex.end_chunked()
    return handler


# --- the tool loops --------------------------------------------------------------------------

def test_a_tool_loop_replays_the_recorded_converse_exchange(server: LoopbackServer) -> None:
    turns = [load("converse-tool-use-claude-turn1"), load("converse-tool-result-claude-turn2")]
    replies = iter(turns)
    server.reset(lambda ex: answer(next(replies)["response"])(ex))
    provider = bedrock(server)
    messages = [Message("user", "What is the weather in San Francisco, CA?")]
    reply = provider.complete_with_tools(messages, [WEATHER])
    assert reply.finish_reason == "tool_calls" and reply.stop_reason == "tool_use"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("tooluse_Hc3MXzVAJJ7C28xbJu45mA", "get_weather", {"location": "San Francisco, CA"})]
    assert reply.usage["prompt_tokens"] == 446 and reply.usage["total_tokens"] == 501
    messages += [reply.to_message(), Message.tool(ToolResult(
        reply.tool_calls[0].id, "get_weather", "It's sunny."))]
    final = provider.complete_with_tools(messages, [WEATHER])
    assert final.content.startswith("The weather in San Francisco, CA is currently sunny!")
    assert final.finish_reason == "stop" and final.usage["completion_tokens"] == 25
    for request, turn in zip(server.requests, turns, strict=True):
        assert request.path == "/model/us.anthropic.claude-sonnet-5/converse"
        assert request.json() == sent(turn["request"]["body"])  # the toolUse sent back
        assert request.headers["authorization"].startswith(  # without Claude's "type"
            f"AWS4-HMAC-SHA256 Credential={AKID}/") and "/us-west-2/bedrock/" in \
            request.headers["authorization"]


def test_reasoning_goes_back_with_its_signature(server: LoopbackServer) -> None:
    turns = [load("converse-tool-use-with-reasoning-turn1"),
             load("converse-tool-result-with-reasoning-turn2")]
    replies = iter(turns)
    server.reset(lambda ex: answer(next(replies)["response"])(ex))
    provider = bedrock(server, model="us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    messages = [Message("user", "What is the largest city in the user country?")]
    reply = provider.complete_with_tools(messages, [COUNTRY], reasoning_budget=1024)
    assert reply.reasoning.startswith("The user is asking for the largest city")
    assert reply.content == "I'll need to check what country you're from to answer that " \
                            "question."
    messages += [reply.to_message(), Message.tool(ToolResult(
        reply.tool_calls[0].id, "get_user_country", "Mexico"))]
    final = provider.complete_with_tools(messages, [COUNTRY], reasoning_budget=1024)
    assert "Mexico City" in final.content
    assert server.requests[0].path == \
        "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    for request, turn in zip(server.requests, turns, strict=True):
        assert request.json() == sent(turn["request"]["body"])
    # Another provider never gets the signed reasoning: the neutral turn instead.
    other = bedrock(server, model="m", name="other", api_key="bedrock-api-key-12345678")
    server.reset(answer(turns[1]["response"]))
    other.complete_with_tools(messages, [COUNTRY])
    assistant = server.requests[0].json()["messages"][1]["content"]
    assert [next(iter(b)) for b in assistant] == ["text", "toolUse"]


def test_a_streamed_tool_loop(server: LoopbackServer) -> None:
    stream = load("converse-stream-tool-use-claude")
    after = load("converse-after-stream-tool-result-claude")
    raw = base64.b64decode(stream["response"]["raw_base64"])
    server.reset(frames(raw, 1))
    provider = bedrock(server)
    messages = [Message("user", "What is the weather in San Francisco, CA?")]
    with provider.complete_with_tools(messages, [WEATHER], stream=True) as reply_stream:
        events = list(reply_stream.events())
    reply = reply_stream.response
    assert "".join(e.text for e in events if e.type == "text") == reply.content == \
        "I'll check the current weather in San Francisco, CA for you."
    calls = [e.tool_call for e in events if e.type == "tool_call"]
    assert calls == reply.tool_calls and calls[0] is not None and \
        calls[0].arguments == {"location": "San Francisco, CA"}
    assert server.requests[0].path == "/model/us.anthropic.claude-sonnet-5/converse-stream"
    assert server.requests[0].json() == sent(stream["request"]["body"])
    assert server.requests[0].headers["accept"] == "application/vnd.amazon.eventstream"
    messages += [reply.to_message(), Message.tool(ToolResult(calls[0].id, "get_weather",
                                                             "It's sunny."))]
    server.reset(answer(after["response"]))
    final = provider.complete_with_tools(messages, [WEATHER])
    assert final.content.startswith("The weather in San Francisco, CA is currently **sunny**")
    # The streamed turn goes back as text + toolUse: the recorded second request had no text
    # (the recorder's client dropped it); everything else is the same.
    turn2 = server.requests[0].json()
    assert turn2["messages"][1]["content"][0] == {"text": reply.content}
    turn2["messages"][1]["content"].pop(0)
    assert turn2 == sent(after["request"]["body"])


# --- every recorded stream, split at random ------------------------------------------------

def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a stream's events say, folded by hand."""
    text, reasoning, tools = "", "", {}
    stop, usage = None, {}
    for event in events:
        kind, payload = event["headers"].get(":event-type"), event["payload"]
        if kind == "contentBlockDelta":
            delta = payload["delta"]
            text += delta.get("text", "")
            reasoning += (delta.get("reasoningContent") or {}).get("text", "")
            if "toolUse" in delta:
                tools[payload["contentBlockIndex"]]["input"] += delta["toolUse"]["input"]
        elif kind == "contentBlockStart" and "toolUse" in payload["start"]:
            tools[payload["contentBlockIndex"]] = {**payload["start"]["toolUse"], "input": ""}
        elif kind == "messageStop":
            stop = payload["stopReason"]
        elif kind == "metadata":
            usage = payload["usage"]
    return {"text": text, "reasoning": reasoning, "stop": stop, "usage": usage,
            "tools": [(t["toolUseId"], t["name"], json.loads(t["input"] or "{}"))
                      for _, t in sorted(tools.items())]}


STREAMS = sorted(p.stem for p in DATA.glob("converse-stream-*.json")
                 if "exception" not in p.stem)


@pytest.mark.parametrize("name", STREAMS)
def test_every_recorded_stream(server: LoopbackServer, name: str) -> None:
    data = load(name)
    want = expected(data["response"]["events"])
    raw = base64.b64decode(data["response"]["raw_base64"])
    provider = bedrock(server)
    for seed in (1, 2):
        server.reset(frames(raw, seed))
        with provider.stream([Message("user", "hi")]) as stream:
            events = list(stream.events())
        reply = stream.response
        assert reply.content == want["text"] == "".join(e.text for e in events
                                                        if e.type == "text")
        assert reply.reasoning == want["reasoning"]
        assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == want["tools"]
        assert reply.stop_reason == want["stop"]
        cache = want["usage"].get("cacheReadInputTokens", 0) + \
            want["usage"].get("cacheWriteInputTokens", 0)
        assert reply.usage["prompt_tokens"] == want["usage"]["inputTokens"] + cache
        assert reply.usage["total_tokens"] == want["usage"]["totalTokens"]


ANSWERS = sorted(p.stem for p in DATA.glob("converse-*.json")
                 if not p.stem.startswith("converse-stream-"))


@pytest.mark.parametrize("name", ANSWERS)
def test_every_recorded_answer(server: LoopbackServer, name: str) -> None:
    data = load(name)
    body = data["response"]["body"]
    server.reset(answer(data["response"]))
    reply = bedrock(server).complete([Message("user", "hi")])
    blocks = body["output"]["message"]["content"]
    assert reply.content == "".join(b.get("text", "") for b in blocks)
    usage = body["usage"]
    cache = usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)
    assert reply.usage["prompt_tokens"] == usage["inputTokens"] + cache
    assert (reply.usage["cached_prompt_tokens"], reply.usage["cache_write_tokens"]) == (
        usage.get("cacheReadInputTokens", 0), usage.get("cacheWriteInputTokens", 0))
    assert reply.usage["total_tokens"] == usage["totalTokens"]
    assert reply.stop_reason == body["stopReason"] and reply.refusal is None
    assert reply.to_message().native["content"] == [
        {"toolUse": {k: v for k, v in b["toolUse"].items() if k != "type"}}
        if "toolUse" in b else b for b in blocks]


def test_a_stream_without_its_metadata_is_truncated(server: LoopbackServer) -> None:
    data = load("converse-stream-text-nova")
    events = data["response"]["events"][:-1]  # up to messageStop: the usage never came
    raw = b"".join(encode_message(list(e["headers"].items()),
                                  json.dumps(e["payload"]).encode()) for e in events)
    server.reset(frames(raw, 3))
    with pytest.raises(ProtocolError, match="before its metadata event"):
        bedrock(server).stream([Message("user", "hi")]).response  # noqa: B018


def test_reasoning_streams_keep_signatures_and_redacted_blocks(server: LoopbackServer) -> None:
    for name, kind in (("converse-stream-reasoning-claude", "reasoningText"),
                       ("converse-stream-reasoning-redacted-claude", "redactedContent")):
        server.reset(frames(base64.b64decode(load(name)["response"]["raw_base64"]), 5))
        reply = bedrock(server).stream([Message("user", "hi")]).response
        block = reply.to_message().native["content"][0]["reasoningContent"]
        assert list(block) == [kind]
        if kind == "reasoningText":
            assert block[kind]["signature"].startswith("Eu0CCkgIBxAB")


# --- errors --------------------------------------------------------------------------------

def exception_frames(name: str) -> bytes:
    return base64.b64decode(load(name)["response"]["raw_base64"])


STREAM_EXCEPTIONS = [  # (:exception-type or frames, message, the error raised)
    ("converse-stream-midstream-exception-synthetic", "Bedrock is unable to process",
     ProviderUnavailable),
    ("converse-stream-throttling-exception-synthetic", "Too many tokens", RateLimitError),
    ("validationException", "Input is too long for requested model.", ContextLengthError),
    ("validationException", "The model does not support tool use.", ProviderError),
    ("internalServerException", "Internal error", ProviderUnavailable),
    ("serviceUnavailableException", "Busy", ProviderUnavailable),
]


@pytest.mark.parametrize("kind, text, error", STREAM_EXCEPTIONS)
def test_exceptions_inside_a_stream_are_typed(server: LoopbackServer, kind: str, text: str,
                                             error: type[Exception]) -> None:
    if kind.startswith("converse-"):
        raw = exception_frames(kind)
    else:
        start = encode_message([(":event-type", "messageStart"), (":message-type", "event"),
                                (":content-type", "application/json")],
                               b'{"role":"assistant","p":"ab"}')
        raw = start + encode_message([(":exception-type", kind),
                                      (":message-type", "exception"),
                                      (":content-type", "application/json")],
                                     json.dumps({"message": text}).encode())
    server.reset(frames(raw, 4))
    with pytest.raises(error, match=text) as info:
        bedrock(server).stream([Message("user", "hi")]).response  # noqa: B018
    assert type(info.value) is error
    assert info.value.error_type is not None and info.value.provider == "b"
    if "midstream" in kind:
        assert info.value.partial is not None and info.value.partial.content == "Par"


def test_an_error_frame_carries_its_code_in_headers(server: LoopbackServer) -> None:
    raw = encode_message([(":message-type", "error"), (":error-code", "InternalFailure"),
                          (":error-message", "something broke")])
    server.reset(frames(raw, 6))
    with pytest.raises(ProviderError, match="something broke") as info:
        bedrock(server).stream([Message("user", "hi")]).response  # noqa: B018
    assert info.value.error_type == "InternalFailure"


HTTP_ERRORS = [  # (recorded answer, the error, its error_type)
    ("error-400-validation-invalid-model-converse", ProviderError, None),
    ("error-400-validation-invalid-model-converse-stream", ProviderError, None),
    ("error-400-validation-input-too-long-synthetic", ContextLengthError,
     "ValidationException"),
    ("error-429-throttling-reconstructed", RateLimitError, "ThrottlingException"),
]


@pytest.mark.parametrize("name, error, error_type", HTTP_ERRORS)
def test_http_errors_are_typed_by_status_text_and_error_type_header(
        server: LoopbackServer, name: str, error: type[ProviderError],
        error_type: str | None) -> None:
    data = load(name)
    server.reset(answer(data["response"]))
    provider = bedrock(server)
    with pytest.raises(error) as info:
        if "stream" in data["api"]:
            provider.stream([Message("user", "hi")]).response  # noqa: B018
        else:
            provider.complete([Message("user", "hi")])
    assert type(info.value) is error and info.value.error_type == error_type
    assert data["response"]["body"]["message"] in info.value.message
    if name.startswith("error-429"):
        assert info.value.request_id == "ca47a5ce-e260-4824-aa0e-2e62669d5d6e"


# --- what we send --------------------------------------------------------------------------

def test_images_documents_and_the_model_id_are_sent_as_boto3_sends_them(
        server: LoopbackServer) -> None:
    image = load("converse-image-jpeg")
    server.reset(answer(image["response"]))
    provider = bedrock(server, model="us.amazon.nova-pro-v1:0")
    recorded = image["request"]["body"]["messages"][0]["content"]
    jpeg = base64.b64decode(recorded[1]["image"]["source"]["bytes"])
    provider.complete([Message("user", [Text(recorded[0]["text"]), Image(jpeg)])],
                      system=image["request"]["body"]["system"][0]["text"])
    assert server.requests[0].json() == sent(image["request"]["body"])
    assert server.requests[0].path == "/model/us.amazon.nova-pro-v1%3A0/converse"
    arn = load("converse-application-inference-profile-arn")
    label = arn["request"]["url"].split("/model/")[1].rsplit("/", 1)[0]
    assert path_label(label.replace("%3A", ":").replace("%2F", "/")) == label
    server.reset(answer(image["response"]))
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
    provider.complete([Message("user", [Document(pdf, name="Q3 report.v2.pdf"),
                                        Text("Summarise.", cache=True)])],
                      system="Be brief.", max_tokens=64, temperature=0.5, stop="END")
    body = server.requests[0].json()
    assert body["messages"][0]["content"][0] == {"document": {
        "format": "pdf", "name": "Q3 report-v2", "source": {
            "bytes": base64.b64encode(pdf).decode()}}}
    assert body["messages"][0]["content"][2] == {"cachePoint": {"type": "default"}}
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.5,
                                       "stopSequences": ["END"]}


@pytest.mark.parametrize("opts, problem", [
    ({"temperature": 1.5}, "Bedrock takes temperature from 0 to 1, got 1.5"),
    ({"reasoning": "high"}, "use reasoning_budget"),
    ({"tool_choice": "none"}, "no tool_choice 'none'"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"reasoning_budget": 2048, "max_tokens": 1024}, "below max_tokens"),
    ({"reasoning_budget": 2048, "temperature": 0.2}, "does not take temperature"),
])
def test_what_bedrock_cannot_take_is_refused_before_sending(
        server: LoopbackServer, opts: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        bedrock(server).complete_with_tools([Message("user", "hi")], [WEATHER], **opts)
    with pytest.raises(UsageError, match="cannot take an image URL"):
        bedrock(server).complete([Message("user", [Image.from_url("https://x.example/a.png")])])
    assert server.requests == []


@pytest.mark.parametrize("opts, wire", [
    ({"tool_choice": "required"}, {"toolChoice": {"any": {}}}),
    ({"tool_choice": "get_weather"}, {"toolChoice": {"tool": {"name": "get_weather"}}}),
    ({"tool_choice": "auto", "cache": True}, {"toolChoice": {"auto": {}}}),
])
def test_tool_choice_and_cache_points(server: LoopbackServer, opts: dict[str, Any],
                                      wire: dict[str, Any]) -> None:
    server.reset(answer(load("converse-text-claude")["response"]))
    bedrock(server).complete_with_tools([Message("user", "hi")], [WEATHER], system="S", **opts)
    body = server.requests[0].json()
    assert {k: v for k, v in body["toolConfig"].items() if k != "tools"} == wire
    if opts.get("cache"):
        point = {"cachePoint": {"type": "default"}}
        assert body["system"][-1] == body["toolConfig"]["tools"][-1] == \
            body["messages"][-1]["content"][-1] == point


def test_structured_output_sends_the_schema_as_json_text(server: LoopbackServer) -> None:
    answer_json = {"output": {"message": {"role": "assistant", "content": [
        {"text": '{"city": "Oslo"}'}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}
    server.reset(lambda ex: ex.json(200, answer_json))
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    reply = bedrock(server).complete([Message("user", "Capital of Norway?")], schema=schema)
    assert reply.parsed == {"city": "Oslo"}
    structure = server.requests[0].json()["outputConfig"]["textFormat"]["structure"]
    assert json.loads(structure["jsonSchema"]["schema"]) == schema


@pytest.mark.parametrize("stop", ["guardrail_intervened", "content_filtered"])
def test_guardrails_and_content_filters_are_refusals(server: LoopbackServer,
                                                     stop: str) -> None:
    blocked = {"output": {"message": {"role": "assistant", "content": [
        {"text": "Sorry, the model cannot answer this question."}]}}, "stopReason": stop,
        "usage": {"inputTokens": 3, "outputTokens": 0, "totalTokens": 3}}
    server.reset(lambda ex: ex.json(200, blocked))
    reply = bedrock(server).complete([Message("user", "hi")])
    assert reply.refusal == Refusal(category=stop) and reply.finish_reason == "stop"
    raw = b"".join(encode_message([(":event-type", kind), (":message-type", "event")],
                                  json.dumps(payload).encode()) for kind, payload in (
        ("messageStart", {"role": "assistant"}), ("messageStop", {"stopReason": stop}),
        ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 0, "totalTokens": 3}})))
    server.reset(frames(raw, 7))
    with bedrock(server).stream([Message("user", "hi")]) as stream:
        kinds = [e.type for e in stream.events()]
    assert kinds == ["refusal", "done"] and stream.response.refusal == Refusal(category=stop)
