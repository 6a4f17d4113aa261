"""missy-providers: one interface to Anthropic, OpenAI (and compatible), Codex, Ollama, AWS
Bedrock and Azure OpenAI.

The public API is re-exported here and imported on first use, so ``import missy_providers``
stays cheap and opens no socket and reads no file.
"""

from __future__ import annotations

import logging

from .core.errors import (
    AllProvidersFailed,
    AuthenticationError,
    CallBudgetExceeded,
    ConfigError,
    ContentRefused,
    ContextLengthError,
    MissyError,
    OverloadedError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    RedirectRefused,
    RequestTimeout,
    StreamClosed,
    StructuredOutputError,
    ToolArgumentsError,
    UsageError,
)

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from .config import Config, NetworkConfig, ProviderConfig, config_from_dict, load_config
    from .content import Document, Image, Text
    from .core.http import ClientCert, PolicyHTTPClient, Timeouts
    from .core.policy import Decision, NetworkPolicy
    from .provider_types import register_type
    from .providers.anthropic import AnthropicProvider
    from .providers.azure import AzureOpenAIProvider
    from .providers.base import BaseProvider
    from .providers.bedrock import BedrockProvider
    from .providers.codex import CodexProvider
    from .providers.ollama import OllamaProvider
    from .providers.openai import OpenAIProvider
    from .providers.streaming import StreamResponse
    from .registry import ProviderRegistry, get_registry, init_registry
    from .router import ModelRouter
    from .streams import Event, NDJSONDecoder, SSEDecoder
    from .types import (
        CompletionResponse,
        Message,
        ModelInfo,
        Refusal,
        StreamEvent,
        TokenCount,
        Tool,
        ToolCall,
        ToolResult,
    )

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "Config": "config", "NetworkConfig": "config", "ProviderConfig": "config",
    "config_from_dict": "config", "load_config": "config",
    "PolicyHTTPClient": "core.http", "Timeouts": "core.http", "ClientCert": "core.http",
    "AzureOpenAIProvider": "providers.azure", "BedrockProvider": "providers.bedrock",
    "Decision": "core.policy", "NetworkPolicy": "core.policy",
    "AnthropicProvider": "providers.anthropic", "BaseProvider": "providers.base",
    "StreamResponse": "providers.streaming", "CodexProvider": "providers.codex",
    "OllamaProvider": "providers.ollama", "OpenAIProvider": "providers.openai",
    "ProviderRegistry": "registry", "ModelRouter": "router", "init_registry": "registry",
    "get_registry": "registry", "register_type": "provider_types",
    "Event": "streams", "NDJSONDecoder": "streams", "SSEDecoder": "streams",
    "CompletionResponse": "types", "Message": "types", "StreamEvent": "types", "Tool": "types",
    "ToolCall": "types", "ToolResult": "types",
    "ModelInfo": "types", "Refusal": "types", "TokenCount": "types",
    "Document": "content", "Image": "content", "Text": "content",
}

__all__ = [
    "AllProvidersFailed", "AnthropicProvider", "AuthenticationError", "AzureOpenAIProvider",
    "BaseProvider", "BedrockProvider", "CallBudgetExceeded", "ClientCert", "CodexProvider",
    "CompletionResponse", "Config", "ConfigError", "ContentRefused", "ContextLengthError",
    "Decision", "Document", "Event", "Image", "Message", "MissyError", "ModelInfo",
    "ModelRouter", "NDJSONDecoder", "NetworkConfig", "NetworkPolicy", "OllamaProvider",
    "OpenAIProvider", "OverloadedError", "PolicyHTTPClient", "PolicyViolation",
    "ProtocolError", "ProviderConfig", "ProviderError", "ProviderRegistry",
    "ProviderUnavailable", "RateLimitError", "RedirectRefused", "Refusal", "RequestTimeout",
    "SSEDecoder", "StreamClosed", "StreamEvent", "StreamResponse", "StructuredOutputError",
    "Text", "Timeouts", "TokenCount", "Tool", "ToolArgumentsError", "ToolCall", "ToolResult",
    "UsageError", "config_from_dict", "get_registry", "init_registry", "load_config",
    "register_type",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'missy_providers' has no attribute {name!r}")
    from .core.env import load_own

    return load_own(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
