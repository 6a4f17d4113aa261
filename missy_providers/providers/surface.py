"""What a host application (Missy) calls on a provider beyond the interface: call metadata,
``diagnostics()``, ``structured_output_kwargs(schema)``, its multi-account flags, and a
provider built directly from its config (``OllamaProvider(config)``).

BaseProvider inherits :class:`HostSurface`; nothing here sends a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.errors import UsageError

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from ..core.http import PolicyHTTPClient
    from ..keys import KeyRing
    from ..limits import CircuitBreaker, RateLimiter
    from ..settings import ProviderConfig
    from ..types import Message

# Call metadata: recorded in the call events (call_started), never sent to the provider.
METADATA_OPTIONS = ("session_id", "task_id")
MAX_METADATA_CHARS = 200
SCHEMA_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
STATUS_ORDER = ("ok", "warn", "error")


def metadata_problem(v: Any) -> str | None:
    ok = isinstance(v, str) and len(v) <= MAX_METADATA_CHARS and v.isprintable()
    return None if ok else f"a string of at most {MAX_METADATA_CHARS} printable characters"


def call_metadata(opts: dict[str, Any]) -> dict[str, Any]:
    """The call's metadata options, taken out of ``opts`` (None for each one not given)."""
    return {name: opts.pop(name, None) for name in METADATA_OPTIONS}


def without_repeated_system(messages: Sequence[Message], opts: dict[str, Any]) -> None:
    """Drop ``system=`` from ``opts`` when a system message already says exactly that (Missy
    passes its system prompt both ways): the prompt is sent once, where the message is."""
    system = opts.get("system")
    if system and any(m.role == "system" and m.text == system for m in messages):
        del opts["system"]


def standalone_config(data: Any, provider_type: str) -> ProviderConfig:
    """A provider's config from a mapping of its settings (``{"model": ..., "base_url":
    ...}``), checked as a config file's ``providers:`` entry would be."""
    from ..config import config_from_dict
    from ..settings import ProviderConfig

    if isinstance(data, ProviderConfig):
        return data
    if not isinstance(data, Mapping):
        raise UsageError(f"a {provider_type} provider takes a ProviderConfig (from "
                         f"missy_providers.load_config) or a mapping of its settings, got "
                         f"{type(data).__module__}.{type(data).__qualname__}"[:200])
    if data.get("name", provider_type) != provider_type:
        raise UsageError(f"the settings name type {data.get('name')!r}"[:80] + f"; this "
                         f"provider's type is {provider_type!r}")
    config = config_from_dict({"providers": {provider_type: dict(data)}},
                              source=f"<{provider_type} settings>")
    return config.providers[provider_type]


def schema_name(schema: Any) -> str:
    """A structured-output schema's name from its model class (Missy's OutputSchema has a
    pydantic ``model_class``), as the APIs allow names; ``answer`` when it has none."""
    raw = str(getattr(getattr(schema, "model_class", None), "__name__", "") or "")
    name = "".join(ch if ch in SCHEMA_NAME_CHARS else "_" for ch in raw)[:64]
    return name or "answer"


class HostSurface:
    """Missy's provider attributes and methods, on every provider."""

    # Missy passes OpenAI-shaped message dicts (tool_calls and tool results kept) to a
    # provider that says so; they are converted strictly (types.as_messages).
    accepts_message_dicts: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    owns_client = False  # built directly (no client given): close() closes its own client
    config: ProviderConfig
    client: PolicyHTTPClient
    keys: KeyRing
    limiter: RateLimiter
    breaker: CircuitBreaker

    def has_credentials(self) -> bool:
        raise NotImplementedError

    def credential_source(self) -> str:
        raise NotImplementedError

    def missing_credentials(self) -> str:
        raise NotImplementedError

    @property
    def is_multi_account(self) -> bool:
        """Whether calls are shared out between several keys (round_robin)."""
        return self.keys.round_robin

    @property
    def account_count(self) -> int:
        return len(self.keys) if self.keys.round_robin else 0

    def structured_output_kwargs(self, schema: Any) -> dict[str, Any]:
        """The options that ask this provider for JSON of ``schema``: a JSON Schema mapping,
        or an object with ``to_json_schema()`` (Missy's OutputSchema). Pass them on to
        ``complete``; ``response.parsed`` is then the decoded answer."""
        from .controls import schema_problem

        if isinstance(schema, Mapping):
            json_schema: Any = schema
        elif callable(getattr(schema, "to_json_schema", None)):
            json_schema = schema.to_json_schema()
        else:
            raise UsageError(f"structured_output_kwargs takes a JSON Schema mapping or an "
                             f"object with to_json_schema(), got {type(schema).__name__}")
        if problem := schema_problem(json_schema):
            raise UsageError(f"the schema must be {problem}, got {type(json_schema).__name__}")
        return {"schema": dict(json_schema), "schema_name": schema_name(schema)}

    def diagnostics(self) -> dict[str, Any]:
        """What an operator needs to know about this provider, without contacting it: its
        credentials (where they come from, never a key), endpoint and the policy's verdict on
        it, models, limits, circuit breaker and keys. ``status`` is the worst check's."""
        config = self.config
        has_key = self.has_credentials()
        needed = getattr(self, "needs_key", True) or getattr(self, "credential", None)
        checks: list[dict[str, Any]] = [
            {"name": "credentials", "status": "ok" if has_key else "error",
             "summary": self.credential_source() if needed else "not needed",
             "remediation": None if has_key else self.missing_credentials()},
            self._policy_check(),
            {"name": "model_selection", "status": "ok",
             "summary": {"model": config.model, "fast_model": config.fast_model,
                         "premium_model": config.premium_model}},
            {"name": "rate_limits", "status": "ok",
             "summary": {"requests_per_minute": config.requests_per_minute,
                         "tokens_per_minute": config.tokens_per_minute,
                         "max_wait_seconds": config.max_wait_seconds,
                         "timeout_seconds": config.timeout,
                         "total_timeout_seconds": config.total_timeout}},
            {"name": "circuit_breaker",
             "status": "ok" if self.breaker.state == "closed" else "warn",
             "summary": {"state": self.breaker.state, "failures": self.breaker.failures,
                         "threshold": config.circuit_breaker_threshold,
                         "cooldown_seconds": config.circuit_breaker_cooldown_seconds}},
            {"name": "keys", "status": "warn" if self.keys.cooling() else "ok",
             "summary": {"count": len(self.keys), "strategy": config.key_rotation_strategy,
                         "cooling": self.keys.cooling()}},
        ]
        worst = max((c["status"] for c in checks), key=STATUS_ORDER.index)
        return {"provider": config.name, "type": config.provider_type, "status": worst,
                "checks": checks}

    def _policy_check(self) -> dict[str, Any]:
        url = self.config.base_url
        if not url:
            return {"name": "network_policy", "status": "ok", "summary": "no HTTP endpoint"}
        decision = self.client.policy.check(url)
        return {"name": "network_policy", "status": "ok" if decision.allowed else "error",
                "summary": {"endpoint": url, "verdict": decision.reason},
                "remediation": None if decision.allowed else
                "allow the endpoint's host in the network: section"}

    def close(self) -> None:
        """Close the connections of a provider built directly (a registry's providers share
        the registry's client: close the registry)."""
        if self.owns_client:
            self.client.close()
