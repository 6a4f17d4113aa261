"""Reasoning that must survive a tool loop, as data: where each API, and each OpenAI-compatible
server, puts reasoning (or an opaque signature of it) in an answer, how a stream's pieces of it
join, and where it must go on the assistant turn of the next request.

Servers that reason refuse the next request of a tool loop when it is missing (DeepSeek and
Gemini 3 answer HTTP 400). ``to_message()`` keeps what arrived in ``Message.native``, tagged
with the provider's name and API (:func:`tagged`); the provider's ``build_body`` sends it back
verbatim, and only to that provider (:func:`native_of`). On Chat Completions the dialect is
read from what the server sent (the keys present in its answer), never from configuration:
whatever came back goes back, under the same key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from ..types import Message, ToolCall


class RoundTrip(Value):
    """One dialect's reasoning round trip. ``key`` is the field (for Chat Completions the same
    key in ``message``, in a stream's ``delta`` and on the assistant turn sent back);
    ``scope`` is where it lives (``message`` or ``tool_call``); ``join`` how a stream's pieces
    accumulate: ``text`` (concatenated), ``details`` (OpenRouter's list, merged by index and
    type), ``first`` (taken whole, the first one), ``last`` (taken whole, the last one),
    ``item`` (a whole output item); ``fill`` is sent on an assistant turn with tool calls that
    lacks the field once the conversation shows the dialect (None: nothing is sent)."""

    __slots__ = ("dialect", "api", "key", "scope", "join", "answer", "back", "required",
                 "fill")
    dialect: str
    api: str
    key: str
    scope: str
    join: str
    answer: str
    back: str
    required: str
    fill: str | None

    def __init__(self, dialect: str, api: str, key: str, scope: str, join: str, answer: str,
                 back: str, required: str, fill: str | None = None) -> None:
        self._set(dialect=dialect, api=api, key=key, scope=scope, join=join, answer=answer,
                  back=back, required=required, fill=fill)


ROUND_TRIPS: tuple[RoundTrip, ...] = (
    RoundTrip("DeepSeek", "openai", "reasoning_content", "message", "text",
              "message.reasoning_content; delta.reasoning_content",
              "assistant.reasoning_content",
              "on every assistant turn with tool calls, even when empty (else HTTP 400)",
              fill=""),
    RoundTrip("vLLM (and Ollama /v1, Groq's reasoning models)", "openai", "reasoning",
              "message", "text",
              "message.reasoning; delta.reasoning", "assistant.reasoning",
              "no (the chat template of interleaved-thinking models reads it)"),
    RoundTrip("OpenRouter", "openai", "reasoning_details", "message", "details",
              "message.reasoning_details[]; delta.reasoning_details[]",
              "assistant.reasoning_details, unmodified",
              "yes in tool loops (encrypted and signed blocks)"),
    RoundTrip("Gemini 3", "openai", "extra_content", "tool_call", "first",
              "tool_calls[].extra_content.google.thought_signature; on the call's first "
              "delta", "the same tool call's extra_content",
              "every call of the turn that had one (else HTTP 400)"),
    RoundTrip("Gemini 2.5", "openai", "extra_content", "message", "last",
              "message.extra_content.google.thought_signature; delta.extra_content",
              "assistant.extra_content", "no (lenient)"),
    RoundTrip("Anthropic", "anthropic", "content", "message", "text",
              "thinking / redacted_thinking blocks with their signature; thinking_delta, "
              "signature_delta", "the assistant turn's content blocks, verbatim",
              "in tool loops with thinking (else HTTP 400)"),
    RoundTrip("Responses (Codex)", "openai-codex", "items", "message", "item",
              "reasoning items with encrypted_content, messages with phase; whole from "
              "response.output_item.done", "the input items, verbatim",
              "with store: false (else the reasoning is lost or the item 'not found')"),
    RoundTrip("Ollama", "ollama", "thinking", "message", "text",
              "message.thinking; each line's message.thinking", "assistant.thinking",
              "no (the docs say to send it)"),
)

# The Chat Completions rows drive openai.py: the keys read from `message`/`delta`, and from
# each tool call.
CHAT_MESSAGE_FIELDS = tuple(r for r in ROUND_TRIPS if r.api == "openai" and r.scope == "message")
CHAT_TOOL_CALL_FIELDS = tuple(r for r in ROUND_TRIPS
                              if r.api == "openai" and r.scope == "tool_call")
# OpenRouter reasoning_details: pieces of these fields are concatenated; the others (signature,
# data, id, format) are taken from whichever piece has a non-empty value.
DETAIL_TEXT_FIELDS = frozenset({"text", "summary"})


def tagged(provider: str, api: str, **fields: Any) -> dict[str, Any]:
    """A native record for ``Message.native``: what to replay, and to whom."""
    return {"provider": provider, "api": api, **fields}


def native_of(message: Message, provider: str, api: str) -> Mapping[str, Any]:
    """The message's native record when it came from this provider (name and API), else
    an empty mapping: what another provider kept is never sent here."""
    native = message.native
    if isinstance(native, Mapping) and native.get("provider") == provider and \
            native.get("api") == api:
        return native
    return {}


def merge_details(merged: list[dict[str, Any]], pieces: Sequence[Any]) -> None:
    """OpenRouter's streamed ``reasoning_details`` into one list: one entry per (index, type)
    (the same index may carry two types: a summary and an encrypted block); text pieces
    concatenated, a signature arriving alone in a later piece set on its entry."""
    for piece in pieces:
        if not isinstance(piece, Mapping):
            continue
        key = (piece.get("index"), piece.get("type"))
        entry = next((e for e in merged if (e.get("index"), e.get("type")) == key), None)
        if entry is None:
            merged.append(dict(piece))
            continue
        for name, value in piece.items():
            if name in DETAIL_TEXT_FIELDS and isinstance(value, str):
                entry[name] = str(entry.get(name) or "") + value
            elif value not in (None, "") or name not in entry:
                entry[name] = value


def details_text(details: Sequence[Any]) -> str:
    """The readable reasoning in OpenRouter's details (text and summaries)."""
    return "".join(str(d.get("text") or d.get("summary") or "") for d in details
                   if isinstance(d, Mapping))


# --- Chat Completions: what a server sent, kept to send back ----------------------------------

def chat_native(provider: str, fields: Mapping[str, Any],
                calls: Sequence[tuple[ToolCall, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """What a Chat Completions server needs back on the assistant turn, or None: its reasoning
    fields, and each tool call's own fields by the call's (final) id."""
    per_call = {call.id: dict(extra) for call, extra in calls if extra}
    if not fields and not per_call:
        return None
    return tagged(provider, "openai", message=dict(fields), tool_calls=per_call)


def message_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """The reasoning fields a server put in an answer's message (any non-null value, "" too:
    DeepSeek's empty reasoning must still go back)."""
    return {f.key: message[f.key] for f in CHAT_MESSAGE_FIELDS
            if message.get(f.key) is not None}


def call_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {f.key: raw[f.key] for f in CHAT_TOOL_CALL_FIELDS if raw.get(f.key) is not None}


def readable_reasoning(fields: Mapping[str, Any]) -> str:
    text = fields.get("reasoning") or fields.get("reasoning_content")
    if isinstance(text, str) and text:
        return text
    details = fields.get("reasoning_details")
    return details_text(details) if isinstance(details, list) else ""
