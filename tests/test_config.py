"""Config loading: every bad input is a ConfigError naming file, key path and what is expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY

from missy_providers.config import (
    Secret,
    config_from_dict,
    config_path,
    load_config,
    network_policy,
    ollama_base_url,
)
from missy_providers.core.errors import ConfigError


def one(provider: dict[str, Any], env: dict[str, str] | None = None, **top: Any) -> Any:
    return config_from_dict({"providers": {"p": provider}, **top}, env=env or {})


BAD = [
    # (config, message fragment, key path)
    ({"providers": {"p": {"name": "anthropic"}}}, "missing required key 'model'",
     ("providers", "p")),
    ({"providers": {"p": {"name": "anthropic", "model": ""}}}, "expected a non-empty string",
     ("providers", "p", "model")),
    ({"providers": {"p": {"name": "anthropic", "model": 3}}}, "expected a non-empty string, got "
     "a number", ("providers", "p", "model")),
    ({"providers": {"p": {"name": "olama", "model": "m"}}},
     "unknown provider type 'olama'; did you mean 'ollama'", ("providers", "p", "name")),
    ({"providers": {"antropic": {"model": "m"}}}, "unknown provider type 'antropic'",
     ("providers", "antropic")),
    ({"providers": {"p": {"name": 3, "model": "m"}}}, "unknown provider type 3",
     ("providers", "p", "name")),
    ({"providers": {"anthropic": {"model": "m", "modle": "x"}}},
     "unknown key 'modle'; did you mean 'model'?", ("providers", "anthropic")),
    ({"providers": {"anthropic": {"model": "m", "enabled": "yes"}}},
     "expected true or false, got the string 'yes' (write true or false, without quotes)",
     ("providers", "anthropic", "enabled")),
    # A numeric or boolean field shows the wrong value; any other field only its type (a
    # value may be a key typed into the wrong field).
    ({"providers": {"anthropic": {"model": "m", "timeout": 0}}},
     "<= 86400 (a day), got 0", ("providers", "anthropic", "timeout")),
    ({"providers": {"anthropic": {"model": "m", "timeout": "60"}}},
     "<= 86400 (a day), got the string '60' (write the number without quotes)",
     ("providers", "anthropic", "timeout")),
    ({"providers": {"anthropic": {"model": "m", "timeout": "1e3"}}},
     "got the string '1e3' (YAML reads that form as text: write 1000)",
     ("providers", "anthropic", "timeout")),
    ({"providers": {"anthropic": {"model": "m", "timeout": "sk-ant-1234"}}},
     "<= 86400 (a day), got a string", ("providers", "anthropic", "timeout")),
    ({"providers": {"anthropic": {"model": "m", "total_timeout": 1e10}}},
     "a number of seconds > 0 and <= 86400 (a day), got 10000000000.0",
     ("providers", "anthropic", "total_timeout")),
    ({"providers": {"anthropic": {"model": "m", "total_timeout": float("inf")}}},
     "<= 86400 (a day), got inf", ("providers", "anthropic", "total_timeout")),
    ({"providers": {"anthropic": {"model": "m", "timeout": True}}},
     "<= 86400 (a day), got True", ("providers", "anthropic", "timeout")),
    ({"providers": {"anthropic": {"model": "m", "max_retries": -1}}},
     "from 0 to 100, got -1", ("providers", "anthropic", "max_retries")),
    ({"providers": {"anthropic": {"model": "m", "api_key": 123456789}}},
     "expected a non-empty string, got a number", ("providers", "anthropic", "api_key")),
    ({"providers": {"anthropic": {"model": "m", "api_keys": "k"}}}, "a list of non-empty strings",
     ("providers", "anthropic", "api_keys")),
    ({"providers": {"anthropic": {"model": "m", "api_keys": ["a", 1]}}}, "a list of non-empty",
     ("providers", "anthropic", "api_keys")),
    ({"providers": {"anthropic": {"model": "m", "base_url": "ftp://x.example"}}},
     "only http:// and https://", ("providers", "anthropic", "base_url")),
    ({"providers": {"anthropic": {"model": "m", "base_url": "https://u@x.example"}}},
     "credentials in the URL", ("providers", "anthropic", "base_url")),
    ({"providers": {"anthropic": {"model": "m",
                                  "base_url": "https://gw.example/v1?key=plainpassphrase42"}}},
     "a base_url has no query string (the API's paths", ("providers", "anthropic", "base_url")),
    ({"providers": {"anthropic": {"model": "m", "organization": "o"}}},
     "unknown key 'organization'", ("providers", "anthropic")),
    ({"providers": {"anthropic": {"model": "m", "api_key": "$1bad"}}},
     "not a valid $VAR reference", ("providers", "anthropic", "api_key")),
    ({"providers": ["anthropic"]}, "expected a mapping of provider name to settings",
     ("providers",)),
    ({"providers": {"anthropic": "claude"}}, "expected a mapping of provider settings",
     ("providers", "anthropic")),
    ({"provider": {}}, "unknown key 'provider'; did you mean 'providers'?", ()),
    ({"providers": {}, "default_provider": "nope"}, "'nope' is not one of the configured",
     ("default_provider",)),
    ({"network": {"default_deny": "no"}}, "expected true or false", ("network", "default_deny")),
    ({"network": {"allowed_hosts": ["https://x.example"]}}, "not a URL",
     ("network", "allowed_hosts", "0")),
    ({"network": {"allowed_cidrs": ["10.0.0.1/8"]}}, "not a CIDR network",
     ("network", "allowed_cidrs", "0")),
    ({"network": {"allowed_domains": ["a.*.example"]}}, "characters not allowed in a host name",
     ("network", "allowed_domains", "0")),
    ({"network": {"allowed_hosts": ["127.1"]}}, "canonical dotted-quad",
     ("network", "allowed_hosts", "0")),
    ({"network": {"proxy": "socks5://p.example:1080"}}, "only http:// and https://",
     ("network", "proxy")),
    ({"network": {"proxy": "http://p.example:3128/?token=plainpassphrase42"}},
     "the proxy is an address only", ("network", "proxy")),
    ({"network": {"proxy": "http://p.example:3128/plainpassphrase42"}},
     "the proxy is an address only", ("network", "proxy")),
    ({"network": {"allow_all": True}}, "unknown key 'allow_all'", ("network",)),
    ({"network": []}, "expected a mapping, got a list", ("network",)),
    (["providers"], "expected a mapping at the top of the config", ()),
]


@pytest.mark.parametrize(("data", "fragment", "path"), BAD, ids=[str(b[1])[:40] for b in BAD])
def test_bad_config(data: Any, fragment: str, path: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="cfg.yaml", env={})
    err = info.value
    assert fragment in err.msg
    assert err.path == path
    assert str(err).startswith("cfg.yaml: ")
    where = ".".join(path) or "top level"
    assert f"(at {where})" in str(err)
    assert "plainpassphrase42" not in str(err)  # a value that may be a key is never quoted


def test_every_problem_is_collected() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic"}, "b": {"model": "m",
                                                                            "name": "olama"}},
                          "network": {"default_deny": 1}}, env={})
    assert len(info.value.problems) == 3
    assert "(and 2 more problem(s))" in str(info.value)
    assert [p.path for p in info.value.problems] == [  # in the file's order
        ("providers", "a"), ("providers", "b", "name"), ("network", "default_deny")]


def test_wrong_typed_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        one({"name": "anthropic", "model": "m", "fast_model": [CANARY]})
    assert CANARY not in str(info.value)


def test_defaults_and_name_defaults_to_key() -> None:
    config = config_from_dict({"providers": {"anthropic": {"model": "claude"}}}, env={})
    p = config.providers["anthropic"]
    assert (p.provider_type, p.base_url, p.enabled, p.timeout, p.max_retries) == (
        "anthropic", "https://api.anthropic.com", True, 60.0, 2)
    assert config.network.default_deny is True
    assert config.default_provider == ""


def test_null_values_mean_unset() -> None:
    config = one({"name": "anthropic", "model": "m", "api_key": None, "base_url": None},
                 env={"ANTHROPIC_API_KEY": "from-env"})
    assert config.providers["p"].keys[0].reveal() == "from-env"
    assert config.providers["p"].base_url == "https://api.anthropic.com"


# --- key precedence ---------------------------------------------------------------------------


def keys_of(provider: dict[str, Any], env: dict[str, str]) -> tuple[list[str], str]:
    p = one(provider, env).providers["p"]
    return [k.reveal() for k in p.keys], p.key_source


def test_api_key_beats_env_and_list() -> None:
    assert keys_of({"name": "anthropic", "model": "m", "api_key": "cfg", "api_keys": ["l1", "l2"]},
                   {"ANTHROPIC_API_KEY": "env"}) == (["cfg", "l1", "l2"], "3 keys")


def test_env_beats_list() -> None:
    assert keys_of({"name": "anthropic", "model": "m", "api_keys": ["l1"]},
                   {"ANTHROPIC_API_KEY": "env"}) == (["env", "l1"], "2 keys")
    assert keys_of({"name": "anthropic", "model": "m"},
                   {"ANTHROPIC_API_KEY": "env"}) == (["env"], "env ANTHROPIC_API_KEY")


def test_list_alone() -> None:
    assert keys_of({"name": "anthropic", "model": "m", "api_keys": ["l1"]}, {}) == (["l1"],
                                                                                  "config")
    assert keys_of({"name": "anthropic", "model": "m"}, {}) == ([], "none")


def test_var_references_resolve() -> None:
    env = {"MY_KEY": "mine", "K2": "two"}
    assert keys_of({"name": "anthropic", "model": "m", "api_key": "$MY_KEY"}, env) == (
        ["mine"], "env MY_KEY")
    assert keys_of({"name": "anthropic", "model": "m", "api_keys": ["${MY_KEY}", "$K2"]},
                   env) == (["mine", "two"], "2 keys")


def test_openai_env_key_only_for_openai_host() -> None:
    env = {"OPENAI_API_KEY": "oa"}
    assert keys_of({"name": "openai", "model": "m"}, env) == (["oa"], "env OPENAI_API_KEY")
    assert keys_of({"name": "openai", "model": "m",
                    "base_url": "https://api.openai.com/v1"}, env)[0] == ["oa"]
    assert keys_of({"name": "openai", "model": "m",
                    "base_url": "https://openrouter.ai/api/v1"}, env) == ([], "none")
    # OPENAI_BASE_URL is ignored unless the config opts in (and says so in a note)...
    moved = {**env, "OPENAI_BASE_URL": "https://proxy.example/v1"}
    ignored = one({"name": "openai", "model": "m"}, moved)
    assert ignored.providers["p"].base_url == "https://api.openai.com/v1"
    assert ignored.providers["p"].base_url_source == "default"
    assert ignored.notes == ("providers.p: OPENAI_BASE_URL is set and ignored (the base_url "
                             "stays https://api.openai.com/v1); set network.allow_env_base_url: "
                             "true to let it decide",)
    # ...and when it moves the default elsewhere, the key does not follow
    opted = config_from_dict({"providers": {"p": {"name": "openai", "model": "m"}},
                              "network": {"allow_env_base_url": True}}, env=moved)
    p = opted.providers["p"]
    assert (p.base_url, p.base_url_source, p.keys) == ("https://proxy.example/v1",
                                                        "env OPENAI_BASE_URL", ())
    assert network_policy(opted).describe()["provider_hosts"] == {
        "proxy.example:443": "OPENAI_BASE_URL (providers.p.base_url)"}
    # Written explicitly, $OPENAI_API_KEY follows the same rule: a config error, not a leak
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY is sent only to api\.openai\.com"):
        config_from_dict({"providers": {"p": {"name": "openai", "model": "m",
                                              "base_url": "https://openrouter.ai/api/v1",
                                              "api_key": "$OPENAI_API_KEY"}}}, env=env)


def test_disabled_provider_reads_no_env_refs() -> None:
    """Not its keys, not its headers' $VARs (an unset one is no error), not their values."""
    env = RecordingEnv({"HDR_TOKEN": "tok-12345678"})
    config = config_from_dict({"providers": {"p": {
        "name": "anthropic", "model": "m", "api_key": "$UNSET_VAR", "enabled": False,
        "headers": {"X-Auth-Token": "$HDR_TOKEN", "X-Other": "$UNSET_HDR"}}}}, env=env)
    assert config.providers["p"].keys == ()
    assert config.providers["p"].key_source == "not read (disabled)"
    assert config.providers["p"].headers == {}
    assert env.read == []


