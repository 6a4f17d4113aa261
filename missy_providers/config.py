"""Config: a dict (from YAML, JSON or code) -> validated, frozen ProviderConfig / NetworkConfig.

Every problem is collected with its key path before anything is raised, so ``missy config check``
can show them all. Secrets are wrapped in :class:`Secret` as soon as they are read, so no repr,
log line or error built from a config value can show one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from .core.env import ENVIRONMENT, expand_user, secret_from
from .core.errors import ConfigError, at_boundary
from .core.headers import header_problems, header_value_problem, held
from .settings import (
    LIBRARY_KEYS,
    PROVIDER_HEADERS,
)
from .settings import (
    NETWORK_DEFAULTS as NETWORK_DEFAULTS,
)
from .settings import (
    PROVIDER_DEFAULTS as PROVIDER_DEFAULTS,
)
from .settings import (
    Config as Config,
)
from .settings import (
    NetworkConfig as NetworkConfig,
)
from .settings import (
    ProviderConfig as ProviderConfig,
)
from .settings import (
    Secret as Secret,
)

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    Check = Callable[[Any], str | None]  # what was expected, or None when the value fits
    from .core.http import PolicyHTTPClient
    from .core.policy import NetworkPolicy

PROVIDER_TYPES = ("anthropic", "openai", "openai-codex", "ollama")
DEFAULT_BASE_URLS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "openai-codex": "https://chatgpt.com/backend-api/codex",
    "ollama": "http://localhost:11434",
}
KEY_ENV_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                "ollama": "OLLAMA_API_KEY"}  # OLLAMA_API_KEY: Ollama Cloud (ollama.com) only
BASE_URL_ENV_VARS = {"openai": "OPENAI_BASE_URL", "ollama": "OLLAMA_HOST"}
DEFAULT_CONFIG_PATH = "~/.missy/config.yaml"
DEFAULT_CODEX_TOKEN_URL = "https://auth.openai.com/oauth/token"  # noqa: S105 (a URL)
OLLAMA_DEFAULT_PORT = 11434


# --- field specs ---------------------------------------------------------------------------



def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _is_nonempty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _is_positive_number(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    return None if ok else "a number of seconds > 0"


def _is_non_negative(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
    return None if ok else "a number >= 0"


def _is_count(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100
    return None if ok else "a whole number from 0 to 100"


def _is_mapping(v: Any) -> str | None:
    ok = isinstance(v, Mapping) and all(isinstance(k, str) for k in v)
    return None if ok else "a mapping with string keys"


def _is_str_mapping(v: Any) -> str | None:
    ok = isinstance(v, Mapping) and all(isinstance(k, str) and isinstance(x, str)
                                        for k, x in v.items())
    return None if ok else "a mapping of header names to string values"


def _is_str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "a list of non-empty strings"


COMMON_PROVIDER_FIELDS: dict[str, Check] = {
    "name": _is_nonempty_str,
    "model": _is_nonempty_str,
    "base_url": _is_nonempty_str,
    "api_key": _is_nonempty_str,
    "api_keys": _is_str_list,
    "enabled": _is_bool,
    "fast_model": _is_str,
    "premium_model": _is_str,
    "timeout": _is_positive_number,
    "total_timeout": _is_positive_number,
    "max_retries": _is_count,
    "requests_per_minute": _is_non_negative,
    "tokens_per_minute": _is_non_negative,
    "max_wait_seconds": _is_non_negative,
    "circuit_breaker_threshold": _is_count,
    "circuit_breaker_cooldown_seconds": _is_non_negative,
    "weight": _is_non_negative,
    "allow_plain_http": _is_bool,
    "headers": _is_str_mapping,
    "options": _is_mapping,
}
TYPE_PROVIDER_FIELDS: dict[str, dict[str, Check]] = {
    "anthropic": {},
    "openai": {"organization": _is_str, "project": _is_str},
    "openai-codex": {"auth_file": _is_nonempty_str, "token_url": _is_nonempty_str},
    "ollama": {},
}
NETWORK_FIELDS: dict[str, Check] = {
    "default_deny": _is_bool,
    "allowed_hosts": _is_str_list,
    "allowed_domains": _is_str_list,
    "allowed_cidrs": _is_str_list,
    "provider_allowed_hosts": _is_str_list,
    "proxy": _is_nonempty_str,
    "ca_bundle": _is_nonempty_str,
    "audit_log": _is_nonempty_str,
    "allow_plain_http_proxy": _is_bool,
    "allow_env_base_url": _is_bool,
    "ca_bundle_adds_to_system": _is_bool,
    "tls_key_log": _is_bool,
}
TOP_LEVEL_FIELDS = ("providers", "network", "default_provider", "fallback", "observability")
OBSERVABILITY_FIELDS: dict[str, Check] = {"call_log": _is_nonempty_str}


class _Problems:
    """Collects every problem of one config source, each with its key path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[ConfigError] = []

    def add(self, msg: str, *path: str) -> None:
        self.found.append(ConfigError(msg, tuple(path), self.source))

    def check_fields(
        self, data: Mapping[str, Any], spec: Mapping[str, Check], *path: str
    ) -> dict[str, Any]:
        """Values that passed their check; a problem for each unknown or wrong-typed key."""
        good: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or key not in spec:
                self.add(f"unknown key {_shown_key(key)}{_did_you_mean(str(key), spec)}", *path)
                continue
            if value is None:  # YAML `key:` or `key: null` means "not set"
                continue
            expected = spec[key](value)
            if expected:
                self.add(f"expected {expected}, got {_kind(value)}", *path, key)
            else:
                good[key] = value
        return good

    def raise_if_any(self, order: Mapping[str, int] | None = None) -> None:
        """Raise every problem found, in the order of the top-level keys in ``order`` (the
        file's own order; a stable sort keeps each section's problems as found)."""
        if order:
            self.found.sort(key=lambda p: order.get(p.path[0] if p.path else "", -1))
        if self.found:
            first = self.found[0]
            raise ConfigError(first.msg, first.path, self.source, tuple(self.found))


