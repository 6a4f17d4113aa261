"""Reasoning survives a tool loop on every dialect (providers/dialects.py): a two-turn loop
against a loopback server that answers HTTP 400, as the real servers do, when the reasoning the
server sent is missing from the second request. The first answers are recorded exchanges or
documented examples (tests/data/dialects/, tests/data/real-traffic/), served byte for byte."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import loopback_client, loopback_provider
from dialect_data import DIALECTS, load, real_traffic, send_answer, send_stream, sequence
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import ProviderError
from missy_providers.providers.dialects import ROUND_TRIPS, merge_details
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, Tool, ToolCall, ToolResult

Check = Callable[[dict[str, Any]], bool]


def unless(check: Check, error: dict[str, Any], then: Callable[[Exchange], None]
           ) -> Callable[[Exchange], None]:
    """The server's rule: HTTP 400 with ``error`` unless the request passes ``check``."""
    def handler(ex: Exchange) -> None:
        if check(ex.req.json()):
            then(ex)
        else:
            ex.json(400, error)

    return handler


def chat_answer(message: dict[str, Any], finish: str = "tool_calls") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}


DONE = chat_answer({"role": "assistant", "content": "Done."}, "stop")


def assistants(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "assistant"]


def without_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with tool arguments parsed (JSON spacing differs between clients)."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(
                c["function"]["arguments"])}} for c in m["tool_calls"]]
        out.append(m)
    return out


# --- DeepSeek: reasoning_content --------------------------------------------------------------

DEEPSEEK_400 = {"error": {"message": "The reasoning_content in the thinking mode must be passed "
                                     "back to the API.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_request_error"}}


def deepseek_rule(body: dict[str, Any]) -> bool:
    """Every assistant turn with tool calls carries the key, even when empty."""
    return all("reasoning_content" in m for m in assistants(body) if m.get("tool_calls"))


def test_deepseek_tool_loop_recorded(server: LoopbackServer) -> None:
    """The recorded three-request loop: our requests equal the recorded ones (arguments
    compared parsed), including the client-written turn that had to carry ``""``."""
    data = load("deepseek-tool-loop-reasoning-content")
    exchanges = data["exchanges"]
    server.reset(sequence(unless(deepseek_rule, DEEPSEEK_400,
                                 lambda ex, e=e: send_answer(ex, e["response"]))
                          for e in exchanges))
    first = exchanges[0]["request"]["body"]
    tools = [Tool(t["function"]["name"], t["function"]["description"],
                  t["function"]["parameters"], strict=True) for t in first["tools"]]
    messages = [Message(m["role"], m["content"]) for m in first["messages"]]
    provider = loopback_provider(server, "openai")
    opts = {"model": "deepseek-reasoner", "tool_choice": "auto"}
    reply = provider.complete_with_tools(messages, tools, **opts)
    assert reply.reasoning.startswith("The user wants to play a dice game.")
    messages += [reply.to_message(),
                 Message.tool(ToolResult(reply.tool_calls[0].id, "load_capability", "{}")),
                 # A turn the client writes itself (no reasoning of its own): DeepSeek wants
                 # the key on it all the same.
                 Message("assistant", "", [ToolCall("auto_load_eb5fc31bb581b4e7",
                                                    "search_tools", {"queries": ["DICE_ROLL"]})]),
                 Message.tool(ToolResult("auto_load_eb5fc31bb581b4e7", "search_tools",
                                         exchanges[1]["request"]["body"]["messages"][-1][
                                             "content"]))]
    reply = provider.complete_with_tools(messages, tools, **opts)
    messages.append(reply.to_message())
    messages += [Message.tool(ToolResult(c.id, c.name, result)) for c, result in
                 zip(reply.tool_calls, ("Anne", "4"), strict=True)]
    reply = provider.complete_with_tools(messages, tools, **opts)
    assert reply.content.startswith("🎉 **Congratulations, Anne!**")
    for sent, recorded in zip(server.requests, exchanges, strict=True):
        assert without_arguments(sent.json()["messages"]) == without_arguments(
            recorded["request"]["body"]["messages"])


def test_deepseek_streamed_reasoning_recorded(server: LoopbackServer) -> None:
    data = load("deepseek-stream-reasoning-content")
    server.reset(lambda ex: send_stream(ex, data["response"]["stream"]))
    with loopback_provider(server, "openai").stream("Hello") as stream:
        events = list(stream.events())
    reply = stream.response
    reasoning = "".join(e.text for e in events if e.type == "reasoning")
    assert reasoning == reply.reasoning and reasoning.startswith("Hmm,")
    assert reply.native["message"] == {"reasoning_content": reasoning}
    assert "".join(e.text for e in events if e.type == "text") == reply.content != ""


