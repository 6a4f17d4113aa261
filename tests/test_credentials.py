"""Credentials from outside the config (#31): keys from files (``api_key_file``, systemd's
``$CREDENTIALS_DIRECTORY``), a host's ``credential_provider``, and client certificates, with
what ``missy providers``, ``config check`` and ``policy show`` say of them (the source, never
the credential; the certificate's paths)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import CERT, KEY, Exchange, LoopbackServer

from missy_providers.cli import main
from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    AuthenticationError,
    ConfigError,
    MissyError,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.wire import CallBudget
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

HI = [Message("user", "hi")]
CHAT_OK = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}


def key_file(path: Path, key: str, mode: int = 0o600) -> Path:
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(key + "\n")
    os.chmod(fresh, mode)
    os.replace(fresh, path)
    return path


def chat(server: LoopbackServer, env: dict[str, str] | None = None,
         credential_provider: Any = None, **settings: Any) -> Any:
    config = config_from_dict({"providers": {"p": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1", "max_retries": 0,
        **settings}}}, env=env or {})
    return ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])),
                            credential_provider=credential_provider).get("p")


def rejecting(keys: set[str]) -> Any:
    def handler(ex: Exchange) -> None:
        if ex.req.headers.get("authorization", "").removeprefix("Bearer ") in keys:
            ex.json(401, {"error": {"message": "invalid key"}})
        else:
            ex.json(200, CHAT_OK)
    return handler


# --- api_key_file ----------------------------------------------------------------------------

def test_a_key_file_is_read_when_needed_and_again_after_a_401(server: LoopbackServer,
                                                              tmp_path: Path) -> None:
    path = key_file(tmp_path / "key", "sk-first-12345678")
    provider = chat(server, api_key_file=str(path))
    assert provider.credential_source() == f"file {path}"
    assert provider.send_plan() == (0, 0, False, True)
    assert CallBudget.sends_for(*provider.send_plan()) == 2  # the key, once more if re-read

    def rotate_then_refuse(ex: Exchange) -> None:
        if ex.req.headers["authorization"] == "Bearer sk-first-12345678":
            key_file(path, "sk-rotated-12345678")  # rotated while the request was out
            ex.json(401, {"error": {"message": "invalid key"}})
        else:
            ex.json(200, CHAT_OK)

    server.reset(rotate_then_refuse)
    assert provider.complete(HI).content == "ok"
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-first-12345678", "Bearer sk-rotated-12345678"]
    server.reset(rejecting({"sk-rotated-12345678"}))
    with pytest.raises(AuthenticationError):
        provider.complete(HI)
    assert len(server.requests) == 1  # the file holds the refused key: nothing to send again


def test_a_changed_key_file_is_read_before_the_next_call(server: LoopbackServer,
                                                        tmp_path: Path) -> None:
    path = key_file(tmp_path / "key", "sk-one-123456789")
    server.reset(rejecting(set()))
    provider = chat(server, api_key_file=str(path))
    provider.complete(HI)
    key_file(path, "sk-two-123456789")
    provider.complete(HI)
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-one-123456789", "Bearer sk-two-123456789"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path / "key", CANARY, mode)
    with pytest.raises(ConfigError, match="readable or writable by others") as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key_file": str(path)}}}, env={})
    assert info.value.path == ("providers", "a", "api_key_file")
    assert str(path) in str(info.value) and CANARY not in str(info.value)


def test_systemd_credentials(tmp_path: Path, server: LoopbackServer) -> None:
    """``credentials:NAME`` is ``$CREDENTIALS_DIRECTORY/NAME``: systemd makes it 0400 and opens
    it to the unit's user with an ACL, which shows as the group's read bit (0440)."""
    directory = tmp_path / "creds"
    directory.mkdir()
    key_file(directory / "openai", "sk-systemd-12345678", 0o440)
    env = {"CREDENTIALS_DIRECTORY": str(directory)}
    server.reset(rejecting(set()))
    provider = chat(server, env, api_key_file="credentials:openai")
    assert provider.credential_source() == "systemd credential openai"
    provider.complete(HI)
    assert server.requests[0].headers["authorization"] == "Bearer sk-systemd-12345678"
    key_file(directory / "openai", "sk-systemd-12345678", 0o444)
    for value, environment, problem in (
            ("credentials:openai", env, "readable or writable by others"),
            ("credentials:openai", {}, "CREDENTIALS_DIRECTORY, which is not set"),
            ("credentials:../key", env, "without '/'")):
        with pytest.raises(ConfigError, match=problem):
            chat(server, environment, api_key_file=value)


def test_a_key_file_excludes_other_keys(tmp_path: Path) -> None:
    path = key_file(tmp_path / "key", "sk-file-12345678")
    with pytest.raises(ConfigError, match="give api_key or api_key_file, not both"):
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key": "sk-x-12345678",
                                              "api_key_file": str(path)}}}, env={})
    config = config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                                   "api_key_file": str(path)}}},
                              env={"ANTHROPIC_API_KEY": CANARY})
    assert config.providers["a"].keys == ()  # the environment's key is not read beside it


def test_an_anthropic_key_file_goes_in_its_own_header(server: LoopbackServer,
                                                      tmp_path: Path) -> None:
    path = key_file(tmp_path / "key", "sk-ant-file-12345678")
    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    config = config_from_dict({"providers": {"a": {
        "name": "anthropic", "model": "m", "base_url": server.url, "max_retries": 0,
        "api_key_file": str(path)}}}, env={})
    provider = ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("a")
    with pytest.raises(MissyError):
        provider.complete(HI)
    assert server.requests[0].headers["x-api-key"] == "sk-ant-file-12345678"


# --- credential_provider ---------------------------------------------------------------------

class Host:
    """A host's token source: hands out numbered tokens, each valid ``ttl`` seconds."""

    def __init__(self, ttl: float | None = 3600.0) -> None:
        import time

        self.calls: list[str] = []
        self.ttl, self.now = ttl, time.time()

    def __call__(self, name: str) -> tuple[str, float | None]:
        self.calls.append(name)
        expiry = None if self.ttl is None else self.now + self.ttl
        return f"host-token-{len(self.calls)}-abcdefgh", expiry