def _shown_key(key: object) -> str:
    """An unknown key, quoted only when it looks like a key name: a value pasted one line up
    (a token as a mapping key) is not echoed."""
    text = str(key)
    if len(text) <= 40 and text.replace("_", "").replace("-", "").isalnum() and text.isascii():
        return repr(text)
    return "(not shown: it does not look like a key name)"


def _did_you_mean(key: str, spec: Mapping[str, Any]) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(key, list(spec), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(spec)}"


def _kind(value: Any) -> str:
    # The type only: a value may be a secret typed into the wrong field.
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


# --- resolution ----------------------------------------------------------------------------


class Unset(str):
    """A ``$VAR`` reference whose variable is not set: the name of the variable."""

    __slots__ = ()


def _env_name(value: str) -> str | None:
    """The variable a ``$VAR`` / ``${VAR}`` reference names, or None for a literal."""
    if not value.startswith("$"):
        return None
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value[1:]


def _credential(value: str, env: Mapping[str, str], problems: _Problems, *path: str
                ) -> Secret | Unset | None:
    """A credential as written in the config: a literal, or a ``$VAR`` read from the
    environment (bound to its vendor's host when it is a vendor key variable). :class:`Unset`
    (the name) when the variable is not set; None (and a problem) when the reference itself is
    malformed or the value cannot be a header value."""
    name = _env_name(value)
    if name is None:
        secret: Secret | None = Secret(value, origin="config")
    elif not name.isidentifier():
        # Never quote it: a key pasted where a variable name was meant lands here.
        problems.add("starts with '$' but is not a valid $VAR reference (value not shown); "
                     "write $NAME or ${NAME} with a variable name", *path)
        return None
    else:
        secret = secret_from(env, name)
        if secret is None:
            return Unset(name)
    assert secret is not None
    problem = header_value_problem(secret)
    if problem:
        problems.add(problem, *path)
        return None
    return secret


def _bound_elsewhere(secret: Secret, base_url: str) -> str | None:
    """Why a credential bound to one host cannot be configured for this base_url."""
    host = (urlsplit(base_url).hostname or "").lower()
    if secret.only_host is None or host == secret.only_host:
        return None
    return (f"{secret.origin[1:]} is sent only to {secret.only_host}, and this base_url is "
            f"another host: reference another variable for it")


def codex_auth_file(env: Mapping[str, str] | None = None) -> str:
    """Where the Codex CLI keeps its tokens: ``$CODEX_HOME/auth.json``, else ~/.codex."""
    env = ENVIRONMENT if env is None else env
    home = env.get("CODEX_HOME") or os.path.join("~", ".codex")
    return os.path.join(expand_user(home), "auth.json")


