"""What an independent audit found, each finding as a test of its class (docs/AUDIT.md):
one call budget (deadline and sends, fallbacks and token refreshes included), one credential
door (every Secret by what it is, not by the header that carries it), one sanitizer for server
text, files made by the core only, and the small things (a Retry-After date past year 9999,
Accept-Encoding)."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer, RawConnection, RawServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    AllProvidersFailed,
    AuthenticationError,
    CallBudgetExceeded,
    ConfigError,
    MissyError,
    PolicyViolation,
    ProviderError,
    RequestTimeout,
)
from missy_providers.core.headers import Credential
from missy_providers.core.http import PolicyHTTPClient, Timeouts
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.secret import REDACTED, Secret, for_terminal, sanitize, scrub
from missy_providers.core.wire import CallBudget
from missy_providers.registry import ProviderRegistry
from missy_providers.retry import retry_after_seconds
from missy_providers.types import Message

ROOT = Path(__file__).resolve().parents[1]
HI = [Message("user", "hi")]
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u202e", "\u2066"]


def loopback_http() -> PolicyHTTPClient:
    return PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))


def registry(providers: dict[str, Any], **top: Any) -> ProviderRegistry:
    config = config_from_dict({"providers": providers, **top}, env={"TOKEN": "tok-12345678"})
    return ProviderRegistry(config, loopback_http())


def no_sleep(reg: ProviderRegistry) -> None:
    for name in reg.names():
        reg.get(name).sleep = lambda s: None


# --- one call budget ------------------------------------------------------------------------


def test_total_timeout_bounds_the_call_across_keys_retries_and_fallback() -> None:
    """total_timeout=2 with three keys, retries and a fallback provider, against a server
    that never answers: one deadline for all of it."""
    server = LoopbackServer()
    server.reset(lambda ex: time.sleep(5))
    try:
        base = server.url + "/v1"
        reg = registry({
            "a": {"name": "openai", "model": "m", "base_url": base, "max_retries": 2,
                  "api_keys": ["sk-one-12345678", "sk-two-12345678", "sk-three-1234567"]},
            "b": {"name": "openai", "model": "m", "base_url": base, "max_retries": 2}},
            fallback=["a", "b"])
        started = time.monotonic()
        with pytest.raises(MissyError) as info:
            reg.complete(HI, total_timeout=2)
        took = time.monotonic() - started
    finally:
        server.stop()
    assert took < 2.5, took
    assert "deadline passed" in str(info.value) and "total_timeout 2s" in str(info.value)


def test_the_rate_limiters_wait_is_part_of_the_deadline() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "ok"}}]}))
    try:
        reg = registry({"a": {"name": "openai", "model": "m", "base_url": server.url + "/v1",
                              "requests_per_minute": 1, "max_wait_seconds": 120}})
        provider = reg.get("a")
        provider.complete(HI)  # the one request of the minute; the next waits ~60 s
        slept: list[float] = []
        provider.sleep = slept.append
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="waiting for the client-side rate limit"):
            provider.complete(HI, total_timeout=1)
        assert time.monotonic() - started < 0.5 and slept == []  # refused, not slept
    finally:
        server.stop()
    assert len(server.requests) == 1


STATUS_SCRIPTS = {
    # (keys, max_retries, the server's answers in order) -> the sends expected
    "no key, 503 always": ([], 2, [503], 3),
    "two keys, 503 always: same key retried": (["sk-a-12345678", "sk-b-12345678"], 2, [503], 3),
    "two keys, 429 always: each key once, then retries": (
        ["sk-a-12345678", "sk-b-12345678"], 2, [429], 4),
    "two keys, 401 always: each key once, no retry": (
        ["sk-a-12345678", "sk-b-12345678"], 2, [401], 2),
    "503 then 200": (["sk-a-12345678"], 2, [503, 200], 2),
}


@pytest.mark.parametrize("case", STATUS_SCRIPTS)
def test_sends_are_counted_and_never_past_the_formula(case: str) -> None:
    keys, retries, answers, expected = STATUS_SCRIPTS[case]
    served = iter(answers * 10 if len(answers) == 1 else answers)

    def handler(ex: Exchange) -> None:
        status = next(served)
        body = {"choices": [{"message": {"content": "ok"}}]} if status == 200 else \
            {"error": {"message": f"status {status}"}}
        ex.json(status, body, [("retry-after", "0")] if status == 429 else [])

    server = LoopbackServer()
    server.reset(handler)
    try:
        settings: dict[str, Any] = {"name": "openai", "model": "m", "max_retries": retries,
                                    "base_url": server.url + "/v1"}
        if keys:
            settings["api_keys"] = keys
        reg = registry({"p": settings})
        no_sleep(reg)
        provider = reg.get("p")
        try:
            provider.complete(HI)
        except ProviderError:
            pass
    finally:
        server.stop()
    assert len(server.requests) == expected
    assert expected <= CallBudget.sends_for(len(keys), retries)
    assert provider.send_plan() == (len(keys), retries, False, False)


def test_a_fallback_chain_shares_one_send_budget() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(503, {"error": {"message": "down"}}))
    try:
        base = server.url + "/v1"
        reg = registry({"a": {"name": "openai", "model": "m", "base_url": base,
                              "max_retries": 1, "api_keys": ["sk-a-12345678", "sk-b-12345678"]},
                        "b": {"name": "openai", "model": "m", "base_url": base,
                              "max_retries": 1}}, fallback=["a", "b"])
        no_sleep(reg)
        with pytest.raises(AllProvidersFailed):
            reg.complete(HI)
    finally:
        server.stop()
    # a: key #0 and one retry (503 is not the key's fault); b: one send and one retry.
    assert len(server.requests) == 4
    assert 4 <= CallBudget.sends_for(2, 1) + CallBudget.sends_for(0, 1)


@pytest.mark.parametrize("total", [86400.5, float("inf"), float("nan"), 1e10, 0, -1, True])
def test_a_budget_is_at_most_a_day(total: float) -> None:
    """Whatever a config or a caller asks, the core holds no deadline past a day (an
    infinite one would overflow the clocks it is handed to)."""
    from missy_providers.core.errors import UsageError

    with pytest.raises(UsageError, match=r"> 0 and <= 86400 \(a day\)"):
        CallBudget(total, 1)
    assert CallBudget(86400, 1).total == 86400.0


def test_the_core_refuses_a_send_past_the_budget() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {}))
    try:
        http = loopback_http()
        budget = CallBudget(10, 1)
        http.request("GET", server.url + "/", budget=budget).close()
        with pytest.raises(CallBudgetExceeded, match="has sent its 1 request"):
            http.request("GET", server.url + "/", budget=budget)
        expired = CallBudget(0.05, 5)
        time.sleep(0.1)
        with pytest.raises(RequestTimeout, match="deadline passed before the next request"):
            http.request("GET", server.url + "/", budget=expired)
    finally:
        server.stop()
    assert len(server.requests) == 1


def test_codex_refreshes_the_token_at_most_once_a_call(tmp_path: Path) -> None:
    """A ChatGPT backend that refuses every token: one refresh, two sends, then the error."""
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tokens": {"access_token": "at-old-123456789",
                                           "refresh_token": "rt-old-123456789"}}))
    refreshes: list[int] = []

    def handler(ex: Exchange) -> None:
        if ex.req.path == "/oauth/token":
            refreshes.append(1)
            ex.json(200, {"access_token": f"at-new-{len(refreshes)}-12345678",
                          "refresh_token": f"rt-new-{len(refreshes)}-12345678"})
        else:
            ex.json(401, {"error": {"message": "token expired"}})

    server = LoopbackServer()
    server.reset(handler)
    try:
        reg = registry({"codex": {"name": "openai-codex", "model": "m", "max_retries": 2,
                                  "base_url": server.url + "/backend-api/codex",
                                  "token_url": server.url + "/oauth/token",
                                  "auth_file": str(auth)}})
        no_sleep(reg)
        provider = reg.get("codex")
        with pytest.raises(AuthenticationError):
            provider.complete(HI)
    finally:
        server.stop()
    posts = [r for r in server.requests if r.path != "/oauth/token"]
    assert refreshes == [1] and len(posts) == 2
    assert len(server.requests) <= CallBudget.sends_for(*provider.send_plan())
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600


def expired_codex_login(tmp_path: Path) -> Path:
    """An auth.json whose access token expired an hour ago (a JWT with only ``exp``)."""
    claims = base64.urlsafe_b64encode(json.dumps({"exp": time.time() - 3600}).encode())
    token = "eyJhbGciOiJub25lIn0." + claims.decode().rstrip("=") + ".sig"
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tokens": {"access_token": token,
                                           "refresh_token": "rt-old-123456789"}}))
    os.chmod(auth, 0o600)
    return auth


def seconds_behind(first: Callable[[], object], second: Callable[[], object],
                   head_start: float) -> float:
    """Start ``first`` on a thread, give it ``head_start`` seconds, then time ``second`` on
    this one (which must raise what the caller's ``pytest.raises`` expects, or return)."""
    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(head_start)
    started = time.monotonic()
    try:
        second()
    finally:
        took = time.monotonic() - started
        thread.join()
    return took


def test_a_call_waits_for_another_calls_token_refresh_only_until_its_deadline(
        tmp_path: Path) -> None:
    """Thread A's refresh stalls; thread B (total_timeout 1) needs the same tokens: B ends
    at its own deadline, not when A's refresh gives up."""
    auth = expired_codex_login(tmp_path)
    server = LoopbackServer()
    server.reset(lambda ex: time.sleep(4) if ex.req.path == "/oauth/token" else
                 ex.json(401, {}))
    try:
        reg = registry({"codex": {"name": "openai-codex", "model": "m", "max_retries": 0,
                                  "base_url": server.url + "/backend-api/codex",
                                  "token_url": server.url + "/oauth/token",
                                  "auth_file": str(auth), "total_timeout": 3}})
        provider = reg.get("codex")

        def refreshing() -> None:
            with pytest.raises(MissyError):
                provider.complete(HI)

        def waiting() -> None:
            with pytest.raises(RequestTimeout,
                               match="waiting for another call's token refresh"):
                provider.complete(HI, total_timeout=1)

        took = seconds_behind(refreshing, waiting, 0.3)  # A holds the lock, refreshing
    finally:
        server.stop()
    assert took < 1.5


def test_a_live_check_never_refreshes_a_login(tmp_path: Path) -> None:
    """`providers --check` and probe(): the tokens are loaded, not renewed; auth.json is
    left as it was, and nothing is sent to the token endpoint."""
    auth = expired_codex_login(tmp_path)
    before = auth.read_bytes()
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"access_token": "at-new-123456789"}))
    try:
        reg = registry({"codex": {"name": "openai-codex", "model": "m",
                                  "base_url": server.url + "/backend-api/codex",
                                  "token_url": server.url + "/oauth/token",
                                  "auth_file": str(auth)}})
        assert reg.get("codex").probe().ok
    finally:
        server.stop()
    assert server.requests == [] and auth.read_bytes() == before


