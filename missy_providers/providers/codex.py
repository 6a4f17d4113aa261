"""OpenAI Codex over the ChatGPT OAuth token: the Responses API (wire-formats.md section 4).

Against ``chatgpt.com/backend-api/codex`` every request streams (the backend refuses
``stream: false``), ``store`` is false, ``instructions`` is required and ``max_output_tokens`` /
``temperature`` are refused. With an ``api_key`` and ``base_url: https://api.openai.com/v1``
the same provider speaks the public Responses API, where non-streamed calls are allowed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from ..config import Secret
from ..content import WireParts
from ..core.env import expand_user
from ..core.errors import AuthenticationError, MissyError, ProtocolError, UsageError
from ..core.headers import Credential
from ..core.http import Response, Timeouts
from ..core.response import parse_json
from ..core.wire import CallBudget
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
from .base import (
    AVAILABILITY_TIMEOUT,
    BaseProvider,
    Outgoing,
    Probe,
    parse_tool_arguments,
    system_prompt,
)
from .codex_auth import LOGIN_HINT, CodexCredentials, default_auth_file
from .dialects import native_of, tagged
from .openai import flagged
from .streaming import Accumulator, TextBuffer, check_tool_calls

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

CHATGPT_HOST = "chatgpt.com"
DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
ORIGINATOR = "codex_cli_rs"
MIN_OUTPUT_TOKENS = 16  # the spec's minimum for max_output_tokens


# Output items that are a call the caller runs, and the input item type of its result.
CALL_ITEMS = {"function_call": "function_call_output",
              "custom_tool_call": "custom_tool_call_output"}


def to_input_items(messages: Sequence[Message], parts: WireParts, provider: str = ""
                   ) -> list[dict[str, Any]]:
    """Messages -> Responses ``input`` items (system messages go to ``instructions``). An
    assistant turn from this provider is its output items, verbatim (reasoning with its
    encrypted content, messages with their ``phase``)."""
    items: list[dict[str, Any]] = []
    result_types: dict[str, str] = {}  # call_id -> the output item type that answers it
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool" and m.tool_result is not None:
            result = m.tool_result.content
            call_id = m.tool_result.tool_call_id
            items.append({"type": result_types.get(call_id, "function_call_output"),
                          "call_id": call_id,
                          "output": result if isinstance(result, str) else
                          parts.blocks(result, "tool result")})
        elif m.role == "assistant":
            native = native_of(m, provider, "openai-codex")
            if native:
                items.extend(native["items"])  # reasoning items must be replayed verbatim
                result_types.update({str(i.get("call_id")): CALL_ITEMS[i["type"]]
                                     for i in native["items"] if i.get("type") in CALL_ITEMS})
                continue
            text = parts.text_only(m.content, "assistant turn")
            if text:
                # An input message (EasyInputMessage): an `output_text` message would need the
                # `id` and `status` of a server item the caller's turn never had.
                items.append({"role": "assistant", "content": text})
            items += [{"type": "function_call", "call_id": c.id, "name": c.name,
                       "arguments": json.dumps(c.arguments)} for c in m.tool_calls]
        elif isinstance(m.content, str):
            # EasyInputMessage with string content: the one user-turn shape the spec's input
            # oneOf accepts unambiguously (a content list matches two of its branches).
            items.append({"role": "user", "content": m.content})
        else:
            items.append({"type": "message", "role": "user",
                          "content": parts.blocks(m.content, "user turn")})
    return items


def call_from_item(item: Mapping[str, Any], provider: str) -> ToolCall:
    """A ``function_call`` item (JSON arguments) or a ``custom_tool_call`` item (free-form
    ``input``, given as ``{"input": ...}``) as a ToolCall."""
    name = str(item.get("name") or "")
    if item.get("type") == "custom_tool_call":
        return ToolCall(str(item.get("call_id") or ""), name,
                        {"input": str(item.get("input") or "")})
    return ToolCall(str(item.get("call_id") or ""), name,
                    parse_tool_arguments(item.get("arguments"), tool=name, provider=provider))


def message_parts(items: Sequence[Mapping[str, Any]], kind: str, field: str) -> str:
    return "".join(str(part.get(field) or "") for item in items if item.get("type") == "message"
                   for part in item.get("content") or [] if part.get("type") == kind)


def refusal_from(items: Sequence[Mapping[str, Any]], incomplete: Any,
                 filters: Any = None) -> Refusal | None:
    """A ``refusal`` content part (the model's text), or an answer cut by the content filter
    (``incomplete_details.reason: "content_filter"``), with the categories Azure's
    ``content_filters`` entries that blocked it flagged."""
    text = message_parts(items, "refusal", "refusal")
    if text:
        return Refusal(text)
    if incomplete != "content_filter":
        return None
    blocked = [name for entry in filters if isinstance(entry, Mapping) and entry.get("blocked")
               for name in flagged(entry.get("content_filter_results"))] \
        if isinstance(filters, list) else []
    return Refusal(category=", ".join(dict.fromkeys(blocked)) or None)


def response_from_items(items: Sequence[Mapping[str, Any]], meta: Mapping[str, Any],
                        provider: str) -> CompletionResponse:
    """Output items (streamed ``output_item.done`` or a response's ``output``) -> response."""
    text = message_parts(items, "output_text", "text")
    calls = [call_from_item(item, provider) for item in items if item.get("type") in CALL_ITEMS]
    incomplete = (meta.get("incomplete_details") or {}).get("reason")
    finish = ("length" if incomplete == "max_output_tokens" else
              "tool_calls" if calls else "stop")
    usage = meta.get("usage") or {}
    total = usage.get("total_tokens")
    return CompletionResponse(
        content=text, model=str(meta.get("model") or ""), provider=provider,
        usage=make_usage(token_count(usage, "input_tokens"), token_count(usage, "output_tokens"),
                         None if total is None else token_count(usage, "total_tokens"),
                         cached=token_count(usage, "input_tokens_details", "cached_tokens"),
                         reasoning=token_count(usage, "output_tokens_details",
                                               "reasoning_tokens")),
        tool_calls=calls, finish_reason=finish, raw=dict(meta),
        native=tagged(provider, "openai-codex", items=list(items)),
        stop_reason=str(incomplete or meta.get("status") or ""),
        refusal=refusal_from(items, incomplete, meta.get("content_filters")),
        reasoning="".join(str(part.get("text") or "") for item in items
                          if item.get("type") == "reasoning"
                          for part in [*(item.get("summary") or ()), *(item.get("content") or ())]
                          if isinstance(part, Mapping)))


def responses_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    # `strict` is required by the spec: left out, the server turns strict mode on.
    return [{"type": "function", "name": t.name, "description": t.description,
             "parameters": t.object_schema(), "strict": t.strict} for t in tools]


def responses_body(provider: BaseProvider, messages: Sequence[Message],
                   tools: Sequence[Tool] | None, opts: Mapping[str, Any], *, stream: bool,
                   instructions: str = "", limits: bool = True) -> dict[str, Any]:
    """A Responses API request (Codex's, Azure's): stateless (``store: false``, reasoning
    replayed from its encrypted content). ``instructions``: sent when there is no system
    prompt (the ChatGPT backend requires some); ``limits``: max_output_tokens and temperature
    may be sent (the ChatGPT backend refuses them)."""
    name = provider.name
    system = system_prompt(messages, opts.get("system")) or instructions
    body: dict[str, Any] = {
        "model": opts.get("model") or provider.model,
        **({"instructions": system} if system else {}),
        "input": to_input_items(messages, WireParts("responses", name), name),
        "store": False, "stream": stream,
    }
    if opts.get("stop"):
        raise UsageError(f"{name}: the Responses API has no stop sequences")
    # store is false: reasoning items come back only when their encrypted content is asked
    # for, and replaying them by id alone fails on the next turn ("not found").
    body["include"] = ["reasoning.encrypted_content"]
    if limits:
        if opts.get("max_tokens"):
            if opts["max_tokens"] < MIN_OUTPUT_TOKENS:
                raise UsageError(f"{name}: the Responses API takes max_tokens of at "
                                 f"least {MIN_OUTPUT_TOKENS} (max_output_tokens)")
            body["max_output_tokens"] = opts["max_tokens"]
        if opts.get("temperature") is not None:
            body["temperature"] = opts["temperature"]
    if tools:
        body.update(tools=responses_tools(tools), tool_choice="auto", parallel_tool_calls=True)
    if opts.get("prompt_cache_key"):
        body["prompt_cache_key"] = opts["prompt_cache_key"]
    return body


def parse_responses(provider: BaseProvider, data: Any) -> CompletionResponse:
    """A whole Responses API ``response`` object -> CompletionResponse."""
    if not isinstance(data, Mapping) or data.get("object") != "response":
        raise ProtocolError("response is not a Responses API response", provider=provider.name)
    if data.get("status") == "failed":
        provider.raise_stream_error({"error": data.get("error") or {}})
    return response_from_items(data.get("output") or [], data, provider.name)


class CodexProvider(BaseProvider):
    """OpenAI Codex through a ChatGPT sign-in: the Codex CLI's OAuth tokens (``auth.json``),
    refreshed through the policy client, and the Responses API on the ChatGPT backend (always
    streamed, ``store: false``). With an ``api_key`` it speaks the public Responses API."""

    provider_type = "openai-codex"
    extra_options = frozenset({"prompt_cache_key", "reasoning_summary"})

    @property
    def refreshes_tokens(self) -> bool:  # type: ignore[override]
        """With the ChatGPT login (no api_key), a 401 refreshes the token once a call."""
        return self.chatgpt_login

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.session_id = os.urandom(16).hex()
        path = expand_user(self.config.auth_file) if self.config.auth_file \
            else default_auth_file()
        self.credentials = CodexCredentials(path, self.config.token_url, self.client, self.name)

    @property
    def chatgpt_login(self) -> bool:
        """Whether calls use the Codex CLI's login (no key, no key file, no host token)."""
        return self.keys.current() is None and self.credential is None

    @property
    def chatgpt_backend(self) -> bool:
        return (urlsplit(self.config.base_url).hostname or "").lower() == CHATGPT_HOST

    @property
    def always_streams(self) -> bool:  # type: ignore[override]
        return self.chatgpt_backend

    def endpoint(self) -> str:
        return f"{self.config.base_url}/responses"

    @property
    def models_path(self) -> str | None:
        """The public API lists models; the ChatGPT backend has no such endpoint."""
        return None if self.chatgpt_backend else "/models"

    # POST /responses/input_tokens (TokenCountsBody) takes the request without store, stream,
    # include and the sampling and output limits.
    count_keys = frozenset({"model", "input", "instructions", "tools", "tool_choice",
                            "parallel_tool_calls", "reasoning", "text"})

    @property
    def count_path(self) -> str | None:  # type: ignore[override]
        """The public Responses API counts; the ChatGPT backend has no such endpoint known."""
        return None if self.chatgpt_backend else "/responses/input_tokens"

    def missing_credentials(self) -> str:
        return (f"no credentials: run `codex login` (writes {self.credentials.path}) or set "
                f"providers.{self.name}.api_key")

    def has_credentials(self) -> bool:
        return self.credentials.exists() if self.chatgpt_login else super().has_credentials()

    def probe(self, timeout: Timeouts = AVAILABILITY_TIMEOUT) -> Probe:
        """With the ChatGPT login: the tokens must load (a broken auth.json fails here, not on
        the first call), and are never refreshed by a check (that is the first call's job);
        there is no cheap live endpoint to ask."""
        if self.chatgpt_login and self.credentials.exists():
            try:
                self.credentials.check(CallBudget.for_call(timeout.total, [], "the timeout"))
            except MissyError as exc:
                return Probe(False, f"credentials unusable: {exc}")
        return super().probe(timeout)

    def credential_source(self) -> str:
        if not self.chatgpt_login:
            return super().credential_source()
        return f"auth.json ({self.credentials.path})" if self.credentials.exists() else "none"

    def protocol_headers(self) -> dict[str, Any]:
        return {"OpenAI-Beta": "responses=experimental", "originator": ORIGINATOR,
                "session_id": self.session_id}

    def _attempt(self, call: Outgoing, key: Secret | None) -> Response:
        """With an api_key: one plain attempt. With the ChatGPT login: on a 401, refresh once
        in the call (unless another caller already did) and send again; a second 401 means
        the login itself is no longer valid."""
        if not self.chatgpt_login:
            return super()._attempt(call, key)
        for attempt in (1, 2):
            token, account = self.credentials.current(call.budget, call.trace)
            headers = self.protocol_headers()
            headers["Authorization"] = Credential(token, "Bearer")
            if account:
                headers["chatgpt-account-id"] = account
            try:
                return self._exchange(call, headers)
            except AuthenticationError as exc:
                if exc.status != 401:
                    raise
                if attempt == 2:
                    raise AuthenticationError(f"ChatGPT refused the refreshed token; "
                                              f"{LOGIN_HINT}", provider=self.name,
                                              status=401) from None
                self.credentials.refresh_after_401(token, call.budget, call.trace)
        raise AssertionError("unreachable")

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return responses_tools(tools)

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        return responses_body(self, messages, tools, opts, stream=stream,
                              instructions=DEFAULT_INSTRUCTIONS,
                              limits=not self.chatgpt_backend)

    def parse_response(self, data: Any) -> CompletionResponse:
        return parse_responses(self, data)

    def error_details(self, data: Any) -> tuple[str, str | None]:
        message, etype = super().error_details(data)
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            # usage_limit_reached: codex reads `type`; don't retry before `resets_at`.
            etype = str(data["error"].get("type") or data["error"].get("code") or "") or etype
        return message, etype

    def new_accumulator(self) -> CodexStream:
        return CodexStream(self)


class CodexStream(Accumulator):
    """Responses SSE events. The reply is built from ``response.output_item.done`` items (the
    ChatGPT backend's ``response.completed`` has an empty ``output``, and a reasoning item's
    ``encrypted_content`` in ``.added`` may be incomplete); argument and custom-tool input
    deltas are keyed by item id, calls reported with their ``call_id``. Events that carry no
    text, reasoning or refusal (``response.queued``, summary part boundaries, annotations,
    and any event type added later) are skipped."""

    def __init__(self, provider: BaseProvider) -> None:
        self.provider = provider
        self.items: dict[int, dict[str, Any]] = {}
        self.delta_text = TextBuffer(provider.name)
        self.refusal = TextBuffer(provider.name)
        self.arguments: dict[str, TextBuffer] = {}
        self.meta: dict[str, Any] | None = None

    def feed(self, item: Event) -> Iterable[str | StreamEvent]:
        if item.data.startswith("[DONE]"):
            return ()  # gateways (LiteLLM) end Responses streams so too; the SDKs skip it
        data = parse_json(item.data, "event data", self.provider.name)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "response.output_text.delta":
            delta = str(data.get("delta") or "")
            self.delta_text.add(delta)
            return (delta,) if delta else ()
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = str(data.get("delta") or "")
            return (StreamEvent("reasoning", delta),) if delta else ()
        if kind == "response.refusal.delta":
            delta = str(data.get("delta") or "")
            self.refusal.add(delta)
            return (StreamEvent("refusal", delta),) if delta else ()
        if kind in ("response.function_call_arguments.delta",
                    "response.custom_tool_call_input.delta"):
            item_id = str(data["item_id"])
            buffer = self.arguments.get(item_id)
            if buffer is None:
                check_tool_calls(len(self.arguments) + 1, self.provider.name)
                buffer = self.arguments[item_id] = TextBuffer(self.provider.name)
            buffer.add(str(data.get("delta") or ""))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            entry = dict(data["item"])
            index = data.get("output_index", len(self.items))
            if not isinstance(index, int) or isinstance(index, bool):
                raise ProtocolError("output item with a non-integer output_index",
                                    provider=self.provider.name)
            if index not in self.items:
                check_tool_calls(len(self.items) + 1, self.provider.name)
            self.items[index] = entry
            if kind.endswith(".done") and entry.get("type") in CALL_ITEMS:
                return (StreamEvent("tool_call", tool_call=self._call(entry)),)
        elif kind in ("response.completed", "response.incomplete"):
            self.meta = dict(data.get("response") or {})
        elif kind == "response.failed":
            response = data.get("response") or {}
            self.provider.raise_stream_error({"error": response.get("error") or {}})
        elif kind == "error":
            self.provider.raise_stream_error({"error": data})
        return ()

    def _filled(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A call item with its arguments (or custom input) from the deltas when the item
        itself came without them."""
        field = "input" if entry.get("type") == "custom_tool_call" else "arguments"
        if not entry.get(field):
            buffer = self.arguments.get(str(entry.get("id")))
            entry[field] = buffer.value() if buffer is not None else ""
        return entry

    def _call(self, entry: dict[str, Any]) -> ToolCall:
        return call_from_item(self._filled(entry), self.provider.name)

    def finish(self) -> CompletionResponse:
        if self.meta is None:
            raise ProtocolError("stream closed before response.completed (truncated response)",
                                provider=self.provider.name)
        items = [self.items[i] for i in sorted(self.items)]
        for entry in items:
            if entry.get("type") in CALL_ITEMS:
                self._filled(entry)
        response = response_from_items(items, self.meta, self.provider.name)
        if not response.content and self.delta_text:  # items without text parts: use deltas
            response.content = self.delta_text.value()
        if response.refusal is None and self.refusal:
            response.refusal = Refusal(self.refusal.value())
        return response

    def partial(self) -> CompletionResponse:
        return CompletionResponse(self.delta_text.value(), str((self.meta or {}).get("model")
                                                                or self.provider.model),
                                  self.provider.name, raw={"incomplete": True},
                                  refusal=Refusal(self.refusal.value()) if self.refusal
                                  else None)
