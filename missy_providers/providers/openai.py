"""OpenAI Chat Completions, and every OpenAI-compatible service by ``base_url``
(wire-formats.md section 3)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from ..content import WireParts
from ..core.errors import ProtocolError
from ..core.response import parse_json
from ..streams import Event
from ..types import (
    CompletionResponse,
    Message,
    Refusal,
    StreamEvent,
    Tool,
    ToolCall,
    make_usage,
    token_count,
)
from .base import BaseProvider, parse_tool_arguments
from .dialects import (
    CHAT_MESSAGE_FIELDS,
    call_fields,
    chat_native,
    details_text,
    merge_details,
    message_fields,
    native_of,
    readable_reasoning,
)
from .streaming import NOT_QUICK, Accumulator, TextBuffer, check_tool_calls, quick_json

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

OPENAI_HOST = "api.openai.com"
# Reasoning models reject the deprecated `max_tokens`; OpenAI itself takes the new name for all.
_MAX_COMPLETION_TOKENS_PREFIXES = ("o1", "o3", "o4", "gpt-5")
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                  "function_call": "tool_calls", "content_filter": "stop"}


def new_call_id() -> str:
    return "call_" + os.urandom(12).hex()


def unique_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """Servers send ids that are empty or repeated (``""``, ``"0"``): a tool loop needs each
    result to answer exactly one call, so such ids are replaced by fresh unique ones."""
    seen: set[str] = set()
    out = []
    for call in calls:
        if not call.id or call.id in seen:
            call = ToolCall(new_call_id(), call.name, call.arguments)
        seen.add(call.id)
        out.append(call)
    return out


def usage_from(raw: Mapping[str, Any] | None) -> dict[str, int]:
    raw = raw or {}  # absent on some compatible servers
    total = raw.get("total_tokens")
    return make_usage(token_count(raw, "prompt_tokens"), token_count(raw, "completion_tokens"),
                      None if total is None else token_count(raw, "total_tokens"),
                      cached=token_count(raw, "prompt_tokens_details", "cached_tokens"),
                      reasoning=token_count(raw, "completion_tokens_details",
                                            "reasoning_tokens"))


def finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    # Tool calls present means tool_calls, whatever the server said: OpenAI answers "stop"
    # when tool_choice names a function (vLLM copies it), and a loop must run the call.
    if has_tool_calls:
        return "tool_calls"
    if reason is None or reason not in FINISH_REASONS:
        return "stop"
    return FINISH_REASONS[reason]


def flagged(filters: Any) -> list[str]:
    """The categories an Azure content filter result marks ``filtered: true``, in its order."""
    if not isinstance(filters, Mapping):
        return []
    return [name for name, result in filters.items()
            if isinstance(result, Mapping) and result.get("filtered")]


def chat_refusal(text: str, reason: str | None, categories: Sequence[str]) -> Refusal | None:
    """A refusal: the model's ``refusal`` text (OpenAI ends it with finish_reason "stop"), or a
    content filter's ``content_filter`` finish, with the categories an Azure filter flagged."""
    if text:
        return Refusal(text)
    if reason != "content_filter":
        return None
    return Refusal(category=", ".join(categories) or None)


def filter_error_refusal(data: Any) -> Refusal:
    """Azure's content-filter 400: the categories its ``innererror.content_filter_result``
    flagged (so the live service; its spec says ``inner_error.content_filter_results``)."""
    error = data.get("error") if isinstance(data, Mapping) else None
    inner = (error.get("innererror") or error.get("inner_error")) \
        if isinstance(error, Mapping) else None
    results = (inner.get("content_filter_result") or inner.get("content_filter_results")) \
        if isinstance(inner, Mapping) else None
    return Refusal(category=", ".join(flagged(results)) or None)