def test_the_hosts_callback_is_asked_when_there_is_none_or_it_expired(
        server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    host = Host(ttl=120)
    monkeypatch.setattr(time, "time", lambda: host.now)
    server.reset(rejecting(set()))
    provider = chat(server, credential_provider=host, api_key="sk-config-12345678")
    assert provider.credential_source() == "credential_provider (the host's code)"
    provider.complete(HI)
    provider.complete(HI)
    host.now += 61  # within a minute of its expiry: asked again
    provider.complete(HI)
    assert host.calls == ["p", "p"]
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer host-token-1-abcdefgh", "Bearer host-token-1-abcdefgh",
        "Bearer host-token-2-abcdefgh"]  # never the config's key beside the host's token
    assert provider.send_plan() == (0, 0, False, True)


def test_the_hosts_callback_is_asked_once_more_after_a_401(server: LoopbackServer) -> None:
    host = Host(ttl=None)
    server.reset(rejecting({"host-token-1-abcdefgh"}))
    provider = chat(server, credential_provider={"p": host})
    assert provider.complete(HI).content == "ok"
    assert host.calls == ["p", "p"] and len(server.requests) == 2
    server.reset(rejecting({"host-token-2-abcdefgh", "host-token-3-abcdefgh"}))
    with pytest.raises(AuthenticationError):
        provider.complete(HI)
    assert len(server.requests) == 2 and len(host.calls) == 3  # once more, not twice


class UnreadableTime(float):
    """A host's number type whose conversion fails with the token in its message."""

    def __float__(self) -> float:
        raise ValueError(CANARY)


@pytest.mark.parametrize("returned, problem", [
    (CANARY, "must return (token, expires_at), got str"),
    ((CANARY, "tomorrow"), "expires_at must be a Unix time"),
    (("", None), "gave no credential (str)"),
    ((CANARY, float("nan")), "expires_at must be a finite Unix time"),
    ((CANARY, float("inf")), "expires_at must be a finite Unix time"),
    ((CANARY, 10**400), "expires_at must be a finite Unix time"),
    ((CANARY, UnreadableTime(2e9)), "expires_at must be a finite Unix time"),
    ((CANARY, 1.0), "returned a token whose expires_at has passed"),
    ((f"{CANARY}\n", None), "a credential has a character that cannot be sent"),
    (ValueError(CANARY), "raised ValueError"),
])
def test_what_a_callback_returns_is_checked_and_never_shown(
        server: LoopbackServer, returned: Any, problem: str) -> None:
    def callback(name: str) -> Any:
        if isinstance(returned, Exception):
            raise returned
        return returned

    with pytest.raises(AuthenticationError) as info:
        chat(server, credential_provider=callback).complete(HI)
    assert problem in str(info.value) and CANARY not in str(info.value)
    assert server.requests == []