def test_a_stalled_resolver_ends_at_the_deadline() -> None:
    """getaddrinfo cannot be interrupted: the call does not wait for it past its deadline
    (nor past the connect timeout)."""
    def slow(host: str, port: int) -> list[str]:
        time.sleep(3)
        return ["127.0.0.1"]

    http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["slow.example"]), resolver=slow)
    budget = CallBudget.for_call(0.5, [(1, 0, False, False)])
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"resolving host 'slow\.example'"):
        http.request("GET", "https://slow.example/", budget=budget)
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="connect timeout"):
        http.request("GET", "https://slow.example/", timeout=Timeouts(connect=0.3))
    assert time.monotonic() - started < 0.8


# --- one credential door ----------------------------------------------------------------------


@pytest.fixture
def no_socket(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fails any attempt to open a connection: a refusal must come before one."""
    opened: list[Any] = []

    def refuse(*args: Any, **kw: Any) -> None:
        opened.append(args)
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return opened


def documentation_host_client() -> PolicyHTTPClient:
    """gateway.example resolves to 192.0.2.10 (a documentation address, never reached)."""
    return PolicyHTTPClient(NetworkPolicy(allowed_hosts=["gateway.example"],
                                          allowed_cidrs=["192.0.2.0/24"]),
                            resolver=lambda host, port: ["192.0.2.10"])


@pytest.mark.parametrize("headers", [
    {"X-Auth-Token": Secret("tok-12345678", origin="$TOKEN")},   # a $VAR header
    {"X-Auth-Token": "literal-token-1234"},                       # a literal, by its name
    {"X-Goog-Api-Key": "literal-key-12345"},
    {"Authorization": Credential(Secret("sk-key-12345678"), "Bearer")},
    {"Ocp-Apim-Subscription-Key": "abcdef123456"},
], ids=["secret", "x-auth-token", "goog", "credential", "apim"])
def test_no_credential_in_clear_text_to_a_remote_host(headers: dict[str, Any],
                                                      no_socket: list[Any]) -> None:
    http = documentation_host_client()
    with pytest.raises(PolicyViolation, match="clear text over http://"):
        http.request("GET", "http://gateway.example/v1/models", headers=headers)
    assert no_socket == []


def test_a_configured_header_credential_to_a_remote_plain_http_host(no_socket: list[Any]
                                                                     ) -> None:
    config = config_from_dict({"providers": {"gw": {
        "name": "openai", "model": "m", "base_url": "http://gateway.example/v1",
        "headers": {"X-Auth-Token": "$TOKEN"}}},
        "network": {"allowed_cidrs": ["192.0.2.0/24"]}}, env={"TOKEN": "tok-12345678"})
    http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["gateway.example"],
                                          allowed_cidrs=["192.0.2.0/24"]),
                            resolver=lambda host, port: ["192.0.2.10"])
    provider = ProviderRegistry(config, http).get("gw")
    with pytest.raises(PolicyViolation, match="allow_plain_http"):
        provider.complete(HI)
    assert no_socket == []


@pytest.mark.parametrize("settings, where", [
    ({"api_key": "$OPENAI_API_KEY"}, "api_key"),
    ({"api_keys": ["$OPENAI_API_KEY"]}, "api_keys.0"),
    ({"api_keys": ["sk-own-12345678", "${OPENAI_API_KEY}"]}, "api_keys.1"),
    ({"headers": {"X-Key": "$OPENAI_API_KEY"}}, "headers.X-Key"),
    ({"api_keys": ["$OTHER_KEY", "$OPENAI_API_KEY"], "key_rotation_strategy": "round_robin"},
     "api_keys.1"),
])
def test_openai_api_key_goes_only_to_openai_however_referenced(settings: dict[str, Any],
                                                               where: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"other": {
            "name": "openai", "model": "m", "base_url": "https://llm.example.com/v1",
            **settings}}}, env={"OPENAI_API_KEY": "sk-openai-12345678"})
    assert any(p.path == ("providers", "other", *where.split("."))
               and "sent only to api.openai.com" in p.msg for p in info.value.problems)


def test_a_host_bound_secret_is_refused_by_the_core_itself(no_socket: list[Any]) -> None:
    """Past the config check too: the core refuses a bound Secret to another host, in a
    header or in a body."""
    bound = Secret("sk-openai-12345678", origin="$OPENAI_API_KEY", only_host="api.openai.com")
    http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["llm.example.com"]),
                            resolver=lambda host, port: ["203.0.113.5"])
    for kw in ({"headers": {"X-Key": bound}},
               {"json": {"token": bound}, "credential_body": True},
               {"headers": {"Authorization": Credential(bound, "Bearer")}}):
        with pytest.raises(PolicyViolation, match=r"sent only to api\.openai\.com"):
            http.request("POST", "https://llm.example.com/v1/x", **kw)
    assert no_socket == []


def test_a_mapping_cannot_put_a_key_in_the_body() -> None:
    """A provider whose mapping copies its key into a JSON field (a server would echo or log
    it): the core refuses the request, nothing is sent. Only a token refresh may carry one."""
    from missy_providers.providers.openai import OpenAIProvider

    class KeyInBody(OpenAIProvider):
        def build_body(self, *args: Any, **kw: Any) -> dict[str, Any]:
            body = super().build_body(*args, **kw)
            body["safety_identifier"] = self.keys.current()
            return body

    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "ok"}}]}))
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": server.url + "/v1",
            "api_key": CANARY}}}, env={})
        provider = KeyInBody(config.providers["p"], loopback_http())
        with pytest.raises(PolicyViolation, match=r"a credential .* in a JSON body"):
            provider.complete(HI)
    finally:
        server.stop()
    assert server.requests == []


def test_literal_credential_headers_are_secrets_in_every_repr() -> None:
    config = config_from_dict({"providers": {"az": {
        "name": "openai", "model": "m", "base_url": "https://x.example.com/v1",
        "headers": {"api-key": "literal-azure-key-123", "X-Trace": "visible"}}}}, env={})
    shown = repr(config.providers["az"])
    assert "literal-azure-key-123" not in shown and "visible" in shown
    with pytest.raises(ProviderError) as info:
        raise ProviderError("echo literal-azure-key-123")
    assert "literal-azure-key-123" not in str(info.value)


# --- one sanitizer ----------------------------------------------------------------------------


def hostile_reason(c: RawConnection) -> None:
    reason = ("bad \x1b[31mred\x07 \rWARNING forged line " + "x" * 3065).encode("latin-1")
    while c.read_request():
        c.send(b"HTTP/1.1 503 " + reason + b"\r\nContent-Length: 0\r\n\r\n")


def test_a_hostile_reason_phrase_is_bounded_and_escaped(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    with RawServer(hostile_reason) as server:
        reg = registry({"a": {"name": "openai", "model": "m", "base_url": server.url + "/v1",
                              "max_retries": 0},
                        "b": {"name": "openai", "model": "m", "base_url": server.url + "/v1",
                              "max_retries": 0}}, fallback=["a", "b"])
        with caplog.at_level(logging.DEBUG, logger="missy_providers"), \
                pytest.raises(AllProvidersFailed) as info:
            reg.complete(HI)
    for error in (info.value, *info.value.errors):
        text = str(error)
        assert not any(c in text for c in CONTROLS), repr(text[:120])
        assert len(text) <= 2000 + len("...") + 20
    for record in caplog.records:
        message = record.getMessage()
        assert not any(c in message for c in CONTROLS), repr(message[:120])


def test_every_form_of_every_secret_is_scrubbed_in_any_order() -> None:
    key = Secret("sk-live/abc+def=123456")
    raw = key.reveal()
    basic = base64.b64encode(f"user:{raw}".encode()).decode()
    forms = [raw, quote(raw, safe=""), json.dumps(raw)[1:-1], raw.replace("/", "\\/"), basic,
             base64.urlsafe_b64encode(f"ab:{raw}".encode()).decode()]
    for ordering in (forms, list(reversed(forms))):
        text = " | ".join(ordering)
        scrubbed = scrub(text)
        assert raw not in scrubbed and quote(raw, safe="") not in scrubbed
        assert base64.b64encode(raw.encode()).decode()[:12] not in scrubbed
        assert scrubbed.count(REDACTED) >= len(forms), scrubbed


@pytest.mark.parametrize("text", ["\x1b[2J", "bell\x07", "cr\rforged", "nl\nforged",
                                  "c1\x9bcsi", "rlo\u202eevil", "nel\x85", "del\x7f"])
def test_the_sanitizer_escapes_every_control_and_bidi_character(text: str) -> None:
    assert not any(c in sanitize(text) for c in CONTROLS)
    shown = for_terminal(text + "\nnext\tcol")
    assert not any(c in shown for c in CONTROLS if c not in "\n\t")
    assert shown.endswith("\nnext\tcol")


def missy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "missy", *args], cwd=ROOT,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent",
                               **(env or {})},
                          capture_output=True, text=True, timeout=60)


ESCAPE = "\x1b]0;pwned\x07\x1b[2J"


def test_the_cli_neutralises_server_and_model_text(tmp_path: Path) -> None:
    def handler(ex: Exchange) -> None:
        if ex.req.path == "/api/tags":
            ex.json(200, {"models": [{"name": f"evil{ESCAPE}model"}]})
        elif ex.req.path == "/api/chat":
            line = {"message": {"content": f"answer {ESCAPE}\r done"}, "done": True,
                    "done_reason": "stop"}
            ex.send(200, json.dumps(line) + "\n", content_type="application/x-ndjson")
        else:
            ex.json(404, {"error": f"no {ESCAPE}"})

    server = LoopbackServer()
    server.reset(handler)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m",
                                                      "base_url": server.url}}}))
    try:
        runs = [missy("models", "--config", str(config)),
                missy("providers", "--check", "--config", str(config)),
                missy("ask", "hi", "--config", str(config)),
                missy("ask", "hi", "--no-stream", "--config", str(config))]
        raw = missy("ask", "hi", "--raw", "--config", str(config))
    finally:
        server.stop()
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "\x1b" not in run.stdout + run.stderr and "\x07" not in run.stdout
        assert "\r" not in run.stdout
    assert "evil\\x1b]0;pwned\\x07" in runs[0].stdout
    assert ESCAPE in raw.stdout  # --raw: the model's text as it came


PASSPHRASE = "plainpassphrase-NOTKEYSHAPED-42x"  # no key shape: only the live Secret finds it


@pytest.mark.parametrize("args", [("models",), ("models", "--json"), ("models", "--raw"),
                                  ("providers", "--check"), ("providers", "--check", "--json"),
                                  ("ask", "hi"), ("ask", "hi", "--json"), ("ask", "hi", "--raw"),
                                  ("ask", "hi", "--no-stream", "--json")])
def test_no_cli_output_mode_prints_a_key_the_server_echoes(tmp_path: Path,
                                                           args: tuple[str, ...]) -> None:
    """Every way the CLI prints (text, --json, --raw) goes through one door that redacts
    the live secrets: a server that echoes the key as a model id or an answer cannot make
    the CLI show it."""
    def handler(ex: Exchange) -> None:
        echoed = ex.req.headers.get("authorization", "")
        if ex.req.path.endswith("/models"):
            ex.json(200, {"data": [{"id": f"m-{echoed}"}]})
        elif ex.req.headers.get("accept") == "text/event-stream" or b'"stream": true' in \
                ex.req.body or b'"stream":true' in ex.req.body:
            chunk = {"choices": [{"index": 0, "delta": {"content": f"echo {echoed}"}}]}
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            ex.send(200, f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\n"
                         "data: [DONE]\n\n", content_type="text/event-stream")
        else:
            ex.json(200, {"id": "c", "model": "m", "choices": [{
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"echo {echoed}"}}]})

    run, requests = missy_against(tmp_path, handler, *args)
    assert run.returncode == 0, run.stderr
    assert requests, "the server was contacted (and echoed the key)"
    assert PASSPHRASE not in run.stdout + run.stderr
    assert "[REDACTED]" in run.stdout


def missy_against(tmp_path: Path, handler: Callable[[Exchange], None], *args: str
                  ) -> tuple[Any, list[Any]]:
    """The CLI run with ``args`` against a loopback OpenAI-shaped server answering with
    ``handler``, its key from ``$K`` (PASSPHRASE): the run, and the requests the server got."""
    server = LoopbackServer()
    server.reset(handler)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"p": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1", "api_key": "$K"}}}))
    try:
        run = missy(*args, "--config", str(config), env={"K": PASSPHRASE})
    finally:
        server.stop()
    return run, server.requests


@pytest.mark.parametrize("size", [1, 3, 4, 7])
@pytest.mark.parametrize("mode", [(), ("--raw",)])
def test_a_key_streamed_in_pieces_is_still_redacted(tmp_path: Path, size: int,
                                                     mode: tuple[str, ...]) -> None:
    """A server (or a model) that streams the key a few characters at a time: the CLI's
    streamed answer scrubs across pieces, and the text around the key still arrives."""
    echoed = f"before {PASSPHRASE} after"
    pieces = [echoed[i:i + size] for i in range(0, len(echoed), size)]

    def handler(ex: Exchange) -> None:
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ex.send(200, "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n",
                content_type="text/event-stream")

    run, _ = missy_against(tmp_path, handler, "ask", "hi", *mode)
    assert run.returncode == 0, run.stderr
    assert PASSPHRASE not in run.stdout and PASSPHRASE[:12] not in run.stdout
    assert run.stdout == "before [REDACTED] after\n"


def test_a_server_value_cannot_forge_a_cli_line_or_column(tmp_path: Path) -> None:
    """A model id holding a line break and a tab stays one line, one field, in every table
    (`models`, `models --long`, `providers --check`)."""
    forged = "real-model\nanthropic\tclaude-opus-FORGED\u2028x\x0bz"

    def handler(ex: Exchange) -> None:
        if ex.req.path == "/api/tags":
            ex.json(200, {"models": [{"name": forged}]})
        elif ex.req.path == "/api/show":
            ex.json(200, {"model_info": {}, "capabilities": ["completion"]})
        else:
            ex.json(404, {"error": "no"})

    server = LoopbackServer()
    server.reset(handler)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m",
                                                      "base_url": server.url}}}))
    try:
        listed = missy("models", "--config", str(config))
        long = missy("models", "--long", "--config", str(config))
        checked = missy("providers", "--check", "--config", str(config))
    finally:
        server.stop()
    for run in (listed, long):
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert len(lines) == 1, run.stdout
        assert lines[0].startswith("o\treal-model\\x0aanthropic\\x09"), run.stdout
    assert listed.stdout.count("\t") == 1
    assert checked.returncode == 0, checked.stderr
    rows = checked.stdout.splitlines()
    assert len(rows) == 2 and "FORGED" in rows[1] and "\t" not in checked.stdout


def test_call_event_fields_are_sanitized(tmp_path: Path) -> None:
    """A server echoing the key, with escapes, in x-request-id and its stop reason: the call
    event's fields, its line() and the call log hold neither."""
    key = "sk-echo-0123456789abcdef"
    echo = f"{key}{ESCAPE}"

    def handler(ex: Exchange) -> None:
        ex.json(200, {"choices": [{"message": {"content": "ok"}, "finish_reason": echo}]},
                [("x-request-id", echo)])

    server = LoopbackServer()
    server.reset(handler)
    events: list[Any] = []
    log = tmp_path / "calls.jsonl"
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": server.url + "/v1", "api_key": key}},
            "observability": {"call_log": str(log)}}, env={})
        reg = ProviderRegistry(config, loopback_http(), on_event=events.append)
        reg.get("p").complete(HI)
    finally:
        server.stop()
    finished = next(e for e in events if e.type == "call_finished")
    assert finished.fields["request_id"]  # the id is kept, made safe
    shown = [json.dumps(e.fields) + e.line() for e in events] + [log.read_text()]
    for text in shown:
        assert key not in text and "\x1b" not in text and "\x07" not in text
        assert "u001b" not in text  # nor JSON-escaped: the call log is JSON


