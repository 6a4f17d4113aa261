"""The Converse API's shapes (AWS Bedrock; botocore's bedrock-runtime service model,
2023-09-30): messages and content blocks out, an answer's content blocks in, and the
ConverseStream events (eventstream.py decodes their frames) rebuilt into the same answer.
The provider that sends them, with its credentials and URLs, is bedrock.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from ..content import WireParts
from ..core.errors import (
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    excerpt,
)
from ..core.response import parse_json
from ..eventstream import EventMessage
from ..types import (
    CompletionResponse,
    Message,
    Refusal,
    StreamEvent,
    ToolCall,
    make_usage,
    token_count,
)
from .anthropic import finish_reason
from .base import MAX_SERVER_MESSAGE_CHARS, BaseProvider, parse_tool_arguments
from .dialects import native_of, tagged
from .error_mapping import classify_stream_error
from .streaming import Accumulator, TextBuffer, check_tool_calls

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

# Converse's stop reasons are the Messages API's (anthropic.finish_reason maps them) and these
# two, which say a guardrail or a content filter stopped the answer: a refusal, with the stop
# reason as its category.
REFUSALS = frozenset({"guardrail_intervened", "content_filtered"})
# What an exception frame inside a 200 stream (:exception-type) is; the others
# (validationException) are typed by their text: a too-long input is a ContextLengthError.
STREAM_EXCEPTIONS: dict[str, type[ProviderError]] = {
    "throttlingException": RateLimitError,
    "modelStreamErrorException": ProviderUnavailable,
    "internalServerException": ProviderUnavailable,
    "serviceUnavailableException": ProviderUnavailable,
}


def usage_from(raw: Mapping[str, Any]) -> dict[str, int]:
    """Input = inputTokens + cache reads + cache writes (Bedrock counts them apart, as
    Anthropic does); the total is the server's."""
    cache_read = token_count(raw, "cacheReadInputTokens")
    cache_write = token_count(raw, "cacheWriteInputTokens")
    total = raw.get("totalTokens")
    return make_usage(token_count(raw, "inputTokens") + cache_read + cache_write,
                      token_count(raw, "outputTokens"),
                      None if total is None else token_count(raw, "totalTokens"),
                      cached=cache_read, cache_write=cache_write)