def ollama_base_url(value: str) -> str:
    """OLLAMA_HOST in the forms Ollama itself accepts: ``host``, ``host:port``, a full URL."""
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest, default_port = "http", value, OLLAMA_DEFAULT_PORT
    else:
        default_port = 443 if scheme == "https" else 80
    hostport, _, path = rest.partition("/")
    if hostport.startswith("["):  # [v6] or [v6]:port
        host, _, after = hostport.partition("]")
        host, port = host + "]", after.lstrip(":") or str(default_port)
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
        port = port or str(default_port)
    else:
        host, port = hostport, str(default_port)
    host = host or "127.0.0.1"
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


def _default_base_url(ptype: str, env: Mapping[str, str], use_env: bool, notes: list[str],
                      name: str) -> tuple[str, str]:
    """(base_url, where it came from) when the config gives none. The environment decides
    egress only when the config opts in (network.allow_env_base_url): a key written in the
    config must not follow a variable someone else set."""
    var = BASE_URL_ENV_VARS.get(ptype, "")
    env_value = env.get(var, "").strip() if var else ""
    if not env_value:
        return DEFAULT_BASE_URLS[ptype], "default"
    if not use_env:
        notes.append(f"providers.{name}: {var} is set and ignored (the base_url stays "
                     f"{DEFAULT_BASE_URLS[ptype]}); set network.allow_env_base_url: true to "
                     "let it decide")
        return DEFAULT_BASE_URLS[ptype], "default"
    url = ollama_base_url(env_value) if ptype == "ollama" else env_value.rstrip("/")
    return url, f"env {var}"


def _resolve_keys(ptype: str, good: Mapping[str, Any], base_url: str,
                  env: Mapping[str, str], problems: _Problems,
                  *path: str) -> tuple[tuple[Secret, ...], str, tuple[str, ...]]:
    """The key ring, a description of where it came from (never a key), and the referenced
    variables that are not set."""
    ring: list[Secret] = []
    source = "none"
    unset: list[str] = []

    def add(ref: str, *key_path: str) -> bool:
        key = _credential(ref, env, problems, *path, *key_path)
        if isinstance(key, Unset):
            unset.append(key)
            return False
        if key is None:
            return False
        if why := _bound_elsewhere(key, base_url):
            problems.add(why, *path, *key_path)
            return False
        if not any(key.same_value(k) for k in ring):
            ring.append(key)
        return True

    var = KEY_ENV_VARS.get(ptype)
    if "api_key" in good:
        raw = good["api_key"]
        if add(raw, "api_key"):
            source = f"env {raw.strip('${}')}" if raw.startswith("$") else "config"
    elif var and env.get(var):
        implicit = secret_from(env, var)
        # The provider's usual variable, used implicitly: only where it may go.
        if implicit is not None and _bound_elsewhere(implicit, base_url) is None \
                and add(f"${var}", f"${var}"):
            source = f"env {var}"
    listed = good.get("api_keys", [])
    for i, ref in enumerate(listed):
        add(ref, "api_keys", str(i))
    if listed and (source == "none" or len(ring) > 1):
        source = f"{len(ring)} keys" if len(ring) != 1 else "config"
    if unset:
        missing = ", ".join(f"${name}" for name in unset)
        source = f"unset {missing}" if not ring else f"{source} (unset {missing})"
    return tuple(ring), source, tuple(unset)


_RESILIENCE_KEYS = ("requests_per_minute", "tokens_per_minute", "max_wait_seconds",
                    "circuit_breaker_threshold", "circuit_breaker_cooldown_seconds", "weight")


