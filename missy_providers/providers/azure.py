"""Azure OpenAI: the OpenAI Chat Completions and Responses shapes (openai.py, codex.py) at an
Azure resource's URLs, with Azure's authentication.

The v1 API, ``{endpoint}/openai/v1/chat/completions`` or ``/openai/v1/responses`` with the
deployment's name as ``model`` and no ``api-version``; or, when ``api_version`` is given, the
older ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`` (and
``/openai/responses?api-version=...``). A key goes in ``api-key``; an Entra ID access token
(``token_file``, kept fresh by an agent outside, or a host's ``credential_provider``) in
``Authorization: Bearer``. Content filters: see openai.py (``flagged``) and codex.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from ..types import CompletionResponse, Message, Tool
from .codex import CodexStream, parse_responses, responses_body, responses_tools
from .openai import OpenAIProvider, OpenAIStream

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from ..credentials import Renewable
    from .streaming import Accumulator

CHAT_OPTIONS = frozenset({"prompt_cache_key"})
RESPONSES_OPTIONS = frozenset({"prompt_cache_key", "reasoning_summary"})


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI (``name: azure-openai``): Chat Completions by default, the Responses API
    with ``api: responses``."""

    provider_type = "azure-openai"
    auth_header, auth_scheme = "api-key", ""

    @property
    def responses(self) -> bool:
        return self.config.api == "responses"

    @property
    def wire_api(self) -> str:
        return "openai-codex" if self.responses else "openai"

    @property
    def extra_options(self) -> frozenset[str]:  # type: ignore[override]
        return RESPONSES_OPTIONS if self.responses else CHAT_OPTIONS

    @property
    def key_required(self) -> bool:  # type: ignore[override]
        return True

    def renewable(self) -> Renewable | None:
        """An Entra ID access token in ``token_file`` (read when it changed, and again after
        a 401), sent as a bearer token; else an ``api_key_file`` or the key ring."""
        if not self.config.token_file:
            return super().renewable()
        from ..credentials import KeyFile

        return KeyFile(self.name, self.config.token_file, self.config.key_source,
                       what="token_file", bearer=True)

    def missing_credentials(self) -> str:
        if self.config.unset_keys:
            return super().missing_credentials()
        return (f"no key: set providers.{self.name}.api_key, api_key_file or token_file (an "
                "Entra ID access token), or AZURE_OPENAI_API_KEY")

    def endpoint(self) -> str:
        config, base = self.config, self.config.base_url
        if not config.api_version:
            return f"{base}/openai/v1/{'responses' if self.responses else 'chat/completions'}"
        query = f"?api-version={quote(config.api_version, safe='')}"
        if self.responses:
            return f"{base}/openai/responses{query}"
        return (f"{base}/openai/deployments/{quote(config.deployment, safe='')}"
                f"/chat/completions{query}")

    @property
    def probe_path(self) -> str:  # type: ignore[override]
        version = self.config.api_version
        return f"/openai/models?api-version={quote(version, safe='')}" if version else \
            "/openai/v1/models"

    def is_available(self) -> bool:
        return self.has_credentials()

    def takes_max_completion_tokens(self, model: str) -> bool:
        """A deployment's name says nothing of its model: the new name, which Azure takes
        for every model (its reasoning models refuse max_tokens)."""
        return True

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return responses_tools(tools) if self.responses else super().get_tool_schema(tools)

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        if self.responses:
            return responses_body(self, messages, tools, opts, stream=stream)
        return super().build_body(messages, tools, opts, stream=stream)

    def parse_response(self, data: Any) -> CompletionResponse:
        return parse_responses(self, data) if self.responses else super().parse_response(data)

    def new_accumulator(self) -> Accumulator:  # type: ignore[override]
        return CodexStream(self) if self.responses else OpenAIStream(self)