def test_the_cli_error_line_is_neutralised(tmp_path: Path) -> None:
    def handler(c: RawConnection) -> None:
        while c.read_request():
            body = json.dumps({"error": {"message": f"bad {ESCAPE} thing"}}).encode()
            c.send(b"HTTP/1.1 400 Bad\x1b[5m\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    with RawServer(handler) as server:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m",
                                                          "base_url": server.url}}}))
        run = missy("ask", "hi", "--config", str(config))
    assert run.returncode == 1
    assert "\x1b" not in run.stderr and "bad \\x1b]0;pwned\\x07" in run.stderr


# --- files and state --------------------------------------------------------------------------


def test_the_tls_key_log_is_created_private_and_never_through_a_symlink(
        tmp_path: Path, tls_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    tls_server.reset(lambda ex: ex.json(200, {}))
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    bundle = str(ROOT / "tests" / "data" / "localhost.pem")
    http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), ca_bundle=bundle,
                            tls_key_log=True)
    http.request("GET", tls_server.url + "/").close()
    assert stat.S_IMODE(os.stat(keylog).st_mode) == 0o600 and keylog.stat().st_size > 0
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.log"
    link.symlink_to(target)
    monkeypatch.setenv("SSLKEYLOGFILE", str(link))
    http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), ca_bundle=bundle,
                            tls_key_log=True)
    with pytest.raises(ConfigError, match="cannot create the TLS key log"):
        http.request("GET", tls_server.url + "/")
    assert not target.exists()


