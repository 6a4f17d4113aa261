"""The validated config as values: Secret, NetworkConfig, ProviderConfig, Config.

Built by :mod:`missy_providers.config` (which re-exports them); nothing here reads a file or
the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from .core.secret import Secret as Secret
from .core.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any


NETWORK_DEFAULTS: dict[str, Any] = {
    "default_deny": True, "allowed_hosts": (), "allowed_domains": (), "allowed_cidrs": (),
    "provider_allowed_hosts": (), "proxy": "", "ca_bundle": "", "audit_log": "",
    "allow_plain_http_proxy": False, "allow_env_base_url": False,
    "ca_bundle_adds_to_system": False, "tls_key_log": False,
    # Missy's keys: presets (already expanded into the three lists above), REST rules (enforced
    # by the policy) and the host lists of traffic that is not a provider's (kept, never used).
    "presets": (), "rest_policies": (), "tool_allowed_hosts": (), "discord_allowed_hosts": (),
    # Mutual TLS: a client certificate (PEM) and its key, presented to every server.
    "client_cert": "", "client_key": "",
}


class NetworkConfig(Value):
    """The ``network:`` section (see NETWORK_DEFAULTS for what is unset)."""

    __slots__ = tuple(NETWORK_DEFAULTS)
    default_deny: bool
    allowed_hosts: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    provider_allowed_hosts: tuple[str, ...]
    proxy: str
    ca_bundle: str
    audit_log: str
    allow_plain_http_proxy: bool
    allow_env_base_url: bool  # OPENAI_BASE_URL / OLLAMA_HOST may set a base_url (and egress)
    ca_bundle_adds_to_system: bool  # the bundle adds to the system store (default: replaces)
    tls_key_log: bool  # honour SSLKEYLOGFILE (debugging only: writes TLS secrets to disk)
    presets: tuple[str, ...]  # the preset names given (their entries are in the lists above)
    rest_policies: tuple[Any, ...]  # core.policy.RestRule values, in order
    tool_allowed_hosts: tuple[str, ...]  # Missy's tool traffic: accepted, never used here
    discord_allowed_hosts: tuple[str, ...]  # Missy's Discord traffic: accepted, never used here
    client_cert: str  # a PEM client certificate chain presented in every TLS handshake
    client_key: str  # its private key (a file only the owner may read; "" = in client_cert)

    def __init__(self, **settings: Any) -> None:
        self._set_over(NETWORK_DEFAULTS, settings)


# Body keys only the library writes, per provider type (a named option maps to each of the
# others); provider_options may not set them.
LIBRARY_KEYS = {
    "anthropic": frozenset({"model", "messages", "system", "stream", "tools", "max_tokens",
                            "temperature", "stop_sequences", "tool_choice", "thinking",
                            "output_config"}),
    "openai": frozenset({"model", "messages", "stream", "stream_options", "tools",
                         "max_tokens", "max_completion_tokens", "temperature", "stop",
                         "tool_choice", "parallel_tool_calls", "response_format",
                         "reasoning_effort", "prompt_cache_key", "functions"}),
    "openai-codex": frozenset({"model", "instructions", "input", "store", "stream", "include",
                               "tools", "tool_choice", "parallel_tool_calls",
                               "max_output_tokens", "temperature", "reasoning", "text",
                               "prompt_cache_key"}),
    "ollama": frozenset({"model", "messages", "stream", "tools", "think", "format"}),
    # Converse: inferenceConfig and additionalModelRequestFields merge (a key this request
    # sets is refused by merge_options).
    "bedrock": frozenset({"modelId", "messages", "system", "toolConfig", "outputConfig"}),
}

# Headers a caller may not set per provider type: the credential and protocol headers the
# provider itself sends (the client's framing headers are refused for every provider).
PROVIDER_HEADERS = {
    "anthropic": frozenset({"x-api-key", "anthropic-version", "authorization"}),
    "openai": frozenset({"authorization", "openai-organization", "openai-project"}),
    "openai-codex": frozenset({"authorization", "chatgpt-account-id", "openai-beta",
                               "originator", "session_id"}),
    "ollama": frozenset({"authorization"}),
    "azure-openai": frozenset({"authorization", "api-key"}),
    "bedrock": frozenset({"authorization", "x-amz-date", "x-amz-security-token",
                          "x-amz-content-sha256"}),
}

PROVIDER_DEFAULTS: dict[str, Any] = {
    "keys": (), "key_source": "none", "unset_keys": (), "keys_configured": False,
    "enabled": True, "fast_model": "", "premium_model": "",
    "timeout": 60.0, "total_timeout": 600.0, "max_retries": 2, "organization": "",
    "project": "", "auth_file": "", "token_url": "",
    "requests_per_minute": 0.0,  # 0: unlimited
    "tokens_per_minute": 0.0,
    "max_wait_seconds": 30.0,
    "circuit_breaker_threshold": 5,  # 0: off
    "circuit_breaker_cooldown_seconds": 30.0,
    "weight": 1.0,  # Missy's meaning: a share of automatic picks; 0: never picked automatically
    "key_rotation_strategy": "failover",  # or round_robin: each call starts on the next key
    "account_weights": (),  # round_robin: one weight > 0 per key of the ring (empty: equal)
    "base_url_source": "config",  # config | default | env OPENAI_BASE_URL | env OLLAMA_HOST
    "allow_plain_http": False,  # a key may go over http:// to a host that is not loopback
    "headers": (),  # (name, str | Secret) pairs sent on every request (config `headers:`)
    "options": (),  # (key, value) pairs merged into every request body (config `options:`)
    # A key read from a file when a call needs it, and again after a 401 (api_key_file): the
    # path, and whether it is a systemd credential ($CREDENTIALS_DIRECTORY/NAME).
    "key_file": "", "key_file_systemd": False,
    "client_cert": "", "client_key": "",  # mutual TLS for this provider's base_url only
    # Azure OpenAI: an Entra ID access token file an agent keeps fresh; Chat Completions or
    # the Responses API; the older deployment URLs when api_version is given.
    "token_file": "", "api": "chat", "deployment": "", "api_version": "",
    # AWS Bedrock: the region (it names the host and signs), and SigV4 credentials: given
    # (config or AWS_* variables) or read from a profile of the shared credentials file.
    "region": "", "aws_credentials": None, "aws_profile": "", "aws_credentials_file": "",
}


class ProviderConfig(Value):
    """One entry of ``providers:``. ``keys`` is the rotation ring: index 0 is the key chosen by
    precedence (``api_key``, the env var, ``api_keys[0]``), then the other ``api_keys``."""

    __slots__ = ("name", "provider_type", "model", "base_url", *PROVIDER_DEFAULTS)
    name: str
    provider_type: str
    model: str
    base_url: str
    keys: tuple[Secret, ...]
    key_source: str
    unset_keys: tuple[str, ...]  # referenced $VARs that are not set (names only)
    keys_configured: bool  # api_key or api_keys given: a request never goes out without one
    enabled: bool
    fast_model: str
    premium_model: str
    timeout: float
    total_timeout: float
    max_retries: int
    organization: str
    project: str
    auth_file: str
    token_url: str
    requests_per_minute: float
    tokens_per_minute: float
    max_wait_seconds: float
    circuit_breaker_threshold: int
    circuit_breaker_cooldown_seconds: float
    weight: float
    key_rotation_strategy: str
    account_weights: tuple[float, ...]
    base_url_source: str
    allow_plain_http: bool
    headers: tuple[tuple[str, Any], ...]
    options: tuple[tuple[str, Any], ...]
    key_file: str
    key_file_systemd: bool
    client_cert: str
    client_key: str
    token_file: str
    api: str
    deployment: str
    api_version: str
    region: str
    aws_credentials: Any  # core.sigv4.AwsCredentials, or None
    aws_profile: str
    aws_credentials_file: str

    def __init__(self, name: str, provider_type: str, model: str, base_url: str,
                 **settings: Any) -> None:
        self._set_over({"name": name, "provider_type": provider_type, "model": model,
                        "base_url": base_url, **PROVIDER_DEFAULTS}, settings)

    # Missy's field names, read by its runtime and API server (``registry.get_config(name)``).

    @property
    def api_key(self) -> Secret | None:
        """The key a call starts with (a Secret: its repr never shows it), or None."""
        return self.keys[0] if self.keys else None

    @property
    def api_keys(self) -> tuple[Secret, ...]:
        """Every key of the ring (more than one: a failed key rotates to the next)."""
        return self.keys

    @property
    def oauth_accounts(self) -> tuple[str, ...]:
        """Missy's Codex accounts: not supported here (the config refuses the key), so none."""
        return ()