class RecordingEnv(dict[str, str]):
    """An environment that records every name read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: list[str] = []

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.read.append(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> str:
        self.read.append(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        self.read.append(str(name))
        return super().__contains__(name)


def test_secret_never_shows() -> None:
    secret = Secret(CANARY)
    config = one({"name": "anthropic", "model": "m", "api_key": CANARY})
    for text in (repr(secret), str(secret), repr(config), str(config.providers["p"])):
        assert CANARY not in text
    assert config.providers["p"].keys[0].reveal() == CANARY


@pytest.mark.parametrize(("value", "url"), [
    ("", "http://127.0.0.1:11434"),
    ("localhost", "http://localhost:11434"),
    ("0.0.0.0:1234", "http://0.0.0.0:1234"),
    ("example.com:8080", "http://example.com:8080"),
    ("https://ollama.example", "https://ollama.example:443"),
    ("http://ollama.example", "http://ollama.example:80"),
    ("http://ollama.example:9/base", "http://ollama.example:9/base"),
    ("[::1]:7", "http://[::1]:7"),
    ("[::1]", "http://[::1]:11434"),
])
def test_ollama_host_forms(value: str, url: str) -> None:
    assert ollama_base_url(value) == url


def test_ollama_host_env_default_only_when_opted_in() -> None:
    env = {"OLLAMA_HOST": "gpu-box:11500"}
    assert one({"name": "ollama", "model": "m"}, env=env).providers["p"].base_url == \
        "http://localhost:11434"
    config = config_from_dict({"providers": {"p": {"name": "ollama", "model": "m"}},
                               "network": {"allow_env_base_url": True}}, env=env)
    assert config.providers["p"].base_url == "http://gpu-box:11500"


# --- files ------------------------------------------------------------------------------------


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("providers:\n  anthropic:\n    model: claude\n")
    assert load_config(path, env={}).providers["anthropic"].model == "claude"
    assert load_config(path, env={}).source == str(path)


def test_json_file_works_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"providers": {"ollama": {"model": "llama3.2"}}}))
    assert load_config(path, env={}).providers["ollama"].model == "llama3.2"


def test_malformed_yaml_names_file_and_line_not_content(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"providers:\n  anthropic:\n    api_key: {CANARY}\n   model: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: malformed YAML")
    assert "line 4" in message
    assert CANARY not in message


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"providers": {"x": }')
    with pytest.raises(ConfigError, match="malformed JSON: Expecting value at line 1 column 21"):
        load_config(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found; check the path"):
        load_config(tmp_path / "nope.yaml", env={})
    # Found by the default rule: the hint says how to give one.
    with pytest.raises(ConfigError, match="config file not found; pass --config FILE, set "
                                          "MISSY_CONFIG, or create one with the CLI's "
                                          "`config init`"):
        load_config(env={"HOME": str(tmp_path)})


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path("a.yaml", {"MISSY_CONFIG": "b.yaml"}) == "a.yaml"
    assert config_path(None, {"MISSY_CONFIG": "b.yaml"}) == "b.yaml"
    assert config_path(None, {}) == str(Path("~/.missy/config.yaml").expanduser())


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# nothing yet\n")
    assert dict(load_config(path, env={}).providers) == {}


def test_config_text_is_kept_as_its_own_characters() -> None:
    """A str subclass a host puts in a config dict is checked and kept as its characters: a
    region whose formatting says another host builds no URL from that."""
    class Region(str):
        def __format__(self, spec: str) -> str:
            return "attacker.test/"

    config = config_from_dict({"providers": {"br": {
        "name": "bedrock", "model": "m", "region": Region("us-east-1"),
        "api_key": "bedrock-key-0123456789"}}}, env={})
    assert config.providers["br"].base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_per_call_header_names_are_plain_so_no_reserved_one_is_replaced() -> None:
    """A header name whose hash and == claim a reserved name is kept as its own text: merged
    into the provider's headers, it replaces nothing."""
    from missy_providers.providers.controls import checked_headers

    class ClaimsToBeTheKey(str):
        def __hash__(self) -> int:
            return hash("x-api-key")

        def __eq__(self, other: object) -> bool:
            return True

    checked = checked_headers({ClaimsToBeTheKey("X-Harmless"): "v"}, "anthropic", "p")
    merged = {"x-api-key": "the provider's key"}
    merged.update(checked)
    assert merged == {"x-api-key": "the provider's key", "X-Harmless": "v"}
    assert all(type(name) is str for name in checked)