def test_every_directory_the_package_creates_is_0700(tmp_path: Path) -> None:
    """Parents included (os.makedirs gives its mode to the last one only), whatever the
    umask; a directory that was there keeps its mode."""
    from missy_providers.core.files import make_private_dir, write_json_private

    (tmp_path / "kept").mkdir(mode=0o755)
    previous = os.umask(0o022)
    try:
        make_private_dir(str(tmp_path / "kept" / "a" / "b" / "c"))
        write_json_private(str(tmp_path / "codex" / "home" / "auth.json"), {"x": 1})
    finally:
        os.umask(previous)
    for made in ("kept/a", "kept/a/b", "kept/a/b/c", "codex", "codex/home"):
        assert stat.S_IMODE((tmp_path / made).stat().st_mode) == 0o700, made
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "codex" / "home" / "auth.json").stat().st_mode) == 0o600
    make_private_dir(str(tmp_path / "kept" / "a"))  # there already: nothing to do


def test_the_call_log_fails_closed(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "ok"}}]}))
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    try:
        reg = registry({"p": {"name": "openai", "model": "m", "base_url": server.url + "/v1"}},
                       observability={"call_log": str(log_dir / "calls.jsonl")})
        reg.get("p").complete(HI)
        assert len(server.requests) == 1
        (log_dir / "calls.jsonl").unlink()
        (log_dir / "calls.jsonl").mkdir()  # the log can no longer be written
        with pytest.raises(ConfigError, match=r"observability\.call_log"):
            reg.get("p").complete(HI)
    finally:
        server.stop()
    assert len(server.requests) == 1  # nothing sent unrecorded