def _provider(name: str, data: Any, env: Mapping[str, str], problems: _Problems,
              use_env_base_url: bool = False,
              notes: list[str] | None = None) -> ProviderConfig | None:
    path = ("providers", name)
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping of provider settings, got {_kind(data)}", *path)
        return None
    ptype = data.get("name", name)
    if ptype not in PROVIDER_TYPES:
        where = (*path, "name") if "name" in data else path
        problems.add(f"unknown provider type {ptype!r}; expected one of "
                     f"{', '.join(PROVIDER_TYPES)} (set 'name' to the type)", *where)
        return None
    good = problems.check_fields(data, {**COMMON_PROVIDER_FIELDS, **TYPE_PROVIDER_FIELDS[ptype]},
                                 *path)
    if "model" not in good and "model" not in data:
        problems.add("missing required key 'model' (the model id to use)", *path)
    explicit = good.get("base_url", "").rstrip("/")
    if explicit:
        base_url, base_url_source = explicit, "config"
    else:
        base_url, base_url_source = _default_base_url(ptype, env, use_env_base_url,
                                                      [] if notes is None else notes, name)
    _check_url(base_url, problems, *path, "base_url")
    if good.get("enabled", True):
        keys, key_source, unset = _resolve_keys(ptype, good, base_url, env, problems, *path)
    else:  # a disabled provider is never used: its $VAR references are not read
        keys, key_source, unset = (), "not read (disabled)", ()
    token_url = good.get("token_url") or (DEFAULT_CODEX_TOKEN_URL if ptype == "openai-codex"
                                          else "")
    if "token_url" in good:
        _check_url(good["token_url"], problems, *path, "token_url")
    headers = _headers(ptype, good.get("headers") or {}, base_url, env, problems, *path,
                       "headers")
    options = good.get("options") or {}
    for key in options:
        if key in LIBRARY_KEYS[ptype]:
            problems.add(f"{key!r} is set by the library (use the named option)", *path,
                         "options", key)
    if "model" not in good:
        return None
    return ProviderConfig(
        name=name, provider_type=ptype, model=good["model"], base_url=base_url,
        base_url_source=base_url_source, allow_plain_http=good.get("allow_plain_http", False),
        keys=keys,
        key_source=key_source, enabled=good.get("enabled", True), unset_keys=unset,
        keys_configured=bool(good.get("api_key") or good.get("api_keys")),
        fast_model=good.get("fast_model", ""), premium_model=good.get("premium_model", ""),
        timeout=float(good.get("timeout", 60.0)),
        total_timeout=float(good.get("total_timeout", 600.0)),
        max_retries=good.get("max_retries", 2),
        organization=good.get("organization", ""), project=good.get("project", ""),
        auth_file=(expand_user(good.get("auth_file") or codex_auth_file(env))
                   if ptype == "openai-codex" else ""), token_url=token_url,
        headers=headers, options=tuple(options.items()),
        **{k: good[k] for k in _RESILIENCE_KEYS if k in good},
    )


def _headers(ptype: str, given: Mapping[str, str], base_url: str, env: Mapping[str, str],
             problems: _Problems, *path: str) -> tuple[tuple[str, str | Secret], ...]:
    """Configured headers: a ``$VAR`` value is read from the environment and held as a
    Secret, and so is the literal value of a header whose name says it carries a credential;
    the client's own and the provider's auth headers are refused."""
    out: list[tuple[str, str | Secret]] = []
    for name, raw in given.items():
        for _, why in header_problems({name: raw if _env_name(raw) is None else "x"},
                                      PROVIDER_HEADERS.get(ptype, frozenset())):
            problems.add(why, *path, name)
        if _env_name(raw) is None:
            out.append((name, held(name, raw, f"config header {name}")))
            continue
        value = _credential(raw, env, problems, *path, name)
        if isinstance(value, Unset):
            problems.add(f"${value} is not set", *path, name)
        elif value is not None:
            if bound := _bound_elsewhere(value, base_url):
                problems.add(bound, *path, name)
            else:
                out.append((name, value))
    return tuple(out)


def _check_url(url: str, problems: _Problems, *path: str) -> None:
    from .core.errors import PolicyViolation
    from .core.policy import parse_url

    try:
        parse_url(url)
    except PolicyViolation as exc:
        problems.add(str(exc), *path)


def _network(data: Any, problems: _Problems) -> NetworkConfig:
    if data is None:
        return NetworkConfig()
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping, got {_kind(data)}", "network")
        return NetworkConfig()
    good = problems.check_fields(data, NETWORK_FIELDS, "network")
    lists = {k: tuple(v) for k, v in good.items() if isinstance(v, list)}
    _check_network_entries(lists, problems)
    if good.get("proxy"):
        _check_url(good["proxy"], problems, "network", "proxy")
    return NetworkConfig(
        default_deny=good.get("default_deny", True), proxy=good.get("proxy", ""),
        ca_bundle=good.get("ca_bundle", ""), audit_log=good.get("audit_log", ""),
        **{k: good[k] for k in ("allow_plain_http_proxy", "allow_env_base_url",
                                "ca_bundle_adds_to_system", "tls_key_log") if k in good},
        **lists,
    )