class Config(Value):
    """A validated config: build it with config_from_dict or load_config."""

    __slots__ = ("providers", "network", "default_provider", "fallback", "source", "notes",
                 "call_log", "host_keys", "log_level", "skipped")
    providers: Mapping[str, ProviderConfig]
    network: NetworkConfig
    default_provider: str
    fallback: tuple[str, ...]
    source: str
    notes: tuple[str, ...]  # not errors, but worth an operator's attention (config check)
    call_log: str  # observability.call_log: a JSONL file of call events ("" for none)
    host_keys: tuple[str, ...]  # top-level keys that are the host application's, not ours
    log_level: str  # observability.log_level as a logging level name ("" when not set)
    skipped: Mapping[str, str]  # providers left out for their type: name -> the type

    def __init__(self, providers: Mapping[str, ProviderConfig] | None = None,
                 network: NetworkConfig | None = None, default_provider: str = "",
                 fallback: tuple[str, ...] = (), source: str = "<dict>",
                 notes: tuple[str, ...] = (), call_log: str = "",
                 host_keys: tuple[str, ...] = (), log_level: str = "",
                 skipped: Mapping[str, str] | None = None) -> None:
        self._set(providers={} if providers is None else providers,
                  network=NetworkConfig() if network is None else network,
                  default_provider=default_provider, fallback=fallback, source=source,
                  notes=notes, call_log=call_log, host_keys=host_keys, log_level=log_level,
                  skipped={} if skipped is None else skipped)

    def __hash__(self) -> int:  # providers is a dict
        return hash((self.source, tuple(self.providers)))
