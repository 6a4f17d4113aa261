"""Anthropic Messages API (wire-formats.md section 2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from ..content import WireParts, cache_control
from ..core.errors import ProtocolError, at_boundary
from ..core.response import parse_json
from ..streams import Event
from ..types import (
    CompletionResponse,
    Message,
    ModelInfo,
    Refusal,
    StreamEvent,
    Tool,
    ToolCall,
    make_usage,
    token_count,
)
from .base import BaseProvider, parse_tool_arguments, system_parts
from .dialects import native_of, tagged
from .model_facts import from_anthropic
from .streaming import NOT_QUICK, Accumulator, TextBuffer, check_tool_calls, quick_json

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls",
                  "max_tokens": "length", "model_context_window_exceeded": "length"}


def refusal_from(data: Mapping[str, Any]) -> Refusal | None:
    """``stop_reason: "refusal"`` (a classifier stopped the answer, maybe after some text), with
    the category and explanation of ``stop_details`` when it has them."""
    if data.get("stop_reason") != "refusal":
        return None
    details = data.get("stop_details")
    details = details if isinstance(details, Mapping) else {}
    category, explanation = details.get("category"), details.get("explanation")
    return Refusal(category=str(category) if category else None,
                   explanation=str(explanation) if explanation else None)


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    if has_tool_calls and stop_reason in (None, "tool_use"):
        return "tool_calls"
    return FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from(raw: Mapping[str, Any]) -> dict[str, int]:
    """Total input = input + cache creation + cache read (the API counts them apart)."""
    cache_read = token_count(raw, "cache_read_input_tokens")
    cache_write = token_count(raw, "cache_creation_input_tokens")
    prompt = token_count(raw, "input_tokens") + cache_read + cache_write
    return make_usage(prompt, token_count(raw, "output_tokens"), cached=cache_read,
                      cache_write=cache_write)


_PLAIN_ROLES = frozenset({"user", "assistant"})


def to_anthropic_messages(messages: Sequence[Message], parts: WireParts, provider: str = ""
                          ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    append = out.append
    for m in messages:
        role, content = m.role, m.content
        if content.__class__ is str and m.native is None and not m.tool_calls and \
                role in _PLAIN_ROLES:  # pragma: no mutate (the plain turn, in one step)
            append({"role": role, "content": content})
            continue
        if role == "system":
            continue
        if m.role == "tool" and m.tool_result is not None:
            r = m.tool_result
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": r.tool_call_id,
                                     "content": r.content if isinstance(r.content, str) else
                                     parts.blocks(r.content, "tool result")}
            if r.is_error:
                block["is_error"] = True
            last = out[-1] if out else None
            # Every result answering one assistant turn goes in a single user turn.
            if last and last["role"] == "user" and isinstance(last["content"], list) and \
                    all(b.get("type") == "tool_result" for b in last["content"]):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant":
            native = native_of(m, provider, "anthropic")
            if native:  # thinking blocks and their signatures, verbatim, to this provider only
                out.append({"role": "assistant", "content": native["content"]})
            elif m.tool_calls:
                text = parts.text_only(m.content, "assistant turn")
                blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
                blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                           for c in m.tool_calls]
                out.append({"role": "assistant", "content": blocks})
            else:
                out.append({"role": "assistant",
                            "content": parts.text_only(m.content, "assistant turn")})
        else:
            out.append({"role": "user", "content": m.content if isinstance(m.content, str)
                        else parts.blocks(m.content, "user turn")})
    return out


def response_from_message(data: Mapping[str, Any], provider: str) -> CompletionResponse:
    """A complete Messages API ``message`` object -> CompletionResponse."""
    content = data.get("content") or []
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [ToolCall(b["id"], b["name"], b.get("input") or {}) for b in content
             if b.get("type") == "tool_use"]
    return CompletionResponse(
        content=text, model=str(data.get("model", "")), provider=provider,
        usage=usage_from(data.get("usage") or {}), tool_calls=calls,
        finish_reason=finish_reason(data.get("stop_reason"), bool(calls)), raw=dict(data),
        native=tagged(provider, "anthropic", content=content),
        stop_reason=str(data.get("stop_reason") or ""), refusal=refusal_from(data),
        reasoning="".join(str(b.get("thinking") or "") for b in content
                          if b.get("type") == "thinking"),
    )


class AnthropicProvider(BaseProvider):
    """Anthropic's Messages API (``POST /v1/messages``, SSE streams), key in ``x-api-key``.

    Thinking blocks and their signatures are kept in ``native`` and replayed verbatim; tool
    calls come from ``tool_use`` blocks, tool results go back as ``tool_result`` blocks."""

    provider_type = "anthropic"
    extra_options = frozenset({"reasoning_budget"})

    @property
    def probe_path(self) -> str:  # type: ignore[override]
        return "/models" if self.config.base_url.endswith("/v1") else "/v1/models"

    # POST /v1/messages/count_tokens takes the request without max_tokens, stream, sampling.
    count_keys = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking",
                            "output_config"})

    @property
    def count_path(self) -> str:  # type: ignore[override]
        return self.probe_path.replace("models", "messages/count_tokens")

    @at_boundary
    def model_info(self, name: str | None = None) -> ModelInfo:
        """``GET /v1/models/{id}`` (an id or an alias): ``max_input_tokens``, ``max_tokens``
        and ``capabilities`` as the Models API gives them."""
        path = f"{self.probe_path}/{quote(name or self.model, safe='')}"
        return from_anthropic(self._get_json(path), f"GET {path}")

    def info_from(self, entry: Mapping[str, Any], source: str) -> ModelInfo:
        return from_anthropic(entry, source)

    def endpoint(self) -> str:
        base = self.config.base_url
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    auth_header, auth_scheme = "x-api-key", ""

    def protocol_headers(self) -> dict[str, Any]:
        return {"anthropic-version": API_VERSION}

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return [{"name": t.name, "description": t.description,
                 "input_schema": t.object_schema()} for t in tools]

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": opts.get("model") or self.model,
            "max_tokens": opts.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "messages": to_anthropic_messages(messages, WireParts("anthropic", self.name),
                                              self.name),
        }
        system = system_parts(messages, opts.get("system"))
        if any(p.cache for p in system):  # marked parts: blocks; else one string, as ever
            body["system"] = [{"type": "text", "text": p.text,
                               **({"cache_control": cache_control(p.cache)} if p.cache else {})}
                              for p in system]
        elif system:
            body["system"] = "\n\n".join(p.text for p in system if p.text)
        if opts.get("temperature") is not None:
            body["temperature"] = opts["temperature"]
        if opts.get("stop"):
            stop = opts["stop"]
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if tools:
            body["tools"] = self.get_tool_schema(tools)
        if stream:
            body["stream"] = True
        return body

    def parse_response(self, data: Any) -> CompletionResponse:
        if not isinstance(data, Mapping) or data.get("type") != "message":
            raise ProtocolError("response is not a Messages API message", provider=self.name)
        return response_from_message(data, self.name)

    def new_accumulator(self) -> AnthropicStream:
        return AnthropicStream(self)


class AnthropicStream(Accumulator):
    """Rebuilds the message from SSE events (anthropic-sdk accumulate_event rules): blocks by
    index, text/thinking deltas appended, signature replaced, tool JSON parsed at block stop,
    ``output_tokens`` replaced (it is cumulative), events before ``message_start`` refused."""

    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, TextBuffer] = {}
        # Text and thinking arrive in thousands of deltas: joined as they come (adding each
        # delta to a growing str would copy it again every time; a list keeps every piece).
        self.pieces: dict[tuple[int, str], TextBuffer] = {}
        self.texts: dict[int, TextBuffer] = {}  # a text block's buffer, by index, once begun
        self.stopped = False

    def feed(self, item: Event) -> Iterable[str | StreamEvent]:
        name = item[0]
        if name == "ping":
            return ()
        data = quick_json(item[1])
        if data is NOT_QUICK:
            data = parse_json(item[1], f"event {name[:40]!r} data", self.provider.name)
        elif name == "content_block_delta" and data.__class__ is dict:  # pragma: no mutate
            # The commonest event: more text for a text block already begun. Anything else
            # takes the full rules below, which would do exactly this with this one.
            delta = data.get("delta")
            if delta.__class__ is dict and delta.get("type") == "text_delta":  # pragma: no mutate
                text = delta.get("text")
                buffer = self.texts.get(data.get("index"))  # type: ignore[arg-type]
                if buffer is not None and text.__class__ is str:  # pragma: no mutate
                    if not text:
                        return ()
                    buffer.add(text)
                    return (text,)
        if not isinstance(data, dict):
            raise ProtocolError(f"event {name[:40]!r} data is not a JSON object",
                                provider=self.provider.name)
        if name == "error":
            self.provider.raise_stream_error(data)
        if name == "message_start":
            self.message = dict(data.get("message") or {})
            return ()
        if self.message is None:
            raise ProtocolError(f"event {name!r} arrived before message_start",
                                provider=self.provider.name)
        if name == "content_block_delta":
            return self._delta(data["index"], data.get("delta") or {})
        if name == "content_block_start":
            block = dict(data.get("content_block") or {})
            if block.get("type") in ("tool_use", "server_tool_use"):
                # the `input: {}` there is a placeholder
                self.partial_json[data["index"]] = TextBuffer(self.provider.name)
            if data["index"] not in self.blocks:
                check_tool_calls(len(self.blocks) + 1, self.provider.name)
            self.blocks[data["index"]] = block
        elif name == "content_block_stop":
            return self._stop(data["index"])
        elif name == "message_delta":
            delta = data.get("delta") or {}
            self.message["stop_reason"] = delta.get("stop_reason")
            self.message["stop_sequence"] = delta.get("stop_sequence")
            self.message["stop_details"] = delta.get("stop_details")
            usage = self.message.setdefault("usage", {})
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            if delta.get("stop_reason") == "refusal":  # seen as it happens, not only at the end
                return (StreamEvent("refusal"),)
        elif name == "message_stop":
            self.stopped = True
        return ()

    def _block(self, index: int) -> dict[str, Any]:
        try:
            return self.blocks[index]
        except KeyError:
            raise ProtocolError(f"delta for content block {index} before its start",
                                provider=self.provider.name) from None

    def _delta(self, index: int, delta: Mapping[str, Any]) -> Iterable[str | StreamEvent]:
        block = self._block(index)
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text", ""))
            piece = self._piece(index, block, "text")
            piece.add(text)
            self.texts[index] = piece  # later text deltas of this block: the quick path
            return (text,) if text else ()
        if kind == "input_json_delta":
            buffer = self.partial_json.get(index)
            if buffer is None:
                buffer = self.partial_json[index] = TextBuffer(self.provider.name)
            buffer.add(str(delta.get("partial_json", "")))
        elif kind == "thinking_delta":
            thinking = str(delta.get("thinking", ""))
            self._piece(index, block, "thinking").add(thinking)
            return (StreamEvent("reasoning", thinking),) if thinking else ()
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        return ()

    def _piece(self, index: int, block: dict[str, Any], field: str) -> TextBuffer:
        pieces = self.pieces.get((index, field))
        if pieces is None:
            pieces = self.pieces[index, field] = TextBuffer(self.provider.name,
                                                            str(block.get(field, "")))
        return pieces

    def _stop(self, index: int) -> Iterable[StreamEvent]:
        block = self._block(index)
        if index not in self.partial_json:
            return ()
        block["input"] = parse_tool_arguments(self.partial_json.pop(index).value(),
                                              tool=block.get("name", ""),
                                              provider=self.provider.name)
        if block.get("type") != "tool_use":
            return ()
        return (StreamEvent("tool_call", tool_call=ToolCall(block["id"], block["name"],
                                                            block["input"])),)

    def finish(self) -> CompletionResponse:
        if self.message is None or not self.stopped:
            raise ProtocolError("stream ended before message_stop (truncated response)",
                                provider=self.provider.name)
        return self._response()

    def _response(self) -> CompletionResponse:
        message = dict(self.message or {})
        blocks = {i: dict(b) for i, b in self.blocks.items()}
        for (index, field), pieces in self.pieces.items():
            blocks[index][field] = pieces.value()
        message["content"] = [blocks[i] for i in sorted(blocks)]
        return response_from_message(message, self.provider.name)

    def partial(self) -> CompletionResponse:
        # Only whole text and thinking: a tool call's input is incomplete until its stop.
        self.blocks = {i: b for i, b in self.blocks.items()
                       if b.get("type") not in ("tool_use", "server_tool_use")}
        return self._response()
