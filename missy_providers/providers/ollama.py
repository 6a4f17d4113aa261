"""Ollama's native API: ``/api/chat`` with NDJSON streaming, ``/api/tags`` (wire-formats.md
section 5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from ..content import WireParts
from ..core.errors import ProtocolError, at_boundary
from ..types import (
    CompletionResponse,
    Message,
    ModelInfo,
    StreamEvent,
    Tool,
    ToolCall,
    make_usage,
    token_count,
)
from .base import SHAPE_ERRORS, BaseProvider, parse_tool_arguments, unexpected_shape
from .dialects import native_of, tagged
from .model_facts import from_ollama
from .openai import function_tools, new_call_id, unique_ids
from .streaming import Accumulator, TextBuffer, check_tool_calls

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

OLLAMA_CLOUD_HOST = "ollama.com"  # needs `Authorization: Bearer $OLLAMA_API_KEY`
# done_reason (llm/server.go DoneReason, routes.go): a tool call does not change it; "load" and
# "unload" answer an empty prompt that only loads or unloads the model.
DONE_REASONS = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def to_ollama_messages(messages: Sequence[Message], system: str | None, parts: WireParts,
                       provider: str = "") -> list[dict[str, Any]]:
    """Messages -> /api/chat messages. An assistant turn from this provider carries its
    ``thinking`` back (the docs: send thinking, content and tool calls together); tool calls
    carry ``function.index`` as the server numbered them."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        thinking = native_of(m, provider, "ollama").get("thinking")
        back = {"thinking": thinking} if thinking else {}
        if m.role == "tool" and m.tool_result is not None:
            out.append({"role": "tool",
                        "content": parts.text_only(m.tool_result.content, "tool result"),
                        "tool_name": m.tool_result.name,
                        "tool_call_id": m.tool_result.tool_call_id})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant",
                        "content": parts.text_only(m.content, "assistant turn"), **back,
                        "tool_calls": [
                            {"id": c.id, "function": {"index": i, "name": c.name,
                                                      "arguments": c.arguments}}
                            for i, c in enumerate(m.tool_calls)]})
        elif m.role == "user" and not isinstance(m.content, str):
            # Text joins `content`; images go, as bare base64, in the message's `images`.
            wired = [(p.kind, parts.wire(p, "user turn")) for p in m.content]
            message = {"role": "user", "content": "".join(w for k, w in wired if k == "text")}
            images = [w for k, w in wired if k == "image"]
            out.append({**message, "images": images} if images else message)
        else:
            out.append({"role": m.role, "content": parts.text_only(m.content, f"{m.role} turn"),
                        **back})
    return out


class OllamaProvider(BaseProvider):
    """Ollama's native API (``POST /api/chat``, NDJSON streams, ``/api/tags`` for the live
    check). No key for a local server; a Bearer key when one is configured (ollama.com)."""

    provider_type = "ollama"
    stream_format = "ndjson"
    extra_options = frozenset({"think"})

    @property
    def key_required(self) -> bool:  # type: ignore[override]
        """A local server needs none; Ollama Cloud (ollama.com) needs its API key."""
        return (urlsplit(self.config.base_url).hostname or "").lower() == OLLAMA_CLOUD_HOST

    def endpoint(self) -> str:
        return f"{self.config.base_url}/api/chat"

    @at_boundary
    def running_models(self) -> list[str]:
        """The models loaded in memory now (``GET /api/ps``)."""
        return self.models_from(self._get_json("/api/ps"))

    probe_path = "/api/tags"

    def is_available(self) -> bool:
        """``GET /api/tags`` answers 200 within a short timeout. Never raises."""
        return self.probe().ok

    @at_boundary
    def model_info(self, name: str | None = None) -> ModelInfo:
        """``POST /api/show``: capabilities and the context length."""
        name = name or self.model
        return from_ollama(name, self._json_call("POST", "/api/show", {"model": name}),
                           "POST /api/show")

    def _list_model_info(self) -> list[ModelInfo]:
        """``/api/tags``, one request: from v0.30 each entry has capabilities and the context
        length; an older server's entries say less (None: unknown; ``model_info(name)`` asks
        ``/api/show`` for one model). Never one request a model: the server would choose how
        many a call sends."""
        data = self._get_json("/api/tags")
        try:
            return [from_ollama(str(entry.get("name") or entry.get("model")), entry,
                                "GET /api/tags")
                    for entry in data.get("models") or [] if isinstance(entry, Mapping)]
        except SHAPE_ERRORS as exc:
            raise unexpected_shape(exc, "model list", self.name) from None

    def models_from(self, data: Any) -> list[str]:
        models = data.get("models") if isinstance(data, Mapping) else None
        return [str(m.get("name") or m.get("model")) for m in models or []
                if isinstance(m, Mapping)]

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return function_tools(tools)  # the same shape as Chat Completions

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if opts.get("temperature") is not None:
            options["temperature"] = opts["temperature"]
        if opts.get("max_tokens"):
            options["num_predict"] = opts["max_tokens"]
        if opts.get("stop"):
            stop = opts["stop"]
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        # `stream` always explicit: Ollama streams when it is left out.
        body: dict[str, Any] = {"model": opts.get("model") or self.model,
                                "messages": to_ollama_messages(messages, opts.get("system"),
                                                               WireParts("ollama", self.name),
                                                               self.name),
                                "stream": stream}
        if options:
            body["options"] = options
        if tools:
            body["tools"] = self.get_tool_schema(tools)
        if opts.get("think") is not None:
            body["think"] = opts["think"]  # top level: inside `options` it is ignored
        return body

    def parse_response(self, data: Any) -> CompletionResponse:
        if not isinstance(data, Mapping):
            raise ProtocolError("response is not a JSON object", provider=self.name)
        if data.get("error"):
            self.raise_stream_error(data)
        accumulator = OllamaStream(self)
        for _ in accumulator.feed(data):
            pass
        return accumulator.finish()

    def new_accumulator(self) -> OllamaStream:
        return OllamaStream(self)

    def tool_call(self, raw: Mapping[str, Any]) -> ToolCall:
        function = raw.get("function") or {}
        name = str(function.get("name") or "")
        arguments = function.get("arguments")
        if not isinstance(arguments, dict):  # an object on this API; a string from some proxies
            arguments = parse_tool_arguments(arguments, tool=name, provider=self.name)
        return ToolCall(str(raw.get("id") or new_call_id()), name, arguments)


