"""A host's shapes -> our types, strictly: messages as OpenAI chat dicts, their content as
native part dicts, and tools as objects with ``get_schema()`` or schema mappings.

This is what Missy passes (its runtime keeps the conversation as OpenAI-shaped dicts). Every
key is known or refused, every value checked; a problem is a UsageError naming the field
(``messages[3].tool_calls[0].function.arguments``), never a silent drop or a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .content import Image, Part, Text
from .core.errors import UsageError
from .types import Message, Tool, ToolCall, ToolResult

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

# The keys a message dict of each role may have (OpenAI's chat shape; `is_error` is Missy's).
MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name", "is_error"}),
}
TOOL_KEYS = frozenset({"name", "description", "parameters", "strict"})
# A tool call: Missy's flat shape, or OpenAI's with the call under "function".
FLAT_CALL_KEYS = frozenset({"id", "type", "name", "arguments"})
NATIVE_CALL_KEYS = frozenset({"id", "type", "function"})
FUNCTION_KEYS = frozenset({"name", "arguments"})
# Content part dicts by type: OpenAI chat, the Responses API, Anthropic.
PART_KEYS = {
    "text": frozenset({"type", "text"}),
    "input_text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "input_image": frozenset({"type", "image_url", "detail"}),
    "image": frozenset({"type", "source"}),
}


def _shown(value: Any) -> str:
    return repr(value)[:40]


def _refuse(where: str, problem: str) -> UsageError:
    return UsageError(f"{where}: {problem}"[:400])


def _keys(item: Mapping[Any, Any], allowed: frozenset[str], where: str, what: str) -> None:
    extra = sorted(str(k) for k in item if k not in allowed)
    if extra:
        raise _refuse(where, f"{what} has no key(s) {extra}; its keys are {sorted(allowed)}")


def _text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty):
        raise _refuse(where, f"must be a {'' if empty else 'non-empty '}string, got "
                             f"{type(value).__name__}")
    return value


def message_from_dict(item: Mapping[Any, Any], where: str,
                      call_names: dict[str, str]) -> Message:
    """One message dict as a Message. ``call_names`` maps each tool call id seen so far to
    its tool's name (a tool result dict need not repeat it)."""
    role = item.get("role")
    if role not in MESSAGE_KEYS:
        raise _refuse(f"{where}.role", f"must be one of {sorted(MESSAGE_KEYS)}, got "
                                       f"{_shown(role)}")
    _keys(item, MESSAGE_KEYS[role], where, f"a {role} message dict")
    content = content_from(item.get("content"), f"{where}.content")
    if role == "tool":
        call_id = _text(item.get("tool_call_id"), f"{where}.tool_call_id")
        name = item.get("name") or call_names.get(call_id)
        if name is None:
            raise _refuse(f"{where}.name", "is missing, and no earlier assistant message has "
                                           f"a tool call with id {_shown(call_id)}")
        is_error = item.get("is_error", False)
        if not isinstance(is_error, bool):
            raise _refuse(f"{where}.is_error", f"must be true or false, got "
                                               f"{type(is_error).__name__}")
        return Message.tool(ToolResult(call_id, _text(name, f"{where}.name"), content,
                                       is_error))
    calls = item.get("tool_calls") or []
    if not isinstance(calls, (list, tuple)):
        raise _refuse(f"{where}.tool_calls", f"must be a list, got {type(calls).__name__}")
    tool_calls = tuple(tool_call_from(c, f"{where}.tool_calls[{j}]")
                       for j, c in enumerate(calls))
    call_names.update((c.id, c.name) for c in tool_calls)
    try:
        return Message(role, content, tool_calls=tool_calls)
    except UsageError as exc:
        raise _refuse(where, str(exc)) from None


def tool_call_from(item: Any, where: str) -> ToolCall:
    """A tool call dict: Missy's ``{id, name, arguments}`` or OpenAI's ``{id, type:
    function, function: {name, arguments}}``; arguments a dict or its JSON text."""
    if not isinstance(item, Mapping):
        raise _refuse(where, f"must be a tool call dict, got {type(item).__name__}")
    if item.get("type", "function") != "function":
        raise _refuse(f"{where}.type", f"must be 'function', got {_shown(item.get('type'))}")
    if "function" in item:
        _keys(item, NATIVE_CALL_KEYS, where, "a tool call")
        function, inner = item["function"], f"{where}.function"
        if not isinstance(function, Mapping):
            raise _refuse(inner, f"must be a dict, got {type(function).__name__}")
        _keys(function, FUNCTION_KEYS, inner, "a function")
    else:
        _keys(item, FLAT_CALL_KEYS, where, "a tool call")
        function, inner = item, where
    call_id = _text(item.get("id"), f"{where}.id")
    name = _text(function.get("name"), f"{inner}.name")
    return ToolCall(call_id, name, arguments_from(function.get("arguments"),
                                                  f"{inner}.arguments"))


