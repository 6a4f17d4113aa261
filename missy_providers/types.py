"""The common value types every provider speaks: messages, tools, tool calls, responses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .content import Part, as_content, joined_text
from .core.errors import UsageError
from .core.values import Record, Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

ROLES = frozenset({"system", "user", "assistant", "tool"})
FINISH_REASONS = frozenset({"stop", "tool_calls", "length"})
Usage = dict[str, int]


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens",
              "cache_write_tokens", "reasoning_tokens")


def make_usage(prompt: int, completion: int, total: int | None = None, *, cached: int = 0,
               cache_write: int = 0, reasoning: int = 0) -> Usage:
    """Usage in the common keys, every one always present. ``total`` is the server's number
    when it sent one (some compatible servers count more than prompt + completion; we report,
    not recompute). ``prompt_tokens`` includes cached and cache-written tokens;
    ``cached_prompt_tokens`` (cache reads), ``cache_write_tokens`` (Anthropic cache creation)
    and ``reasoning_tokens`` (part of ``completion_tokens``) break it down, 0 when unsaid."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
        "cached_prompt_tokens": cached,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
    }


def token_count(raw: Mapping[str, Any] | None, *path: str) -> int:
    """A usage counter from a server's JSON (``path`` into nested objects): absent or null is
    0; anything but a whole number >= 0 is a ProtocolError, never a bare ValueError."""
    value: Any = raw
    for key in path:
        value = value.get(key) if type(value) is dict or isinstance(value, Mapping) else None
    if type(value) is int and value >= 0:  # what JSON gives, nearly always
        return value
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
            value != value or value in (float("inf"),) or int(value) != value:
        from .core.errors import ProtocolError

        raise ProtocolError(f"usage count {'.'.join(path)} is not a whole number >= 0")
    return int(value)


class ToolCall(Value):
    """A model's request to run a tool. ``arguments`` is always a parsed JSON object."""

    __slots__ = ("id", "name", "arguments")
    id: str
    name: str
    arguments: dict[str, Any]

    def __init__(self, id: str, name: str, arguments: dict[str, Any] | None = None) -> None:
        self._set(id=id, name=name, arguments={} if arguments is None else arguments)


class ToolResult(Value):
    """What a tool returned, sent back to the model in a ``tool`` message: a str, or parts
    where the API takes them (Anthropic and the Responses API take images and PDFs)."""

    __slots__ = ("tool_call_id", "name", "content", "is_error")
    tool_call_id: str
    name: str
    content: str | tuple[Part, ...]
    is_error: bool

    def __init__(self, tool_call_id: str, name: str, content: str | Sequence[Part],
                 is_error: bool = False) -> None:
        self._set(tool_call_id=tool_call_id, name=name,
                  content=as_content(content, "ToolResult"), is_error=is_error)

    @property
    def text(self) -> str:
        return joined_text(self.content)


class Tool(Value):
    """A tool the model may call; ``parameters`` is a JSON Schema object. ``strict`` asks the
    OpenAI APIs to hold the arguments to the schema exactly (sent explicitly on the Responses
    API, where leaving it out turns strict mode on)."""

    __slots__ = ("name", "description", "parameters", "strict")
    name: str
    description: str
    parameters: Mapping[str, Any]
    strict: bool

    def __init__(self, name: str, description: str = "",
                 parameters: Mapping[str, Any] | None = None, strict: bool = False) -> None:
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        self._set(name=name, description=description, parameters=parameters,
                  strict=bool(strict))

    def __hash__(self) -> int:  # parameters is a dict
        return hash((self.name, self.description, self.strict))

    def object_schema(self) -> dict[str, Any]:
        """``parameters`` with ``"type": "object"`` (the APIs require it; ``{}`` means no
        arguments)."""
        return {"type": "object", **dict(self.parameters)}


