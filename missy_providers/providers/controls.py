"""Request controls beyond the basic options, mapped per API in one place: structured output
(``schema``), ``reasoning``, ``tool_choice`` / ``parallel_tool_calls``, Anthropic prompt
caching, and the one door for everything else: ``provider_options`` (body keys) and
``headers``, which can never override what the library or the client sets.

Each ``*_controls`` function adds one API's fields to a request body built by its provider;
every value was checked (base.OPTION_CHECKS) before, and a combination the API refuses is a
UsageError here, before any I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..content import cache_control, cache_point
from ..core.errors import StructuredOutputError, UsageError
from ..core.headers import header_problems, held
from ..core.values import own_text
from ..settings import LIBRARY_KEYS, PROVIDER_HEADERS
from ..types import Tool

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

REASONING_LEVELS = ("none", "minimal", "low", "medium", "high")
TOOL_CHOICES = ("auto", "none", "required")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
# Ollama's think: a bool or a level (api/types.go ThinkValue; "max" from v0.22.0). GPT-OSS takes
# only a level: it ignores the booleans.
THINK_LEVELS = ("low", "medium", "high", "max")
DEFAULT_SCHEMA_NAME = "answer"
MAX_CACHE_BREAKPOINTS = 4  # Anthropic's limit on cache_control markers in one request
MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget_tokens
# --- option checks (None when the value fits) ---------------------------------------------

def schema_problem(v: Any) -> str | None:
    return None if isinstance(v, Mapping) and v else "a JSON Schema object (a non-empty dict)"


def reasoning_problem(v: Any) -> str | None:
    return None if v in REASONING_LEVELS else f"one of {list(REASONING_LEVELS)}"


def tool_choice_problem(v: Any) -> str | None:
    ok = isinstance(v, str) and bool(v)
    return None if ok else f"one of {list(TOOL_CHOICES)} or a tool's name"


def summary_problem(v: Any) -> str | None:
    return None if v in REASONING_SUMMARIES else f"one of {list(REASONING_SUMMARIES)}"


def budget_problem(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= MIN_THINKING_BUDGET
    return None if ok else f"a whole number >= {MIN_THINKING_BUDGET}"


def think_problem(v: Any) -> str | None:
    ok = isinstance(v, bool) or v in THINK_LEVELS
    return None if ok else f"True, False or one of {list(THINK_LEVELS)}"


def mapping_problem(v: Any) -> str | None:
    ok = isinstance(v, Mapping) and all(isinstance(k, str) for k in v)
    return None if ok else "a dict with string keys"


def bool_problem(v: Any) -> str | None:
    return None if isinstance(v, bool) else "True or False"


# --- headers and provider_options: the one door ---------------------------------------------

def checked_headers(headers: Mapping[str, Any], ptype: str, provider: str) -> dict[str, Any]:
    """The call's extra headers, checked; a credential-like header's literal value is held as
    a Secret (the credential rules then apply to it)."""
    if not headers:
        return {}
    problems = header_problems(headers, PROVIDER_HEADERS.get(ptype, frozenset()))
    if problems:
        name, why = problems[0]
        raise UsageError(f"{provider}: header {name!r}: {why}")
    # Plain names: a key whose hash and == claim a reserved name would replace it when the
    # provider merges these into its own headers.
    plain = {own_text(name): value for name, value in headers.items()}
    return {name: held(name, value, f"header {name}") for name, value in plain.items()}


def layered(config: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    """The call's provider_options over the config's ``options:`` (dicts merged one level)."""
    out = dict(config)
    for key, value in call.items():
        below = out.get(key)
        out[key] = {**below, **value} if isinstance(below, Mapping) and \
            isinstance(value, Mapping) else value
    return out


def merge_options(body: dict[str, Any], extra: Mapping[str, Any], ptype: str,
                  provider: str, where: str) -> None:
    """Provider-specific keys into the body: a key the library writes, or one this request
    already holds, is refused; a dict merges into the body's dict of the same name (Ollama's
    ``options``) under the same rule, one level down."""
    for key, value in extra.items():
        if key in LIBRARY_KEYS.get(ptype, ()):
            raise UsageError(f"{provider}: {where} cannot set {key!r}: the library sets it "
                             f"(use the named option)")
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            clash = sorted(set(current) & set(value))
            if clash:
                raise UsageError(f"{provider}: {where} cannot set {key}.{clash[0]}: this "
                                 f"request already sets it (use the named option)")
            current.update(value)
        elif key in body:
            raise UsageError(f"{provider}: {where} cannot set {key!r}: this request already "
                             f"sets it")
        else:
            body[key] = value


# --- structured output ----------------------------------------------------------------------

def parse_structured(text: str, schema: Mapping[str, Any], provider: str) -> Any:
    """The answer decoded as the schema's JSON. The server holds the answer to the schema
    (strict modes); here we check what a client can without a validator: it is JSON, of the
    schema's top-level type, with the required keys."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise StructuredOutputError(f"the answer is not JSON ({len(text)} chars; see .raw)",
                                    raw=text, provider=provider) from None
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if isinstance(kind, str) and kind in types and not isinstance(value, types[kind]):
        raise StructuredOutputError(f"the answer is JSON but not a {kind} as the schema says "
                                    f"(see .raw)", raw=text, provider=provider)
    missing = [k for k in schema.get("required") or () if isinstance(value, dict)
               and k not in value]
    if missing:
        raise StructuredOutputError(f"the answer lacks the required key {missing[0]!r} "
                                    f"(see .raw)", raw=text, provider=provider)
    return value