@pytest.mark.parametrize("action", ["list_models", "list_model_info", "count_tokens", "probe",
                                    "stream"])
def test_every_send_is_recorded_or_not_made(tmp_path: Path, action: str) -> None:
    """Model lists, token counts, live checks and streams too: with the call log broken,
    nothing is sent."""
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"data": [{"id": "m"}], "input_tokens": 3}))
    log = tmp_path / "calls.jsonl"
    reg = registry({"p": {"name": "anthropic", "model": "m", "base_url": server.url,
                          "api_key": "sk-ant-12345678"}},
                   observability={"call_log": str(log)})
    provider = reg.get("p")
    log.mkdir()  # the log can no longer be written
    try:
        if action == "probe":
            assert not provider.probe().ok
        else:
            with pytest.raises(ConfigError, match=r"observability\.call_log"):
                run = getattr(provider, action)
                result = run(HI) if action in ("count_tokens", "stream") else run()
                list(result) if action == "stream" else None
    finally:
        server.stop()
    assert server.requests == []


# --- small things -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Fri, 31 Dec 100000000000000000000 23:59:59 GMT",
                                   "Sat, 01 Jan 0000 00:00:00 GMT", "Mon, 99 Foo 2020 x"])
def test_a_retry_after_date_of_any_year_is_no_crash(value: str) -> None:
    wait = retry_after_seconds(lambda name: value if name == "retry-after" else None)
    assert wait is None or wait == 0.0  # unreadable, or in the past: never an OverflowError