def function_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Tools as ``{"type": "function", "function": {...}}`` (Chat Completions, and Ollama)."""
    return [{"type": "function", "function": {
        "name": t.name, "description": t.description, "parameters": t.object_schema(),
        **({"strict": True} if t.strict else {})}} for t in tools]


_NONE: Mapping[str, Any] = {}  # a message with no native record (never changed)


def to_openai_messages(messages: Sequence[Message], system: str | None, parts: WireParts,
                       provider: str = "") -> list[dict[str, Any]]:
    """Messages -> Chat Completions messages. An assistant turn from this provider gets back
    the reasoning fields and per-call fields its server sent (dialects.py); once the
    conversation shows a dialect whose server insists (DeepSeek), a tool-call turn without
    the field gets the dialect's empty value."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    # The plain turn (text, no tool calls, nothing native) in one step, for every turn at once;
    # the others (left as Messages here) by the full rules below.
    wired: list[Any] = [
        {"role": m.role, "content": c} if (c := m.content).__class__ is str and  # pragma: no mutate
        m.native is None and not m.tool_calls and m.role != "tool" else m for m in messages]
    if Message not in map(type, wired):  # pragma: no mutate
        return out + wired
    natives = [native_of(m, provider, "openai") if m.native is not None else _NONE
               for m in messages]
    shown = {key for n in natives if n for key in n.get("message", {})}
    fills = {f.key: f.fill for f in CHAT_MESSAGE_FIELDS
             if f.fill is not None and f.key in shown}
    append = out.append
    for m, native, wire in zip(messages, natives, wired, strict=True):
        if wire is not m:
            append(wire)
            continue
        if m.role == "tool" and m.tool_result is not None:
            result = m.tool_result.content
            out.append({"role": "tool", "tool_call_id": m.tool_result.tool_call_id,
                        "content": result if isinstance(result, str) else
                        parts.blocks(result, "tool result")})
        elif m.role == "assistant" and m.tool_calls:
            per_call = native.get("tool_calls") or {}
            out.append({"role": "assistant",
                        "content": parts.text_only(m.content, "assistant turn") or None,
                        **fills, **(native.get("message") or {}),
                        "tool_calls": [
                            {"id": c.id, "type": "function",
                             "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                             **per_call.get(c.id, {})}
                            for c in m.tool_calls]})
        elif m.role == "user" and not isinstance(m.content, str):
            out.append({"role": "user", "content": parts.blocks(m.content, "user turn")})
        else:
            out.append({"role": m.role, "content": parts.text_only(m.content, f"{m.role} turn"),
                        **(native.get("message") or {})})
    return out


class OpenAIProvider(BaseProvider):
    """OpenAI Chat Completions (``POST {base_url}/chat/completions``, SSE streams), and every
    OpenAI-compatible service reached by ``base_url`` (OpenRouter, Groq, vLLM, LiteLLM, ...).

    The key goes in ``Authorization: Bearer``; ``OPENAI_API_KEY`` is used only for
    api.openai.com itself."""

    provider_type = "openai"
    extra_options = frozenset({"prompt_cache_key"})

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.is_openai = (urlsplit(self.config.base_url).hostname or "").lower() == OPENAI_HOST

    @property
    def key_required(self) -> bool:  # type: ignore[override]
        """OpenAI needs a key; a compatible server (a local vLLM, Ollama /v1) may not."""
        return self.is_openai

    def endpoint(self) -> str:
        return f"{self.config.base_url}/chat/completions"

    def protocol_headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {}
        if self.config.organization:
            headers["OpenAI-Organization"] = self.config.organization
        if self.config.project:
            headers["OpenAI-Project"] = self.config.project
        return headers

    probe_path = "/models"

    def is_available(self) -> bool:
        """A key for OpenAI; for a compatible server without a key, a short probe of
        ``GET {base_url}/models`` through the policy client. Never raises."""
        if self.keys.current() is not None or self.credential is not None:
            return self.has_credentials()
        return not self.is_openai and self.probe().ok

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return function_tools(tools)

    def takes_max_completion_tokens(self, model: str) -> bool:
        """OpenAI itself takes the new name for every model; elsewhere reasoning models need
        it and other servers may know only ``max_tokens``."""
        return self.is_openai or model.startswith(_MAX_COMPLETION_TOKENS_PREFIXES)

    def refusal_of_error(self, data: Any) -> Refusal | None:
        return filter_error_refusal(data)

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        model = opts.get("model") or self.model
        body: dict[str, Any] = {"model": model, "messages": to_openai_messages(
            messages, opts.get("system"), WireParts("chat", self.name), self.name)}
        if opts.get("max_tokens"):
            new_name = self.takes_max_completion_tokens(model)
            body["max_completion_tokens" if new_name else "max_tokens"] = opts["max_tokens"]
        if opts.get("temperature") is not None:
            body["temperature"] = opts["temperature"]
        if opts.get("stop"):
            body["stop"] = opts["stop"]
        if tools:
            body["tools"] = self.get_tool_schema(tools)
        if opts.get("prompt_cache_key"):
            body["prompt_cache_key"] = opts["prompt_cache_key"]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse_response(self, data: Any) -> CompletionResponse:
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not choices:
            raise ProtocolError("response has no choices", provider=self.name)
        choice = choices[0]
        message = choice.get("message") or {}
        raw_calls = list(message.get("tool_calls") or [])
        calls = [self._tool_call(c.get("id") or "", c.get("function") or {}) for c in raw_calls]
        extras = [call_fields(c) for c in raw_calls]
        if message.get("function_call"):  # legacy `functions` shape
            calls.append(self._tool_call("", message["function_call"]))
            extras.append({})
        calls = unique_ids(calls)
        fields = message_fields(message)
        reason = choice.get("finish_reason")
        return CompletionResponse(
            content=message.get("content") or "", model=str(data.get("model", "")),
            provider=self.name, usage=usage_from(data.get("usage")), tool_calls=calls,
            finish_reason=finish_reason(reason, bool(calls)),
            raw=dict(data), stop_reason=str(reason or ""),
            reasoning=readable_reasoning(fields),
            native=chat_native(self.name, fields, list(zip(calls, extras, strict=True))),
            refusal=chat_refusal(str(message.get("refusal") or ""), reason,
                                 flagged(choice.get("content_filter_results"))))

    def _tool_call(self, call_id: str, function: Mapping[str, Any]) -> ToolCall:
        name = str(function.get("name") or "")
        return ToolCall(call_id, name, parse_tool_arguments(function.get("arguments"), tool=name,
                                                            provider=self.name))

    def new_accumulator(self) -> OpenAIStream:
        return OpenAIStream(self)


class OpenAIStream(Accumulator):
    """Chat Completions chunks: text appended; tool calls keyed by ``index`` with id and name
    from the first fragment that has them and only ``arguments`` concatenated (some servers
    repeat id/name in every fragment); a later null finish_reason does not reset an earlier
    one; the usage chunk may have no choices; ``[DONE]`` ends it. Reasoning fields join as
    dialects.py says; ``refusal`` pieces are concatenated."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider
        self.text = TextBuffer(provider.name)
        self.reasoning = TextBuffer(provider.name)
        self.refusal = TextBuffer(provider.name)
        self.fields: dict[str, Any] = {}  # reasoning fields to send back (TextBuffer: text)
        # The categories Azure's filter flagged in any chunk (an annotation chunk of the
        # asynchronous filter may come after the finish_reason chunk).
        self.flagged: dict[str, None] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.meta: dict[str, Any] = {}
        self.meta_id = False  # the stream's id was seen
        self.done = False

    def feed(self, item: Event) -> Iterable[str | StreamEvent]:
        data = item[1]
        chunk = quick_json(data)
        if chunk is NOT_QUICK:
            if data.startswith("[DONE]"):
                self.done = True
                return ()
            chunk = parse_json(data, "stream chunk", self.provider.name)
        elif self.meta_id and chunk.__class__ is dict:  # pragma: no mutate (a fast path)
            # The commonest chunk: one choice whose delta is only text. Anything more (a
            # finish reason, usage, an error, a filter, reasoning, a tool call) takes the full
            # rules below, which would do exactly this with this one.
            choices = chunk.get("choices")
            if choices.__class__ is list and len(choices) == 1 and not chunk.get("usage") \
                    and "error" not in chunk:  # pragma: no mutate
                choice = choices[0]
                if choice.__class__ is dict and choice.get("finish_reason") is None and \
                        choice.get("index", 0) == 0 and \
                        "content_filter_results" not in choice:  # pragma: no mutate
                    delta = choice.get("delta")
                    if delta.__class__ is dict and len(delta) == 1:  # pragma: no mutate
                        content = delta.get("content")
                        if content.__class__ is str:  # pragma: no mutate
                            if not content:
                                return ()
                            self.text.add(content)
                            return (content,)
        return self._chunk(chunk)

    def _chunk(self, chunk: Any) -> Iterable[str | StreamEvent]:
        """One parsed chunk, by the full rules."""
        if not isinstance(chunk, dict):
            raise ProtocolError("stream chunk is not a JSON object", provider=self.provider.name)
        if chunk.get("error"):
            self.provider.raise_stream_error(chunk)
        if not self.meta_id and chunk.get("id"):
            # Azure's first chunk has only prompt_filter_results, with id and model "".
            self.meta = {"id": chunk.get("id"), "model": chunk.get("model")}
            self.meta_id = True
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        out: list[str | StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") and self.finish_reason != "content_filter":
                self.finish_reason = choice["finish_reason"]  # a filter's word is the last
            self.flagged.update(dict.fromkeys(flagged(choice.get("content_filter_results"))))
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content and isinstance(content, str):
                self.text.add(content)
                out.append(content)
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                self.refusal.add(refusal)
                out.append(StreamEvent("refusal", refusal))
            shown = self._fields(delta)
            if shown:  # compatible servers' thinking
                self.reasoning.add(shown)
                out.append(StreamEvent("reasoning", shown))
            for frag in delta.get("tool_calls") or []:
                self._merge(frag)
        return out

    def _fields(self, delta: Mapping[str, Any]) -> str:
        """The delta's reasoning fields joined into what is kept; returns the readable piece
        (``reasoning`` or ``reasoning_content``, else the text of reasoning_details)."""
        for field in CHAT_MESSAGE_FIELDS:
            value = delta.get(field.key)
            if value is None:
                continue
            if field.join == "text" and isinstance(value, str):
                buffer = self.fields.get(field.key)
                if buffer is None:
                    buffer = self.fields[field.key] = TextBuffer(self.provider.name)
                buffer.add(value)
            elif field.join == "details" and isinstance(value, list):
                merge_details(self.fields.setdefault(field.key, []), value)
            elif field.join == "last":
                self.fields[field.key] = value
        shown = delta.get("reasoning") or delta.get("reasoning_content")
        if isinstance(shown, str):
            return shown
        details = delta.get("reasoning_details")
        return details_text(details) if isinstance(details, list) and \
            "reasoning" not in self.fields and "reasoning_content" not in self.fields else ""

    def _merge(self, frag: Mapping[str, Any]) -> None:
        index = frag.get("index", len(self.calls))
        if not isinstance(index, int) or isinstance(index, bool):
            raise ProtocolError("tool call fragment with a non-integer index",
                                provider=self.provider.name)
        call = self.calls.get(index)
        if call is None:
            check_tool_calls(len(self.calls) + 1, self.provider.name)
            call = self.calls[index] = {"id": "", "name": "", "extra": {},
                                        "arguments": TextBuffer(self.provider.name)}
        function = frag.get("function") or {}
        if frag.get("id") and not call["id"]:
            call["id"] = frag["id"]
        if function.get("name") and not call["name"]:
            call["name"] = function["name"]
        if function.get("arguments"):
            call["arguments"].add(str(function["arguments"]))
        for key, value in call_fields(frag).items():  # Gemini: on the first fragment
            call["extra"].setdefault(key, value)

    def finish(self) -> CompletionResponse:
        if not self.done:
            # Every Chat Completions server we know ends with [DONE]; without it the stream
            # was cut (after a finish_reason chunk, the usage chunk may still have been due).
            raise ProtocolError("stream ended without [DONE] (truncated response)",
                                provider=self.provider.name)
        name = self.provider.name
        ordered = [c for _, c in sorted(self.calls.items())]
        calls = unique_ids([
            ToolCall(c["id"], c["name"], parse_tool_arguments(c["arguments"].value(),
                                                              tool=c["name"], provider=name))
            for c in ordered])
        return self._response(calls, [c["extra"] for c in ordered])

    def _response(self, calls: list[ToolCall], extras: Sequence[Mapping[str, Any]] = ()
                  ) -> CompletionResponse:
        raw = {**self.meta, "finish_reason": self.finish_reason, "usage": self.usage}
        if self.reasoning:
            raw["reasoning"] = self.reasoning.value()
        fields = {key: value.value() if isinstance(value, TextBuffer) else value
                  for key, value in self.fields.items()}
        return CompletionResponse(
            content=self.text.value(), model=str(self.meta.get("model") or ""),
            provider=self.provider.name, usage=usage_from(self.usage), tool_calls=calls,
            finish_reason=finish_reason(self.finish_reason, bool(calls)), raw=raw,
            stop_reason=str(self.finish_reason or ""), reasoning=self.reasoning.value(),
            native=chat_native(self.provider.name, fields,
                               list(zip(calls, extras, strict=True))),
            refusal=chat_refusal(self.refusal.value(), self.finish_reason, list(self.flagged)))

    def partial(self) -> CompletionResponse:
        return self._response([])