class Message(Value):
    """One conversation turn.

    ``role`` is ``system``, ``user``, ``assistant`` or ``tool``. ``content`` is a str or a
    sequence of parts (``Text``, ``Image``, ``Document``; content.py), the same for every
    provider; ``text`` is its joined text. An assistant turn may carry
    ``tool_calls``; a ``tool`` turn carries a ``tool_result``. ``native`` holds what a provider
    needs replayed verbatim (thinking with signatures, reasoning items, a compatible server's
    reasoning fields and thought signatures), as a dict tagged with the provider's name
    (``provider``) and API (``api``): only that provider sends it back; others ignore it.
    """

    __slots__ = ("role", "content", "tool_calls", "tool_result", "native")
    role: str
    content: str | tuple[Part, ...]
    tool_calls: Sequence[ToolCall]
    tool_result: ToolResult | None
    native: Any

    def __init__(self, role: str, content: str | Sequence[Part] = "",
                 tool_calls: Sequence[ToolCall] = (), tool_result: ToolResult | None = None,
                 native: Any = None) -> None:
        if role not in ROLES:
            raise UsageError(f"Message role must be one of {sorted(ROLES)}, got {role!r}")
        content = as_content(content, "Message")
        if not all(isinstance(c, ToolCall) for c in tool_calls):
            raise UsageError("Message tool_calls must be ToolCall objects")
        if tool_result is not None and not isinstance(tool_result, ToolResult):
            raise UsageError(f"Message tool_result must be a ToolResult, got "
                             f"{type(tool_result).__name__}")
        if role == "tool" and tool_result is None:
            raise UsageError("a Message with role 'tool' needs a tool_result")
        if tool_calls and role != "assistant":
            raise UsageError("only an assistant Message can carry tool_calls")
        self._set(role=role, content=content, tool_calls=tool_calls, tool_result=tool_result,
                  native=native)

    def __hash__(self) -> int:  # tool_calls may be a list, native a dict: hash what is stable
        return hash((self.role, self.content))

    @property
    def text(self) -> str:
        """The joined text of the content (images and documents left out)."""
        return joined_text(self.content)

    @classmethod
    def tool(cls, result: ToolResult) -> Message:
        """The turn that answers one tool call."""
        return cls(role="tool", content=result.content, tool_result=result)


class Refusal(Value):
    """The model declined, or a content filter stopped the answer. ``text`` is the refusal the
    model wrote (OpenAI's ``message.refusal``, a Responses ``refusal`` part), "" when the API
    gives none; ``category`` and ``explanation`` are the API's own (Anthropic's
    ``stop_details``, the categories an Azure content filter flagged), None when it says
    nothing. ``response.stop_reason`` keeps the provider's word for it."""

    __slots__ = ("text", "category", "explanation")
    text: str
    category: str | None
    explanation: str | None

    def __init__(self, text: str = "", category: str | None = None,
                 explanation: str | None = None) -> None:
        self._set(text=text, category=category, explanation=explanation)

    def describe(self) -> str:
        """One line for an error message: the category, then what the API or model said."""
        said = self.explanation or self.text
        head = f"refused ({self.category})" if self.category else "refused"
        return f"{head}: {said}" if said else head


# Anthropic's stop_reason when the server paused a long turn (server tools): not an answer.
PAUSE_TURN = "pause_turn"


class CompletionResponse(Record):
    """The outcome of one completion, whatever the provider."""

    __slots__ = ("content", "model", "provider", "usage", "tool_calls", "finish_reason", "raw",
                 "native", "stop_reason", "request_id", "reasoning", "parsed", "refusal")
    content: str
    model: str
    provider: str
    usage: Usage
    tool_calls: list[ToolCall]
    finish_reason: str
    raw: Any
    native: Any  # the provider's own assistant content, replayed by to_message()
    stop_reason: str  # the provider's own word (end_turn, refusal, content_filter, ...)
    request_id: str  # the server's request id (request-id / x-request-id), "" if none
    reasoning: str  # the thinking text or reasoning summaries the server returned, "" if none
    parsed: Any  # with schema=: the answer decoded as JSON
    refusal: Refusal | None  # the model refused or a filter stopped it; None otherwise

    def __init__(self, content: str, model: str, provider: str, usage: Usage | None = None,
                 tool_calls: list[ToolCall] | None = None, finish_reason: str = "stop",
                 raw: Any = None, native: Any = None, stop_reason: str = "",
                 request_id: str = "", reasoning: str = "", parsed: Any = None,
                 refusal: Refusal | None = None) -> None:
        self._set(content=content, model=model, provider=provider,
                  usage=make_usage(0, 0) if usage is None else usage,
                  tool_calls=[] if tool_calls is None else tool_calls,
                  finish_reason=finish_reason, raw=raw, native=native,
                  stop_reason=stop_reason, request_id=request_id, reasoning=reasoning,
                  parsed=parsed, refusal=refusal)

    @property
    def paused(self) -> bool:
        """The server paused a long turn (Anthropic ``pause_turn``): not a finished answer.
        Append :meth:`to_message` to the conversation and call again, with no new user turn;
        the server continues where it stopped."""
        return self.stop_reason == PAUSE_TURN

    def raise_for_refusal(self) -> CompletionResponse:
        """Raise ContentRefused (failure class ``content_policy``) when the model refused or a
        content filter stopped the answer; otherwise return the response."""
        if self.refusal is not None:
            from .core.errors import ContentRefused

            raise ContentRefused(f"the model {self.refusal.describe()}",
                                 response=self, provider=self.provider,
                                 error_type=self.stop_reason or "refusal",
                                 request_id=self.request_id or None)
        return self

    def to_message(self) -> Message:
        """The assistant turn to append to the conversation, keeping what the provider needs
        replayed verbatim (thinking signatures, reasoning items and fields, thought
        signatures), tagged with the provider's name: only that provider gets it back."""
        return Message(role="assistant", content=self.content,
                       tool_calls=tuple(self.tool_calls), native=self.native)


