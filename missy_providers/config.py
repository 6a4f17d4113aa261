"""Config: a dict (from YAML, JSON or code) -> validated, frozen ProviderConfig / NetworkConfig.

Every problem is collected with its key path before anything is raised, so ``missy config check``
can show them all. Secrets are wrapped in :class:`Secret` as soon as they are read, so no repr,
log line or error built from a config value can show one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from .core.env import ENVIRONMENT, expand_user, secret_from
from .core.errors import ConfigError, at_boundary
from .core.headers import header_problems, header_value_problem, held
from .core.values import own_text
from .credentials import credential_files
from .provider_types import BUILTIN_TYPES, HOST_TYPES, known_types
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
    # A host's secret store (Missy's vault): "vault://NAME" -> the secret's value.
    SecretResolver = Callable[[str], str]
    from .core.http import PolicyHTTPClient
    from .core.policy import NetworkPolicy

PROVIDER_TYPES = BUILTIN_TYPES
DEFAULT_BASE_URLS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "openai-codex": "https://chatgpt.com/backend-api/codex",
    "ollama": "http://localhost:11434",
}
KEY_ENV_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                "ollama": "OLLAMA_API_KEY",  # OLLAMA_API_KEY: Ollama Cloud (ollama.com) only
                "azure-openai": "AZURE_OPENAI_API_KEY"}  # openai-python's name for it
AZURE_APIS = ("chat", "responses")  # Chat Completions, or the Responses API
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
    from .core.wire import MAX_SECONDS

    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= MAX_SECONDS
    return None if ok else f"a number of seconds > 0 and <= {MAX_SECONDS} (a day)"


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


def _is_strategy(v: Any) -> str | None:
    return None if v in ROTATION_STRATEGIES else f"one of {', '.join(ROTATION_STRATEGIES)}"


def _is_weight_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                     and x > 0 for x in v)
    return None if ok else "a list of numbers > 0"


def _is_resource(v: Any) -> str | None:
    ok = isinstance(v, str) and 2 <= len(v) <= 64 and v.isascii() and \
        v.replace("-", "").isalnum() and v == v.lower()
    return None if ok else "an Azure resource name (lower-case letters, digits and '-')"


def _is_api(v: Any) -> str | None:
    return None if v in AZURE_APIS else f"one of {', '.join(AZURE_APIS)}"


def _is_region(v: Any) -> str | None:
    from .aws_auth import region_problem

    return region_problem(v)


def _is_mapping_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, Mapping) for x in v)
    return None if ok else "a list of mappings"


def _is_log_level(v: Any) -> str | None:
    return None if _log_level_name(v) else \
        f"a logging level ({', '.join(n.lower() for n in LOG_LEVELS)})"


def _log_level_name(v: Any) -> str:
    """A level as its name (``"warning"`` and 30 are ``"WARNING"``); "" when it is none."""
    if isinstance(v, str):
        name = v.strip().upper()
        name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
        return name if name in LOG_LEVELS else ""
    if isinstance(v, int) and not isinstance(v, bool):
        return next((n for n, level in LOG_LEVELS.items() if level == v), "")
    return ""


# Fields whose wrong value is shown in the error (a number or a boolean cannot be a key typed
# into the wrong field; any other field's value is described by its type only).
SHOWN_VALUE_CHECKS = frozenset({_is_bool, _is_positive_number, _is_non_negative, _is_count})

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
    "key_rotation_strategy": _is_strategy,
    "account_weights": _is_weight_list,
    "oauth_accounts": _is_str_list,  # refused when not empty (see _provider)
    "allow_plain_http": _is_bool,
    "headers": _is_str_mapping,
    "options": _is_mapping,
    "api_key_file": _is_nonempty_str,  # a path, or credentials:NAME (systemd)
    "client_cert": _is_nonempty_str,
    "client_key": _is_nonempty_str,
}
TYPE_PROVIDER_FIELDS: dict[str, dict[str, Check]] = {
    "anthropic": {},
    "openai": {"organization": _is_str, "project": _is_str},
    "openai-codex": {"auth_file": _is_nonempty_str, "token_url": _is_nonempty_str},
    "ollama": {},
    "azure-openai": {"resource": _is_resource, "token_file": _is_nonempty_str,
                     "api": _is_api, "deployment": _is_nonempty_str,
                     "api_version": _is_nonempty_str},
    "bedrock": {"region": _is_region, "aws_access_key_id": _is_nonempty_str,
                "aws_secret_access_key": _is_nonempty_str,
                "aws_session_token": _is_nonempty_str, "aws_profile": _is_nonempty_str},
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
    "presets": _is_str_list,
    "rest_policies": _is_mapping_list,
    "tool_allowed_hosts": _is_str_list,
    "discord_allowed_hosts": _is_str_list,
    "client_cert": _is_nonempty_str,
    "client_key": _is_nonempty_str,
}
REST_RULE_FIELDS: dict[str, Check] = {"host": _is_nonempty_str, "method": _is_nonempty_str,
                                      "path": _is_nonempty_str, "action": _is_nonempty_str}
ROTATION_STRATEGIES = ("failover", "round_robin")
TOP_LEVEL_FIELDS = ("providers", "network", "default_provider", "fallback", "observability")
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
OBSERVABILITY_FIELDS: dict[str, Check] = {
    "call_log": _is_nonempty_str,
    "log_level": _is_log_level,  # the CLI sets the package's loggers to it
    # Missy's OpenTelemetry and log file settings: accepted, not used by this package.
    "otel_enabled": _is_bool, "otel_endpoint": _is_str, "otel_protocol": _is_str,
    "otel_service_name": _is_str, "log_file_path": _is_str,
}
# How close an unknown top-level key must be to one of ours to be a typo of it (difflib
# ratio): `provider`, `netwrok` and `fallbak` are; none of Missy's own sections is.
NEAR_MISS = 0.8


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
            # Text is checked and kept as its own characters: a str subclass handed in by a
            # host could show its check one value and a URL built from it another.
            if isinstance(key, str):
                key = own_text(key)
            if isinstance(value, str):
                value = own_text(value)
            if not isinstance(key, str) or key not in spec:
                self.add(f"unknown key {_shown_key(key)}{_did_you_mean(str(key), spec)}", *path)
                continue
            if value is None:  # YAML `key:` or `key: null` means "not set"
                continue
            expected = spec[key](value)
            if expected:
                shown = _kind(value, spec[key] in SHOWN_VALUE_CHECKS)
                self.add(f"expected {expected}, got {shown}", *path, key)
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


def _kind(value: Any, shown: bool = False) -> str:
    """What a wrong value is: its type only (a value may be a secret typed into the wrong
    field); with ``shown`` (a numeric or boolean field), a number or boolean as itself and a
    short string that reads as one, quoted."""
    if shown and type(value) in (bool, int, float):
        return repr(value)
    if shown and isinstance(value, str) and len(value) <= 12 and (
            _is_number(value) or value.lower() in ("true", "false", "yes", "no", "on", "off")):
        if not _is_number(value):
            return f"the string {value!r} (write true or false, without quotes)"
        if "e" in value.lower():  # unquoted 1e3 is text to YAML 1.1 too
            number = float(value)
            plain = int(number) if number.is_integer() and abs(number) < 1e15 else number
            return f"the string {value!r} (YAML reads that form as text: write {plain})"
        return f"the string {value!r} (write the number without quotes)"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- resolution ----------------------------------------------------------------------------


def _note_literal_keys(good: Mapping[str, Any], name: str, notes: list[str]) -> None:
    """A note for a literal key that was meant to be a ``$VAR``: a variable's name without
    its ``$``, or a ``$`` inside a value. The value is never quoted (it is held as a key)."""
    given = [("api_key", good["api_key"])] if isinstance(good.get("api_key"), str) else []
    given += [(f"api_keys.{i}", k) for i, k in enumerate(good.get("api_keys") or ())
              if isinstance(k, str)]
    for where, value in given:
        if 6 <= len(value) <= 64 and "_" in value and value[0].isalpha() and \
                value.isascii() and value.replace("_", "").isalnum() and value.isupper():
            notes.append(f"providers.{name}.{where}: the value is shaped like a variable's name "
                         "(capitals and '_') and is sent as the key itself; to read the "
                         "variable, write it with a '$' in front")
        elif "$" in value[1:] and not reference_scheme(value):
            notes.append(f"providers.{name}.{where}: a '$' inside the value is sent as it is "
                         "(only a whole value $VAR or ${VAR} is read from the environment)")


class Unset(str):
    """A ``$VAR`` reference whose variable is not set: the name of the variable."""

    __slots__ = ()


def _env_name(value: str) -> str | None:
    """The variable a ``$VAR`` / ``${VAR}`` reference names, or None for a literal."""
    if not value.startswith("$"):
        return None
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value[1:]


def reference_scheme(value: str) -> str:
    """The scheme of a secret reference (``vault://NAME`` -> ``vault``), or "" for a value
    that is not one. A key never contains ``://``."""
    scheme, sep, _ = value.partition("://")
    ok = sep and scheme[:1].isalpha() and scheme.isascii() and \
        scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
    return scheme.lower() if ok else ""


def shown_reference(value: str) -> str:
    """A secret reference as it may be shown (``vault://ANTHROPIC_API_KEY``): the name after
    the scheme only when it looks like a name, never what may be a pasted secret."""
    scheme, _, rest = value.partition("://")
    named = len(rest) <= 64 and rest.replace("_", "").replace("-", "").replace(".", "") \
        .replace("/", "").isalnum() and not rest.startswith(("sk-", "sk_"))
    return f"{scheme.lower()}://{rest}" if named else f"{scheme.lower()}://(name not shown)"


def _resolved(value: str, resolve: SecretResolver | None, problems: _Problems,
              *path: str) -> Secret | None:
    """A ``scheme://`` reference through the host's resolver, held as a Secret; without a
    resolver (or when it fails) a problem naming the key, never a reference sent as a key."""
    shown = shown_reference(value)
    if resolve is None:
        problems.add(f"{shown} is a secret reference and nothing resolves it: the host passes "
                     "resolve_secret= (its vault) to load_config / config_from_dict / "
                     "ProviderRegistry.from_config; or use $VAR for an environment variable",
                     *path)
        return None
    try:
        found = resolve(value)
    except Exception as exc:  # the host's code: its error type, never its text (a secret?)
        problems.add(f"resolve_secret could not resolve {shown} ({type(exc).__name__})", *path)
        return None
    if not isinstance(found, str) or not found:
        problems.add(f"resolve_secret gave no string for {shown} (got "
                     f"{type(found).__name__})", *path)
        return None
    return Secret(found, origin=shown)


def _credential(value: str, env: Mapping[str, str], problems: _Problems, *path: str,
                resolve: SecretResolver | None = None) -> Secret | Unset | None:
    """A credential as written in the config: a literal, a ``$VAR`` read from the
    environment (bound to its vendor's host when it is a vendor key variable), or a
    ``scheme://`` reference for ``resolve``. :class:`Unset` (the name) when the variable is not
    set; None (and a problem) when the reference itself is malformed or unresolved, or the
    value cannot be a header value."""
    name = _env_name(value)
    if name is None and reference_scheme(value):
        secret: Secret | None = _resolved(value, resolve, problems, *path)
        if secret is None:
            return None
    elif name is None:
        secret = Secret(value, origin="config")
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
    if ptype not in DEFAULT_BASE_URLS:  # a host's type: its own default, if it has one
        return str(getattr(HOST_TYPES.get(ptype), "default_base_url", "") or ""), "default"
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


def yaml_key_variable(name: str) -> str:
    """The variable Missy reads for the provider keyed ``name``: ``groq`` -> ``GROQ_API_KEY``,
    ``openai-codex`` -> ``OPENAI_CODEX_API_KEY`` ("" when that is not a variable name)."""
    var = f"{name.upper().replace('-', '_')}_API_KEY"
    return var if var.isidentifier() and var.isascii() else ""


def _key_source(ref: str) -> str:
    if ref.startswith("$"):
        return f"env {ref.strip('${}')}"
    return shown_reference(ref) if reference_scheme(ref) else "config"


def _resolve_keys(ptype: str, good: Mapping[str, Any], base_url: str,
                  env: Mapping[str, str], problems: _Problems,
                  *path: str, resolve: SecretResolver | None = None, from_env: bool = True
                  ) -> tuple[tuple[Secret, ...], str, tuple[str, ...], tuple[float, ...]]:
    """The key ring, a description of where it came from (never a key), the referenced
    variables that are not set, and the ring's weights for round_robin (empty: failover).
    ``from_env``: without ``api_key``, the type's variables may give one (not when the
    config names another source: a key file, a token file)."""
    ring: list[Secret] = []
    source = "none"
    unset: list[str] = []
    listed = good.get("api_keys", [])
    weights = good.get("account_weights") or []
    if weights and len(weights) != len(listed):
        problems.add(f"has {len(weights)} weight(s) for {len(listed)} api_keys: give one per "
                     "key, in the same order", *path, "account_weights")
        weights = []
    if weights and good.get("key_rotation_strategy") != "round_robin":
        problems.add("weights keys for key_rotation_strategy: round_robin; set it, or remove "
                     "the weights", *path, "account_weights")

    def add(ref: str, *key_path: str) -> bool:
        """Put the key ``ref`` names on the ring (once); False if it gives none, is unset,
        or may not go to this base_url (a config problem)."""
        key = _credential(ref, env, problems, *path, *key_path, resolve=resolve)
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
        return False

    if good.get("key_rotation_strategy") == "round_robin" and len(listed) >= 2:
        # Missy's round robin balances the api_keys themselves (api_key is not one of them).
        ring_weights: list[float] = []
        for i, ref in enumerate(listed):
            if add(ref, "api_keys", str(i)):
                ring_weights.append(float(weights[i]) if weights else 1.0)
        if "api_key" in good:
            problems.add("round_robin balances the api_keys; remove api_key (or use "
                         "failover)", *path, "api_key")
        return (tuple(ring), _unset_source(f"{len(ring)} keys, round robin", ring, unset),
                tuple(unset), tuple(ring_weights))

    if "api_key" in good:
        raw = good["api_key"]
        if add(raw, "api_key"):
            source = _key_source(raw)
    elif from_env:
        # The provider type's own variable, then Missy's <YAMLKEY>_API_KEY, used implicitly:
        # the first that is set and may go to this base_url. Not for Ollama: a local server
        # takes no key (Missy's sends none), and one is sent only when the config says so.
        own = yaml_key_variable(path[-1]) if ptype != "ollama" else ""
        for var in dict.fromkeys((KEY_ENV_VARS.get(ptype, ""), own)):
            implicit = secret_from(env, var) if var else None
            if implicit is not None and _bound_elsewhere(implicit, base_url) is None \
                    and add(f"${var}", f"${var}"):
                source = f"env {var}"
                break
    for i, ref in enumerate(listed):
        add(ref, "api_keys", str(i))
    if listed and (source == "none" or len(ring) > 1):
        source = f"{len(ring)} keys" if len(ring) != 1 else _key_source(listed[0])
    return tuple(ring), _unset_source(source, ring, unset), tuple(unset), ()


def _unset_source(source: str, ring: Sequence[Secret], unset: Sequence[str]) -> str:
    """The key source, saying which referenced variables are not set."""
    if not unset:
        return source
    missing = ", ".join(f"${name}" for name in unset)
    return f"unset {missing}" if not ring else f"{source} (unset {missing})"


_RESILIENCE_KEYS = ("requests_per_minute", "tokens_per_minute", "max_wait_seconds",
                    "circuit_breaker_threshold", "circuit_breaker_cooldown_seconds", "weight")


def _known_type(ptype: Any, where: tuple[str, ...], problems: _Problems,
                notes: list[str]) -> bool:
    """Whether ``ptype`` is a type we can build. One we do not know is the host's business
    (Missy's ``acpx``): skipped with a note. A near miss of ours (``olama``) is a typo: a
    problem with its did-you-mean."""
    known = known_types()
    if ptype in known:
        return True
    import difflib  # only on this path

    near = difflib.get_close_matches(str(ptype), known, n=1, cutoff=NEAR_MISS)
    if near or not isinstance(ptype, str) or not ptype:
        hint = f"did you mean {near[0]!r}" if near else f"expected one of {', '.join(known)}"
        problems.add(f"unknown provider type {ptype!r}"[:80] + f"; {hint} (set 'name' to the "
                     "type)", *where)
    else:
        notes.append(f"{'.'.join(where[:2])}: type {ptype!r} is not one this package provides "
                     f"({', '.join(known)}): skipped (a host adds its own types with "
                     "register_type)")
    return False


def _provider(name: str, data: Any, env: Mapping[str, str], problems: _Problems,
              use_env_base_url: bool = False, notes: list[str] | None = None,
              resolve: SecretResolver | None = None) -> ProviderConfig | None:
    path = ("providers", name)
    notes = [] if notes is None else notes
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping of provider settings, got {_kind(data)}", *path)
        return None
    ptype = data.get("name", name)
    if not _known_type(ptype, (*path, "name") if "name" in data else path, problems, notes):
        return None
    good = problems.check_fields(data, {**COMMON_PROVIDER_FIELDS,
                                        **TYPE_PROVIDER_FIELDS.get(ptype, {})}, *path)
    if "model" not in good and "model" not in data:
        problems.add("missing required key 'model' (the model id to use)", *path)
    if good.get("oauth_accounts"):
        problems.add("Missy's round robin over several ChatGPT logins is not supported yet: "
                     "configure one openai-codex provider per login (each its own auth_file) "
                     "and list them in fallback", *path, "oauth_accounts")
    explicit = good.get("base_url", "").rstrip("/")
    if ptype == "azure-openai":  # the resource's endpoint; the portal's /openai/v1 URL too
        explicit = explicit.removesuffix("/openai/v1").removesuffix("/openai")
    region, region_source = "", ""
    if ptype == "bedrock":
        from .aws_auth import region_of

        region, region_source = region_of(good, env, use_env_base_url, problems, notes, path)
    if explicit:
        base_url, base_url_source = explicit, "config"
        if "resource" in good:
            problems.add("give base_url or resource, not both", *path, "resource")
    elif ptype == "bedrock":
        from .aws_auth import default_base_url

        base_url, base_url_source = default_base_url(region, region_source)
    elif ptype == "azure-openai":  # the resource's own endpoint
        base_url, base_url_source = f"https://{good.get('resource')}.openai.azure.com", \
            "default"
        if "resource" not in good:
            problems.add("missing 'resource' (the Azure OpenAI resource's name) or "
                         "'base_url' (its endpoint)", *path)
            base_url = ""
    else:
        base_url, base_url_source = _default_base_url(ptype, env, use_env_base_url, notes,
                                                      name)
    if base_url:  # a host's type may speak no HTTP at all (none is then allowed for it)
        _check_url(base_url, problems, *path, "base_url")
        if "?" in base_url:  # never quoted: a query may hold a key ('#' is refused above)
            problems.add("a base_url has no query string (the API's paths are appended to "
                         "it); put a key in api_key, other parameters in headers or options",
                         *path, "base_url")
    if "deployment" in good and "api_version" not in good:
        problems.add("deployment is for the older deployment URLs: give api_version too (the "
                     "v1 API takes the deployment's name as model)", *path, "deployment")
    weights: tuple[float, ...] = ()
    enabled = good.get("enabled", True)
    files = credential_files(ptype, good, env, problems, path) if enabled else {}
    client_tls = _client_cert(good, problems, path) if enabled else {}
    aws: dict[str, Any] = {}
    keys: tuple[Secret, ...]
    unset: tuple[str, ...]
    if not enabled:  # a disabled provider is never used: its $VAR references are not read
        keys, key_source, unset = (), "not read (disabled)", ()
    elif ptype == "bedrock":
        from .aws_auth import resolve as resolve_aws

        auth = resolve_aws(good, env, base_url, region, problems, path, notes, resolve)
        keys, key_source, unset = auth.keys, files.pop("source", auth.source), tuple(auth.unset)
        aws = {"aws_credentials": auth.aws, "aws_profile": auth.profile,
               "aws_credentials_file": auth.file}
    else:
        keys, key_source, unset, weights = _resolve_keys(ptype, good, base_url, env, problems,
                                                         *path, resolve=resolve,
                                                         from_env="source" not in files)
        key_source = files.pop("source", key_source)
    token_url = good.get("token_url") or (DEFAULT_CODEX_TOKEN_URL if ptype == "openai-codex"
                                          else "")
    if "token_url" in good:
        _check_url(good["token_url"], problems, *path, "token_url")
    # A disabled provider's headers are not read either (their $VARs may well be unset).
    headers = _headers(ptype, good.get("headers") or {}, base_url, env, problems, *path,
                       "headers", resolve=resolve) if enabled else {}
    options = good.get("options") or {}
    wire = ptype if ptype != "azure-openai" else \
        "openai-codex" if good.get("api") == "responses" else "openai"  # (Azure's `api`)
    for key in options:
        if key in LIBRARY_KEYS.get(wire, ("model", "messages", "stream", "tools")):
            problems.add(f"{key!r} is set by the library (use the named option)", *path,
                         "options", key)
    _note_literal_keys(good, name, notes)
    if "model" not in good:
        return None
    if good["model"] == "auto":
        notes.append(f"providers.{name}.model: 'auto' is sent as the model's name (Missy "
                     "picks a model from the server's list; this package does not): name the "
                     "model")
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
        key_rotation_strategy=good.get("key_rotation_strategy", "failover"),
        account_weights=weights, region=region, api=good.get("api", "chat"),
        deployment=good.get("deployment") or (good["model"] if "api_version" in good else ""),
        api_version=good.get("api_version", ""), **files, **client_tls, **aws,
        **{k: good[k] for k in _RESILIENCE_KEYS if k in good},
    )


