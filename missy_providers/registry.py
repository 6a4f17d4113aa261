"""ProviderRegistry: config -> provider instances, the default provider, keys and rotation."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .config import Config, ProviderConfig, config_from_dict, load_config
from .core.errors import (
    AllProvidersFailed,
    AuthenticationError,
    MissyError,
    OverloadedError,
    ProviderUnavailable,
    RateLimitError,
    RequestTimeout,
    UsageError,
    at_boundary,
)
from .core.secret import get_logger
from .events import Hooks
from .router import TIERS, ModelRouter

log = get_logger(__name__)

# What makes a fallback chain move on: the provider is down, overloaded, out of rate even after
# its retries, or too slow. Not a bad key, a too-long prompt or a policy denial: those would
# fail the same way anywhere, and are the caller's to fix.
FALLBACK_ERRORS = (ProviderUnavailable, OverloadedError, RateLimitError, RequestTimeout)

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .core.http import PolicyHTTPClient
    from .core.wire import CallBudget
    from .events import Hook
    from .keys import KeyRing
    from .providers.base import BaseProvider
    from .providers.streaming import StreamResponse
    from .types import CompletionResponse, Message, Tool

# The one table from provider type to class, imported only when such a provider is enabled.
PROVIDER_CLASSES = {
    "anthropic": "providers.anthropic:AnthropicProvider",
    "openai": "providers.openai:OpenAIProvider",
    "openai-codex": "providers.codex:CodexProvider",
    "ollama": "providers.ollama:OllamaProvider",
}


def provider_class(provider_type: str) -> type[BaseProvider]:
    from .core.env import load_own

    module_name, _, class_name = PROVIDER_CLASSES[provider_type].partition(":")
    cls: type[BaseProvider] = load_own(module_name, class_name)  # type: ignore[assignment]
    return cls


class ProviderRegistry:
    """The single source of truth for the configured providers."""

    def __init__(self, config: Config, client: PolicyHTTPClient | None = None,
                 on_event: Hook | None = None) -> None:
        from .config import http_client
        from .keys import KeyRing

        self.config = config
        self.client = client or http_client(config)
        self.hooks = Hooks()  # shared by every provider of this registry
        if on_event is not None:
            self.hooks.subscribe(on_event)
        if config.call_log:
            from .core.errors import ConfigError
            from .core.files import JsonlAppender, writable_file_problem

            if problem := writable_file_problem(config.call_log, "call log"):
                raise ConfigError(problem, ("observability", "call_log"), config.source)
            log_file = JsonlAppender(config.call_log, ("observability", "call_log"))
            # Required: a call whose events cannot be written fails (nothing unrecorded).
            self.hooks.subscribe(lambda event: log_file(event.as_dict()), required=True)
        self._keys: dict[str, KeyRing] = {}
        self._providers: dict[str, BaseProvider] = {}
        for name, pconf in config.providers.items():
            if pconf.enabled:  # disabled providers are listed, never constructed
                self._keys[name] = KeyRing(pconf.keys)
                cls = provider_class(pconf.provider_type)
                self._providers[name] = cls(pconf, self.client, self._keys[name], self.hooks)
        self._default = config.default_provider or next(iter(self._providers), "")

    @classmethod
    def from_config(cls,
                    config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                    *, client: PolicyHTTPClient | None = None,
                    on_event: Hook | None = None) -> ProviderRegistry:
        """From a Config, a config dict, a file path, or (None) the default config file.
        ``on_event`` receives every call event (see :meth:`subscribe`)."""
        if not isinstance(config, Config):
            config = (config_from_dict(config) if isinstance(config, Mapping)
                      else load_config(config))
        return cls(config, client, on_event)

    def subscribe(self, hook: Hook) -> Callable[[], None]:
        """Call ``hook`` with every CallEvent of every provider of this registry; returns a
        function that unsubscribes it. A hook that raises is logged and ignored."""
        return self.hooks.subscribe(hook)

    def __repr__(self) -> str:
        enabled = [n for n, p in self.config.providers.items() if p.enabled]
        return (f"ProviderRegistry(source={self.config.source!r}, providers={enabled!r}, "
                f"default={self._default!r})")

    def _config_of(self, name: str) -> ProviderConfig:
        try:
            return self.config.providers[name]
        except KeyError:
            known = ", ".join(self.config.providers) or "none"
            raise UsageError(f"no provider named {name!r} in the config (configured: {known})"
                             ) from None

    def get(self, name: str | None = None) -> BaseProvider:
        """The provider ``name`` (default: the default provider)."""
        name = name or self.default_name
        pconf = self._config_of(name)
        if not pconf.enabled:
            raise UsageError(f"provider {name!r} is disabled (providers.{name}.enabled: false)")
        return self._providers[name]

    @property
    def default_name(self) -> str:
        if not self._default:
            raise UsageError("no enabled provider is configured (see the providers: section)")
        return self._default

    @property
    def default(self) -> BaseProvider:
        return self.get(self.default_name)

    def set_default(self, name: str) -> None:
        self.get(name)  # must exist and be enabled
        self._default = name

    def rotate_key(self, name: str) -> int:
        """Switch ``name`` to its next API key, round robin (a no-op with fewer than two
        keys); returns the index of the key now in use. Thread-safe."""
        self.get(name)
        return self._keys[name].rotate()

    def names(self) -> list[str]:
        return list(self.config.providers)

    def available(self) -> list[str]:
        """Enabled providers that report themselves available (may probe the network)."""
        return [n for n, p in self._providers.items() if p.is_available()]

    def list_providers(self) -> list[dict[str, Any]]:
        """One row per configured provider, disabled ones included; no network, no secrets."""
        rows = []
        for name, pconf in self.config.providers.items():
            provider = self._providers.get(name)
            rows.append({
                "name": name, "type": pconf.provider_type, "default": name == self._default,
                "model": pconf.model, "fast_model": pconf.fast_model or None,
                "premium_model": pconf.premium_model or None, "endpoint": pconf.base_url,
                "key_source": provider.credential_source() if provider else pconf.key_source,
                "enabled": pconf.enabled,
                "ready": bool(provider and provider.has_credentials()),
            })
        return rows

    def fallback_order(self, providers: Sequence[str] | None = None) -> list[str]:
        """``providers``, else the config's ``fallback``, else the default provider; providers
        with a ``weight`` are ordered by weighted random choice (heavier first, on average),
        unweighted ones keep their place after them."""
        # A disabled provider in the config's chain is skipped (config check says so); one
        # named in ``providers`` by the caller is an error, from get().
        order = list(providers or [n for n in self.config.fallback
                                   if self._config_of(n).enabled] or [self.default_name])
        weighted = [n for n in order if self._config_of(n).weight > 0]
        if not weighted:
            return order
        import random  # only for weighted orders

        rng = random.Random()  # noqa: S311 (load spreading, not security)
        chosen = []
        while weighted:
            pick = rng.choices(weighted, [self._config_of(n).weight for n in weighted])[0]
            weighted.remove(pick)
            chosen.append(pick)
        return chosen + [n for n in order if n not in chosen]

    @at_boundary
    def complete(self, messages: Sequence[Message], *, providers: Sequence[str] | None = None,
                 tools: Sequence[Tool] | None = None, system: str | None = None,
                 tier: str | None = None, router: ModelRouter | None = None,
                 **opts: Any) -> CompletionResponse:
        """Complete with the first provider of the fallback order that succeeds.

        ``tier`` (``fast``, ``primary``, ``premium`` or ``auto`` for the ModelRouter's pick)
        chooses each provider's model for that tier unless ``model`` is given."""
        response: CompletionResponse = self._first_that_answers(
            False, messages, providers, tools, system, tier, router, opts)
        return response

    @at_boundary
    def stream(self, messages: Sequence[Message], *, providers: Sequence[str] | None = None,
               tools: Sequence[Tool] | None = None, system: str | None = None,
               tier: str | None = None, router: ModelRouter | None = None,
               **opts: Any) -> StreamResponse:
        """:meth:`complete`, streamed: the fallback order applies until a provider's stream
        has begun (its answer's head arrived); an error after that is the stream's own."""
        stream: StreamResponse = self._first_that_answers(
            True, messages, providers, tools, system, tier, router, opts)
        return stream

    def _first_that_answers(self, streamed: bool, messages: Sequence[Message],
                            providers: Sequence[str] | None, tools: Sequence[Tool] | None,
                            system: str | None, tier: str | None, router: ModelRouter | None,
                            opts: Mapping[str, Any]) -> Any:
        """The call (streamed or not) on each provider of the fallback order, within one
        budget, until one answers; a fallback error moves on, any other error is the
        caller's."""
        if tier is not None and tier != "auto" and tier not in TIERS:
            raise UsageError(f"tier must be one of {', '.join(TIERS)} or auto, got {tier!r}")
        from .types import as_messages

        messages = as_messages(messages)
        router = router or ModelRouter()
        errors: list[MissyError] = []
        order = self.fallback_order(providers)
        budget = self._chain_budget(order, opts)
        for position, name in enumerate(order):
            provider = self.get(name)
            if not provider.has_credentials():
                errors.append(AuthenticationError(provider.missing_credentials(),
                                                  provider=name))
                continue
            call_opts = dict(opts)
            chosen_tier = None if tier is None else self._tier(tier, messages, tools, router)
            if chosen_tier is not None and "model" not in call_opts:
                call_opts["model"] = router.select_model(provider.config, chosen_tier)
            if system is not None:
                call_opts["system"] = system
            trace = self.hooks.trace(name)
            try:
                call = provider._stream if streamed else provider._complete
                return call(messages, tools or None, call_opts, trace, chosen_tier, budget)
            except FALLBACK_ERRORS as exc:
                errors.append(exc)
                if position + 1 < len(order):
                    log.warning("%s failed (%s); trying the next provider", name, exc)
                    trace.emit("fallback", to_provider=order[position + 1],
                               error_type=type(exc).__name__)
        summary = "; ".join(str(e) for e in errors) or "no provider to try"
        raise AllProvidersFailed(f"every provider failed: {summary}", errors=tuple(errors))

    def _chain_budget(self, order: Sequence[str], opts: Mapping[str, Any]) -> CallBudget:
        """One budget for the whole chain: one deadline (the call's ``total_timeout``, else
        the first provider's), and the sum of each provider's sends."""
        from .core.wire import CallBudget

        first = self.get(order[0]) if order else self.default
        total = opts.get("total_timeout", first.config.total_timeout)
        return CallBudget.for_call(total, [self.get(n).send_plan(opts.get("max_retries"))
                                           for n in order])

    async def acomplete(self, messages: Sequence[Message], **kw: Any) -> CompletionResponse:
        """:meth:`complete` (same fallback and tiers) for asyncio, on the client's pool."""
        from .aio import run

        return await run(self.client.executor(), self.complete, messages, **kw)

    @staticmethod
    def _tier(tier: str, messages: Sequence[Message], tools: Sequence[Tool] | None,
              router: ModelRouter) -> str:
        if tier != "auto":
            return tier
        prompt = next((m.text for m in reversed(messages) if m.role == "user"), "")
        return router.score_complexity(prompt, history_length=len(messages) - 1,
                                       tool_count=len(tools or ()))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ProviderRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