class TokenCount(Value):
    """A prompt's size before it is sent: ``tokens``, ``exact`` (the API counted them) or an
    estimate, and ``source`` (the endpoint that counted, or ``estimate``)."""

    __slots__ = ("tokens", "exact", "source")
    tokens: int
    exact: bool
    source: str

    def __init__(self, tokens: int, exact: bool, source: str) -> None:
        self._set(tokens=tokens, exact=exact, source=source)


class ModelInfo(Value):
    """What an API says about one model: its context window (input tokens), its output limit,
    and whether it takes images (``vision``), ``tools``, ``thinking`` and structured output.
    None is "the API does not say", never a guess. ``source`` names the endpoint asked."""

    __slots__ = ("name", "context_window", "max_output_tokens", "vision", "tools", "thinking",
                 "structured_output", "source")
    name: str
    context_window: int | None
    max_output_tokens: int | None
    vision: bool | None
    tools: bool | None
    thinking: bool | None
    structured_output: bool | None
    source: str

    def __init__(self, name: str, context_window: int | None = None,
                 max_output_tokens: int | None = None, vision: bool | None = None,
                 tools: bool | None = None, thinking: bool | None = None,
                 structured_output: bool | None = None, source: str = "") -> None:
        self._set(name=name, context_window=context_window,
                  max_output_tokens=max_output_tokens, vision=vision, tools=tools,
                  thinking=thinking, structured_output=structured_output, source=source)

    def as_dict(self) -> dict[str, Any]:
        return self.field_values()


class StreamEvent(Value):
    """One typed event of a stream: ``text`` (a delta), ``reasoning`` (a delta of the thinking
    or reasoning summary, in ``text``), ``refusal`` (a delta of the model's refusal, or ""
    when the API only says that it refused), ``tool_call`` (complete), ``done``."""

    __slots__ = ("type", "text", "tool_call", "response")
    type: str
    text: str
    tool_call: ToolCall | None
    response: CompletionResponse | None

    def __init__(self, type: str, text: str = "", tool_call: ToolCall | None = None,
                 response: CompletionResponse | None = None) -> None:
        # One per streamed delta: set directly (Value._set's keyword dict costs 3x as much).
        init = object.__setattr__
        init(self, "type", type)
        init(self, "text", text)
        init(self, "tool_call", tool_call)
        init(self, "response", response)


def as_messages(messages: object) -> list[Message]:
    """The conversation as Messages, checked before any I/O. Accepted as a convenience: a
    plain string (one user turn), and message dicts in OpenAI's chat shape, with
    ``tool_calls``, ``tool_call_id``, ``name`` and content part dicts (native.py: converted as
    strictly as Message itself; a key it does not know is refused, not dropped)."""
    if isinstance(messages, str):
        return [Message("user", messages)]
    if isinstance(messages, (Mapping, bytes)) or not isinstance(messages, Sequence):
        raise UsageError(f"messages must be a list of Message (or of message dicts, or a "
                         f"str), got {type(messages).__name__}")
    if messages and all(map(Message.__instancecheck__, messages)):  # pragma: no mutate
        return list(messages)  # every turn is already a Message: nothing to convert
    out: list[Message] = []
    call_names: dict[str, str] = {}  # tool call id -> tool name, for tool result dicts
    for i, item in enumerate(messages):
        if isinstance(item, Message):
            out.append(item)
            call_names.update((c.id, c.name) for c in item.tool_calls)
        elif isinstance(item, Mapping):
            from .native import message_from_dict

            out.append(message_from_dict(item, f"messages[{i}]", call_names))
        else:
            raise UsageError(f"messages[{i}] must be a Message, got {type(item).__name__}")
    if not out:
        raise UsageError("messages is empty: give at least one turn")
    return out


def as_tools(tools: object) -> list[Tool]:
    """The tools, checked before any I/O: Tools, objects with ``get_schema()`` (a host's tool
    classes) or ``{name, description, parameters}`` dicts, each checked into a Tool."""
    if isinstance(tools, (str, bytes, Mapping, Tool)) or not isinstance(tools, Sequence):
        raise UsageError(f"tools must be a list of Tool, got {type(tools).__name__}")
    if all(isinstance(t, Tool) for t in tools):
        return list(tools)
    from .native import tool_from

    return [tool_from(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
