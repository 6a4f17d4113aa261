"""The common value types every provider speaks: messages, tools, tool calls, responses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import UsageError

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

ROLES = frozenset({"system", "user", "assistant", "tool"})
FINISH_REASONS = frozenset({"stop", "tool_calls", "length"})
Usage = dict[str, int]


def make_usage(prompt: int, completion: int, total: int | None = None) -> Usage:
    """Usage in the common keys. ``total`` is the server's number when it sent one (some
    compatible servers count more than prompt + completion; we report, not recompute)."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
    }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to run a tool. ``arguments`` is always a parsed JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned, sent back to the model in a ``tool`` message."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn.

    ``role`` is ``system``, ``user``, ``assistant`` or ``tool``. An assistant turn may carry
    ``tool_calls``; a ``tool`` turn carries a ``tool_result``. ``native`` holds a provider's own
    content blocks (thinking with signatures, reasoning items) that must be replayed verbatim to
    the same provider; other providers ignore it.
    """

    role: str
    content: str = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_result: ToolResult | None = None
    native: Any = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UsageError(f"Message role must be one of {sorted(ROLES)}, got {self.role!r}")
        if self.role == "tool" and self.tool_result is None:
            raise UsageError("a Message with role 'tool' needs a tool_result")
        if self.tool_calls and self.role != "assistant":
            raise UsageError("only an assistant Message can carry tool_calls")

    @classmethod
    def tool(cls, result: ToolResult) -> Message:
        """The turn that answers one tool call."""
        return cls(role="tool", content=result.content, tool_result=result)


@dataclass(slots=True)
class CompletionResponse:
    """The outcome of one completion, whatever the provider."""

    content: str
    model: str
    provider: str
    usage: Usage = field(default_factory=lambda: make_usage(0, 0))
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    raw: Any = None
    native: Any = None  # the provider's own assistant content, replayed by to_message()

    def to_message(self) -> Message:
        """The assistant turn to append to the conversation, keeping what the provider needs
        replayed verbatim (thinking signatures, reasoning items)."""
        return Message(role="assistant", content=self.content,
                       tool_calls=tuple(self.tool_calls), native=self.native)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One typed event of a stream: ``text`` (a delta), ``tool_call`` (complete), ``done``."""

    type: str
    text: str = ""
    tool_call: ToolCall | None = None
    response: CompletionResponse | None = None