def test_requests_ask_for_identity_encoding() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {}))
    try:
        loopback_http().request("GET", server.url + "/").close()
        with pytest.raises(MissyError, match="Accept-Encoding header is set by the client"):
            loopback_http().request("GET", server.url + "/",
                                    headers={"Accept-Encoding": "gzip"})
    finally:
        server.stop()
    assert server.requests[0].headers["accept-encoding"] == "identity"


def test_a_canary_in_every_header_form_never_leaks() -> None:
    key = Secret(CANARY)
    for text in (CANARY, quote(CANARY, safe=""), json.dumps(CANARY),
                 base64.b64encode(f"u:{CANARY}".encode()).decode()):
        err = ProviderError(f"server said {text}")
        assert CANARY not in str(err) and CANARY not in repr(err)
    assert CANARY not in repr(Credential(key, "Bearer"))
    assert Timeouts(1, 1, 1).total == 1


def test_the_environment_is_read_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from missy_providers.core.env import ENVIRONMENT, VENDOR_KEY_HOSTS, secret_from

    monkeypatch.setenv("MISSY_PROBE_VAR", "value")
    assert ENVIRONMENT.get("MISSY_PROBE_VAR") == "value" and "MISSY_PROBE_VAR" in ENVIRONMENT
    assert ENVIRONMENT.get("MISSY_NOT_SET_ANYWHERE") is None
    for listing in (lambda: list(ENVIRONMENT), lambda: len(ENVIRONMENT),
                    lambda: dict(ENVIRONMENT)):
        with pytest.raises(TypeError, match="read by name"):
            listing()
    bound = secret_from({"OPENAI_API_KEY": "sk-openai-12345678"}, "OPENAI_API_KEY")
    assert bound is not None and bound.only_host == VENDOR_KEY_HOSTS["OPENAI_API_KEY"]
    assert secret_from({}, "OPENAI_API_KEY") is None