class OllamaStream(Accumulator):
    """NDJSON objects: ``message.content`` and ``message.thinking`` deltas, whole tool calls
    (each in one line, numbered by ``function.index``; an ``id`` from v0.12.10, else one is
    made), usage and ``done_reason`` on ``done: true``."""

    def __init__(self, provider: OllamaProvider) -> None:
        self.provider = provider
        self.text = TextBuffer(provider.name)
        self.thinking = TextBuffer(provider.name)
        self.calls: list[tuple[int, ToolCall]] = []  # (function.index or arrival, call)
        self.final: Mapping[str, Any] | None = None

    def feed(self, item: Any) -> Iterable[str | StreamEvent]:
        if not isinstance(item, Mapping):
            raise ProtocolError("stream line is not a JSON object", provider=self.provider.name)
        if item.get("error"):
            self.provider.raise_stream_error(item)
        out: list[str | StreamEvent] = []
        message = item.get("message") or {}
        content = message.get("content")
        if content and isinstance(content, str):
            self.text.add(content)
            out.append(content)
        if message.get("thinking"):
            self.thinking.add(str(message["thinking"]))
            out.append(StreamEvent("reasoning", str(message["thinking"])))
        for raw in message.get("tool_calls") or []:
            call = self.provider.tool_call(raw)
            check_tool_calls(len(self.calls) + 1, self.provider.name)
            index = (raw.get("function") or {}).get("index")
            ordinal = index if isinstance(index, int) and not isinstance(index, bool) \
                else len(self.calls)
            self.calls.append((ordinal, call))
            out.append(StreamEvent("tool_call", tool_call=call))
        if item.get("done"):
            self.final = item
        return out

    def _ordered(self) -> list[ToolCall]:
        return [call for _, call in sorted(self.calls, key=lambda pair: pair[0])]

    def finish(self) -> CompletionResponse:
        final = self.final
        if final is None:
            raise ProtocolError("stream ended before a line with done: true (truncated "
                                "response)", provider=self.provider.name)
        return self._response(final, unique_ids(self._ordered()))

    def _response(self, final: Mapping[str, Any], calls: list[ToolCall]) -> CompletionResponse:
        reason = final.get("done_reason")
        finish = "tool_calls" if calls and reason != "length" else \
            DONE_REASONS.get(str(reason), "stop")
        raw = dict(final)
        thinking = self.thinking.value()
        if thinking:
            raw["thinking"] = thinking
        # Counters are omitted when zero (`omitempty` in Ollama's Go types).
        usage = make_usage(token_count(final, "prompt_eval_count"),
                           token_count(final, "eval_count"))
        return CompletionResponse(content=self.text.value(),
                                  model=str(final.get("model", "")),
                                  provider=self.provider.name, usage=usage, tool_calls=calls,
                                  finish_reason=finish, raw=raw,
                                  stop_reason=str(reason or ""), reasoning=thinking,
                                  native=tagged(self.provider.name, "ollama", thinking=thinking)
                                  if thinking else None)

    def partial(self) -> CompletionResponse:
        return self._response({"model": self.provider.model, "incomplete": True},
                              self._ordered())