def test_a_callback_for_a_provider_that_is_not_configured(server: LoopbackServer) -> None:
    with pytest.raises(UsageError, match="'nope', which is not a configured provider"):
        chat(server, credential_provider={"nope": Host()})
    with pytest.raises(UsageError, match="must be callable"):
        chat(server, credential_provider={"p": "a token"})


def test_a_callbacks_token_obeys_the_credential_rules(server: LoopbackServer) -> None:
    """A plain-http host that is not loopback never gets it (question 2 of docs/AUDIT.md)."""
    config = config_from_dict({"providers": {"p": {
        "name": "openai", "model": "m", "base_url": "http://gateway.example/v1",
        "max_retries": 0}}}, env={})
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["gateway.example"],
                                            allowed_cidrs=["192.0.2.0/24"]),
                              resolver=lambda host, port: ["192.0.2.7"])
    provider = ProviderRegistry(config, client, credential_provider=Host()).get("p")
    with pytest.raises(MissyError, match="clear text over http://"):
        provider.complete(HI)


# --- client certificates ---------------------------------------------------------------------

@pytest.mark.parametrize("source", ["credential_provider", "api_key_file"])
def test_a_credential_that_takes_too_long_ends_the_call_at_its_deadline(
        server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        source: str) -> None:
    """The host's callback, or a key file's read, blocks (it cannot be interrupted): a call
    ends at its own total_timeout, the one that started the fetch and the one waiting for
    it alike; the blocked fetch is started once, and once it ends the next call uses it."""
    import threading
    import time

    from missy_providers import credentials
    from missy_providers.core.errors import RequestTimeout

    gate, fetches = threading.Event(), []

    def host(name: str) -> tuple[str, float]:
        fetches.append(name)
        gate.wait(10)
        return "host-token-abcdefgh", time.time() + 3600

    real_read = credentials.read_private

    def blocking_read(path: str, what: str, *, group_read: bool = False) -> str:
        fetches.append(path)
        gate.wait(10)  # a file system that does not answer
        return real_read(path, what, group_read=group_read)

    server.reset(rejecting(set()))
    if source == "api_key_file":
        monkeypatch.setattr(credentials, "read_private", blocking_read)
        provider = chat(server, api_key_file=str(key_file(tmp_path / "key", "sk-file-1234")))
    else:
        provider = chat(server, credential_provider=host)
    took: dict[str, float] = {}

    def call(name: str) -> None:
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"waiting for the credential from .*"
                                                 r"\(total_timeout 0\.5s for the whole call"):
            provider.complete(HI, total_timeout=0.5)
        took[name] = time.monotonic() - started

    try:
        first = threading.Thread(target=call, args=("first",))
        first.start()
        time.sleep(0.2)
        call("second")  # waits for the first call's fetch, until its own deadline
        first.join()
        call("third")  # the fetch still blocks: waited for, not started again
    finally:
        gate.set()
    assert max(took.values()) < 0.8, took
    assert len(fetches) == 1 and server.requests == []
    assert provider.complete(HI, total_timeout=5).content == "ok"
    assert len(fetches) == 1 and len(server.requests) == 1


def test_a_late_credential_that_expired_meanwhile_is_not_sent(server: LoopbackServer) -> None:
    """A callback that outlived its call's deadline hands its result to the next call; a
    token that expired meanwhile is fetched anew, never sent."""
    import time

    from missy_providers.core.errors import RequestTimeout

    made: list[str] = []

    def host(name: str) -> tuple[str, float]:
        if not made:
            made.append("late")
            time.sleep(0.6)
            return "tok-LATE-0123456789", time.time() + 0.5
        made.append("fresh")
        return "tok-FRESH-0123456789", time.time() + 3600

    server.reset(rejecting(set()))
    provider = chat(server, credential_provider=host)
    with pytest.raises(RequestTimeout):
        provider.complete(HI, total_timeout=0.3)
    time.sleep(1.0)  # the late token has expired by now
    assert provider.complete(HI, total_timeout=5).content == "ok"
    assert made == ["late", "fresh"]
    assert [r.headers["authorization"] for r in server.requests] == \
        ["Bearer tok-FRESH-0123456789"]