def _client_cert(data: Mapping[str, Any], problems: _Problems, path: tuple[str, ...]
                 ) -> dict[str, str]:
    """``client_cert`` / ``client_key`` (network-wide or per provider): the certificate must
    exist and the key be a file only its owner may read, checked at load."""
    from .core.http import ClientCert

    cert, key = data.get("client_cert", ""), data.get("client_key", "")
    if key and not cert:
        problems.add("client_key needs client_cert beside it", *path, "client_key")
        return {}
    if not cert:
        return {}
    tls = ClientCert(expand_user(cert), expand_user(key) if key else "", where=path)
    try:
        tls.check()
    except ConfigError as exc:
        problems.add(exc.msg, *exc.path)
    return {"client_cert": tls.cert, "client_key": tls.key}


def _headers(ptype: str, given: Mapping[str, str], base_url: str, env: Mapping[str, str],
             problems: _Problems, *path: str, resolve: SecretResolver | None = None
             ) -> tuple[tuple[str, str | Secret], ...]:
    """Configured headers: a ``$VAR`` value is read from the environment and held as a
    Secret, and so is the literal value of a header whose name says it carries a credential;
    the client's own and the provider's auth headers are refused."""
    out: list[tuple[str, str | Secret]] = []
    for name, raw in given.items():
        for _, why in header_problems({name: raw if _env_name(raw) is None else "x"},
                                      PROVIDER_HEADERS.get(ptype, frozenset())):
            problems.add(why, *path, name)
        if _env_name(raw) is None and not reference_scheme(raw):
            out.append((name, held(name, raw, f"config header {name}")))
            continue
        value = _credential(raw, env, problems, *path, name, resolve=resolve)
        if isinstance(value, Unset):
            problems.add(f"${value} is not set or is empty", *path, name)
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
        hint = "; write it with its scheme (http:// or https://)" if "://" not in url else ""
        problems.add(f"{exc}{hint}", *path)


