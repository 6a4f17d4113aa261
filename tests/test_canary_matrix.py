"""No secret in any exception, message, log or CLI output: every way a user can configure a
credential x every error path, with a server that echoes the credential back wherever it can
(error bodies, malformed JSON and SSE, redirect Locations, request ids, error types).

Each error is searched whole: str, repr, args, every attribute, the formatted chain, and the
locals of every frame a traceback keeps (as error trackers capture them); so are DEBUG log
records, the audit log and the CLI's output with -v."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer
from test_cli_commands import env_without_keys

import missy_providers
from missy_providers.config import config_from_dict
from missy_providers.core.errors import ConfigError, MissyError, PolicyViolation
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.secret import Secret, excerpt, scrub
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

ROOT = Path(__file__).resolve().parents[1]
# The package's own files, wherever it is installed (a checkout's folder name may contain
# "missy_providers" too, as an unpacked sdist's does).
PACKAGE_DIR = str(Path(missy_providers.__file__).resolve().parent) + os.sep
# A token shaped like nothing the pattern pass knows: only the registry of live Secrets can
# catch it (a Codex JWT is caught by shape too; this one is not a JWT).
PLAIN_CANARY = "canary-plain-7Q2vX9kLmN4pR8sT"


def echoed(ex: Exchange) -> str:
    """The credential the client sent, whatever header it used."""
    for name in ("x-api-key", "authorization"):
        value = ex.req.headers.get(name, "")
        if value:
            return value.removeprefix("Bearer ")
    return CANARY


ErrorPath = Callable[[Exchange], None]
ERROR_PATHS: dict[str, ErrorPath] = {
    "401 echoing": lambda ex: ex.json(401, {"error": {"type": "auth " + echoed(ex),
                                                      "message": "bad key " + echoed(ex)}},
                                      [("request-id", echoed(ex))]),
    "403": lambda ex: ex.json(403, {"error": {"message": f"forbidden for {echoed(ex)}"}}),
    "400 echoing the request": lambda ex: ex.send(400, "you sent: " + echoed(ex) + "\x1b[2J"),
    "500 html": lambda ex: ex.send(500, f"<html>{echoed(ex)}</html>", content_type="text/html"),
    "malformed JSON echoing": lambda ex: ex.send(200, '{"oops": "' + echoed(ex)),
    "redirect carrying the key": lambda ex: ex.send(
        302, "", [("Location", f"http://u:{echoed(ex)}@evil.example/{echoed(ex)}?k={echoed(ex)}")]),
    "malformed SSE echoing": lambda ex: (ex.start_chunked(),
                                         ex.chunk(f"event: message_start\ndata: {{{echoed(ex)}"
                                                  "\n\n"), ex.end_chunked()),
    "SSE error event echoing": lambda ex: (ex.start_chunked(), ex.chunk(
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"' +
        echoed(ex) + '"}}\n\n'), ex.end_chunked()),
    "timeout": lambda ex: time.sleep(1.5),
}

# provider type -> (key sources, how to read it)
KEY_SOURCES = {
    "anthropic api_key": ("anthropic", {"api_key": CANARY}, {}),
    "anthropic env": ("anthropic", {}, {"ANTHROPIC_API_KEY": CANARY}),
    "anthropic api_keys": ("anthropic", {"api_keys": [PLAIN_CANARY, CANARY]}, {}),
    "openai api_key": ("openai", {"api_key": PLAIN_CANARY}, {}),
    "ollama api_key": ("ollama", {"api_key": PLAIN_CANARY}, {}),
    "codex api_key": ("openai-codex", {"api_key": CANARY}, {}),
}


def secret_places(err: BaseException, with_locals: bool = True) -> Iterator[str]:
    yield str(err)
    yield repr(err)
    yield repr(err.args)
    for name, value in vars(err).items():
        yield f"{name}={value!r}"
    yield "".join(traceback.format_exception(err))
    # The locals of every frame of ours the traceback keeps (the test's own frames hold the
    # canary on purpose).
    seen: BaseException | None = err if with_locals else None
    while seen is not None:
        tb = traceback.TracebackException.from_exception(seen, capture_locals=True)
        for frame in tb.stack:
            # The boundary's own locals are the caller's arguments, as the caller wrote them.
            ours = frame.filename.startswith(PACKAGE_DIR) or frame.filename.endswith(
                f"{os.sep}missy.py")
            if ours and frame.name != "boundary":
                yield repr(frame.locals)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


def assert_clean(err: BaseException, *canaries: str, with_locals: bool = True) -> None:
    for text in secret_places(err, with_locals):
        for canary in canaries:
            assert canary not in text, text[:2000]


def provider_for(server: LoopbackServer, tmp_path: Path, source: str,
                 audit: list[dict[str, Any]]) -> Any:
    ptype, settings, env = KEY_SOURCES[source]
    data = {"providers": {"p": {"name": ptype, "model": "m", "base_url": server.url,
                                "timeout": 0.7, "max_retries": 0, **settings}},
            "network": {"audit_log": str(tmp_path / "audit.jsonl")}}
    if ptype == "openai-codex":
        data["providers"]["p"]["base_url"] = server.url + "/v1"
    config = config_from_dict(data, env=env)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), audit=audit.append,
                              audit_log=str(tmp_path / "audit.jsonl"))
    return ProviderRegistry(config, client).get("p")


@pytest.mark.parametrize("path", list(ERROR_PATHS))
@pytest.mark.parametrize("source", list(KEY_SOURCES))
def test_canary_matrix(server: LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                       source: str, path: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.reset(ERROR_PATHS[path])
    audit: list[dict[str, Any]] = []
    provider = provider_for(server, tmp_path, source, audit)
    streamed = "SSE" in path
    with pytest.raises(MissyError) as info:
        if streamed:
            with provider.stream([Message("user", "hi")]) as stream:
                for _ in stream:
                    pass
        else:
            provider.complete([Message("user", "hi")])
    assert server.requests, "the request must have reached the server"
    assert_clean(info.value, CANARY, PLAIN_CANARY)
    logs = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert CANARY not in logs and PLAIN_CANARY not in logs
    audit_file = (tmp_path / "audit.jsonl").read_text()
    assert CANARY not in audit_file + json.dumps(audit)
    assert PLAIN_CANARY not in audit_file + json.dumps(audit)


def test_codex_auth_json_token_never_leaks(server: LoopbackServer, tmp_path: Path) -> None:
    token = "eyJhbGciOiJub25lIn0." + "eyJleHAiOjQxMDI0NDQ4MDB9." + PLAIN_CANARY
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tokens": {"access_token": token, "refresh_token": CANARY,
                                           "account_id": "acct"}}))
    config = config_from_dict({"providers": {"c": {
        "name": "openai-codex", "model": "m", "base_url": server.url, "auth_file": str(auth),
        "max_retries": 0, "timeout": 0.7}}}, env={})
    provider = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(
        allowed_hosts=["127.0.0.1"]))).get("c")
    for name, handler in ERROR_PATHS.items():
        if name == "401 echoing":
            continue  # a 401 starts a refresh against the real token URL: tested in test_codex
        server.reset(handler)
        with pytest.raises(MissyError) as info:
            provider.complete([Message("user", "hi")])
        assert_clean(info.value, token, PLAIN_CANARY, CANARY)
    assert repr(provider.credentials._tokens).count("Secret('***')") == 2


def test_policy_denial_of_a_url_carrying_a_key() -> None:
    live = Secret(PLAIN_CANARY)  # a live credential the scrubber knows
    client = PolicyHTTPClient(NetworkPolicy())
    with pytest.raises(PolicyViolation) as info:
        client.request("GET", f"https://evil.example/{PLAIN_CANARY}?key={CANARY}")
    # Not the frame locals: the URL the caller wrote is still the caller's argument there.
    assert_clean(info.value, CANARY, PLAIN_CANARY, with_locals=False)
    assert live.reveal() == PLAIN_CANARY  # (kept alive until here)


@pytest.mark.parametrize("bad", [CANARY + "\u200b", CANARY + "\n", "\u00e9" + CANARY])
@pytest.mark.parametrize("where", ["api_key", "env", "api_keys"])
def test_invalid_header_key_is_a_config_error_without_the_key(bad: str, where: str) -> None:
    settings: dict[str, Any] = {"api_key": bad} if where == "api_key" else \
        {"api_keys": ["ok-key-123456789", bad]} if where == "api_keys" else {}
    env = {"ANTHROPIC_API_KEY": bad} if where == "env" else {}
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m", **settings}}},
                         env=env)
    assert "cannot be sent in an HTTP header" in str(info.value)
    assert_clean(info.value, CANARY)


def test_headers_given_per_request_are_checked_without_the_value() -> None:
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
    with pytest.raises(MissyError) as info:
        client.request("GET", "http://127.0.0.1:9/", headers={"x-api-key": CANARY + "\r\nX: y"})
    assert_clean(info.value, CANARY)


def test_cli_verbose_shows_no_canary(server: LoopbackServer, tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {
        "p": {"name": "anthropic", "model": "m", "base_url": server.url, "api_key": CANARY,
              "max_retries": 0},
        "q": {"name": "anthropic", "model": "m", "base_url": server.url + "/x",
              "api_key": "${" + CANARY + "}", "enabled": False}}}))
    for name, handler in ERROR_PATHS.items():
        if name == "timeout":
            continue
        server.reset(handler)
        for argv in (["ask", "-v", "hi"], ["ask", "-v", "--no-stream", "hi"],
                     ["providers", "--check", "-v"], ["config", "check", "-v"]):
            result = subprocess.run([sys.executable, "-m", "missy", *argv, "--config",
                                     str(config)], cwd=ROOT, env=env_without_keys(),
                                    capture_output=True, text=True, timeout=60)
            assert CANARY not in result.stdout + result.stderr, (name, argv, result.stderr)


def test_scrubber_knows_every_form_and_shape() -> None:
    live = Secret("plain-secret-value-0042")
    assert scrub("a plain-secret-value-0042 b") == "a [REDACTED] b"
    assert scrub("a plain%2Dsecret") == "a plain%2Dsecret"  # not the whole value: not a form
    assert scrub("sk-ant-api03-abcdefghijklmnop and Bearer abc.def-ghi_jkl") == \
        "[REDACTED] and [REDACTED]"
    assert scrub("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl") == "[REDACTED]"
    shown = excerpt("x" * 300 + "\x1b[31m")
    assert len(shown) == 203 and shown.endswith("...")
    assert excerpt("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\x0d\\x0a"
    assert repr(live) == "Secret('***')" and live.reveal() == "plain-secret-value-0042"
    # A secret straddling the excerpt's cut is still found whole.
    assert "plain-secret" not in excerpt("y" * 190 + "plain-secret-value-0042")


def test_a_token_pasted_as_a_config_key_is_not_echoed() -> None:
    token = "AIzaSyD-not-a-key-name-but-a-token-0123456789"
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m", token: 1}}},
                         env={})
    assert token not in str(info.value) and "unknown key (not shown" in str(info.value)
    with pytest.raises(ConfigError, match="unknown key 'modle'; did you mean 'model'"):
        config_from_dict({"providers": {"a": {"name": "anthropic", "modle": "m"}}}, env={})