def arguments_from(value: Any, where: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _refuse(where, "is not valid JSON") from None
    if not isinstance(value, Mapping):
        raise _refuse(where, f"must be a JSON object (a dict or its JSON text), got "
                             f"{type(value).__name__}")
    return dict(value)


def content_from(value: Any, where: str) -> str | tuple[Part, ...]:
    """Content: a str (None is empty), or a list of our parts and part dicts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Part):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise _refuse(where, f"must be a str or a list of parts, got {type(value).__name__}")
    parts: list[Part] = []
    for j, part in enumerate(value):
        if isinstance(part, Part):
            parts.append(part)
        elif isinstance(part, Mapping):
            parts.append(part_from_dict(part, f"{where}[{j}]"))
        else:  # a bare string too: no API takes one inside a list of parts
            raise _refuse(f"{where}[{j}]", f"must be a part or a part dict, got "
                                           f"{type(part).__name__}")
    return tuple(parts)


def part_from_dict(item: Mapping[Any, Any], where: str) -> Part:
    kind = item.get("type")
    if kind not in PART_KEYS:
        raise _refuse(f"{where}.type", f"must be one of {sorted(PART_KEYS)}, got "
                                       f"{_shown(kind)}")
    _keys(item, PART_KEYS[kind], where, f"a {kind} part")
    if kind in ("text", "input_text"):
        return Text(_text(item.get("text"), f"{where}.text", empty=True))
    try:
        if kind == "image":
            return _anthropic_image(item.get("source"), f"{where}.source")
        url: Any = item.get("image_url")
        detail = item.get("detail")
        if kind == "image_url" and isinstance(url, Mapping):
            _keys(url, frozenset({"url", "detail"}), f"{where}.image_url", "an image_url")
            url, detail = url.get("url"), url.get("detail")
        return _image(_text(url, f"{where}.image_url"), detail)
    except UsageError as exc:
        if str(exc).startswith(where):
            raise
        raise _refuse(where, str(exc)) from None


def _image(url: str, detail: Any) -> Image:
    """A data URL (the type is read from the bytes, never the label) or an http(s) URL."""
    if url[:5].lower() == "data:":
        header, sep, data = url.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise UsageError("a data URL must be data:<type>;base64,<data>")
        return Image(_base64(data), detail=detail)
    return Image.from_url(url, detail=detail)


def _anthropic_image(source: Any, where: str) -> Image:
    if not isinstance(source, Mapping):
        raise _refuse(where, f"must be a dict, got {type(source).__name__}")
    if source.get("type") == "base64":
        _keys(source, frozenset({"type", "media_type", "data"}), where, "a base64 source")
        return Image(_base64(_text(source.get("data"), f"{where}.data")))
    if source.get("type") == "url":
        _keys(source, frozenset({"type", "url"}), where, "a url source")
        return Image.from_url(_text(source.get("url"), f"{where}.url"))
    raise _refuse(f"{where}.type", f"must be 'base64' or 'url', got "
                                   f"{_shown(source.get('type'))}")


def _base64(text: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("the image data is not valid base64") from None


def tool_from(tool: Any, where: str) -> Tool:
    """A Tool; an object with ``get_schema()`` (and ``name``/``description``: Missy's tools);
    or a ``{name, description, parameters}`` mapping."""
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, Mapping):
        schema: Any = tool
    elif callable(getattr(tool, "get_schema", None)):
        schema = tool.get_schema()
        where = f"{where}.get_schema()"
        if not isinstance(schema, Mapping):
            raise _refuse(where, f"must return a dict, got {type(schema).__name__}")
        schema = {"name": getattr(tool, "name", None),
                  "description": getattr(tool, "description", None),
                  **{k: v for k, v in schema.items() if v is not None}}
    else:
        raise UsageError(f"{where} must be a Tool, an object with get_schema(), or a "
                         f"{{name, description, parameters}} dict, got {type(tool).__name__}")
    _keys(schema, TOOL_KEYS, where, "a tool schema")
    parameters = schema.get("parameters")
    if parameters is not None and not (isinstance(parameters, Mapping)
                                       and all(isinstance(k, str) for k in parameters)):
        raise _refuse(f"{where}.parameters", f"must be a JSON Schema object, got "
                                             f"{type(parameters).__name__}")
    strict = schema.get("strict", False)
    if not isinstance(strict, bool):
        raise _refuse(f"{where}.strict", f"must be true or false, got {type(strict).__name__}")
    description = schema.get("description")
    return Tool(_text(schema.get("name"), f"{where}.name"),
                "" if description is None else _text(description, f"{where}.description",
                                                      empty=True),
                parameters, strict)
