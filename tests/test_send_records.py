"""Every request on the wire is recorded, and limited, once: the call log's ``attempt`` lines
and ``call_finished``/``call_failed`` ``attempts`` equal what the server received (a retry, a
rotation to another key, a re-send with a key file read again, Codex's token refresh), and
``requests_per_minute`` counts each of those requests, not the call."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import MissyError, ProviderUnavailable
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

HI = [Message("user", "hi")]
CHAT_OK = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}


def private(path: Path, text: str) -> str:
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.chmod(fresh, 0o600)
    os.replace(fresh, path)
    return str(path)


def key_file_read_again(url: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    path = private(tmp / "key", "sk-first-12345678\n")

    def handler(ex: Exchange) -> None:
        if ex.req.headers["authorization"].endswith("first-12345678"):
            private(tmp / "key", "sk-second-12345678\n")  # rotated while the request was out
            ex.json(401, {"error": {"message": "invalid key"}})
        else:
            ex.json(200, CHAT_OK)
    return {"name": "openai", "base_url": url + "/v1", "api_key_file": path}, handler


def plain_retry(url: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    answers = [500, 200]

    def handler(ex: Exchange) -> None:
        status = answers.pop(0)
        ex.json(status, CHAT_OK if status == 200 else {"error": {"message": "busy"}},
                [("retry-after", "0")])
    return {"name": "openai", "base_url": url + "/v1", "api_key": "sk-one-12345678",
            "max_retries": 1}, handler


def key_rotation(url: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    def handler(ex: Exchange) -> None:
        if ex.req.headers["authorization"].endswith("sk-a-12345678"):
            ex.json(401, {"error": {"message": "invalid key"}})
        else:
            ex.json(200, CHAT_OK)
    return {"name": "openai", "base_url": url + "/v1",
            "api_keys": ["sk-a-12345678", "sk-b-12345678"]}, handler


def codex(url: str, tmp: Path, token: str) -> tuple[dict[str, Any], Any]:
    """A ChatGPT login whose tokens the backend refuses, refreshed once in the call."""
    auth = private(tmp / "auth.json", json.dumps({"tokens": {
        "access_token": token, "refresh_token": "rt-old-123456789"}}))

    def handler(ex: Exchange) -> None:
        if ex.req.path == "/oauth/token":
            ex.json(200, {"access_token": "at-new-123456789", "refresh_token": "rt-new-1234567"})
        else:
            ex.json(401, {"error": {"message": "token expired"}})
    return {"name": "openai-codex", "base_url": url + "/backend-api/codex",
            "token_url": url + "/oauth/token", "auth_file": auth}, handler


def codex_expired_login(url: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    """Expired: the refresh first, then the request (refused: no second refresh)."""
    claims = base64.urlsafe_b64encode(json.dumps({"exp": time.time() - 3600}).encode())
    return codex(url, tmp, "eyJhbGciOiJub25lIn0." + claims.decode().rstrip("=") + ".sig")


def codex_refresh_after_401(url: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    """The request, refused; the refresh; the request once more, refused too."""
    return codex(url, tmp, "at-old-123456789")


@pytest.mark.parametrize("case, sends", [
    (key_file_read_again, 2),
    (plain_retry, 2),
    (key_rotation, 2),
    (codex_expired_login, 2),
    (codex_refresh_after_401, 3),
])
def test_every_send_is_one_attempt_in_the_call_log(server: LoopbackServer, tmp_path: Path,
                                                   case: Any, sends: int) -> None:
    settings, handler = case(server.url, tmp_path)
    server.reset(handler)
    log = tmp_path / "calls.jsonl"
    config = config_from_dict({"providers": {"p": {"model": "m", "max_retries": 0, **settings}},
                               "observability": {"call_log": str(log)}}, env={})
    provider = ProviderRegistry(
        config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
    provider.sleep = lambda seconds: None
    try:
        provider.complete(HI)
    except MissyError:
        pass
    events = [json.loads(line) for line in log.read_text().splitlines()]
    attempts = [e for e in events if e["type"] == "attempt"]
    ended = [e for e in events if e["type"] in ("call_finished", "call_failed")]
    assert len(server.requests) == sends
    assert [e["number"] for e in attempts] == list(range(1, sends + 1))
    assert [e["attempts"] for e in ended] == [sends]
    assert {e["host"] for e in attempts} == {f"127.0.0.1:{server.port}"}


def test_requests_per_minute_counts_every_send_not_the_call(server: LoopbackServer) -> None:
    """requests_per_minute 2, a server that is always busy, max_retries 2: the third send
    (the second retry) waits half a minute for the limit, within the call's deadline."""
    server.reset(lambda ex: ex.json(503, {"error": {"message": "busy"}},
                                    [("retry-after", "0")]))
    config = config_from_dict({"providers": {"p": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1",
        "api_key": "sk-one-12345678", "max_retries": 2, "requests_per_minute": 2,
        "max_wait_seconds": 120}}}, env={})
    provider = ProviderRegistry(
        config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
    waits: list[float] = []
    provider.sleep = waits.append
    with pytest.raises(ProviderUnavailable):
        provider.complete(HI)
    assert len(server.requests) == 3
    # the bucket's burst of 2, then 2 a minute (the other waits: backoff before a retry)
    assert [round(w) for w in waits if w > 5] == [30]
    with pytest.raises(MissyError, match="total_timeout 5s"):  # the wait is within the deadline
        provider.complete(HI, total_timeout=5)
    assert len(server.requests) == 3