def _network(data: Any, problems: _Problems) -> NetworkConfig:
    if data is None:
        return NetworkConfig()
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping, got {_kind(data)}", "network")
        return NetworkConfig()
    good = problems.check_fields(data, NETWORK_FIELDS, "network")
    lists = {k: tuple(v) for k, v in good.items()
             if isinstance(v, list) and k not in ("presets", "rest_policies")}
    _check_network_entries(lists, problems)
    presets = _presets(good.get("presets", []), problems)
    if presets:
        from .presets import expand

        lists["allowed_hosts"], lists["allowed_domains"], lists["allowed_cidrs"] = expand(
            presets, lists.get("allowed_hosts", ()), lists.get("allowed_domains", ()),
            lists.get("allowed_cidrs", ()))
    if good.get("proxy"):
        _check_url(good["proxy"], problems, "network", "proxy")
        if good["proxy"].split("://", 1)[-1].rstrip("/").count("/") or \
                "?" in good["proxy"]:  # never quoted: a query may hold a token
            problems.add("the proxy is an address only (http://host:port): a proxy is sent no "
                         "path or query, so a token there would never be used, only shown",
                         "network", "proxy")
    client_tls = _client_cert(good, problems, ("network",))
    return NetworkConfig(
        default_deny=good.get("default_deny", True), proxy=good.get("proxy", ""), **client_tls,
        ca_bundle=good.get("ca_bundle", ""), audit_log=good.get("audit_log", ""),
        **{k: good[k] for k in ("allow_plain_http_proxy", "allow_env_base_url",
                                "ca_bundle_adds_to_system", "tls_key_log") if k in good},
        presets=presets, rest_policies=_rest_rules(good.get("rest_policies", []), problems),
        **lists,
    )


