"""What each API says about a model, read into ModelInfo; None wherever it says nothing.

Anthropic's Models API gives the context window (``max_input_tokens``), the output limit
(``max_tokens``) and capabilities; Ollama's ``/api/show`` (and ``/api/tags`` from v0.30) gives
capabilities and the context length; OpenAI's own ``/models`` gives neither, and compatible
servers add fields of their own (the table below).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..types import ModelInfo

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

# OpenAI-compatible servers' own model fields (a path into the model object): OpenRouter's
# /models (context_length, top_provider, supported_parameters, architecture), Groq's
# (context_window, max_completion_tokens), vLLM's (max_model_len).
COMPAT_CONTEXT = (("context_length",), ("context_window",), ("max_model_len",))
COMPAT_OUTPUT = (("top_provider", "max_completion_tokens"), ("max_completion_tokens",))
COMPAT_PARAMETERS = {"tools": "tools", "thinking": "reasoning",
                     "structured_output": "structured_outputs"}
# Ollama's capability names (types/model/capability.go) for our fields.
OLLAMA_CAPABILITIES = {"vision": "vision", "tools": "tools", "thinking": "thinking"}


def _at(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def _count(value: Any) -> int | None:
    """A token count as the API gave it: a whole number > 0, else unknown."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def _first_count(data: Any, paths: Sequence[Sequence[str]]) -> int | None:
    return next((n for n in (_count(_at(data, p)) for p in paths) if n is not None), None)


def _supported(data: Any, *path: str) -> bool | None:
    value = _at(data, (*path, "supported"))
    return value if isinstance(value, bool) else None


def from_anthropic(entry: Mapping[str, Any], source: str) -> ModelInfo:
    """A Models API ``ModelInfo`` (``GET /v1/models/{id}`` or an entry of the list). Tool use
    is not among its capabilities: unknown, not assumed."""
    caps = entry.get("capabilities")
    return ModelInfo(str(entry.get("id") or ""), _count(entry.get("max_input_tokens")),
                     _count(entry.get("max_tokens")), vision=_supported(caps, "image_input"),
                     thinking=_supported(caps, "thinking"),
                     structured_output=_supported(caps, "structured_outputs"), source=source)


def from_compatible(entry: Mapping[str, Any], source: str) -> ModelInfo:
    """An entry of ``GET /models``: OpenAI's own has only id, owner and dates; compatible
    servers add the fields of the table above."""
    params = entry.get("supported_parameters")
    listed = {name: wire in params for name, wire in COMPAT_PARAMETERS.items()} \
        if isinstance(params, list) else {}
    modalities = _at(entry, ("architecture", "input_modalities"))
    vision = "image" in modalities if isinstance(modalities, list) else None
    return ModelInfo(str(entry.get("id") or ""), _first_count(entry, COMPAT_CONTEXT),
                     _first_count(entry, COMPAT_OUTPUT), vision=vision, source=source,
                     **listed)


def from_ollama(name: str, data: Mapping[str, Any], source: str) -> ModelInfo:
    """``/api/show`` (or an ``/api/tags`` entry from v0.30): ``capabilities`` and the context
    length (``details.context_length`` from v0.30, else ``model_info`` under the model's
    architecture). Ollama says nothing of an output limit or of structured output."""
    caps = data.get("capabilities")
    flags = {field: wire in caps for field, wire in OLLAMA_CAPABILITIES.items()} \
        if isinstance(caps, list) else {}
    info = data.get("model_info")
    arch = info.get("general.architecture") if isinstance(info, Mapping) else None
    context = _count(_at(data, ("details", "context_length")))
    if context is None and isinstance(arch, str):
        context = _count(info.get(f"{arch}.context_length"))  # type: ignore[union-attr]
    return ModelInfo(name, context, source=source, **flags)