# --- vLLM: reasoning --------------------------------------------------------------------------

def test_vllm_tool_loop_streamed(server: LoopbackServer) -> None:
    """The documented chunk (delta.reasoning) verbatim, then a tool call and the finish."""
    doc = load("vllm-reasoning-docs")["stream_chunk_doc"]
    chunk = dict(doc)

    def with_delta(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({**chunk, "choices": [{
            "index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}) + "\n\n"

    stream = ("data: " + json.dumps(doc) + "\n\n" + with_delta({"reasoning": " easy"}) +
              with_delta({"tool_calls": [{"index": 0, "id": "chatcmpl-tool-1",
                                          "type": "function", "function": {
                                              "name": "add", "arguments": '{"a": 1}'}}]}) +
              with_delta({}, "tool_calls") + "data: [DONE]\n\n")
    rule = unless(lambda body: assistants(body)[0].get("reasoning") == "is easy",
                  {"object": "error", "message": "reasoning missing", "type": "BadRequestError",
                   "code": 400}, lambda ex: ex.json(200, DONE))
    server.reset(sequence([lambda ex: send_stream(ex, stream), rule]))
    provider = loopback_provider(server, "openai")
    add = Tool("add", "adds", {"properties": {"a": {"type": "integer"}}})
    messages = [Message("user", "1 + 1?")]
    reply = provider.complete_with_tools(messages, [add], stream=True).response
    assert (reply.reasoning, reply.tool_calls) == ("is easy", [ToolCall("chatcmpl-tool-1",
                                                                        "add", {"a": 1})])
    messages += [reply.to_message(), Message.tool(ToolResult("chatcmpl-tool-1", "add", "2"))]
    assert provider.complete_with_tools(messages, [add]).content == "Done."
    assert "reasoning_content" not in assistants(server.requests[1].json())[0]


# --- OpenRouter: reasoning_details ------------------------------------------------------------

def test_openrouter_tool_loop_documented(server: LoopbackServer) -> None:
    """The documented details (summary, encrypted, text with signature) go back unmodified."""
    doc = load("openrouter-reasoning-details-passback-docs")
    details = doc["detail_examples"]
    first = chat_answer({"role": "assistant", "content": None, "reasoning": "weather first",
                         "reasoning_details": details, "tool_calls": [{
                             "id": "call_1", "type": "function", "function": {
                                 "name": "get_weather", "arguments": '{"city": "Boston"}'}}]})
    rule = unless(lambda body: assistants(body)[0].get("reasoning_details") == details,
                  {"error": {"code": 400, "message": "reasoning_details missing"}},
                  lambda ex: ex.json(200, DONE))
    server.reset(sequence([lambda ex: ex.json(200, first), rule]))
    provider = loopback_provider(server, "openai")
    weather = Tool("get_weather", "", {"properties": {"city": {"type": "string"}}})
    messages = [Message("user", doc["next_request_messages_shape"][0]["content"])]
    reply = provider.complete_with_tools(messages, [weather])
    messages += [reply.to_message(), Message.tool(ToolResult("call_1", "get_weather",
                                                             '{"temperature": 45}'))]
    assert provider.complete_with_tools(messages, [weather]).content == "Done."
    sent = assistants(server.requests[1].json())[0]
    assert set(sent) == {"role", "content", "reasoning", "reasoning_details", "tool_calls"}


def test_openrouter_streamed_details_merged_recorded(server: LoopbackServer) -> None:
    """The recorded stream: text pieces join into one entry per (index, type); the signature
    that arrives alone in a later piece lands on it; the merged list goes back next turn."""
    data = load("openrouter-reasoning-details-stream")
    text = data["response"]["stream"]
    signature = re.search(r'"signature":"(E[^"]+)"', text)
    assert signature is not None
    expected: dict[str, Any] = {}

    def second(ex: Exchange) -> None:
        expected.update(assistants(ex.req.json())[0])
        ex.json(200, DONE)

    server.reset(sequence([lambda ex: send_stream(ex, text), second]))
    provider = loopback_provider(server, "openai")
    with provider.stream("What is 2+2?") as stream:
        pieces = [e.text for e in stream.events() if e.type == "reasoning"]
    reply = stream.response
    [entry] = reply.native["message"]["reasoning_details"]
    assert entry["text"] == "".join(pieces) == reply.reasoning != ""
    assert (entry["type"], entry["index"], entry["signature"], entry["format"]) == (
        "reasoning.text", 0, signature.group(1), "anthropic-claude-v1")
    provider.complete([Message("user", "What is 2+2?"), reply.to_message(),
                       Message("user", "And 3+3?")])
    assert expected["reasoning_details"] == [entry]


def test_openrouter_same_index_two_types_recorded(server: LoopbackServer) -> None:
    """Recorded: a summary and an encrypted block both at index 0 stay two entries."""
    data = load("openrouter-reasoning-details-encrypted")
    message = data["exchanges"][1]["response"]["body"]["choices"][0]["message"]
    details = message["reasoning_details"]
    assert [(d["type"], d["index"]) for d in details] == [("reasoning.summary", 0),
                                                          ("reasoning.encrypted", 0)]
    merged: list[dict[str, Any]] = []
    merge_details(merged, details)
    assert merged == details
    server.reset(lambda ex: send_answer(ex, data["exchanges"][1]["response"]))
    reply = loopback_provider(server, "openai").complete("Voltaire?")
    assert reply.native["message"]["reasoning_details"] == details
    assert reply.reasoning == message["reasoning"]


# --- Gemini: extra_content.google.thought_signature on tool calls ----------------------------

GEMINI_400 = load("gemini-thought-signature-tool-calls-docs")["error_when_missing_observed"]


def gemini_rule(body: dict[str, Any]) -> bool:
    """The first call of every assistant turn keeps its signature (the docs' rule)."""
    return all(m["tool_calls"][0].get("extra_content", {}).get("google", {}).get(
        "thought_signature") for m in assistants(body) if m.get("tool_calls"))


@pytest.mark.parametrize("streamed", [False, True])
def test_gemini_tool_loop_documented(server: LoopbackServer, streamed: bool) -> None:
    doc = load("gemini-thought-signature-tool-calls-docs")
    message = {**doc["turn1_step1_response_message"], "role": "assistant"}  # live: assistant
    call = message["tool_calls"][0]
    if streamed:  # the signature rides on the call's first delta, beside index and id
        first = {**call, "index": 0, "function": {"name": call["function"]["name"],
                                                  "arguments": ""}}
        rest = {"index": 0, "function": {"arguments": call["function"]["arguments"]}}
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            first]}}]}, {"choices": [{"index": 0, "delta": {"tool_calls": [rest]}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        answer: Callable[[Exchange], None] = lambda ex: send_stream(ex, text)  # noqa: E731
    else:
        answer = lambda ex: ex.json(200, chat_answer(message))  # noqa: E731
    wanted = doc["turn1_step2_request_messages"]
    server.reset(sequence([answer, unless(gemini_rule, GEMINI_400,
                                          lambda ex: ex.json(200, DONE))]))
    provider = loopback_provider(server, "openai")
    flight = Tool("check_flight", "", {"properties": {"flight": {"type": "string"}}})
    messages = [Message("user", wanted[0]["content"])]
    reply = provider.complete_with_tools(messages, [flight], stream=streamed)
    reply = reply.response if streamed else reply
    messages += [reply.to_message(), Message.tool(ToolResult(
        "function-call-1", "check_flight", wanted[2]["content"]))]
    assert provider.complete_with_tools(messages, [flight]).content == "Done."
    sent = server.requests[1].json()["messages"]
    assert without_arguments([sent[1]]) == without_arguments([{
        **wanted[1], "role": "assistant", "content": None}])
    assert sent[2] == {"role": "tool", "tool_call_id": "function-call-1",
                       "content": wanted[2]["content"]}


def test_gemini_parallel_calls_keep_the_first_signature(server: LoopbackServer) -> None:
    doc = load("gemini-thought-signature-tool-calls-docs")
    message = doc["parallel_response_message"]
    server.reset(sequence([lambda ex: ex.json(200, chat_answer(message)),
                           unless(gemini_rule, GEMINI_400, lambda ex: ex.json(200, DONE))]))
    provider = loopback_provider(server, "openai")
    reply = provider.complete("Temperatures in Paris and London?")
    messages = [Message("user", "Temperatures in Paris and London?"), reply.to_message(),
                *[Message.tool(ToolResult(c.id, c.name, "20")) for c in reply.tool_calls]]
    provider.complete(messages)
    sent = assistants(server.requests[1].json())[0]["tool_calls"]
    assert [c.get("extra_content") for c in sent] == [
        message["tool_calls"][0]["extra_content"], None]


def test_gemini_message_level_signature_recorded(server: LoopbackServer) -> None:
    """Gemini 2.5 (recorded, June 2025) put the signature on the message: kept there."""
    exchange = real_traffic("compat-gemini-tool-call-without-id")
    server.reset(lambda ex: ex.send(200, exchange["response"]["body"]))
    reply = loopback_provider(server, "openai").complete("hi")
    extra = json.loads(exchange["response"]["body"])["choices"][0]["message"]["extra_content"]
    assert reply.native["message"] == {"extra_content": extra}


# --- Anthropic thinking, Responses reasoning items, Ollama thinking --------------------------

ANTHROPIC_400 = {"type": "error", "error": {
    "type": "invalid_request_error",
    "message": "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but "
               "found `text`. When `thinking` is enabled, a final `assistant` message must "
               "start with a thinking block."}}


def test_anthropic_thinking_tool_loop_recorded(server: LoopbackServer) -> None:
    exchange = real_traffic("anthropic-nonstream-thinking-tool-use")
    content = json.loads(exchange["response"]["body"])["content"]
    rule = unless(lambda body: body["messages"][1]["content"] == content, ANTHROPIC_400,
                  lambda ex: ex.json(200, {"type": "message", "model": "m", "content": [
                      {"type": "text", "text": "Tokyo."}], "stop_reason": "end_turn",
                      "usage": {}}))
    server.reset(sequence([lambda ex: ex.send(200, exchange["response"]["body"]), rule]))
    provider = loopback_provider(server, "anthropic")
    country = Tool("get_user_country", "", {"additionalProperties": False, "properties": {}})
    messages = [Message("user", "What is the largest city in the user country?")]
    reply = provider.complete_with_tools(messages, [country], reasoning_budget=3000)
    messages += [reply.to_message(), Message.tool(ToolResult(
        "toolu_01YGzqpRE16Vricda3Aqcejo", "get_user_country", "Japan"))]
    assert provider.complete_with_tools(messages, [country],
                                        reasoning_budget=3000).content == "Tokyo."


@pytest.mark.parametrize("name", ["responses-reasoning-phase-nonstream",
                                  "responses-reasoning-phase-stream"])
def test_responses_reasoning_and_phase_tool_loop_recorded(server: LoopbackServer,
                                                          name: str) -> None:
    """Recorded gpt-5.5 loops: the reasoning item goes back with the encrypted_content of
    output_item.done (streamed, .added had another), the commentary message with its phase."""
    data = load(name)
    first, second = data["exchanges"]
    recorded_input = second["request"]["body"]["input"]

    def rule(body: dict[str, Any]) -> bool:
        ours = {i.get("type"): i for i in body["input"]}
        theirs = {i.get("type"): i for i in recorded_input}
        return (ours["reasoning"]["encrypted_content"] ==
                theirs["reasoning"]["encrypted_content"]
                and ours["message"]["phase"] == theirs["message"]["phase"] == "commentary")

    server.reset(sequence([lambda ex: send_answer(ex, first["response"]),
                           unless(rule, {"error": {"type": "invalid_request_error",
                                                   "message": "Item not found"}},
                                  lambda ex: send_answer(ex, second["response"]))]))
    body = first["request"]["body"]
    spec = body["tools"][0]
    tools = [Tool(spec["name"], "", spec["parameters"], strict=True)]
    streamed = bool(body["stream"])
    provider = loopback_provider(server, "openai-codex")
    messages = [Message("user", body["input"][0]["content"])]
    opts = {"system": body["instructions"], "model": body["model"]}
    reply = provider.complete_with_tools(messages, tools, stream=streamed, **opts)
    reply = reply.response if streamed else reply
    call = reply.tool_calls[0]
    messages += [reply.to_message(), Message.tool(ToolResult(call.id, call.name,
                                                             "Potato City"))]
    final = provider.complete_with_tools(messages, tools, stream=streamed, **opts)
    final = final.response if streamed else final
    assert final.content == "The capital of PotatoLand is **Potato City**."
    assert [i["type"] for i in final.native["items"] if i["type"] == "message"] == ["message"]
    assert final.native["items"][-1]["phase"] == "final_answer"
    sent = server.requests[1].json()["input"]
    assert [i.get("type", "message") for i in sent] == [
        i.get("type", "message") for i in recorded_input]


def test_ollama_thinking_tool_loop_recorded(server: LoopbackServer) -> None:
    exchange = real_traffic("ollama-chat-nonstream-tool-call-thinking")
    thinking = "User asks about weather in San Francisco. Use function getWeather."
    rule = unless(lambda body: body["messages"][1].get("thinking") == thinking,
                  {"error": "thinking missing"},
                  lambda ex: ex.json(200, {"model": "gpt-oss:120b", "done": True,
                                           "message": {"role": "assistant",
                                                       "content": "Sunny."}}))
    server.reset(sequence([lambda ex: ex.send(200, exchange["response"]["body"]), rule]))
    provider = loopback_provider(server, "ollama")
    weather = Tool("getWeather", "", {"properties": {"location": {"type": "string"}}})
    messages = [Message("user", "What's the weather like in San Francisco?")]
    reply = provider.complete_with_tools(messages, [weather])
    messages += [reply.to_message(), Message.tool(ToolResult("call_mo1wm122", "getWeather",
                                                             "18 C"))]
    assert provider.complete_with_tools(messages, [weather]).content == "Sunny."
    sent = server.requests[1].json()["messages"]
    assert sent[1]["tool_calls"] == [{"id": "call_mo1wm122", "function": {
        "index": 0, "name": "getWeather", "arguments": {"location": "San Francisco, CA"}}}]
    assert sent[2] == {"role": "tool", "content": "18 C", "tool_name": "getWeather",
                       "tool_call_id": "call_mo1wm122"}


# --- never to another provider ----------------------------------------------------------------

def test_what_one_provider_kept_never_goes_to_another(server: LoopbackServer) -> None:
    data = load("deepseek-tool-loop-reasoning-content")
    server.reset(lambda ex: send_answer(ex, data["exchanges"][0]["response"]))
    deepseek = loopback_provider(server, "openai")
    reply = deepseek.complete("My guess is 4")
    assert reply.native["provider"] == "p" and reply.native["api"] == "openai"
    turn = reply.to_message()
    history = [Message("user", "My guess is 4"), turn,
               Message.tool(ToolResult(turn.tool_calls[0].id, "load_capability", "{}"))]
    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    config = config_from_dict({"providers": {"q": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1", "max_retries": 0}}},
        env={})
    other = ProviderRegistry(config, loopback_client()).get("q")  # same API, another provider
    with pytest.raises(ProviderError):
        other.complete(history)
    sent = server.requests[-1].json()["messages"][1]
    assert "reasoning_content" not in sent and "reasoning_content" not in json.dumps(sent)
    for ptype in ("anthropic", "openai-codex", "ollama"):  # other APIs: the neutral shape
        server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
        with pytest.raises(ProviderError):
            loopback_provider(server, ptype).complete(history)
        assert "The user wants to play" not in server.requests[-1].body.decode()


def test_the_table_names_every_dialect() -> None:
    assert [(r.dialect, r.key) for r in ROUND_TRIPS] == [
        ("DeepSeek", "reasoning_content"),
        ("vLLM (and Ollama /v1, Groq's reasoning models)", "reasoning"),
        ("OpenRouter", "reasoning_details"), ("Gemini 3", "extra_content"),
        ("Gemini 2.5", "extra_content"), ("Anthropic", "content"),
        ("Responses (Codex)", "items"), ("Ollama", "thinking")]
    assert all(r.back and r.answer and r.required for r in ROUND_TRIPS)


def test_openrouter_text_with_signature_recorded(server: LoopbackServer) -> None:
    """Recorded (claude-3.7-sonnet:thinking): one reasoning.text with its signature, no id."""
    data = load("openrouter-reasoning-details-text-signature")
    message = data["response"]["body"]["choices"][0]["message"]
    server.reset(lambda ex: send_answer(ex, data["response"]))
    reply = loopback_provider(server, "openai").complete("Who are you. Think about it.")
    [detail] = reply.native["message"]["reasoning_details"]
    assert detail == message["reasoning_details"][0] and detail["signature"]
    assert reply.reasoning == message["reasoning"]


def test_every_data_file_is_in_the_readme_with_its_source_and_licence() -> None:
    readme = (DIALECTS / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines()
            if line.startswith("| `")}
    names = sorted(p.name for p in DIALECTS.glob("*.json"))
    assert sorted(rows) == names
    for name in names:
        data = load(name[:-5])
        assert data["licence"] and data["source"]
        kind = "recorded" if data["kind"].startswith("recorded") else "documentation"
        assert f"| {kind} |" in rows[name], name