def _check_network_entries(lists: Mapping[str, tuple[str, ...]], problems: _Problems) -> None:
    from .core.policy import parse_cidr, parse_domain_entry, parse_host_entry

    parsers: dict[str, Callable[[str], object]] = {
        "allowed_hosts": parse_host_entry, "provider_allowed_hosts": parse_host_entry,
        "allowed_domains": parse_domain_entry, "allowed_cidrs": parse_cidr,
    }
    for key, entries in lists.items():
        for i, entry in enumerate(entries):
            try:
                parsers[key](entry)
            except ValueError as exc:
                problems.add(str(exc), "network", key, str(i))


@at_boundary
def config_from_dict(data: Any, *, source: str = "<dict>",
                     env: Mapping[str, str] | None = None) -> Config:
    """Validate a config mapping. Raises one ConfigError carrying every problem found."""
    env = ENVIRONMENT if env is None else env
    problems = _Problems(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping at the top of the config, got {_kind(data)}")
        problems.raise_if_any()
    top = problems.check_fields(data, {k: lambda v: None for k in TOP_LEVEL_FIELDS})
    network = _network(top.get("network"), problems)
    use_env = network.allow_env_base_url
    notes: list[str] = []
    providers: dict[str, ProviderConfig] = {}
    raw_providers = top.get("providers", {})
    if not isinstance(raw_providers, Mapping):
        problems.add(f"expected a mapping of provider name to settings, got "
                     f"{_kind(raw_providers)}", "providers")
        raw_providers = {}
    for name, pdata in raw_providers.items():
        if not isinstance(name, str) or not name:
            problems.add("provider names must be non-empty strings", "providers")
            continue
        provider = _provider(name, pdata, env, problems, use_env, notes)
        if provider is not None:
            providers[name] = provider
    default = top.get("default_provider", "")
    if default and not isinstance(default, str):
        problems.add(f"expected a provider name, got {_kind(default)}", "default_provider")
        default = ""
    elif default and default not in raw_providers:
        problems.add(f"{default!r} is not one of the configured providers "
                     f"({', '.join(map(str, raw_providers)) or 'none'})", "default_provider")
    elif default in providers and not providers[default].enabled:
        problems.add(f"{default!r} is disabled (providers.{default}.enabled: false); enable it "
                     "or name an enabled provider", "default_provider")
    fallback = top.get("fallback") or []
    if _is_str_list(fallback):
        problems.add("expected a list of provider names", "fallback")
        fallback = []
    for i, name in enumerate(fallback):
        if name not in raw_providers:
            problems.add(f"{name!r} is not one of the configured providers", "fallback", str(i))
        elif name in providers and not providers[name].enabled:
            notes.append(f"fallback.{i}: {name!r} is disabled and is skipped in the fallback "
                         "chain")
    for name, pconf in providers.items():
        for var in pconf.unset_keys if pconf.enabled else ():
            effect = "its other keys are used" if pconf.keys else \
                f"calls to {name!r} fail until one of its keys is set"
            notes.append(f"providers.{name}: ${var} is not set; {effect}")
    observability = top.get("observability") or {}
    if not isinstance(observability, Mapping):
        problems.add(f"expected a mapping, got {_kind(observability)}", "observability")
        observability = {}
    call_log = problems.check_fields(observability, OBSERVABILITY_FIELDS,
                                     "observability").get("call_log", "")
    order = {str(k): i for i, k in enumerate(data)}
    problems.raise_if_any(order)
    config = Config(providers=providers, network=network, default_provider=default,
                    fallback=tuple(fallback), source=source, notes=tuple(notes),
                    call_log=call_log)
    _check_proxy_allowed(config, problems)
    problems.raise_if_any(order)
    return config


def network_policy(config: Config) -> NetworkPolicy:
    """The policy actually enforced: the ``network:`` section plus the host of every enabled
    provider's ``base_url`` and ``token_url`` (pinned to its port), and any
    ``provider_allowed_hosts``. Built here, where the config lives, so that policy.py stays
    pure and knows nothing of the config."""
    from .core.policy import NetworkPolicy, parse_url

    net = config.network
    provider_hosts = {h: "network.provider_allowed_hosts" for h in net.provider_allowed_hosts}
    for p in config.providers.values():
        if not p.enabled:
            continue
        for key, url in (("base_url", p.base_url), ("token_url", p.token_url)):
            if url:
                target = parse_url(url)
                origin = f"providers.{p.name}.{key}"
                if key == "base_url" and p.base_url_source.startswith("env "):
                    origin = f"{p.base_url_source[4:]} (providers.{p.name}.base_url)"
                provider_hosts.setdefault(target.authority, origin)
    return NetworkPolicy(default_deny=net.default_deny, allowed_hosts=net.allowed_hosts,
                         allowed_domains=net.allowed_domains, allowed_cidrs=net.allowed_cidrs,
                         provider_hosts=provider_hosts)


def http_client(config: Config, **kw: Any) -> PolicyHTTPClient:
    """The policy-enforcing HTTP client for ``config``: its enforced policy (above), its proxy,
    trust and audit log. ``kw`` passes other PolicyHTTPClient settings (a resolver, an audit
    hook)."""
    from .core.http import PolicyHTTPClient

    net = config.network
    return PolicyHTTPClient(network_policy(config), proxy=net.proxy, ca_bundle=net.ca_bundle,
                            audit_log=net.audit_log,
                            allow_plain_http_proxy=net.allow_plain_http_proxy,
                            ca_bundle_adds_to_system=net.ca_bundle_adds_to_system,
                            tls_key_log=net.tls_key_log, **kw)


def _check_proxy_allowed(config: Config, problems: _Problems) -> None:
    """A proxy the policy itself refuses would fail every request: say so at load time."""
    proxy = config.network.proxy
    if not proxy:
        return
    decision = network_policy(config).check(proxy)
    if not decision.allowed:
        problems.add(f"the proxy is refused by the network policy: {decision.reason}",
                     "network", "proxy")
    elif decision.target is not None and decision.target.scheme != "http":
        problems.add("the proxy must be an http:// URL (https to the target is tunnelled "
                     "through it with CONNECT)", "network", "proxy")
    if config.network.allow_plain_http_proxy:
        return
    for name, p in config.providers.items():
        if p.enabled and p.base_url.startswith("http://"):
            problems.add(f"providers.{name}.base_url is plain http:// and a proxy is set: its "
                         "requests would reach the proxy in the clear; use https:// or set "
                         "network.allow_plain_http_proxy: true", "network", "proxy")


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The file to read: ``explicit`` (``--config``), then ``MISSY_CONFIG``, then the default."""
    env = ENVIRONMENT if env is None else env
    return expand_user(explicit or env.get("MISSY_CONFIG") or DEFAULT_CONFIG_PATH)


def read_config_file(path: str, *, explicit: bool = True) -> Any:
    """The raw mapping in a YAML or (by ``.json`` extension) JSON file. ``explicit``: the
    path was given (so the hint is not "pass --config FILE")."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        hint = ("check the path" if explicit else
                "pass --config FILE, set MISSY_CONFIG, or create one with the CLI's "
                "`config init`")
        raise ConfigError(f"config file not found; {hint}", source=source) from None
    except IsADirectoryError:
        raise ConfigError("the config path is a directory; give a file", source=source
                          ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file ({type(exc).__name__})",
                          source=source) from None
    if path.lower().endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"malformed JSON: {exc.msg} at line {exc.lineno} column "
                              f"{exc.colno}", source=source) from None
        except RecursionError:
            raise ConfigError("JSON nested too deeply", source=source) from None
    try:
        import yaml  # only when a YAML file is read: the core runs without third-party packages
    except ImportError:
        import sys

        why = ("this Python runs with -S, which hides site-packages (and PyYAML in it)"
               if sys.flags.no_site else "PyYAML is not installed")
        raise ConfigError(f"this is a YAML config and {why}: use a .json config (the same "
                          "keys), or install PyYAML", source=source) from None

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Never str(exc): PyYAML's marks quote the offending line, which may hold a key.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML: {problem}{where}", source=source) from None
    except RecursionError:
        raise ConfigError("YAML nested too deeply", source=source) from None


@at_boundary
def load_config(path: str | os.PathLike[str] | None = None, *,
                env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file (see :func:`config_path` for which one)."""
    given = os.fspath(path) if path else None
    resolved = config_path(given, env)
    explicit = bool(given or (ENVIRONMENT if env is None else env).get("MISSY_CONFIG"))
    return config_from_dict(read_config_file(resolved, explicit=explicit), source=resolved,
                            env=env)