def test_a_call_never_waits_its_deadline_away_behind_another_calls_wait() -> None:
    """The rate limiter reserves under its lock and waits outside it: a call whose deadline
    the queue would pass is refused at once, however many others are waiting."""
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "ok"}}]}))
    try:
        reg = registry({"a": {"name": "openai", "model": "m", "base_url": server.url + "/v1",
                              "requests_per_minute": 40, "max_wait_seconds": 60}})
        provider = reg.get("a")
        provider.limiter.requests.level = 0.0  # the burst is spent: the next waits 1.5 s
        def refused() -> None:
            with pytest.raises(RequestTimeout, match="client-side rate limit"):
                provider.complete(HI, total_timeout=1.5)

        # After 0.2 s the first caller is waiting (without the lock).
        took = seconds_behind(lambda: provider.complete(HI), refused, 0.2)
    finally:
        server.stop()
    assert took < 0.5, took


def test_a_budgets_sends_hold_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The count is taken under the budget's lock: 8 threads racing for a budget of 50 sends
    get exactly 50, and a provider renews its credential once however many threads ask. The
    clock read between the check and the count yields to the other threads (without the
    lock, every run of this counts more than 50)."""
    import types

    import missy_providers.core.wire as wire
    from missy_providers.core.errors import CallBudgetExceeded

    def yielding_clock() -> float:
        time.sleep(0)
        return time.monotonic()

    monkeypatch.setattr(wire, "time", types.SimpleNamespace(monotonic=yielding_clock))
    budget = CallBudget(60.0, 50)
    taken: list[int] = []
    renewals: list[bool] = []

    def race() -> None:
        for _ in range(20):
            try:
                budget.take_send("p")
                taken.append(1)
            except CallBudgetExceeded:
                pass
        renewals.append(budget.take_refresh("p"))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 50 and budget.sends == 50
    assert renewals.count(True) == 1 and budget.take_refresh("q") is True
    assert budget.refreshes == {"p", "q"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork with threads
def test_a_budget_in_a_forked_child_never_waits_for_another() -> None:
    """Budgets share no lock: a child forked while another thread counts sends (its lock
    held at the fork) counts its own at once."""
    busy = CallBudget(60.0, 10**9)
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            busy.take_send("p")

    thread = threading.Thread(target=count)
    thread.start()
    try:
        hung = 0
        for _ in range(20):
            pid = os.fork()
            if pid == 0:  # the child: a new budget, counted at once, or killed below
                try:
                    CallBudget(60.0, 2).take_send("p")
                finally:
                    os._exit(0)
            deadline = time.monotonic() + 5
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    hung += 1
                    break
                time.sleep(0.005)
    finally:
        stop.set()
        thread.join()
    assert hung == 0