def replayable(content: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An answer's content blocks as the next request sends them back: verbatim (reasoning
    with its signature must be), but a tool use reduced to the fields the request takes
    (Claude's answers add a ``type`` the request's enum does not have), and no empty text
    (GPT-OSS streams one)."""
    out = []
    for block in content:
        use = block.get("toolUse")
        if isinstance(use, Mapping):
            block = {"toolUse": {k: use[k] for k in ("toolUseId", "name", "input") if k in use}}
        if block.get("text") != "":  # an empty text block is refused in a request
            out.append(dict(block))
    return out


def tool_call(use: Mapping[str, Any], provider: str) -> ToolCall:
    name = str(use.get("name") or "")
    given = use.get("input")
    arguments = given if isinstance(given, dict) else parse_tool_arguments(
        json.dumps(given) if given is not None else None, tool=name, provider=provider)
    return ToolCall(str(use.get("toolUseId") or ""), name, arguments)


def response_from(content: Sequence[Mapping[str, Any]], stop_reason: Any,
                  usage: Mapping[str, Any], raw: Mapping[str, Any], provider: str,
                  model: str) -> CompletionResponse:
    """A Converse message's content blocks (or a stream's, rebuilt) -> CompletionResponse."""
    text = "".join(str(b["text"]) for b in content if isinstance(b.get("text"), str))
    calls = [tool_call(b["toolUse"], provider) for b in content
             if isinstance(b.get("toolUse"), Mapping)]
    reasoning = "".join(str((b["reasoningContent"].get("reasoningText") or {}).get("text") or "")
                        for b in content if isinstance(b.get("reasoningContent"), Mapping))
    stop = str(stop_reason or "")
    return CompletionResponse(
        content=text, model=model, provider=provider, usage=usage_from(usage),
        tool_calls=calls, finish_reason=finish_reason(stop_reason, bool(calls)),
        raw=dict(raw), native=tagged(provider, "bedrock", content=replayable(content)),
        stop_reason=stop, reasoning=reasoning,
        refusal=Refusal(category=stop) if stop in REFUSALS else None)


def to_converse_messages(messages: Sequence[Message], parts: WireParts, provider: str = ""
                         ) -> list[dict[str, Any]]:
    """Messages -> Converse messages. Roles alternate (a turn of the same role as the one
    before joins it: results of parallel tool calls are one user turn); an assistant turn
    from this provider is its content blocks, verbatim (reasoning and its signature)."""
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[Any]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool" and m.tool_result is not None:
            r = m.tool_result
            add("user", [{"toolResult": {
                "toolUseId": r.tool_call_id, "content": parts.blocks(r.content, "tool result"),
                "status": "error" if r.is_error else "success"}}])
        elif m.role == "assistant":
            native = native_of(m, provider, "bedrock")
            if native:
                add("assistant", [dict(b) for b in native["content"]])
                continue
            text = parts.text_only(m.content, "assistant turn")
            add("assistant", ([{"text": text}] if text else []) + [
                {"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}}
                for c in m.tool_calls])
        else:
            add("user", parts.blocks(m.content, "user turn"))
    return out


class ConverseStream(Accumulator):
    """ConverseStream events, keyed by ``contentBlockIndex``: text and reasoning blocks open
    with their first delta (they have no contentBlockStart), a tool use with its start, its
    input string pieces joined and parsed at contentBlockStop; ``messageStop`` has the stop
    reason and ``metadata``, after it, the usage: both must arrive. The padding field ``p``
    of every payload, and event types added later, are ignored."""

    def __init__(self, provider: BaseProvider) -> None:
        self.provider = provider
        self.started = False
        self.blocks: dict[int, dict[str, Any]] = {}
        self.texts: dict[int, TextBuffer] = {}  # text, reasoning text or tool input
        self.stop: dict[str, Any] | None = None
        self.metadata: dict[str, Any] | None = None

    def feed(self, item: EventMessage) -> Iterable[StreamEvent]:
        name = self.provider.name
        if item.message_type != "event":
            self._raise(item)
        event = item.event_type or ""
        data = parse_json(item.payload, f"event {event[:40]!r} payload", name)
        if not isinstance(data, dict):
            raise ProtocolError(f"event {event[:40]!r} payload is not a JSON object",
                                provider=name)
        if event == "messageStart":
            self.started = True
            return ()
        if not self.started:
            raise ProtocolError(f"event {event[:40]!r} arrived before messageStart",
                                provider=name)
        if event == "contentBlockDelta":
            return self._delta(data["contentBlockIndex"], data.get("delta") or {})
        if event == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if isinstance(use, Mapping):
                block = self._block(data["contentBlockIndex"], "toolUse")
                block.update(toolUseId=use.get("toolUseId"), name=use.get("name"))
        elif event == "contentBlockStop":
            return self._stop(data["contentBlockIndex"])
        elif event == "messageStop":
            self.stop = data
            if data.get("stopReason") in REFUSALS:  # seen as it happens, not only at the end
                return (StreamEvent("refusal"),)
        elif event == "metadata":
            self.metadata = data
        return ()

    def _raise(self, item: EventMessage) -> None:
        """An exception (``:exception-type``, JSON message) or an error (``:error-code``,
        ``:error-message``) frame, as its typed error."""
        name = self.provider.name
        if item.message_type == "exception":
            kind = item.exception_type or ""
            data = parse_json(item.payload or b"{}", "exception payload", name)
            text = str(data.get("message") or "") if isinstance(data, Mapping) else ""
        elif item.message_type == "error":
            kind, text = str(item.header(":error-code") or ""), \
                str(item.header(":error-message") or "")
        else:
            raise ProtocolError(f"event stream message of type "
                                f"{excerpt(str(item.message_type), 40)!r}", provider=name)
        message = excerpt(text, MAX_SERVER_MESSAGE_CHARS) or kind or "error in the stream"
        kw: dict[str, Any] = {"provider": name, "error_type": kind or None}
        cls = STREAM_EXCEPTIONS.get(kind)
        raise cls(message, **kw) if cls is not None else classify_stream_error(message, kw)

    def _block(self, index: Any, kind: str) -> dict[str, Any]:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ProtocolError("content block with a non-integer index",
                                provider=self.provider.name)
        block = self.blocks.get(index)
        if block is None:
            check_tool_calls(len(self.blocks) + 1, self.provider.name)
            block = self.blocks[index] = {"kind": kind}
            self.texts[index] = TextBuffer(self.provider.name)
        return block

    def _delta(self, index: Any, delta: Mapping[str, Any]) -> Iterable[StreamEvent]:
        if isinstance(delta.get("text"), str):
            self._block(index, "text")
            self.texts[index].add(delta["text"])
            return (StreamEvent("text", delta["text"]),) if delta["text"] else ()
        use = delta.get("toolUse")
        if isinstance(use, Mapping):
            self._block(index, "toolUse")
            self.texts[index].add(str(use.get("input") or ""))
            return ()
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, Mapping):
            block = self._block(index, "reasoning")
            if isinstance(reasoning.get("text"), str):
                self.texts[index].add(reasoning["text"])
                return (StreamEvent("reasoning", reasoning["text"]),) if reasoning["text"] \
                    else ()
            for key in ("signature", "redactedContent"):
                if isinstance(reasoning.get(key), str):
                    block[key] = str(block.get(key) or "") + reasoning[key]
        return ()  # citations and deltas added later carry nothing we map

    def _stop(self, index: Any) -> Iterable[StreamEvent]:
        block = self.blocks.get(index) if isinstance(index, int) else None
        if block is None or block["kind"] != "toolUse" or "input" in block:
            return ()
        block["input"] = parse_tool_arguments(self.texts[index].value(),
                                              tool=str(block.get("name") or ""),
                                              provider=self.provider.name)
        return (StreamEvent("tool_call", tool_call=tool_call(block, self.provider.name)),)

    def _content(self, tools: bool = True) -> list[dict[str, Any]]:
        """The blocks in the shape of a Converse answer's content."""
        out: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            block, text = self.blocks[index], self.texts[index].value()
            if block["kind"] == "text":
                out.append({"text": text})
            elif block["kind"] == "reasoning":
                out.append({"reasoningContent": {"redactedContent": block["redactedContent"]}}
                           if "redactedContent" in block and not text else
                           {"reasoningContent": {"reasoningText": {
                               "text": text, **({"signature": block["signature"]}
                                                if "signature" in block else {})}}})
            elif tools:
                self._stop(index)
                out.append({"toolUse": {"toolUseId": block.get("toolUseId"),
                                        "name": block.get("name"),
                                        "input": block["input"]}})
        return out

    def finish(self) -> CompletionResponse:
        if self.stop is None or self.metadata is None:
            missing = "messageStop" if self.stop is None else "its metadata event (the usage)"
            raise ProtocolError(f"stream ended before {missing} (truncated response)",
                                provider=self.provider.name)
        return self._response(self._content())

    def _response(self, content: list[dict[str, Any]]) -> CompletionResponse:
        stop, metadata = self.stop or {}, self.metadata or {}
        raw = {"stopReason": stop.get("stopReason"), "usage": metadata.get("usage"),
               "metrics": metadata.get("metrics")}
        return response_from(content, stop.get("stopReason"), metadata.get("usage") or {}, raw,
                             self.provider.name, self.provider.model)

    def partial(self) -> CompletionResponse:
        # Only whole text and reasoning: a tool use's input is incomplete until its stop.
        return self._response(self._content(tools=False))
