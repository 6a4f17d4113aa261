"""ProviderRegistry: config -> provider instances, the default provider, keys and rotation."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, ProviderConfig, config_from_dict, load_config
from .errors import UsageError

if TYPE_CHECKING:
    from .http import PolicyHTTPClient
    from .providers.base import BaseProvider, KeyRing

# The one table from provider type to class, imported only when such a provider is enabled.
PROVIDER_CLASSES = {
    "anthropic": "missy_providers.providers.anthropic:AnthropicProvider",
    "openai": "missy_providers.providers.openai:OpenAIProvider",
    "openai-codex": "missy_providers.providers.codex:CodexProvider",
    "ollama": "missy_providers.providers.ollama:OllamaProvider",
}


def provider_class(provider_type: str) -> type[BaseProvider]:
    module_name, _, class_name = PROVIDER_CLASSES[provider_type].partition(":")
    cls: type[BaseProvider] = getattr(importlib.import_module(module_name), class_name)
    return cls


class ProviderRegistry:
    """The single source of truth for the configured providers."""

    def __init__(self, config: Config, client: PolicyHTTPClient | None = None) -> None:
        from .http import PolicyHTTPClient
        from .providers.base import KeyRing

        self.config = config
        self.client = client or PolicyHTTPClient.from_config(config)
        self._keys: dict[str, KeyRing] = {}
        self._providers: dict[str, BaseProvider] = {}
        for name, pconf in config.providers.items():
            if pconf.enabled:  # disabled providers are listed, never constructed
                self._keys[name] = KeyRing(pconf.keys)
                cls = provider_class(pconf.provider_type)
                self._providers[name] = cls(pconf, self.client, self._keys[name])
        self._default = config.default_provider or next(iter(self._providers), "")

    @classmethod
    def from_config(cls, config: Config | Mapping[str, Any] | str | Path | None = None, *,
                    client: PolicyHTTPClient | None = None) -> ProviderRegistry:
        """From a Config, a config dict, a file path, or (None) the default config file."""
        if not isinstance(config, Config):
            config = (config_from_dict(config) if isinstance(config, Mapping)
                      else load_config(config))
        return cls(config, client)

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
                "available": bool(provider and provider.has_credentials()),
            })
        return rows

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ProviderRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
