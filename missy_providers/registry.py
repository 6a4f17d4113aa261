"""ProviderRegistry: config -> provider instances, the default provider, keys and rotation."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence

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
    "azure-openai": "providers.azure:AzureOpenAIProvider",
    "bedrock": "providers.bedrock:BedrockProvider",
}


def provider_class(provider_type: str) -> type[BaseProvider]:
    from .core.env import load_own
    from .provider_types import HOST_TYPES  # a host's own types (register_type)

    if provider_type in HOST_TYPES:
        return HOST_TYPES[provider_type]

    module_name, _, class_name = PROVIDER_CLASSES[provider_type].partition(":")
    cls: type[BaseProvider] = load_own(module_name, class_name)  # type: ignore[assignment]
    return cls


class RegistryNotInitialised(UsageError, RuntimeError):
    """get_registry() before init_registry(); a RuntimeError too, as Missy's callers expect."""


class ProviderRegistry:
    """The single source of truth for the configured providers.

    Two surfaces on one object. Ours: :meth:`provider` (a UsageError for a name that is
    unknown or disabled), :attr:`default`, :meth:`complete` with fallback and tiers,
    :meth:`provider_rows`. Missy's, with its meaning (its runtime, CLI and API server call
    these): :meth:`get` (None for an unknown name), :meth:`register`, :meth:`list_providers`
    (sorted names), :meth:`get_available`, :meth:`select_weighted`, :meth:`set_default`,
    :meth:`get_default_name`, :meth:`set_enabled` / :meth:`is_enabled` (a runtime toggle that
    never enables what the config disabled), :meth:`get_config`, :meth:`key_for`,
    :meth:`rotate_key`."""

    # How long an availability answer is reused, and the most get_available(),
    # select_weighted() and set_default() wait for the probes (Missy's values).
    AVAILABILITY_CACHE_SECONDS = 5.0
    AVAILABILITY_BULK_DEADLINE_SECONDS = 0.5

    def __init__(self, config: Config | None = None, client: PolicyHTTPClient | None = None,
                 on_event: Hook | None = None, credential_provider: Any = None) -> None:
        """``config`` None: an empty registry, filled with :meth:`register` (Missy's
        ``ProviderRegistry()``). ``credential_provider``: see :meth:`from_config`."""
        import threading

        from .availability import AvailabilityCache
        from .config import http_client
        from .keys import ring_for
        from .weighted import WeightedRoundRobin

        config = Config() if config is None else config
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
        self._providers: dict[str, Any] = {}  # registered: the config's enabled ones, then
        self._configs: dict[str, Any] = {}  # register()'s; and the config each came with
        for name, pconf in config.providers.items():
            if pconf.enabled:  # disabled providers are listed, never constructed
                self._keys[name] = ring_for(pconf)
                cls = provider_class(pconf.provider_type)
                self._providers[name] = cls(pconf, self.client, self._keys[name], self.hooks)
                self._configs[name] = pconf
        from .credentials import callbacks_for

        for name, callback in callbacks_for(credential_provider, list(config.providers)).items():
            if name in self._providers:  # (a disabled provider is never built)
                self._providers[name].use_credential_provider(callback)
        self._default = config.default_provider or next(iter(self._providers), "")
        self._chosen: str | None = config.default_provider or None  # get_default_name()
        self._runtime_disabled: set[str] = set()
        self._weighted = WeightedRoundRobin()
        self._availability = AvailabilityCache(self.AVAILABILITY_CACHE_SECONDS)
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls,
                    config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                    *, client: PolicyHTTPClient | None = None,
                    on_event: Hook | None = None,
                    resolve_secret: Callable[[str], str] | None = None,
                    credential_provider: Any = None) -> ProviderRegistry:
        """From a Config, a config dict, a file path, or (None) the default config file.
        ``on_event`` receives every call event (see :meth:`subscribe`); ``resolve_secret``
        resolves ``vault://``-style key references (see config.config_from_dict).
        ``credential_provider``: the host's source of bearer tokens, a callable for every
        provider or a mapping of provider name to callable, called with the provider's name
        and returning ``(token, expires_at)`` (a Unix time, or None); it replaces those
        providers' configured credentials (credentials.HostCallback)."""
        if isinstance(config, Mapping):
            config = config_from_dict(config, resolve_secret=resolve_secret)
        elif config is None or isinstance(config, (str, os.PathLike)):
            config = load_config(config, resolve_secret=resolve_secret)
        elif not isinstance(config, Config):
            raise UsageError(
                f"from_config takes a Config, a config mapping or a file path, got "
                f"{type(config).__module__}.{type(config).__qualname__}: a host's own config "
                "object has already read its secrets into plain text and lost where each came "
                "from; pass the path of its file (and resolve_secret= for its vault)"[:400])
        return cls(config, client, on_event, credential_provider)

    def subscribe(self, hook: Hook) -> Callable[[], None]:
        """Call ``hook`` with every CallEvent of every provider of this registry; returns a
        function that unsubscribes it. A hook that raises is logged and ignored."""
        return self.hooks.subscribe(hook)

    def __repr__(self) -> str:
        return (f"ProviderRegistry(source={self.config.source!r}, "
                f"providers={list(self._providers)!r}, default={self._default!r})")

    def _config_of(self, name: str) -> ProviderConfig:
        try:
            return self.config.providers[name]
        except KeyError:
            known = ", ".join(self.config.providers) or "none"
            # In the file but skipped (a type this package does not have): say so.
            if name in self.config.skipped:
                raise UsageError(f"provider {name!r} was skipped: its type "
                                 f"{self.config.skipped[name]!r} is not one this package "
                                 "provides (a host adds its own with register_type; usable: "
                                 f"{known})") from None
            raise UsageError(f"no provider named {name!r} in the config (configured: {known})"
                             ) from None

    # --- ours -----------------------------------------------------------------------------

    def provider(self, name: str | None = None) -> BaseProvider:
        """The provider ``name`` (default: the default provider); a UsageError when it is not
        configured, or disabled."""
        name = name or self.default_name
        if name in self._providers and name not in self.config.providers:
            return self._providers[name]  # type: ignore[no-any-return]  # register()ed
        pconf = self._config_of(name)
        if not pconf.enabled:
            raise UsageError(f"provider {name!r} is disabled (providers.{name}.enabled: false)")
        return self._providers[name]  # type: ignore[no-any-return]

    @property
    def default_name(self) -> str:
        if not self._default:
            raise UsageError("no enabled provider is configured (see the providers: section; "
                             "`config check` names any that were skipped and why)")
        return self._default

    @property
    def default(self) -> BaseProvider:
        return self.provider(self.default_name)

    def names(self) -> list[str]:
        return list(self.config.providers)

    def available(self) -> list[str]:
        """Enabled providers that report themselves available (probed in parallel, see
        :meth:`get_available`), by name."""
        return self._available_names()

    def provider_rows(self) -> list[dict[str, Any]]:
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

    # --- Missy's ----------------------------------------------------------------------------

    def get(self, name: str | None = None) -> Any:
        """The provider registered as ``name``, or None (Missy's meaning: an unknown name,
        and one the config disabled, is None). No name: the default provider."""
        if name is None:
            return self.default
        return self._providers.get(name)

    def register(self, name: str, provider: Any, config: Any = None) -> None:
        """Add ``provider`` (any object with Missy's provider methods) as ``name``, with
        its ``config`` (what :meth:`get_config` returns; its ``weight`` counts in
        :meth:`select_weighted`). The same object again is a no-op; another object under a
        taken name, or the same one with another config, is a ValueError."""
        if not isinstance(name, str) or not name:
            raise UsageError(f"a provider name is a non-empty str, got {name!r}"[:80])
        with self._lock:
            existing = self._providers.get(name)
            if existing is not None and existing is not provider:
                raise UsageError(f"Provider {name!r} is already registered.")
            if existing is provider:
                known = self._configs.get(name)
                if config is not None and known is not None and config != known:
                    raise UsageError(f"Provider {name!r} is already registered with different "
                                     "config.")
                return
            self._providers[name] = provider
            if config is not None:
                import copy

                self._configs[name] = copy.deepcopy(config)  # the caller's stays theirs
            if not self._default:
                self._default = name

    def get_config(self, name: str) -> Any:
        """The config ``name`` was registered with (a ProviderConfig for the config's
        providers: Missy reads ``fast_model``, ``premium_model``, ``weight``,
        ``circuit_breaker_threshold``, ``api_keys``, ...), or None."""
        import copy

        config = self._configs.get(name)
        return config if isinstance(config, ProviderConfig) else copy.deepcopy(config)

    @property
    def _provider_configs(self) -> Mapping[str, Any]:
        """Read-only: Missy's runtime reads this private name (``len(config.api_keys)``);
        :meth:`get_config` is the public way."""
        from types import MappingProxyType

        return MappingProxyType(self._configs)

    def key_for(self, provider: Any) -> str | None:
        """The name ``provider`` (this very object) is registered as, or None."""
        return next((n for n, p in list(self._providers.items()) if p is provider), None)

    def list_providers(self) -> list[str]:
        """The names of every registered provider, runtime-disabled ones included, sorted
        (Missy's shape; :meth:`provider_rows` has ours)."""
        return sorted(self._providers)

    def get_available(self) -> list[Any]:
        """The registered, enabled providers that are available now, in registration order
        (probed in parallel, at most AVAILABILITY_BULK_DEADLINE_SECONDS in all; an answer is
        reused for AVAILABILITY_CACHE_SECONDS; a slow probe counts as unavailable this time)."""
        return [self._providers[n] for n in self._available_names() if n in self._providers]

    def _available_names(self, exclude: Collection[str] = ()) -> list[str]:
        with self._lock:
            candidates = [(n, p) for n, p in self._providers.items()
                          if n not in self._runtime_disabled and n not in exclude]
        return self._availability.available(candidates, self.AVAILABILITY_BULK_DEADLINE_SECONDS)

    def select_weighted(self, *, exclude: Collection[str] | None = None,
                        only: Collection[str] | None = None) -> Any:
        """One available provider (not in ``exclude``; in ``only`` when given), picked by
        smooth weighted round robin over the configs' ``weight`` (1.0 without a config): over
        many picks each gets its weight's share, spread out (3:1 gives ``a a b a a a b a``).
        Weight 0 is never picked while a candidate with a weight is available; when every
        candidate has weight 0, the first (registration order). None when there is none."""
        names = self._available_names(exclude or ())
        if only is not None:
            names = [n for n in names if n in only]
        if not names:
            return None
        picked = self._weighted.select(names, self._weights()) or names[0]
        return self._providers.get(picked)

    def _weights(self) -> dict[str, float]:
        return {n: float(getattr(c, "weight", 1.0)) for n, c in self._configs.items()}

    def set_default(self, name: str) -> None:
        """Make ``name`` the default. A ValueError (UsageError) when it is not registered,
        disabled (by the config or at run time), or not available now."""
        if name in self.config.providers and not self.config.providers[name].enabled:
            raise UsageError(f"Provider {name!r} is disabled in the config "
                             f"(providers.{name}.enabled: false).")
        provider = self._providers.get(name)
        if provider is None:
            raise UsageError(f"Provider {name!r} is not registered.")
        if name in self._runtime_disabled:
            raise UsageError(f"Provider {name!r} is disabled; enable it first.")
        if name not in self._availability.available(
                [(name, provider)], self.AVAILABILITY_BULK_DEADLINE_SECONDS):
            raise UsageError(f"Provider {name!r} is not available or its probe timed out.")
        with self._lock:
            if self._providers.get(name) is not provider:
                raise UsageError(f"Provider {name!r} changed while it was being selected.")
            if name in self._runtime_disabled:
                raise UsageError(f"Provider {name!r} is disabled; enable it first.")
            self._default = self._chosen = name

    def get_default_name(self) -> str | None:
        """The default set by the config's ``default_provider`` or :meth:`set_default`;
        None until one of them names it (Missy's meaning)."""
        return self._chosen

    def is_enabled(self, name: str) -> bool:
        """Registered and not disabled at run time (False for an unknown name)."""
        return name in self._providers and name not in self._runtime_disabled

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disable a registered provider at run time (it stays registered, is left out of
        get_available, select_weighted and fallback chains, and cannot become the default), or
        enable it again. Never enables what the config disabled; never disables the default.
        A ValueError (UsageError) otherwise."""
        if name in self.config.providers and not self.config.providers[name].enabled:
            raise UsageError(f"Provider {name!r} is disabled in the config "
                             f"(providers.{name}.enabled: false); the runtime toggle never "
                             "enables it.")
        with self._lock:
            if name not in self._providers:
                raise UsageError(f"Provider {name!r} is not registered.")
            if not enabled and name in (self._chosen, self._default):
                raise UsageError(f"Provider {name!r} is the current default; set a different "
                                 "default before disabling it.")
            if enabled:
                self._runtime_disabled.discard(name)
            else:
                self._runtime_disabled.add(name)
        self._availability.forget(name)

    def rotate_key(self, name: str) -> int:
        """Switch ``name`` to its next API key, round robin, skipping a key the server
        refused (401/403) in the last ``KEY_COOLDOWN_SECONDS`` while another is usable (a
        no-op with fewer than two keys); returns the index of the key the next call starts
        with. Thread-safe."""
        self.provider(name)
        return self._keys[name].rotate()

    def fallback_order(self, providers: Sequence[str] | None = None) -> list[str]:
        """The order a call that fails over tries its providers in, now: the chain's first
        (see :meth:`_chain`), then the others by weight (:meth:`_by_weight`). Each call asks
        only once its first provider failed, as Missy picks a fallback only on a failure."""
        chain = self._chain(providers)
        return chain[:1] + self._by_weight(chain[1:])

    def _chain(self, providers: Sequence[str] | None) -> list[str]:
        """``providers``, else the config's ``fallback``, else the default provider; each
        once. Disabled providers in the config's chain are skipped (config check says so);
        one the caller names is an error, from provider()."""
        order = list(providers or [n for n in self.config.fallback
                                   if self._config_of(n).enabled
                                   and n not in self._runtime_disabled] or [self.default_name])
        return list(dict.fromkeys(order))

    def _by_weight(self, names: Sequence[str]) -> list[str]:
        """Fallbacks ordered by ``weight`` with Missy's meaning: the first is picked by smooth
        weighted round robin (over many failovers each gets its weight's share of going first:
        3:1 is a a b a a a b a; equal weights take turns), the rest follow heaviest first;
        weight 0 comes last, in listed order (never picked while one with a weight is left)."""
        weight = {n: self.config.providers[n].weight if n in self.config.providers else
                  float(getattr(self._configs.get(n), "weight", 1.0)) for n in names}
        weighted = [n for n in names if weight[n] > 0]
        first = self._weighted.select(weighted, weight) if weighted else None
        rest = sorted((n for n in weighted if n != first), key=lambda n: -weight[n])
        return ([first] if first else []) + rest + [n for n in names if weight[n] <= 0]

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
        chain = self._chain(providers)
        budget = self._chain_budget(chain, opts)
        # The fallbacks are ordered (by weight) only once the first provider failed: the
        # loop below sees them as they are appended.
        order = chain[:1]
        for position, name in enumerate(order):
            provider = self.provider(name)
            if not provider.has_credentials():
                errors.append(AuthenticationError(provider.missing_credentials(),
                                                  provider=name))
                order += self._by_weight(chain[1:]) if position == 0 else []
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
                order += self._by_weight(chain[1:]) if position == 0 else []
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

        first = self.provider(order[0]) if order else self.default
        total = opts.get("total_timeout", first.config.total_timeout)
        return CallBudget.for_call(total, [self.provider(n).send_plan(opts.get("max_retries"))
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


# --- the process-level registry (Missy's init_registry / get_registry) ------------------------

# The one piece of process-wide state here (docs/AUDIT.md question 8): the registry
# init_registry() made last, for code that cannot be handed one. Everything else takes the
# registry it is given.
_PROCESS_REGISTRY: dict[str, ProviderRegistry] = {}


def init_registry(config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                  **kw: Any) -> ProviderRegistry:
    """Build a registry (:meth:`ProviderRegistry.from_config`, same arguments) and make it the
    process's, replacing the one before (which is not closed: calls in flight keep it)."""
    registry = ProviderRegistry.from_config(config, **kw)
    _PROCESS_REGISTRY["current"] = registry
    return registry


def get_registry() -> ProviderRegistry:
    """The registry init_registry() made last; RegistryNotInitialised (a RuntimeError) before
    any."""
    try:
        return _PROCESS_REGISTRY["current"]
    except KeyError:
        raise RegistryNotInitialised("ProviderRegistry has not been initialised. Call "
                                     "init_registry(config) first.") from None
