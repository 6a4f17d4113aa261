"""What a host passes, in its own shapes, checked strictly into our types (native.py): OpenAI
chat message dicts with tool calls and results, native content part dicts, tools as objects
with get_schema() or schema dicts. Every refusal names the field, before any I/O."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import sent_body
from loopback import LoopbackServer

from missy_providers.content import Image, Text
from missy_providers.core.errors import UsageError
from missy_providers.types import Message, Tool, ToolCall, ToolResult, as_messages, as_tools

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
B64 = base64.b64encode(PNG).decode()


def test_a_tool_loop_in_openai_dicts() -> None:
    converted = as_messages([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "", "tool_calls": [  # Missy's flat shape
            {"id": "c1", "name": "calc", "arguments": {"expression": "2+2"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "calc", "content": "4",
         "is_error": False},
        {"role": "assistant", "content": None, "tool_calls": [  # OpenAI's own shape
            {"id": "c2", "type": "function", "function": {"name": "calc",
                                                          "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "1"}]},
    ])
    assert converted == [
        Message("system", "sys"), Message("user", "2+2?"),
        Message("assistant", "", tool_calls=(ToolCall("c1", "calc", {"expression": "2+2"}),)),
        Message.tool(ToolResult("c1", "calc", "4")),
        Message("assistant", "", tool_calls=(ToolCall("c2", "calc", {"x": 1}),)),
        Message.tool(ToolResult("c2", "calc", [Text("1")])),  # name from the call
    ]


@pytest.mark.parametrize("part, expected", [
    ({"type": "text", "text": "hi"}, Text("hi")),
    ({"type": "input_text", "text": ""}, Text("")),
    ({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{B64}",
                                         "detail": "low"}}, Image(PNG, detail="low")),
    ({"type": "image_url", "image_url": "https://x.example/a.png"},
     Image.from_url("https://x.example/a.png")),
    ({"type": "input_image", "image_url": f"data:image/png;base64,{B64}", "detail": "high"},
     Image(PNG, detail="high")),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
     Image(PNG)),
    ({"type": "image", "source": {"type": "url", "url": "https://x.example/b.png"}},
     Image.from_url("https://x.example/b.png")),
])
def test_part_dicts(part: Any, expected: Any) -> None:
    assert as_messages([{"role": "user", "content": [part]}])[0].content == (expected,)
    assert Message("user", [part]).content == (expected,)  # in a Message too (Missy's vision)


BAD = [
    ([{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
      "function": {"name": "x", "arguments": "[1]"}}]}],
     "messages[0].tool_calls[0].function.arguments: must be a JSON object (a dict or its JSON "
     "text), got list"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
      {"role": "user", "content": "c"},
      {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                             "function": {"name": "x", "arguments": "{"}}]}],
     "messages[3].tool_calls[0].function.arguments: is not valid JSON"),
    ([{"role": "assistant", "tool_calls": [{"id": "", "name": "x"}]}],
     "messages[0].tool_calls[0].id: must be a non-empty string, got str"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "name": "x", "args": {}}]}],
     "messages[0].tool_calls[0]: a tool call has no key(s) ['args']"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "type": "retrieval", "name": "x"}]}],
     "messages[0].tool_calls[0].type: must be 'function', got 'retrieval'"),
    ([{"role": "assistant", "tool_calls": "x"}], "messages[0].tool_calls: must be a list"),
    ([{"role": "user", "content": "x", "tool_calls": []}],
     "messages[0]: a user message dict has no key(s) ['tool_calls']"),
    ([{"role": "tool", "content": "x", "tool_call_id": "z"}],
     "messages[0].name: is missing, and no earlier assistant message has a tool call with "
     "id 'z'"),
    ([{"role": "tool", "content": "x", "tool_call_id": "z", "name": "n", "is_error": "no"}],
     "messages[0].is_error: must be true or false, got str"),
    ([{"role": "tool", "content": "x", "name": "n"}],
     "messages[0].tool_call_id: must be a non-empty string, got NoneType"),
    ([{"role": "developer", "content": "x"}],
     "messages[0].role: must be one of ['assistant', 'system', 'tool', 'user'], got "
     "'developer'"),
    ([{"role": "user", "content": [{"type": "audio", "data": "x"}]}],
     "messages[0].content[0].type: must be one of ['image', 'image_url', 'input_image', "
     "'input_text', 'text'], got 'audio'"),
    ([{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {}}]}],
     "messages[0].content[0]: a text part has no key(s) ['cache_control']"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,@@"}}]}],
     "messages[0].content[0]: the image data is not valid base64"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": f"data:image/png;base64,{B64}", "detail": "max"}}]}],
     "messages[0].content[0]: Image detail must be one of ['auto', 'high', 'low'], got 'max'"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": "ftp://x/y.png"}]}],
     "messages[0].content[0]: Image url must be an http(s) URL"),
    ([{"role": "user", "content": [{"type": "image", "source": {"type": "file",
                                                                "file_id": "f"}}]}],
     "messages[0].content[0].source.type: must be 'base64' or 'url', got 'file'"),
    ([{"role": "user", "content": [3]}],
     "messages[0].content[0]: must be a part or a part dict, got int"),
    ([{"role": "user", "content": [{"type": "text", "text": "a"}, "loose"]}],
     "messages[0].content[1]: must be a part or a part dict, got str"),
]


@pytest.mark.parametrize("messages, message", BAD, ids=[b[1][:50] for b in BAD])
def test_bad_message_dicts_name_the_field(messages: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        as_messages(messages)
    assert str(info.value).startswith(message), str(info.value)


class SchemaTool:
    name = "calc"
    description = "Evaluate."

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def get_schema(self) -> Any:
        return self.schema


PARAMS = {"type": "object", "properties": {"expression": {"type": "string"}},
          "required": ["expression"]}


@pytest.mark.parametrize("tool, expected", [
    (Tool("calc", "Evaluate.", PARAMS), Tool("calc", "Evaluate.", PARAMS)),
    (SchemaTool({"name": "calc", "description": "Evaluate.", "parameters": PARAMS}),
     Tool("calc", "Evaluate.", PARAMS)),
    (SchemaTool({"parameters": PARAMS}), Tool("calc", "Evaluate.", PARAMS)),  # attributes
    ({"name": "calc", "description": "Evaluate.", "parameters": PARAMS},
     Tool("calc", "Evaluate.", PARAMS)),
    ({"name": "calc", "parameters": None}, Tool("calc")),
    ({"name": "calc", "description": None, "strict": True}, Tool("calc", strict=True)),
])
def test_tools(tool: Any, expected: Tool) -> None:
    assert as_tools([tool]) == [expected]


@pytest.mark.parametrize("tools, message", [
    ([{"name": "calc", "input_schema": {}}], "tools[0]: a tool schema has no key(s) "
     "['input_schema']"),
    ([{"description": "no name"}], "tools[0].name: must be a non-empty string, got NoneType"),
    ([{"name": "calc", "parameters": ["x"]}], "tools[0].parameters: must be a JSON Schema "
     "object, got list"),
    ([{"name": "calc", "strict": "yes"}], "tools[0].strict: must be true or false, got str"),
    ([Tool("a"), SchemaTool("not a dict")], "tools[1].get_schema(): must return a dict, got "
     "str"),
    ([SchemaTool({"name": "calc", "extra": 1})], "tools[0].get_schema(): a tool schema has "
     "no key(s) ['extra']"),
    ([3], "tools[0] must be a Tool, an object with get_schema(), or a {name, description, "
     "parameters} dict, got int"),
])
def test_bad_tools_name_the_field(tools: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        as_tools(tools)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("ptype", ["anthropic", "openai", "openai-codex", "ollama"])
def test_system_and_an_equal_system_message_are_sent_once(server: LoopbackServer,
                                                          ptype: str) -> None:
    messages = [Message("system", "Be brief."), Message("user", "hi")]
    body = json.dumps(sent_body(server, ptype, messages, system="Be brief."))
    assert body.count("Be brief.") == 1
    both = json.dumps(sent_body(server, ptype, messages, system="Also this."))
    assert both.count("Be brief.") == 1 and both.count("Also this.") == 1
