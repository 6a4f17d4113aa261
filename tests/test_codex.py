"""Codex over ChatGPT OAuth: auth.json, token refresh through the policy client, atomic write."""

from __future__ import annotations

import base64
import json
import logging
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict, network_policy
from missy_providers.core.errors import AuthenticationError, PolicyViolation, ProviderError
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.codex import CodexProvider
from missy_providers.types import Message, Tool

HI = [Message("system", "be brief"), Message("user", "hi")]


def jwt(**claims: Any) -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


def tokens(label: str, exp_in: float = 3600) -> dict[str, str]:
    return {"access_token": jwt(exp=int(time.time() + exp_in), label=label),
            "refresh_token": f"rt-{label}", "id_token": jwt(**{
                "https://api.openai.com/auth": {"chatgpt_account_id": "acct-1"}})}


def write_auth(home: Path, toks: dict[str, str], mode: int = 0o640) -> Path:
    path = home / "auth.json"
    path.write_text(json.dumps({"auth_mode": "chatgpt", "OPENAI_API_KEY": None, "tokens": toks,
                                "last_refresh": "2026-01-01T00:00:00Z"}))
    path.chmod(mode)
    return path


COMPLETED = ("event: response.output_item.done\ndata: " + json.dumps({
    "type": "response.output_item.done", "output_index": 0, "item": {
        "id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "pong"}]}})
    + "\n\nevent: response.completed\ndata: " + json.dumps({
        "type": "response.completed", "response": {
            "id": "r", "model": "gpt-5-codex", "status": "completed", "output": [],
            "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}}}) + "\n\n")


class Backend:
    """The ChatGPT backend and the OAuth token endpoint, on one loopback server."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.valid: set[str] = set()
        self.refreshes = 0
        self.refresh_delay = 0.0
        self.next_tokens: dict[str, str] = {}
        self.lock = threading.Lock()
        server.reset(self.handle)

    def handle(self, ex: Exchange) -> None:
        if ex.req.path == "/oauth/token":
            time.sleep(self.refresh_delay)
            with self.lock:
                self.refreshes += 1
                self.valid.add(self.next_tokens["access_token"])
            ex.json(200, self.next_tokens)
            return
        token = ex.req.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            ex.json(401, {"detail": "Unauthorized"})
            return
        ex.send(200, COMPLETED, content_type="text/event-stream")


def make(server: LoopbackServer, home: Path, **settings: Any) -> CodexProvider:
    config = config_from_dict({"providers": {"codex": {
        "name": "openai-codex", "model": "gpt-5-codex",
        "base_url": f"http://chatgpt.com:{server.port}/backend-api/codex",
        "token_url": f"http://auth.openai.com:{server.port}/oauth/token",
        "auth_file": str(home / "auth.json"), **settings}},
        # The names resolve to this machine in tests; the policy must allow that explicitly.
        "network": {"allowed_cidrs": ["127.0.0.0/8"]}}, env={})
    client = PolicyHTTPClient(network_policy(config),
                              resolver=lambda host, port: ["127.0.0.1"])
    return CodexProvider(config.providers["codex"], client)


def test_request_shape(server: LoopbackServer, tmp_path: Path) -> None:
    toks = tokens("a")
    write_auth(tmp_path, toks)
    backend = Backend(server)
    backend.valid.add(toks["access_token"])
    p = make(server, tmp_path)
    response = p.complete_with_tools(HI, [Tool("f", "d")])
    assert (response.content, response.finish_reason) == ("pong", "stop")
    assert response.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
                   "cached_prompt_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}
    req = server.requests[0]
    assert req.path == "/backend-api/codex/responses"
    assert req.headers["authorization"] == f"Bearer {toks['access_token']}"
    assert req.headers["chatgpt-account-id"] == "acct-1"
    assert req.headers["originator"] == "codex_cli_rs"
    assert req.headers["accept"] == "text/event-stream"
    assert len(req.headers["session_id"]) == 32
    body = req.json()
    assert body["instructions"] == "be brief"
    assert (body["stream"], body["store"]) == (True, False)
    # An EasyInputMessage with string content: the spec's input oneOf matches it alone.
    assert body["input"] == [{"role": "user", "content": "hi"}]
    assert body["tools"] == [{"type": "function", "name": "f", "description": "d",
                              "parameters": {"type": "object", "properties": {}},
                              "strict": False}]  # explicit: absent means strict on
    assert "max_output_tokens" not in body and "temperature" not in body
    p.complete(HI, max_tokens=5, temperature=0.5)  # refused by the backend: never sent
    body = server.requests[1].json()
    assert "max_output_tokens" not in body and "temperature" not in body


def test_refresh_on_401_rewrites_auth_json_atomically(server: LoopbackServer,
                                                      tmp_path: Path) -> None:
    old = tokens("old")
    path = write_auth(tmp_path, old, mode=0o640)
    backend = Backend(server)
    backend.next_tokens = tokens("new")
    inode = path.stat().st_ino
    p = make(server, tmp_path)
    assert p.complete(HI).content == "pong"
    assert backend.refreshes == 1
    paths = [r.path for r in server.requests]
    assert paths == ["/backend-api/codex/responses", "/oauth/token",
                     "/backend-api/codex/responses"]
    refresh = server.requests[1].json()
    assert refresh == {"client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
                       "grant_type": "refresh_token", "refresh_token": "rt-old"}
    saved = json.loads(path.read_text())
    assert saved["tokens"]["access_token"] == backend.next_tokens["access_token"]
    assert saved["tokens"]["refresh_token"] == "rt-new"
    assert saved["auth_mode"] == "chatgpt" and saved["last_refresh"] != "2026-01-01T00:00:00Z"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a 0640 file is tightened to 0600
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert [f.name for f in tmp_path.iterdir()] == ["auth.json"]  # no temp file left


def test_second_401_tells_how_to_log_in_again(server: LoopbackServer, tmp_path: Path) -> None:
    write_auth(tmp_path, tokens("old"))
    backend = Backend(server)
    backend.next_tokens = tokens("also-refused")
    backend.valid = set()
    server.handler = lambda ex: (ex.json(200, backend.next_tokens) if ex.req.path ==
                                 "/oauth/token" else ex.json(401, {"detail": "Unauthorized"}))
    with pytest.raises(AuthenticationError, match="codex login"):
        make(server, tmp_path).complete(HI)
    assert [r.path for r in server.requests].count("/oauth/token") == 1


def test_expired_token_is_refreshed_before_use(server: LoopbackServer, tmp_path: Path) -> None:
    write_auth(tmp_path, tokens("old", exp_in=-10))
    backend = Backend(server)
    backend.next_tokens = tokens("new")
    assert make(server, tmp_path).complete(HI).content == "pong"
    assert [r.path for r in server.requests] == ["/oauth/token", "/backend-api/codex/responses"]


def test_concurrent_401s_do_one_refresh(server: LoopbackServer, tmp_path: Path) -> None:
    write_auth(tmp_path, tokens("old"))
    backend = Backend(server)
    backend.next_tokens = tokens("new")
    backend.refresh_delay = 0.2
    p = make(server, tmp_path)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(p.complete(HI).content))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["pong"] * 6
    assert backend.refreshes == 1


def test_failed_refresh_and_missing_file(server: LoopbackServer, tmp_path: Path) -> None:
    write_auth(tmp_path, tokens("old"))
    server.reset(lambda ex: ex.json(400, {"error": {"code": "refresh_token_reused"}})
                 if ex.req.path == "/oauth/token" else ex.json(401, {"detail": "no"}))
    with pytest.raises(AuthenticationError, match=r"refresh_token_reused.*codex login"):
        make(server, tmp_path).complete(HI)
    # A code as long as a page is quoted short, like every server text.
    write_auth(tmp_path, tokens("old"))
    server.reset(lambda ex: ex.json(400, {"error": {"code": "\x1b[2J" + "x" * 3000}})
                 if ex.req.path == "/oauth/token" else ex.json(401, {"detail": "no"}))
    with pytest.raises(AuthenticationError) as long_code:
        make(server, tmp_path).complete(HI)
    assert len(str(long_code.value)) < 400 and "\x1b" not in str(long_code.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = make(server, empty)
    assert p.has_credentials() is False and p.credential_source() == "none"
    with pytest.raises(AuthenticationError, match="no Codex credentials"):
        p.complete(HI)


def test_refresh_goes_through_the_policy(server: LoopbackServer, tmp_path: Path) -> None:
    write_auth(tmp_path, tokens("old", exp_in=-10))
    Backend(server).next_tokens = tokens("new")
    p = make(server, tmp_path)
    p.client.policy = NetworkPolicy(  # the same policy without the token host
        allowed_cidrs=["127.0.0.0/8"],
        provider_hosts={str(e): w for e, w in p.client.policy.provider_hosts
                        if e.host != "auth.openai.com"})
    with pytest.raises(PolicyViolation):
        p.complete(HI)
    assert server.requests == []


def test_no_token_in_logs_or_errors(server: LoopbackServer, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    old = tokens("old")
    write_auth(tmp_path, old)
    backend = Backend(server)
    backend.next_tokens = tokens("new")
    caplog.set_level(logging.DEBUG)
    p = make(server, tmp_path)
    p.complete(HI)
    secret_values = [*old.values(), *backend.next_tokens.values()]
    server.reset(lambda ex: ex.json(500, {"detail": f"boom {backend.next_tokens['access_token']}"}))
    with pytest.raises(ProviderError) as info:
        p.complete(HI)
    shown = caplog.text + str(info.value) + repr(info.value) + repr(p) + repr(p.credentials)
    assert "[REDACTED]" in str(info.value)
    for value in secret_values:
        assert value not in shown


def test_api_key_mode_uses_public_responses_api(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, {"object": "response", "id": "r", "model": "gpt-5",
                                          "status": "completed", "output": [
                                              {"type": "message", "content": [
                                                  {"type": "output_text", "text": "hi"}]}]}))
    config = config_from_dict({"providers": {"codex": {
        "name": "openai-codex", "model": "gpt-5", "api_key": "sk-test",
        "base_url": f"http://127.0.0.1:{server.port}/v1"}}}, env={})
    p = CodexProvider(config.providers["codex"],
                      PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])))
    assert p.complete(HI, max_tokens=70).content == "hi"
    body = server.requests[0].json()
    assert body["stream"] is False and body["max_output_tokens"] == 70
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
    assert "chatgpt-account-id" not in server.requests[0].headers


def test_default_auth_file_follows_codex_home(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    write_auth(tmp_path, tokens("a"))
    config = config_from_dict({"providers": {"codex": {"name": "openai-codex", "model": "m"}}},
                              env={"CODEX_HOME": str(tmp_path)})
    p = CodexProvider(config.providers["codex"], PolicyHTTPClient(NetworkPolicy()))
    assert p.credentials.path == str(tmp_path / "auth.json")
    assert p.has_credentials() and p.credential_source() == f"auth.json ({tmp_path}/auth.json)"