def _presets(names: list[str], problems: _Problems) -> tuple[str, ...]:
    from .presets import PRESETS

    for i, name in enumerate(names):
        if name not in PRESETS:
            hint = _did_you_mean(name, PRESETS).replace("known keys", "the presets are")
            problems.add(f"unknown preset {_shown_key(name)}{hint}", "network", "presets",
                         str(i))
    return tuple(dict.fromkeys(n for n in names if n in PRESETS))


def _rest_rules(entries: list[Mapping[str, Any]], problems: _Problems) -> tuple[Any, ...]:
    """``network.rest_policies``: Missy's method + path rules, checked strictly (Missy takes
    any text and a rule that cannot match is silently dead)."""
    from .core.policy import REST_ACTIONS, RestRule

    rules = []
    for i, entry in enumerate(entries):
        where = ("network", "rest_policies", str(i))
        good = problems.check_fields(entry, REST_RULE_FIELDS, *where)
        if "host" not in good:
            problems.add("missing required key 'host' (the exact host name the rule is for)",
                         *where)
            continue
        host, method = good["host"], good.get("method", "*")
        path, action = good.get("path", "/**"), str(good.get("action", "deny")).lower()
        if method != "*" and not (method.isascii() and method.isalpha()):
            problems.add(f"expected an HTTP method or '*', got {method!r}"[:80], *where,
                         "method")
        elif not path.startswith(("/", "*")):
            problems.add(f"expected a path glob starting with '/', got {path!r}"[:80], *where,
                         "path")
        elif action not in REST_ACTIONS:
            problems.add(f"expected allow or deny, got {action!r}"[:80], *where, "action")
        elif host.count(":") == 1:
            problems.add("give the host without a port (a rule holds for every port)", *where,
                         "host")
        else:
            try:
                rules.append(RestRule(host, method, path, action))
            except ValueError as exc:
                problems.add(str(exc), *where, "host")
    return tuple(rules)


