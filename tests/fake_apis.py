"""Local stand-ins of the four APIs on one loopback server, for running the README's examples
end to end: each answers in its API's shape (streamed or not), calls the first offered tool
until a tool result comes back, and answers a JSON schema with its required keys filled.

Paths: Anthropic ``/v1/messages``, Chat Completions ``/v1/chat/completions``, Responses
``/v1/responses``, Ollama ``/api/chat``; model lists at ``/v1/models`` and ``/api/tags``.
"""

from __future__ import annotations

import json
from typing import Any

from loopback import Exchange, LoopbackServer

TEXT = "Hello from the stand-in."


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    return {name: "Oslo" if (props.get(name) or {}).get("type", "string") == "string" else 1
            for name in schema.get("required") or props}


def _plan(tools: list[dict[str, Any]], schema: dict[str, Any] | None, answered: bool
          ) -> tuple[str, dict[str, Any] | None]:
    """(text, tool call) this turn: the first tool until a result came back; a schema's JSON;
    or plain text."""
    if tools and not answered:
        return "", {"name": tools[0]["name"], "arguments": _arguments(tools[0]["schema"])}
    if schema:
        return json.dumps(_arguments(schema)), None
    return TEXT, None


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(out).encode()


def anthropic(ex: Exchange, body: dict[str, Any]) -> None:
    tools = [{"name": t["name"], "schema": t["input_schema"]} for t in body.get("tools", [])]
    answered = any(isinstance(m["content"], list) and any(
        b.get("type") == "tool_result" for b in m["content"]) for m in body["messages"][-1:])
    schema = (body.get("output_config") or {}).get("format", {}).get("schema")
    text, call = _plan(tools, schema, answered)
    blocks = [{"type": "tool_use", "id": "toolu_1", "name": call["name"],
               "input": call["arguments"]}] if call else [{"type": "text", "text": text}]
    stop = "tool_use" if call else "end_turn"
    usage = {"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    message = {"type": "message", "id": "msg_1", "role": "assistant", "model": body["model"],
               "content": blocks, "stop_reason": stop, "usage": usage}
    if not body.get("stream"):
        ex.json(200, message)
        return
    start = {**message, "content": [], "stop_reason": None}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start",
                                                               "message": start})]
    if call:
        events += [("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {**blocks[0], "input": {}}}),
                   ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "input_json_delta",
                                                      "partial_json": json.dumps(
                                                          call["arguments"])}})]
    else:
        events += [("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta",
                                                      "text": text[i:i + 8]}})
                   for i in range(0, len(text), 8)]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                  "usage": {"output_tokens": 5}}),
               ("message_stop", {"type": "message_stop"})]
    ex.send(200, _sse(events), content_type="text/event-stream")


def chat(ex: Exchange, body: dict[str, Any]) -> None:
    tools = [{"name": t["function"]["name"], "schema": t["function"]["parameters"]}
             for t in body.get("tools", [])]
    answered = body["messages"][-1]["role"] == "tool"
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    text, call = _plan(tools, schema, answered)
    calls = [{"id": "call_1", "type": "function", "function": {
        "name": call["name"], "arguments": json.dumps(call["arguments"])}}] if call else None
    finish = "tool_calls" if call else "stop"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    if not body.get("stream"):
        message = {"role": "assistant", "content": text or None,
                   **({"tool_calls": calls} if calls else {})}
        ex.json(200, {"id": "c1", "object": "chat.completion", "model": body["model"],
                      "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                      "usage": usage})
        return
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"]}
    delta = {"role": "assistant", **({"tool_calls": [{**calls[0], "index": 0}]} if calls
                                     else {"content": text})}
    events: list[tuple[str | None, Any]] = [
        (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        (None, {**chunk, "choices": [], "usage": usage}), (None, "[DONE]")]
    ex.send(200, _sse(events), content_type="text/event-stream")


def responses(ex: Exchange, body: dict[str, Any]) -> None:
    tools = [{"name": t["name"], "schema": t["parameters"]} for t in body.get("tools", [])]
    answered = any(i.get("type") == "function_call_output" for i in body["input"][-1:])
    schema = ((body.get("text") or {}).get("format") or {}).get("schema")
    text, call = _plan(tools, schema, answered)
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": call["name"],
            "arguments": json.dumps(call["arguments"]), "status": "completed"} if call else \
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": text, "annotations": []}]}
    response = {"id": "resp_1", "object": "response", "status": "completed",
                "model": body["model"], "output": [item],
                "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}}
    if not body.get("stream"):
        ex.json(200, response)
        return
    events: list[tuple[str | None, Any]] = []
    if not call:
        events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                      "delta": text}))
    events += [("response.output_item.done", {"type": "response.output_item.done",
                                              "output_index": 0, "item": item}),
               ("response.completed", {"type": "response.completed", "response": response})]
    ex.send(200, _sse(events), content_type="text/event-stream")


def ollama(ex: Exchange, body: dict[str, Any]) -> None:
    tools = [{"name": t["function"]["name"], "schema": t["function"]["parameters"]}
             for t in body.get("tools", [])]
    answered = body["messages"][-1]["role"] == "tool"
    schema = body.get("format") if isinstance(body.get("format"), dict) else None
    text, call = _plan(tools, schema, answered)
    message = {"role": "assistant", "content": text, **({"tool_calls": [{"function": {
        "name": call["name"], "arguments": call["arguments"]}}]} if call else {})}
    final = {"model": body["model"], "message": message, "done": True, "done_reason": "stop",
             "prompt_eval_count": 12, "eval_count": 5}
    if not body.get("stream"):
        ex.json(200, final)
        return
    ex.send(200, json.dumps(final) + "\n", content_type="application/x-ndjson")


def handler(ex: Exchange) -> None:
    path = ex.req.path
    if ex.req.method == "GET":
        if path.endswith("/api/tags"):
            ex.json(200, {"models": [{"name": "llama3.2:latest"}]})
        else:
            ex.json(200, {"object": "list", "data": [{"id": "stand-in-model"}]})
        return
    body = ex.req.json()
    routes = {"/v1/messages": anthropic, "/v1/chat/completions": chat,
              "/v1/responses": responses, "/api/chat": ollama}
    route = routes.get(path)
    if route is None:
        ex.json(404, {"error": {"message": f"no stand-in for {path}"}})
        return
    route(ex, body)


def serve() -> LoopbackServer:
    server = LoopbackServer()
    server.reset(handler)
    return server


def config_for(server: LoopbackServer) -> dict[str, Any]:
    """A config with one provider of every type (and an OpenAI-compatible one), all pointed at
    ``server``, keys set."""
    key = "sk-readme-example-key"
    return {
        "default_provider": "anthropic",
        "fallback": ["anthropic", "openai"],
        "providers": {
            "anthropic": {"name": "anthropic", "model": "claude-sonnet-4-6",
                          "fast_model": "claude-haiku-4-5", "base_url": server.url,
                          "api_key": key},
            "openai": {"name": "openai", "model": "gpt-4o-mini", "api_key": key,
                       "base_url": server.url + "/v1"},
            "openrouter": {"name": "openai", "model": "meta-llama/llama-3.2-3b-instruct",
                           "api_key": key, "base_url": server.url + "/v1"},
            "codex": {"name": "openai-codex", "model": "gpt-5-codex", "api_key": key,
                      "base_url": server.url + "/v1"},
            "ollama": {"name": "ollama", "model": "llama3.2", "base_url": server.url},
        },
        "network": {"allowed_hosts": ["127.0.0.1"]},
    }