def _schema_name(opts: Mapping[str, Any]) -> str:
    return str(opts.get("schema_name") or DEFAULT_SCHEMA_NAME)


# --- tool choice ----------------------------------------------------------------------------

def _choice(opts: Mapping[str, Any], tools: Sequence[Tool] | None, provider: str) -> str | None:
    """The tool_choice, checked against the tools of this call: a name must be one of them."""
    choice: str | None = opts.get("tool_choice")
    if choice is None or choice in TOOL_CHOICES:
        if choice == "required" and not tools:
            raise UsageError(f"{provider}: tool_choice 'required' needs tools")
        return choice
    names = [t.name for t in tools or ()]
    if choice not in names:
        raise UsageError(f"{provider}: tool_choice {str(choice)[:60]!r} is not one of this "
                         f"call's tools {names[:10]}")
    return choice


# --- per API --------------------------------------------------------------------------------

def chat_controls(body: dict[str, Any], opts: Mapping[str, Any], tools: Sequence[Tool] | None,
                  provider: str) -> None:
    if opts.get("schema"):
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": _schema_name(opts), "schema": dict(opts["schema"]), "strict": True}}
    if opts.get("reasoning"):
        body["reasoning_effort"] = opts["reasoning"]
    choice = _choice(opts, tools, provider)
    if choice is not None:
        body["tool_choice"] = choice if choice in TOOL_CHOICES else {
            "type": "function", "function": {"name": choice}}
    if "parallel_tool_calls" in opts and tools:
        body["parallel_tool_calls"] = opts["parallel_tool_calls"]


def responses_controls(body: dict[str, Any], opts: Mapping[str, Any],
                       tools: Sequence[Tool] | None, provider: str) -> None:
    if opts.get("schema"):
        body["text"] = {"format": {"type": "json_schema", "name": _schema_name(opts),
                                   "schema": dict(opts["schema"]), "strict": True}}
    if opts.get("reasoning") or opts.get("reasoning_summary"):
        reasoning = {"effort": opts["reasoning"]} if opts.get("reasoning") else {}
        if opts.get("reasoning_summary"):
            reasoning["summary"] = opts["reasoning_summary"]
        body["reasoning"] = reasoning
    choice = _choice(opts, tools, provider)
    if choice is not None:
        body["tool_choice"] = choice if choice in TOOL_CHOICES else {"type": "function",
                                                                     "name": choice}
    if "parallel_tool_calls" in opts and tools:
        body["parallel_tool_calls"] = opts["parallel_tool_calls"]


def anthropic_controls(body: dict[str, Any], opts: Mapping[str, Any],
                       tools: Sequence[Tool] | None, provider: str) -> None:
    """Structured output is ``output_config.format``; reasoning is adaptive thinking with
    ``output_config.effort`` (the current docs' way), or extended thinking with an explicit
    ``reasoning_budget``; thinking refuses a changed temperature, and extended thinking a
    forced tool (the documented rules)."""
    output: dict[str, Any] = {}
    if opts.get("schema"):
        output["format"] = {"type": "json_schema", "schema": dict(opts["schema"])}
    level, budget = opts.get("reasoning"), opts.get("reasoning_budget")
    if level == "minimal":
        raise UsageError(f"{provider}: reasoning 'minimal' is not an Anthropic effort; use "
                         f"'low', 'medium', 'high' or 'none'")
    if level == "none":
        if budget is not None:
            raise UsageError(f"{provider}: reasoning 'none' and reasoning_budget conflict")
        body["thinking"] = {"type": "disabled"}
    elif budget is not None:
        if budget >= body["max_tokens"]:
            raise UsageError(f"{provider}: reasoning_budget must be below max_tokens "
                             f"({body['max_tokens']})")
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif level:
        body["thinking"] = {"type": "adaptive"}
        output["effort"] = level
    if output:
        body["output_config"] = output
    thinking = body.get("thinking", {}).get("type") in ("enabled", "adaptive")
    if thinking and "temperature" in body:
        raise UsageError(f"{provider}: Anthropic thinking does not take temperature; leave it "
                         f"out when reasoning is on")
    choice = _choice(opts, tools, provider)
    if budget is not None and choice not in (None, "auto", "none"):
        raise UsageError(f"{provider}: extended thinking (reasoning_budget) cannot force a "
                         f"tool; use tool_choice 'auto' or adaptive reasoning")
    parallel = opts.get("parallel_tool_calls")
    if (choice is not None or parallel is False) and tools:
        kind = {"auto": "auto", "none": "none", "required": "any"}.get(choice or "auto")
        wire: dict[str, Any] = {"type": kind} if kind else {"type": "tool", "name": choice}
        if parallel is False:
            wire["disable_parallel_tool_use"] = True
        body["tool_choice"] = wire
    if opts.get("cache"):
        place_breakpoints(body, opts["cache"])
    count = count_breakpoints(body)
    if count > MAX_CACHE_BREAKPOINTS:
        raise UsageError(f"{provider}: at most {MAX_CACHE_BREAKPOINTS} cache breakpoints in "
                         f"one request (the API's limit); this one has {count}: mark fewer "
                         f"parts cache=True")