def private_key(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "client.key"
    shutil.copy(KEY, path)
    os.chmod(path, mode)
    return path


def test_a_providers_client_certificate_is_presented_to_its_gateway(tmp_path: Path) -> None:
    gateway = LoopbackServer(tls=True, client_ca=CERT)
    gateway.reset(lambda ex: ex.json(200, CHAT_OK))
    try:
        entry = {"name": "openai", "model": "m", "base_url": gateway.url + "/v1",
                 "api_key": "sk-gateway-12345678", "max_retries": 0}
        config = config_from_dict({"providers": {
            "gw": {**entry, "client_cert": str(CERT), "client_key": str(private_key(tmp_path))},
            "plain": entry}, "network": {"ca_bundle": str(CERT)}}, env={})
        registry = ProviderRegistry(config)
        assert registry.get("gw").complete(HI).content == "ok"
        with pytest.raises(MissyError):  # the gateway refuses a handshake without one
            registry.get("plain").complete(HI)
    finally:
        gateway.stop()
    assert len(gateway.requests) == 1


@pytest.mark.parametrize("where", ["network", "providers"])
def test_a_client_key_others_can_read_is_a_config_error(tmp_path: Path, where: str) -> None:
    tls = {"client_cert": str(CERT), "client_key": str(private_key(tmp_path, 0o644))}
    provider = {"name": "ollama", "model": "m", **(tls if where == "providers" else {})}
    data: dict[str, Any] = {"providers": {"local": provider}}
    if where == "network":
        data["network"] = tls
    with pytest.raises(ConfigError, match=r"readable or writable by others.*chmod 600") as info:
        config_from_dict(data, env={})
    assert info.value.path == (("network",) if where == "network" else
                               ("providers", "local")) + ("client_key",)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (its logging set-up undone after: it is the process's)."""
    import logging

    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        code = main(list(args))
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_shows_sources_and_certificates_never_credentials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_file(tmp_path / "key", CANARY)
    client_key = private_key(tmp_path)
    credentials = tmp_path / "aws"
    credentials.write_text(f"[default]\naws_access_key_id = AKIDEXAMPLE\n"
                           f"aws_secret_access_key = {CANARY}\n")
    os.chmod(credentials, 0o600)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK", "AWS_PROFILE",
                 "AZURE_OPENAI_API_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AZ_KEY", CANARY)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "providers": {
            "claude": {"name": "anthropic", "model": "m", "api_key_file": str(key)},
            "aws": {"name": "bedrock", "model": "anthropic.claude-v2", "region": "eu-west-1"},
            "az": {"name": "azure-openai", "model": "gpt-4o", "resource": "contoso",
                   "api_key": "$AZ_KEY", "client_cert": str(CERT),
                   "client_key": str(client_key)}},
        "network": {"client_cert": str(CERT), "client_key": str(client_key)}}))
    code, out, err = run(capsys, "providers", "--json", "--config", str(config))
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["providers"]}
    assert rows["claude"]["key_source"] == f"file {key}"
    assert rows["aws"]["key_source"] == f"profile default ({credentials}), SigV4"
    assert rows["aws"]["endpoint"] == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert rows["az"]["key_source"] == "env AZ_KEY" and rows["az"]["type"] == "azure-openai"
    assert all(r["ready"] for r in rows.values())
    code, shown, err = run(capsys, "policy", "show", "--config", str(config))
    assert code == 0, err
    assert f"client certificate (every server): {CERT} (key {client_key})" in shown
    assert f"client certificate (providers.az only): {CERT} (key {client_key})" in shown
    assert "bedrock-runtime.eu-west-1.amazonaws.com:443  (providers.aws.base_url)" in shown
    code, checked, err = run(capsys, "config", "check", "--config", str(config))
    assert code == 0 and "ok (3 providers, 3 enabled)" in checked
    os.chmod(client_key, 0o640)
    code, _, problems = run(capsys, "config", "check", "--config", str(config))
    assert code == 2 and "(at network.client_key)" in problems and \
        "(at providers.az.client_key)" in problems
    assert CANARY not in out + shown + checked + err + problems
