"""Missy's config files (tests/data/missy, copied from MissyLabs/missy with their source and
licence) load as the provider layer's part of a host's file: our sections strictly, the rest
left to the host, Missy's keys with Missy's meaning, and every example either loads or fails
naming its key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CANARY
from loopback import LoopbackServer
from missy_corpus import extract, load
from missy_corpus import main as corpus_main

from missy_providers.config import (
    Config,
    config_from_dict,
    load_config,
    network_policy,
    yaml_key_variable,
)
from missy_providers.core.errors import ConfigError, PolicyViolation, UsageError
from missy_providers.core.policy import NetworkPolicy, RestRule, parse_url, rest_paths
from missy_providers.provider_types import HOST_TYPES, register_type
from missy_providers.providers.anthropic import AnthropicProvider
from missy_providers.providers.ollama import OllamaProvider
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "missy"
MISSY_OTHER_SECTIONS = ("filesystem", "shell", "plugins", "workspace_path", "audit_log_path",
                        "discord", "scheduling", "heartbeat", "vault", "proactive", "sandbox",
                        "container", "vision", "max_iterations", "max_spend_usd",
                        "global_max_spend_usd", "global_budget_period", "landlock_enabled",
                        "config_version", "tools", "agents", "tool_intelligence", "obs",
                        "vtube", "desktop", "api", "voice", "screencast")


def missy_file(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    return data


def test_missy_example_config_loads() -> None:
    config = load_config(DATA / "config.yaml", env={})
    assert list(config.providers) == ["anthropic", "openai", "ollama"]
    assert config.host_keys == ("filesystem", "shell", "plugins", "workspace_path",
                                "audit_log_path")
    assert config.notes == ()
    assert config.providers["anthropic"].timeout == 30.0
    assert config.providers["ollama"].base_url == "http://localhost:11434"
    policy = network_policy(config)
    assert policy.check("https://api.anthropic.com/v1/messages").allowed
    assert policy.check("https://api.github.com/").allowed  # *.github.com
    assert not policy.check("https://github.com/").allowed  # ours: subdomains only (narrower)
    assert not policy.check("https://evil.example/").allowed


# (file, where its one problem is, or None when it loads)
COPIED = [
    ("config.yaml", None),
    ("docs-configuration-md-full-config.yaml", None),
    ("docs-persistence-schema-md-full-config.yaml", None),
    ("claude-md-full-config.yaml", ("providers", "openai-codex", "oauth_accounts")),
]


@pytest.mark.parametrize("name, problem_at", COPIED, ids=[c[0] for c in COPIED])
def test_every_copied_config_loads_or_names_its_key(name: str,
                                                   problem_at: tuple[str, ...] | None) -> None:
    if problem_at is None:
        config = load_config(DATA / name, env={})
        assert set(config.host_keys) <= set(MISSY_OTHER_SECTIONS) and config.host_keys
        return
    with pytest.raises(ConfigError) as info:
        load_config(DATA / name, env={})
    assert [p.path for p in info.value.problems] == [problem_at]
    assert "not supported yet" in info.value.msg


def test_claude_md_config_with_one_codex_login() -> None:
    """Missy's fullest example: presets, REST rules, every category's hosts, round robin
    keys, the whole observability section."""
    data = missy_file("claude-md-full-config.yaml")
    del data["providers"]["openai-codex"]["oauth_accounts"]
    config = config_from_dict(data, env={})
    net = config.network
    assert net.presets == ("anthropic", "github")
    assert net.allowed_hosts == ("api.anthropic.com", "api.github.com", "github.com")
    assert net.allowed_domains == ("anthropic.com", "github.com", "githubusercontent.com")
    assert [str(r) for r in net.rest_policies] == ["allow GET api.github.com/repos/**",
                                                   "deny DELETE api.github.com/**"]
    openai = config.providers["openai"]
    assert openai.key_rotation_strategy == "round_robin" and len(openai.keys) == 2
    assert openai.account_weights == (1.0, 1.0) and openai.key_source == "2 keys, round robin"
    assert config.providers["anthropic"].key_source == "none"
    assert config.log_level == "WARNING"
    assert "vault" in config.host_keys and "api" in config.host_keys


def test_persistence_schema_config_keeps_disabled_providers_unbuilt() -> None:
    config = load_config(DATA / "docs-persistence-schema-md-full-config.yaml", env={})
    assert [n for n, p in config.providers.items() if not p.enabled] == ["openai", "ollama"]
    registry = ProviderRegistry(config)
    assert registry.list_providers() == ["anthropic"]
    assert registry.get("openai") is None
    policy = network_policy(config)
    assert policy.check("http://localhost:11434/api/tags").allowed  # provider_allowed_hosts
    assert policy.check("https://api.anthropic.com/v1/messages").allowed


def test_model_auto_is_a_note() -> None:
    config = load_config(DATA / "docs-configuration-md-full-config.yaml", env={})
    assert config.providers["openai"].model == "auto"
    assert config.notes == ("providers.openai.model: 'auto' is sent as the model's name (Missy "
                            "picks a model from the server's list; this package does not): "
                            "name the model",)


# --- the survey's extraction recipe, run over the copied data ------------------------------

# Where each copied file came from in Missy (tests/data/missy/README.md): rebuilt as a small
# Missy tree, so that the recipe finds each the way it finds it in the real checkout.
SOURCES = {"config.yaml": "examples/config.yaml",
           "claude-md-full-config.yaml": "CLAUDE.md",
           "docs-configuration-md-full-config.yaml": "docs/configuration.md",
           "docs-persistence-schema-md-full-config.yaml":
               "docs/implementation/persistence-schema.md"}


def test_extraction_recipe_over_the_copied_data(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name, source in SOURCES.items():
        target = tmp_path / source
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (DATA / name).read_text(encoding="utf-8")
        target.write_text(text if source.endswith(".yaml") else
                          f"# {source}\n\nSome prose.\n\n```yaml\n{text}```\n\nMore prose.\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        'CFG = """\nproviders:\n  ollama:\n    model: m\nshell:\n  enabled: false\n"""\n'
        'NOT_A_CONFIG = """\nhello: world\nx: 1\n"""\n')
    examples = [load(e) for e in extract(tmp_path) if e.is_missy_config]
    assert [(e.source, e.line, e.kind, e.outcome) for e in examples] == [
        ("CLAUDE.md", 5, "doc-fence", "names-key"),
        ("docs/configuration.md", 5, "doc-fence", "loads"),
        ("docs/implementation/persistence-schema.md", 5, "doc-fence", "loads"),
        ("examples/config.yaml", 1, "example-file", "loads"),
        ("tests/test_x.py", 1, "test-string", "loads"),
    ]
    assert corpus_main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith(
        "5 Missy config examples (5 distinct): 4 load, 1 fail naming the key, 0 fail "
        "otherwise\n")


def test_the_corpus_script_runs_as_a_command(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "a.yaml").write_text("providers:\n  x:\n    name: olama\n"
                                                  "    model: m\n---\nnetwork: {}\n")
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "missy_corpus.py"),
                             str(tmp_path), "--all"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "names-key  examples/a.yaml:1 (example-document)" in result.stdout
    assert "did you mean 'ollama'" in result.stdout
    assert result.stdout.endswith("2 Missy config examples (2 distinct): 1 load, 1 fail "
                                  "naming the key, 0 fail otherwise\n")


# --- the top level: ours strictly, the host's left alone -------------------------------------

@pytest.mark.parametrize("key", MISSY_OTHER_SECTIONS)
def test_missy_sections_are_left_to_the_host(key: str) -> None:
    config = config_from_dict({key: {"anything": [1, 2]}, "providers": {}}, env={})
    assert config.host_keys == (key,)


@pytest.mark.parametrize("key, fragment", [
    ("provider", "unknown key 'provider'; did you mean 'providers'?"),
    ("netwrok", "unknown key 'netwrok'; did you mean 'network'?"),
    ("Network", "unknown key 'Network'; did you mean 'network'?"),
    ("fallbak", "unknown key 'fallbak'; did you mean 'fallback'?"),
    ("observabilty", "unknown key 'observabilty'; did you mean 'observability'?"),
    ("default_providers", "unknown key 'default_providers'; did you mean 'default_provider'?"),
    ("proxy", "'proxy' belongs under network: (it is not a top-level key)"),
    ("model", "'model' belongs under providers.<name>: (it is not a top-level key)"),
    ("log_level", "'log_level' belongs under observability: (it is not a top-level key)"),
])
def test_a_near_miss_of_ours_stays_an_error(key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({key: {}}, env={})
    assert info.value.msg == fragment and info.value.path == ()


# --- network: presets, REST rules, other categories ----------------------------------------

def test_presets_expand_after_the_lists_each_entry_once() -> None:
    config = config_from_dict({"network": {
        "allowed_hosts": ["api.openai.com", "x.example"], "allowed_cidrs": ["10.0.0.0/8"],
        "presets": ["openai", "ollama", "home-assistant", "openai"]}}, env={})
    net = config.network
    assert net.allowed_hosts == ("api.openai.com", "x.example", "auth.openai.com",
                                 "chatgpt.com", "localhost:11434", "127.0.0.1:11434",
                                 "localhost:8123", "127.0.0.1:8123")
    assert net.allowed_domains == ("openai.com",)
    assert net.allowed_cidrs == ("10.0.0.0/8", "127.0.0.0/8")
    assert net.presets == ("openai", "ollama", "home-assistant")
    policy = network_policy(config)
    assert policy.check("https://chatgpt.com/backend-api/codex").allowed
    assert policy.check("http://127.0.0.1:9999/").allowed  # the ollama preset's CIDR


@pytest.mark.parametrize("network, fragment, path", [
    ({"presets": ["anthropc"]}, "unknown preset 'anthropc'; did you mean 'anthropic'?",
     ("network", "presets", "0")),
    ({"presets": "github"}, "expected a list of non-empty strings", ("network", "presets")),
    ({"rest_policies": [{"method": "GET"}]}, "missing required key 'host'",
     ("network", "rest_policies", "0")),
    ({"rest_policies": [{"host": "h.example", "action": "block"}]},
     "expected allow or deny, got 'block'", ("network", "rest_policies", "0", "action")),
    ({"rest_policies": [{"host": "h.example:443"}]}, "give the host without a port",
     ("network", "rest_policies", "0", "host")),
    ({"rest_policies": [{"host": "h.example", "method": "GE T"}]},
     "expected an HTTP method or '*'", ("network", "rest_policies", "0", "method")),
    ({"rest_policies": [{"host": "h.example", "path": "repos/*"}]},
     "expected a path glob starting with '/'", ("network", "rest_policies", "0", "path")),
    ({"rest_policies": [{"host": "h.example", "verb": "GET"}]}, "unknown key 'verb'",
     ("network", "rest_policies", "0")),
    ({"rest_policies": [{"host": "bad host"}]}, "characters not allowed in a host name",
     ("network", "rest_policies", "0", "host")),
    ({"rest_policies": {"host": "h"}}, "expected a list of mappings",
     ("network", "rest_policies")),
    ({"tool_allowed_hosts": "x"}, "expected a list of non-empty strings",
     ("network", "tool_allowed_hosts")),
])
def test_bad_missy_network_keys(network: dict[str, Any], fragment: str,
                                path: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"network": network}, env={})
    assert fragment in info.value.msg and info.value.path == path


GITHUB_RULES = (RestRule("api.github.com", "GET", "/repos/**", "allow"),
                RestRule("api.github.com", "delete", "/**", "deny"),
                RestRule("api.github.com", "*", "/admin/*", "deny"))


@pytest.mark.parametrize("method, url, denied_by", [
    ("GET", "https://api.github.com/repos/a/b", None),  # first match: allow
    ("DELETE", "https://api.github.com/repos/a/b", "deny DELETE api.github.com/**"),
    ("DELETE", "https://API.github.com:8443/x?y=1", "deny DELETE api.github.com/**"),
    ("POST", "https://api.github.com/admin/users/1", "deny * api.github.com/admin/*"),
    ("GET", "https://api.github.com/admin/x", "deny * api.github.com/admin/*"),
    ("GET", "https://api.github.com/repos/../admin/x", "deny * api.github.com/admin/*"),
    ("POST", "https://api.github.com/%61dmin/x", "deny * api.github.com/admin/*"),
    ("POST", "https://api.github.com/public/%2e%2e/admin/x", "deny * api.github.com/admin/*"),
    ("POST", "https://api.github.com//admin/x", "deny * api.github.com/admin/*"),
    ("POST", "https://api.github.com/ADMIN/x", "deny * api.github.com/admin/*"),
    ("GET", "https://api.github.com/Repos/a/b", None),  # an allow as written: no match...
    ("DELETE", "https://api.github.com/Repos/a/b", "deny DELETE api.github.com/**"),
    ("POST", "https://api.github.com/adminx", None),
    ("POST", "https://github.com/admin/x", None),  # another host: no rule
    ("DELETE", "https://other.example/x", None),
])
def test_rest_rules_table(method: str, url: str, denied_by: str | None) -> None:
    policy = NetworkPolicy(default_deny=False, rest_rules=GITHUB_RULES)
    target = parse_url(url)
    decision = policy.check_rest(method, target)
    if denied_by is None:
        assert decision is None
    else:
        assert decision is not None and not decision.allowed
        assert decision.rule == "rest_policies"
        assert decision.reason.endswith(f"is denied by network.rest_policies rule "
                                        f"'{denied_by}'")


@pytest.mark.parametrize("path, forms", [
    ("/a/b", ("/a/b",)), ("/a/b/", ("/a/b/",)), ("/a/./b/../c", ("/a/c",)),
    ("/a%2Fb", ("/a%2Fb", "/a/b")), ("/%2e%2e/x", ("/%2e%2e/x", "/x")), ("/", ("/",)),
])
def test_rest_paths(path: str, forms: tuple[str, ...]) -> None:
    assert rest_paths(path) == forms


def test_rest_rules_deny_provider_traffic_before_it_is_sent(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"models": []}))
    data = {"providers": {"local": {"name": "ollama", "model": "m", "base_url": server.url}},
            "network": {"rest_policies": [
                {"host": "127.0.0.1", "method": "POST", "path": "/api/chat", "action": "deny"},
                {"host": "evil.example", "action": "allow"}]}}
    registry = ProviderRegistry.from_config(data)
    with pytest.raises(PolicyViolation, match=r"POST 127\.0\.0\.1/api/chat is denied by "
                       r"network\.rest_policies rule 'deny POST 127\.0\.0\.1/api/chat'"):
        registry.provider("local").complete("hi")
    assert server.requests == []
    assert registry.provider("local").list_models() == []  # GET /api/tags: not denied
    # An allow rule never allows a host the policy refuses.
    assert not registry.client.explain("https://evil.example/")["allowed"]


def test_other_categories_hosts_never_allow_provider_traffic(tmp_path: Path) -> None:
    data = {"providers": {"o": {"name": "ollama", "model": "m"}},
            "network": {"tool_allowed_hosts": ["tools.example"],
                        "discord_allowed_hosts": ["discord.com"]}}
    config = config_from_dict(data, env={})
    assert config.network.tool_allowed_hosts == ("tools.example",)
    policy = network_policy(config)
    assert not policy.check("https://tools.example/").allowed
    assert not policy.check("https://discord.com/").allowed
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    shown = subprocess.run([sys.executable, "-m", "missy", "policy", "show", "--config",
                            str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "tool_allowed_hosts: tools.example (another kind of traffic's: never used for " \
           "provider traffic)" in shown.stdout
    as_json = subprocess.run([sys.executable, "-m", "missy", "policy", "show", "--json",
                              "--config", str(path)], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
    assert json.loads(as_json.stdout)["not_for_provider_traffic"] == {
        "tool_allowed_hosts": ["tools.example"], "discord_allowed_hosts": ["discord.com"]}


# --- observability -----------------------------------------------------------------------------

@pytest.mark.parametrize("value, level", [("warning", "WARNING"), ("INFO", "INFO"),
                                          (" debug ", "DEBUG"), ("warn", "WARNING"),
                                          (40, "ERROR"), ("fatal", "CRITICAL")])
def test_log_level(value: Any, level: str) -> None:
    config = config_from_dict({"observability": {"log_level": value}}, env={})
    assert config.log_level == level


@pytest.mark.parametrize("observability, path", [
    ({"log_level": "loud"}, ("observability", "log_level")),
    ({"log_level": 15}, ("observability", "log_level")),
    ({"otel_enabled": "yes"}, ("observability", "otel_enabled")),
    ({"otel_exporter": "x"}, ("observability",)),
])
def test_bad_observability(observability: dict[str, Any], path: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"observability": observability}, env={})
    assert info.value.path == path


def test_otel_keys_are_accepted_and_unused() -> None:
    config = config_from_dict({"observability": {
        "otel_enabled": True, "otel_endpoint": "http://localhost:4317", "otel_protocol": "grpc",
        "otel_service_name": "missy", "log_file_path": "~/.missy/missy.log"}}, env={})
    assert config.log_level == "" and config.call_log == ""


def test_log_level_sets_the_cli_loggers(tmp_path: Path, server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"models": [{"name": "llama3.2"}]}))
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"providers": {"local": {"name": "ollama", "model": "m",
                                                        "base_url": server.url}},
                                "observability": {"log_level": "debug"}}))
    run = [sys.executable, "-m", "missy", "models", "--config", str(path)]
    shown = subprocess.run(run, capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={"PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and shown.stdout == "local\tllama3.2\n"
    assert "missy: DEBUG: missy_providers.core.http: GET http://127.0.0.1:" in shown.stderr
    quiet = subprocess.run([*run, "-q"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={"PATH": "/usr/bin:/bin"})
    assert quiet.returncode == 0 and quiet.stderr == ""


# --- per provider: Missy's keys --------------------------------------------------------------

@pytest.mark.parametrize("settings, fragment, key", [
    ({"key_rotation_strategy": "random"}, "expected one of failover, round_robin",
     "key_rotation_strategy"),
    ({"api_keys": ["a1234567", "b1234567"], "account_weights": [1, 2, 3]},
     "has 3 weight(s) for 2 api_keys", "account_weights"),
    ({"api_keys": ["a1234567", "b1234567"], "account_weights": [1, 2]},
     "weights keys for key_rotation_strategy: round_robin", "account_weights"),
    ({"account_weights": [1, 0]}, "expected a list of numbers > 0", "account_weights"),
    ({"oauth_accounts": ["work"]}, "not supported yet", "oauth_accounts"),
    ({"weight": -1}, "expected a number >= 0", "weight"),
    ({"key_rotation_strategy": "round_robin", "api_key": "k1234567",
      "api_keys": ["a1234567", "b1234567"]}, "round_robin balances the api_keys", "api_key"),
])
def test_bad_missy_provider_keys(settings: dict[str, Any], fragment: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"p": {"name": "openai", "model": "m", **settings}}},
                         env={})
    assert fragment in info.value.msg and info.value.path == ("providers", "p", key)


def test_missy_provider_defaults() -> None:
    config = config_from_dict({"providers": {"p": {"name": "openai", "model": "m",
                                                   "oauth_accounts": []}}}, env={})
    p = config.providers["p"]
    assert (p.weight, p.key_rotation_strategy, p.account_weights, p.oauth_accounts) == (
        1.0, "failover", (), ())
    assert p.api_key is None and p.api_keys == ()


@pytest.mark.parametrize("key, ptype, base_url, env, source", [
    ("groq", "openai", "https://api.groq.com/openai/v1", {"GROQ_API_KEY": "gsk-1"},
     "env GROQ_API_KEY"),
    # OPENAI_API_KEY goes only to api.openai.com: never to another host, whatever the key.
    ("groq", "openai", "https://api.groq.com/openai/v1", {"OPENAI_API_KEY": "sk-1"}, "none"),
    ("openai", "openai", "https://api.groq.com/openai/v1", {"OPENAI_API_KEY": "sk-1"}, "none"),
    ("groq", "openai", "https://api.groq.com/openai/v1",
     {"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-1"}, "env GROQ_API_KEY"),
    ("openai", "openai", "https://api.openai.com/v1", {"OPENAI_API_KEY": "sk-1"},
     "env OPENAI_API_KEY"),
    ("claude", "anthropic", "https://api.anthropic.com",
     {"ANTHROPIC_API_KEY": "a-1", "CLAUDE_API_KEY": "c-1"}, "env ANTHROPIC_API_KEY"),
    ("claude", "anthropic", "https://api.anthropic.com", {"CLAUDE_API_KEY": "c-1"},
     "env CLAUDE_API_KEY"),
    ("my-openai", "openai", "http://127.0.0.1:8000/v1", {"MY_OPENAI_API_KEY": "o-1"},
     "env MY_OPENAI_API_KEY"),
    # Ollama takes a key only from the config (ollama.com): a local server is sent none.
    ("ollama", "ollama", "http://127.0.0.1:11434", {"OLLAMA_API_KEY": "o-1"}, "none"),
    ("openai-codex", "openai-codex", "https://chatgpt.com/backend-api/codex",
     {"OPENAI_CODEX_API_KEY": "t-1"}, "env OPENAI_CODEX_API_KEY"),
])
def test_yaml_key_variable_after_the_types_own(key: str, ptype: str, base_url: str,
                                               env: dict[str, str], source: str) -> None:
    config = config_from_dict({"providers": {key: {"name": ptype, "model": "m",
                                                   "base_url": base_url}}}, env=env)
    assert config.providers[key].key_source == source


@pytest.mark.parametrize("key, variable", [("groq", "GROQ_API_KEY"),
                                           ("openai-codex", "OPENAI_CODEX_API_KEY"),
                                           ("my.provider", ""), ("émoji", "")])
def test_yaml_key_variable_names(key: str, variable: str) -> None:
    assert yaml_key_variable(key) == variable


def test_the_yaml_key_variable_is_what_is_sent(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"model": "m", "choices": [{"message": {
        "role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
    env = {"GROQ_API_KEY": "gsk-groq-0123456789", "OPENAI_API_KEY": CANARY}
    config = config_from_dict({"providers": {"groq": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1"}}}, env=env)
    assert ProviderRegistry(config).provider("groq").complete("hi").content == "ok"
    assert server.requests[0].headers["authorization"] == "Bearer gsk-groq-0123456789"
    assert CANARY not in repr(server.requests)


# --- secret references: only through the host's resolver -------------------------------------

VAULT = {"vault://ANTHROPIC_API_KEY": "sk-ant-from-the-vault-0001",
         "vault://SECOND": "sk-ant-from-the-vault-0002"}


def test_a_reference_without_a_resolver_is_an_error_never_a_key() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key": "vault://ANTHROPIC_API_KEY"}}}, env={})
    assert info.value.path == ("providers", "a", "api_key")
    assert info.value.msg.startswith("vault://ANTHROPIC_API_KEY is a secret reference and "
                                     "nothing resolves it: the host passes resolve_secret=")


def test_references_resolved_by_the_host(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, {"type": "message", "model": "m", "content": [
        {"type": "text", "text": "ok"}], "stop_reason": "end_turn"}))
    asked: list[str] = []

    def resolve(ref: str) -> str:
        asked.append(ref)
        return VAULT[ref]

    data = {"providers": {
        "a": {"name": "anthropic", "model": "m", "base_url": server.url,
              "api_key": "vault://ANTHROPIC_API_KEY", "api_keys": ["vault://SECOND"],
              "headers": {"x-extra-token": "vault://SECOND"}},
        "off": {"name": "anthropic", "model": "m", "api_key": "vault://NEVER",
                "enabled": False}}}
    config = config_from_dict(data, env={}, resolve_secret=resolve)
    assert asked == ["vault://ANTHROPIC_API_KEY", "vault://SECOND", "vault://SECOND"]
    pconf = config.providers["a"]
    assert pconf.key_source == "2 keys" and len(pconf.keys) == 2
    assert pconf.keys[0].origin == "vault://ANTHROPIC_API_KEY"
    assert "from-the-vault" not in repr(config)
    ProviderRegistry(config).provider("a").complete("hi")
    assert server.requests[0].headers["x-api-key"] == VAULT["vault://ANTHROPIC_API_KEY"]
    assert server.requests[0].headers["x-extra-token"] == VAULT["vault://SECOND"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    del data["providers"]["a"]["api_keys"]
    path.write_text(json.dumps(data))
    for loaded in (load_config(path, env={}, resolve_secret=resolve),
                   ProviderRegistry.from_config(str(path), resolve_secret=resolve).config):
        assert loaded.providers["a"].key_source == "vault://ANTHROPIC_API_KEY"


@pytest.mark.parametrize("resolve, fragment", [
    (lambda ref: {}[ref], "resolve_secret could not resolve vault://MISSING (KeyError)"),
    (lambda ref: "", "resolve_secret gave no string for vault://MISSING (got str)"),
    (lambda ref: None, "resolve_secret gave no string for vault://MISSING (got NoneType)"),
])
def test_a_failed_resolution_names_the_key(resolve: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key": "vault://MISSING"}}},
                         env={}, resolve_secret=resolve)
    assert info.value.msg == fragment and info.value.path == ("providers", "a", "api_key")


def test_a_pasted_secret_that_looks_like_a_reference_is_not_shown() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key": f"https://{CANARY}@x"}}}, env={})
    assert CANARY not in str(info.value) and "https://(name not shown)" in info.value.msg


# --- provider types: a host's own, never discovered ------------------------------------------

def test_a_type_we_do_not_know_is_skipped_with_a_note() -> None:
    config = config_from_dict({"providers": {
        "acpx": {"name": "acpx", "model": "claude"},
        "local": {"name": "ollama", "model": "m"}},
        "fallback": ["local", "acpx"]}, env={})
    assert list(config.providers) == ["local"] and config.fallback == ("local",)
    assert config.notes == (
        "providers.acpx: type 'acpx' is not one this package provides (anthropic, openai, "
        "openai-codex, ollama, azure-openai, bedrock): skipped (a host adds its own types with "
        "register_type)",
        "fallback.1: 'acpx' (type 'acpx') was skipped and is left out of the fallback chain")
    registry = ProviderRegistry(config)
    assert registry.get("acpx") is None and registry.list_providers() == ["local"]
    with pytest.raises(ConfigError, match="'acpx' is of type 'acpx', which this package does "
                       "not provide"):
        config_from_dict({"providers": {"acpx": {"model": "x"}},
                          "default_provider": "acpx"}, env={})


class HostOllama(OllamaProvider):
    """A host's own provider type (here, Ollama's API under another name: the class keeps
    its provider_type, which says whose wire tables it uses)."""

    default_base_url = "http://127.0.0.1:1"


def test_register_type(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"model": "m", "message": {
        "role": "assistant", "content": "from the host's type"}, "done": True}))
    try:
        register_type("acpx", HostOllama)
        register_type("acpx", HostOllama)  # the same again: nothing happens
        config = config_from_dict({"providers": {
            "acpx": {"model": "claude", "base_url": server.url},
            "bare": {"name": "acpx", "model": "claude"}}}, env={})
        assert config.notes == () and config.providers["bare"].base_url == "http://127.0.0.1:1"
        registry = ProviderRegistry(config)
        provider = registry.provider("acpx")
        assert type(provider) is HostOllama
        assert provider.complete("hi").content == "from the host's type"
        with pytest.raises(UsageError, match="already registered as HostOllama"):
            register_type("acpx", OllamaProvider)
    finally:
        HOST_TYPES.pop("acpx", None)


@pytest.mark.parametrize("name, cls, fragment", [
    ("openai", HostOllama, "'openai' is a built-in provider type"),
    ("Bad Name", HostOllama, "a provider type name is 1-40 lower-case letters"),
    ("x", object, "takes a subclass of BaseProvider"),
    ("x", AnthropicProvider(config_from_dict({"providers": {"a": {"name": "anthropic",
       "model": "m", "api_key": "k1234567"}}}, env={}).providers["a"]),
     "takes a subclass of BaseProvider"),
])
def test_register_type_refuses(name: str, cls: Any, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        register_type(name, cls)
    assert name not in HOST_TYPES


def test_missy_config_object_is_refused_with_the_way_out() -> None:
    class MissyConfig:  # what Missy's load_config returns: secrets already read into text
        def __init__(self) -> None:
            self.providers: dict[str, Any] = {}

    with pytest.raises(UsageError, match="pass the path of its file"):
        ProviderRegistry.from_config(MissyConfig())  # type: ignore[arg-type]
    assert isinstance(ProviderRegistry.from_config(Config()).config, Config)


def test_host_config_dict_with_messages() -> None:
    registry = ProviderRegistry.from_config(missy_file("config.yaml"))
    assert registry.list_providers() == ["anthropic", "ollama", "openai"]
    assert isinstance(Message("user", "x"), Message)
