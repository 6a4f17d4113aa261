"""Where Bedrock's credentials come from, in the documented order (aws_auth.py, README "AWS
Bedrock"), what each puts on the wire, and the shared credentials file read again when it
changes or AWS refuses what was read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import AuthenticationError, ConfigError
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

AKID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
OK = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
      "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1,
                                          "totalTokens": 2}}


def credentials_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "credentials"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def profile(name: str, key_id: str = AKID, token: str = "") -> str:
    extra = f"aws_session_token = {token}\n" if token else ""
    return f"[{name}]\naws_access_key_id = {key_id}\naws_secret_access_key = {SECRET}\n{extra}"


def config(settings: dict[str, Any], env: dict[str, str], base_url: str | None = None
           ) -> Any:
    entry = {"name": "bedrock", "model": "m", "region": "us-east-1", **settings}
    if base_url:
        entry["base_url"] = base_url
    return config_from_dict({"providers": {"b": entry}}, env=env)


def source(settings: dict[str, Any], env: dict[str, str]) -> str:
    return str(ProviderRegistry(config(settings, env)).provider_rows()[0]["key_source"])


def test_the_sources_in_their_documented_order(tmp_path: Path) -> None:
    file = credentials_file(tmp_path, profile("default") + profile("work"))
    aws_env = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": SECRET}
    with_file = {"AWS_SHARED_CREDENTIALS_FILE": str(file)}
    bearer = {"AWS_BEARER_TOKEN_BEDROCK": "bedrock-api-key-env-12345678"}
    shown = f"({file}), SigV4"
    table = [  # (config keys, environment, the source shown)
        ({"aws_access_key_id": AKID, "aws_secret_access_key": SECRET}, {**aws_env, **bearer},
         "config aws_access_key_id, SigV4"),
        ({"aws_access_key_id": "$ID", "aws_secret_access_key": "$KEY"},
         {"ID": AKID, "KEY": SECRET}, "env ID aws_access_key_id, SigV4"),
        ({"api_key": "bedrock-api-key-config-1234"}, {**aws_env, **bearer}, "config"),
        ({"aws_profile": "work"}, {**aws_env, **with_file}, f"profile work {shown}"),
        ({}, {**bearer, **aws_env, **with_file}, "env AWS_BEARER_TOKEN_BEDROCK"),
        ({}, {**aws_env, **with_file}, "env AWS_ACCESS_KEY_ID, SigV4"),
        ({}, with_file, f"profile default {shown}"),
        ({}, {**with_file, "AWS_PROFILE": "work"}, f"profile work {shown}"),
        ({}, {"AWS_ACCESS_KEY_ID": "AKIDENV", **with_file}, "unset $AWS_SECRET_ACCESS_KEY"),
        ({}, {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}, "none"),
    ]
    for settings, env, expected in table:
        assert source(settings, env) == expected, (settings, env)


def test_a_bearer_key_from_the_environment_goes_only_to_the_regions_host() -> None:
    env = {"AWS_BEARER_TOKEN_BEDROCK": CANARY}
    default = config({}, env)
    assert default.providers["b"].base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    key = default.providers["b"].keys[0]
    assert key.only_host == "bedrock-runtime.us-east-1.amazonaws.com"
    elsewhere = config({}, env, base_url="https://vpce-1.bedrock-runtime.example")
    assert elsewhere.providers["b"].keys == () and elsewhere.providers["b"].key_source == "none"
    assert any("AWS_BEARER_TOKEN_BEDROCK is set and not used" in n for n in elsewhere.notes)
    chosen = config({"api_key": "$AWS_BEARER_TOKEN_BEDROCK"}, env,
                    base_url="https://vpce-1.bedrock-runtime.example")
    assert chosen.providers["b"].keys[0].only_host is None  # named: it goes where it is sent
    assert CANARY not in repr(default) + repr(chosen)


@pytest.mark.parametrize("settings, env, problem, where", [
    ({"api_key": "k-12345678", "aws_access_key_id": AKID, "aws_secret_access_key": SECRET},
     {}, "give one source of credentials, not api_key and aws_access_key_id",
     "aws_access_key_id"),
    ({"aws_access_key_id": AKID}, {}, "needs aws_secret_access_key beside it",
     "aws_access_key_id"),
    ({"aws_secret_access_key": SECRET}, {}, "needs aws_access_key_id beside it",
     "aws_secret_access_key"),
    ({"aws_profile": "missing"}, "file", "has no profile [missing]", "aws_profile"),
    ({}, {"AWS_PROFILE": "missing", "file": ""}, "has no profile [missing]", ""),
    ({"aws_profile": "default"}, "open file", "readable or writable by others", "aws_profile"),
    ({"region": "Mars-1"}, {}, "an AWS region name", "region"),
    ({"region": None}, {"AWS_REGION": "eu-west-1"}, "missing required key 'region'", ""),
])
def test_what_the_loader_refuses(tmp_path: Path, settings: dict[str, Any], env: Any,
                                 problem: str, where: str) -> None:
    mode = 0o644 if env == "open file" else 0o600
    file = credentials_file(tmp_path, profile("default"), mode)
    env = {**({} if isinstance(env, str) else env),
           "AWS_SHARED_CREDENTIALS_FILE": str(file)}
    env.pop("file", None)
    with pytest.raises(ConfigError) as info:
        config(settings, env)  # (region None: not set)
    found = [p for p in info.value.problems if problem in p.msg]
    assert found, [p.msg for p in info.value.problems]
    assert found[0].path == ("providers", "b", *([where] if where else []))


def test_the_region_from_the_environment_only_when_the_config_allows(tmp_path: Path) -> None:
    data = {"providers": {"b": {"name": "bedrock", "model": "m", "api_key": "k-12345678"}}}
    env = {"AWS_REGION": "eu-west-1"}
    with pytest.raises(ConfigError, match="missing required key 'region'") as info:
        config_from_dict(data, env=env)
    assert "AWS_REGION" not in info.value.msg
    allowed = config_from_dict({**data, "network": {"allow_env_base_url": True}}, env=env)
    p = allowed.providers["b"]
    assert (p.region, p.base_url, p.base_url_source) == (
        "eu-west-1", "https://bedrock-runtime.eu-west-1.amazonaws.com", "env AWS_REGION")


def served(server: LoopbackServer, settings: dict[str, Any], env: dict[str, str]) -> Any:
    cfg = config({"max_retries": 0, **settings}, env, base_url=server.url)
    return ProviderRegistry(cfg, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("b")


def test_what_each_source_puts_on_the_wire(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, OK))
    file = credentials_file(tmp_path, profile("default", token="FwoGZXIvYXdzEXAMPLE1234"))
    for settings, env in (({"api_key": "bedrock-api-key-12345678"}, {}),
                          ({}, {"AWS_SHARED_CREDENTIALS_FILE": str(file)})):
        served(server, settings, env).complete([Message("user", "hi")])
    bearer, signed = server.requests
    assert bearer.headers["authorization"] == "Bearer bedrock-api-key-12345678"
    assert "x-amz-date" not in bearer.headers
    assert signed.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")
    assert signed.headers["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLE1234"
    assert "content-type;host;x-amz-date;x-amz-security-token" in \
        signed.headers["authorization"]


def test_the_shared_file_is_read_again_when_aws_refuses_it(server: LoopbackServer,
                                                          tmp_path: Path) -> None:
    """A tool that rotates temporary credentials rewrites the file: the call that AWS refuses
    with the old ones reads it again and sends once more (one send more in the formula)."""
    file = credentials_file(tmp_path, profile("default", key_id="AKIDOLD"))

    def handler(ex: Exchange) -> None:
        if "AKIDOLD" in ex.req.headers["authorization"]:
            credentials_file(tmp_path, profile("default", key_id="AKIDNEW"))
            ex.json(403, {"message": "The security token included in the request is "
                                     "expired"}, [("x-amzn-ErrorType", "ExpiredTokenException")])
        else:
            ex.json(200, OK)

    server.reset(handler)
    provider = served(server, {}, {"AWS_SHARED_CREDENTIALS_FILE": str(file)})
    assert provider.send_plan() == (0, 0, False, True)
    assert provider.complete([Message("user", "hi")]).content == "ok"
    assert [("AKIDNEW" in r.headers["authorization"]) for r in server.requests] == [False, True]
    provider.complete([Message("user", "hi")])  # the new ones are kept
    assert len(server.requests) == 3
    server.reset(lambda ex: ex.json(403, {"message": "denied"},
                                    [("x-amzn-ErrorType", "AccessDeniedException")]))
    with pytest.raises(AuthenticationError, match="denied") as info:
        provider.complete([Message("user", "hi")])
    assert len(server.requests) == 1  # the file did not change: nothing to send again
    assert info.value.error_type == "AccessDeniedException"


def test_given_credentials_are_not_sent_again_after_a_refusal(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(403, {"message": "no"}))
    provider = served(server, {"aws_access_key_id": AKID, "aws_secret_access_key": SECRET}, {})
    assert provider.send_plan() == (0, 0, False, False)
    with pytest.raises(AuthenticationError):
        provider.complete([Message("user", "hi")])
    assert len(server.requests) == 1


def test_no_credentials_says_where_they_may_come_from(server: LoopbackServer,
                                                      tmp_path: Path) -> None:
    provider = served(server, {}, {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    assert not provider.has_credentials()
    with pytest.raises(AuthenticationError, match="AWS_BEARER_TOKEN_BEDROCK, AWS_ACCESS_KEY_ID"):
        provider.complete([Message("user", "hi")])
    assert server.requests == []


def test_a_malformed_credentials_file_is_never_quoted(tmp_path: Path) -> None:
    file = credentials_file(tmp_path, f"aws_secret_access_key = {CANARY}\n[default]\n")
    with pytest.raises(ConfigError, match="not a valid credentials file") as info:
        config({}, {"AWS_SHARED_CREDENTIALS_FILE": str(file)})
    assert CANARY not in str(info.value) and "line 1" in str(info.value)