def ollama_controls(body: dict[str, Any], opts: Mapping[str, Any],
                    tools: Sequence[Tool] | None, provider: str) -> None:
    if opts.get("schema"):
        body["format"] = dict(opts["schema"])
    level = opts.get("reasoning")
    if level is not None:
        if opts.get("think") is not None:
            raise UsageError(f"{provider}: give reasoning or think, not both")
        if level == "minimal":
            raise UsageError(f"{provider}: Ollama's think takes 'low', 'medium', 'high' or "
                             f"off ('none'), not 'minimal'")
        body["think"] = False if level == "none" else level
    if opts.get("tool_choice", "auto") != "auto" or "parallel_tool_calls" in opts:
        raise UsageError(f"{provider}: Ollama's /api/chat has no tool_choice or "
                         f"parallel_tool_calls (the model decides)")


def converse_controls(body: dict[str, Any], opts: Mapping[str, Any],
                      tools: Sequence[Tool] | None, provider: str) -> None:
    """Bedrock's Converse: structured output is ``outputConfig.textFormat`` (the schema as a
    JSON string, as the service model says); extended thinking goes to the model in
    ``additionalModelRequestFields`` (Claude's ``thinking``); tool choice is ``auto``,
    ``any`` or one ``tool`` (no ``none``: call without tools); ``cache`` places cachePoint
    blocks where an agent's prefix ends."""
    if opts.get("schema"):
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {
            "jsonSchema": {"schema": json.dumps(dict(opts["schema"])),
                           "name": _schema_name(opts)}}}}
    if opts.get("reasoning") not in (None, "none"):
        raise UsageError(f"{provider}: Bedrock's reasoning settings are each model family's "
                         f"own: use reasoning_budget (Claude's extended thinking) or "
                         f"provider_options={{'additionalModelRequestFields': {{...}}}}")
    budget = opts.get("reasoning_budget")
    if budget is not None:
        inference = body.get("inferenceConfig") or {}
        if budget >= inference.get("maxTokens", budget + 1):
            raise UsageError(f"{provider}: reasoning_budget must be below max_tokens "
                             f"({inference['maxTokens']})")
        if "temperature" in inference:
            raise UsageError(f"{provider}: Claude's thinking does not take temperature; leave "
                             f"it out when reasoning_budget is given")
        body.setdefault("additionalModelRequestFields", {})["thinking"] = {
            "type": "enabled", "budget_tokens": budget}
    choice = _choice(opts, tools, provider)
    if choice == "none" or "parallel_tool_calls" in opts:
        raise UsageError(f"{provider}: Bedrock's Converse has no tool_choice 'none' or "
                         f"parallel_tool_calls (call without tools to forbid them)")
    if choice is not None and tools:
        body["toolConfig"]["toolChoice"] = {"auto": {}} if choice == "auto" else \
            {"any": {}} if choice == "required" else {"tool": {"name": choice}}
    if opts.get("cache"):
        point = cache_point(opts["cache"])
        for blocks in (body.get("system"), (body.get("toolConfig") or {}).get("tools"),
                       next((m["content"] for m in reversed(body["messages"])
                             if m["role"] == "user"), None)):
            if blocks and "cachePoint" not in blocks[-1]:
                blocks.append(dict(point))


CONTROLS = {"anthropic": anthropic_controls, "openai": chat_controls,
            "openai-codex": responses_controls, "ollama": ollama_controls,
            "bedrock": converse_controls}


# --- Anthropic prompt caching ---------------------------------------------------------------

def place_breakpoints(body: dict[str, Any], cache: bool | str) -> None:
    """``cache=True``: breakpoints where an agent's prefix ends (the last tool, the system
    prompt, the last user turn), so each turn reads what the one before wrote."""
    control = cache_control(cache)
    if body.get("tools"):
        body["tools"][-1]["cache_control"] = control
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"]}]
    if body.get("system"):
        body["system"][-1]["cache_control"] = control
    user = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
    if user is not None:
        if isinstance(user["content"], str):
            user["content"] = [{"type": "text", "text": user["content"]}]
        if user["content"]:
            user["content"][-1]["cache_control"] = control


def count_breakpoints(body: Mapping[str, Any]) -> int:
    blocks = list(body.get("tools") or ())
    system = body.get("system")
    blocks += system if isinstance(system, list) else []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):
            blocks += content
            blocks += [b for block in content if block.get("type") == "tool_result"
                       and isinstance(block.get("content"), list) for b in block["content"]]
    return sum(1 for b in blocks if isinstance(b, Mapping) and "cache_control" in b)