def _check_network_entries(lists: Mapping[str, tuple[str, ...]], problems: _Problems) -> None:
    from .core.policy import parse_cidr, parse_domain_entry, parse_host_entry

    parsers: dict[str, Callable[[str], object]] = {
        "allowed_hosts": parse_host_entry, "provider_allowed_hosts": parse_host_entry,
        "allowed_domains": parse_domain_entry, "allowed_cidrs": parse_cidr,
    }
    for key, entries in lists.items():
        if key not in parsers:  # another category's hosts: never used here, never parsed
            continue
        for i, entry in enumerate(entries):
            try:
                parsers[key](entry)
            except ValueError as exc:
                problems.add(str(exc), "network", key, str(i))


def _our_sections(data: Mapping[Any, Any], problems: _Problems
                  ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The top-level sections we own, and the other keys (the host application's: left
    alone). A near miss of one of ours (``provider:``, ``netwrok:``) or a key of one of our
    sections written at the top is a problem, not the host's."""
    import difflib

    ours: dict[str, Any] = {}
    host: list[str] = []
    inner = {**{k: "network" for k in NETWORK_FIELDS},
             **{k: "observability" for k in OBSERVABILITY_FIELDS},
             **{k: "providers.<name>" for k in COMMON_PROVIDER_FIELDS}}
    for key, value in data.items():
        if key in TOP_LEVEL_FIELDS:
            if value is not None:  # `key:` with nothing after it: not set
                ours[key] = value
            continue
        text = str(key)
        near = difflib.get_close_matches(text.lower(), TOP_LEVEL_FIELDS, n=1, cutoff=NEAR_MISS)
        if near:
            problems.add(f"unknown key {_shown_key(key)}; did you mean {near[0]!r}?")
        elif text in inner:
            problems.add(f"{text!r} belongs under {inner[text]}: (it is not a top-level key)")
        else:
            host.append(text)
    return ours, tuple(host)


@at_boundary
def config_from_dict(data: Any, *, source: str = "<dict>",
                     env: Mapping[str, str] | None = None,
                     resolve_secret: SecretResolver | None = None) -> Config:
    """Validate a config mapping. Raises one ConfigError carrying every problem found.

    The mapping may be a host application's whole config file: we read ``providers``,
    ``network``, ``default_provider``, ``fallback`` and ``observability`` (strictly) and leave
    the other top-level keys to the host (``Config.host_keys``). ``resolve_secret`` turns a
    ``scheme://`` key reference (``vault://NAME``) into the secret; without it such a
    reference is a problem."""
    env = ENVIRONMENT if env is None else env
    problems = _Problems(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.add(f"expected a mapping at the top of the config, got {_kind(data)}")
        problems.raise_if_any()
    top, host_keys = _our_sections(data, problems)
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
        provider = _provider(name, pdata, env, problems, use_env, notes, resolve_secret)
        if provider is not None:
            providers[name] = provider
    skipped = {n: p.get("name", n) for n, p in raw_providers.items()
               if n not in providers and isinstance(p, Mapping) and p.get("name", n)
               not in known_types()}
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
    elif default in skipped:
        problems.add(f"{default!r} is of type {skipped[default]!r}, which this package does "
                     "not provide (the host adds it with register_type), so it cannot be the "
                     "default", "default_provider")
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
        elif name in skipped:
            notes.append(f"fallback.{i}: {name!r} (type {skipped[name]!r}) was skipped and is "
                         "left out of the fallback chain")
    fallback = [name for name in fallback if name not in skipped]
    for name, pconf in providers.items():
        for var in pconf.unset_keys if pconf.enabled else ():
            effect = "its other keys are used" if pconf.keys else \
                f"calls to {name!r} fail until one of its keys is set"
            notes.append(f"providers.{name}: ${var} is not set or is empty; {effect}")
    observability = top.get("observability") or {}
    if not isinstance(observability, Mapping):
        problems.add(f"expected a mapping, got {_kind(observability)}", "observability")
        observability = {}
    seen = problems.check_fields(observability, OBSERVABILITY_FIELDS, "observability")
    order = {str(k): i for i, k in enumerate(data)}
    problems.raise_if_any(order)
    config = Config(providers=providers, network=network, default_provider=default,
                    fallback=tuple(fallback), source=source, notes=tuple(notes),
                    call_log=seen.get("call_log", ""), host_keys=host_keys,
                    log_level=_log_level_name(seen.get("log_level")),
                    skipped={n: str(t) for n, t in skipped.items()})
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
                         provider_hosts=provider_hosts, rest_rules=net.rest_policies)


def http_client(config: Config, **kw: Any) -> PolicyHTTPClient:
    """The policy-enforcing HTTP client for ``config``: its enforced policy (above), its proxy,
    trust and audit log. ``kw`` passes other PolicyHTTPClient settings (a resolver, an audit
    hook)."""
    from .core.http import ClientCert, PolicyHTTPClient

    net = config.network
    cert = ClientCert(net.client_cert, net.client_key) if net.client_cert else None
    return PolicyHTTPClient(network_policy(config), proxy=net.proxy, ca_bundle=net.ca_bundle,
                            audit_log=net.audit_log, client_cert=cert,
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
        with open(path, encoding="utf-8-sig") as f:  # a BOM an editor added is no error
            text = f.read()
    except FileNotFoundError:
        hint = ("check the path" if explicit else
                "pass --config FILE, set MISSY_CONFIG, or create one with the CLI's "
                "`config init`")
        where = "" if os.path.isabs(path) else f" (looked for {os.path.abspath(path)})"
        raise ConfigError(f"config file not found{where}; {hint}", source=source) from None
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
            import re  # only on the error path

            looks_yaml = re.match(r"\s*(#|[\w-]+\s*:(\s|$))", text) is not None
            hint = (" (this file ends in .json but reads like YAML: rename it to .yaml, or "
                    "write JSON)") if looks_yaml else ""
            raise ConfigError(f"malformed JSON: {exc.msg} at line {exc.lineno} column "
                              f"{exc.colno}{hint}", source=source) from None
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
        hint = " (YAML indents with spaces, never tabs)" if "\\t" in str(problem) else ""
        raise ConfigError(f"malformed YAML: {problem}{where}{hint}", source=source) from None
    except RecursionError:
        raise ConfigError("YAML nested too deeply", source=source) from None


@at_boundary
def load_config(path: str | os.PathLike[str] | None = None, *,
                env: Mapping[str, str] | None = None,
                resolve_secret: SecretResolver | None = None) -> Config:
    """Load and validate the config file (see :func:`config_path` for which one);
    ``resolve_secret`` as for :func:`config_from_dict`."""
    given = os.fspath(path) if path else None
    resolved = config_path(given, env)
    explicit = bool(given or (ENVIRONMENT if env is None else env).get("MISSY_CONFIG"))
    return config_from_dict(read_config_file(resolved, explicit=explicit), source=resolved,
                            env=env, resolve_secret=resolve_secret)
