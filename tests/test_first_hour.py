"""The operator's first hour (a new operator's walk through the README and the CLI): a key
ring that never goes back to a revoked key, checks that use every key, unset variables said
plainly, fallback from the CLI, JSON-only hosts, errors that name the limit that fired, call
logs from many processes, and the small rough edges."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import AuthenticationError, RequestTimeout
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.keys import KeyRing
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

ROOT = Path(__file__).resolve().parents[1]
HI = [Message("user", "hi")]
REVOKED, GOOD = "sk-revoked-1234567", "sk-good-123456789"
ANSWER = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}


def cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
        python: tuple[str, ...] = ("-m", "missy")) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *python, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **(env or {})})


def ring_server(flaky: bool) -> LoopbackServer:
    """An OpenAI-compatible server that refuses the revoked key (401) and, when ``flaky``,
    answers the good key 503 and 200 in turn."""
    turn = {"n": 0}

    def handler(ex: Exchange) -> None:
        auth = ex.req.headers.get("authorization", "")
        if auth != f"Bearer {GOOD}":
            ex.json(401, {"error": {"message": "revoked"}})
            return
        if ex.req.path.endswith("/models"):
            ex.json(200, {"data": [{"id": "m-1"}]})
            return
        turn["n"] += 1
        if flaky and turn["n"] % 2 == 1:
            ex.json(503, {"error": {"message": "busy"}})
        else:
            ex.json(200, ANSWER)

    server = LoopbackServer()
    server.reset(handler)
    return server


def ring_registry(server: LoopbackServer, **settings: Any) -> ProviderRegistry:
    config = config_from_dict({"providers": {"p": {
        "name": "openai", "model": "m", "base_url": server.url + "/v1",
        "api_keys": [REVOKED, GOOD], "max_retries": 2, **settings}}}, env={})
    reg = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])))
    reg.get("p").sleep = lambda s: None
    return reg


def test_the_ring_never_goes_back_to_a_revoked_key_after_a_retry() -> None:
    server = ring_server(flaky=True)
    events: list[Any] = []
    try:
        reg = ring_registry(server)
        reg.subscribe(events.append)
        provider = reg.get("p")
        for _ in range(4):  # each call: a 503 on the good key, then its retry succeeds
            assert provider.complete(HI).content == "ok"
    finally:
        server.stop()
    keys = [r.headers["authorization"] for r in server.requests]
    assert keys[0] == f"Bearer {REVOKED}"  # once, on the very first call
    assert keys[1:] == [f"Bearer {GOOD}"] * (len(keys) - 1)
    rotations = [e for e in events if e.type == "key_rotated"]
    assert [(e.fields["from_index"], e.fields["to_index"]) for e in rotations] == [(0, 1)]
    assert reg._keys["p"].cooling() == [0]


def test_a_refused_key_cools_down_and_is_tried_again_after() -> None:
    clock = [0.0]
    ring = KeyRing([object(), object()], cooldown=600, clock=lambda: clock[0])  # type: ignore[list-item]
    ring.refused(0)
    assert ring.pick() == 1 and ring.pick({1}) == 0  # skipped while another is usable
    clock[0] = 600.1
    assert ring.pick() == 0 and ring.cooling() == []


def test_checks_and_model_lists_use_the_rings_key(tmp_path: Path) -> None:
    server = ring_server(flaky=False)
    try:
        reg = ring_registry(server)
        assert reg.get("p").list_models() == ["m-1"]
        assert reg.get("p").probe().ok
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": server.url + "/v1",
            "api_keys": [REVOKED, GOOD]}}}))
        check = cli("providers", "--check", "--config", str(config))
        models = cli("models", "--config", str(config))
    finally:
        server.stop()
    assert check.returncode == 0 and " OK " in check.stdout, check.stdout + check.stderr
    # It works on key #1, and says key #0 was refused, so the operator replaces it.
    assert "(refused, skipped for now: key #0)" in check.stdout
    assert models.returncode == 0 and "p\tm-1" in models.stdout


def test_providers_check_is_a_health_check(tmp_path: Path) -> None:
    up = LoopbackServer()
    up.reset(lambda ex: ex.json(200, {"models": [{"name": "m"}]}))
    down = LoopbackServer()
    down.reset(lambda ex: ex.json(500, {"error": "down"}))
    try:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": {
            "up": {"name": "ollama", "model": "m", "base_url": up.url},
            "down": {"name": "ollama", "model": "m", "base_url": down.url}}}))
        default_ok = cli("providers", "--check", "--config", str(config))
        any_failed = cli("providers", "--check", "--all", "--config", str(config))
        config.write_text(json.dumps({"default_provider": "down", **json.loads(
            config.read_text())}))
        default_failed = cli("providers", "--check", "--config", str(config))
    finally:
        up.stop()
        down.stop()
    assert (default_ok.returncode, any_failed.returncode, default_failed.returncode) == (0, 1, 1)


def test_an_unset_key_variable_is_never_silently_dropped(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, ANSWER))
    try:
        data = {"providers": {"compat": {"name": "openai", "model": "m",
                                         "base_url": server.url + "/v1",
                                         "api_keys": ["$MISSY_A", "$MISSY_B"]}}}
        config = tmp_path / "c.json"
        config.write_text(json.dumps(data))
        check = cli("config", "check", "--config", str(config))
        listing = cli("providers", "--config", str(config))
        ask = cli("ask", "hi", "--config", str(config))
        half = cli("providers", "--config", str(config), env={"MISSY_B": "sk-b-12345678"})
    finally:
        server.stop()
    assert check.returncode == 0
    assert "$MISSY_A is not set" in check.stderr and "$MISSY_B is not set" in check.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("compat"))
    assert "unset $MISSY_A, $MISSY_B" in row and row.split()[-1] == "no"
    assert ask.returncode == 1 and "no key: $MISSY_A, $MISSY_B are not set" in ask.stderr
    assert server.requests == []  # never sent without a key
    half_row = next(line for line in half.stdout.splitlines() if line.startswith("compat"))
    assert "(unset $MISSY_A)" in half_row and half_row.split()[-1] == "yes"


def test_ask_falls_back_and_provider_pins(tmp_path: Path) -> None:
    down = LoopbackServer()
    down.reset(lambda ex: ex.json(503, {"error": {"message": "down"}}))
    up = LoopbackServer()
    up.reset(lambda ex: ex.json(200, ANSWER))
    try:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"fallback": ["first", "second"], "providers": {
            "first": {"name": "openai", "model": "m", "base_url": down.url + "/v1",
                      "max_retries": 0},
            "second": {"name": "openai", "model": "m", "base_url": up.url + "/v1"}}}))
        fell_back = cli("ask", "--no-stream", "hi", "--config", str(config))
        streamed = cli("ask", "hi", "--config", str(config))
        pinned = cli("ask", "--provider", "first", "hi", "--config", str(config))
    finally:
        down.stop()
        up.stop()
    assert fell_back.returncode == 0 and fell_back.stdout == "ok\n", fell_back.stderr
    assert streamed.returncode == 0 and streamed.stdout == "ok\n", streamed.stderr
    assert pinned.returncode == 1 and "ProviderUnavailable: first: down (HTTP 503)" in \
        pinned.stderr


def test_a_vendored_copy_on_a_json_only_host(tmp_path: Path) -> None:
    shutil.copy(ROOT / "missy.py", tmp_path / "missy.py")
    shutil.copytree(ROOT / "missy_providers", tmp_path / "missy_providers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    isolated = ("-I", "-S", str(tmp_path / "missy.py"))
    init = cli("config", "init", "cfg.json", cwd=tmp_path, python=isolated)
    assert init.returncode == 0, init.stderr
    assert f"python3 {tmp_path / 'missy.py'} config check --config cfg.json" in init.stdout
    data = json.loads((tmp_path / "cfg.json").read_text())  # JSON, not YAML
    assert data["default_provider"] == "anthropic" and "ollama" in data["providers"]
    listing = cli("providers", "--config", "cfg.json", cwd=tmp_path, python=isolated)
    assert listing.returncode == 0 and f"python3 {tmp_path / 'missy.py'} providers --check" \
        in listing.stdout
    (tmp_path / "cfg.yaml").write_text("providers: {}\n")
    yaml = cli("providers", "--config", "cfg.yaml", cwd=tmp_path, python=isolated)
    assert yaml.returncode == 2 and "runs with -S" in yaml.stderr and ".json" in yaml.stderr


def test_the_starter_config_says_how_to_run_it_and_models_skips_codex(tmp_path: Path) -> None:
    starter = (ROOT / "missy_providers" / "starter_config.yaml").read_text()
    assert "--config examples/config.yaml" not in starter
    import yaml

    assert yaml.safe_load(starter) == json.loads(
        (ROOT / "missy_providers" / "starter_config.json").read_text())
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"models": [{"name": "llama3.2"}]}))
    try:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": {
            "codex": {"name": "openai-codex", "model": "gpt-5-codex"},
            "ollama": {"name": "ollama", "model": "m", "base_url": server.url}}}))
        models = cli("models", "--config", str(config))
    finally:
        server.stop()
    assert models.returncode == 0, models.stderr
    assert "ollama\tllama3.2" in models.stdout and "codex: openai-codex has no endpoint" in \
        models.stderr


def test_a_timeout_error_names_the_limit_that_fired() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: time.sleep(3))
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": server.url + "/v1",
            "max_retries": 0}}}, env={})
        provider = ProviderRegistry(config, PolicyHTTPClient(
            NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
        with pytest.raises(RequestTimeout) as total:
            provider.complete(HI, timeout=5, total_timeout=1.5)
        with pytest.raises(RequestTimeout) as read:
            provider.complete(HI, timeout=0.5, total_timeout=30)
    finally:
        server.stop()
    assert "total_timeout 1.5s" in str(total.value) and " 5s" not in str(total.value)
    assert "sent nothing for 0.5s" in str(read.value) and "`timeout`" in str(read.value)


def test_a_stalled_connect_names_the_limit_that_fired() -> None:
    """A listener whose accept queue is full drops the SYN: the connect stalls until the
    call's deadline or the connect timeout, and the error says which."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # fill the accept queue (never accepted)
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        queued.append(client)
    time.sleep(0.1)
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1",
            "max_retries": 0}}}, env={})
        provider = ProviderRegistry(config, PolicyHTTPClient(
            NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as total:
            provider.complete(HI, timeout=60, total_timeout=0.6)
        assert time.monotonic() - started < 2
        with pytest.raises(RequestTimeout) as connect:
            provider.complete(HI, timeout=0.4, total_timeout=30)
    finally:
        for sock in (*queued, listener):
            sock.close()
    assert "total_timeout 0.6s" in str(total.value) and "connecting to" in str(total.value)
    assert "connect timeout of 0.4s" in str(connect.value)


def test_call_logs_from_many_processes_are_told_apart(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, ANSWER))
    try:
        log = tmp_path / "calls.jsonl"
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"observability": {"call_log": str(log)}, "providers": {
            "p": {"name": "openai", "model": "m", "base_url": server.url + "/v1"}}}))
        for _ in range(2):
            assert cli("ask", "hi", "--config", str(config)).returncode == 0
    finally:
        server.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    runs = {r["run"] for r in records}
    assert len(runs) == 2 and all(len(r) == 12 for r in runs)
    assert {(r["run"], r["call_id"]) for r in records if r["type"] == "call_finished"} == \
        {(run, 1) for run in runs}


def test_small_rough_edges(tmp_path: Path) -> None:
    helptext = cli("ask", "--help")
    assert "0 to 2" in helptext.stdout
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4 not an image")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m"}}}))
    image = cli("ask", "hi", "--image", str(pdf), "--config", str(config))
    assert image.returncode == 2 and "this is a PDF; attach it with --file" in image.stderr
    # policy check --resolve: a name the policy allows that resolves to an address it does
    # not is "denied" with the address's reason, never "denied ... allowed as provider host".
    http = PolicyHTTPClient(NetworkPolicy(provider_hosts={"llm.example.com:443": "p"}),
                            resolver=lambda host, port: ["10.1.2.3"])
    verdict = http.explain("https://llm.example.com/v1", resolve=True)
    assert verdict["allowed"] is False and verdict["rule"] == "address"
    assert "10.1.2.3" in verdict["reason"] and "provider host" not in verdict["reason"]


def test_the_event_lines_of_ask_v_start_lines_of_their_own(tmp_path: Path) -> None:
    def handler(ex: Exchange) -> None:
        ex.start_chunked(content_type="application/x-ndjson")
        ex.chunk(json.dumps({"message": {"content": "no newline at the end"}}) + "\n")
        ex.chunk(json.dumps({"message": {"content": ""}, "done": True,
                             "done_reason": "stop"}) + "\n")
        ex.end_chunked()

    server = LoopbackServer()
    server.reset(handler)
    try:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m",
                                                          "base_url": server.url}}}))
        run = subprocess.run([sys.executable, "-m", "missy", "ask", "-v", "hi", "--config",
                              str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout
    assert "no newline at the end\n" in run.stdout
    assert "end[" not in run.stdout and "endmissy" not in run.stdout


def test_a_structured_output_error_names_the_provider_once() -> None:
    from missy_providers.providers.controls import parse_structured

    with pytest.raises(Exception) as info:
        parse_structured("not json", {"type": "object"}, "ollama")
    assert str(info.value).startswith("ollama: the answer is not JSON")
    assert str(info.value).count("ollama") == 1


def test_auth_errors_are_not_fallback_triggers_but_say_the_key() -> None:
    server = ring_server(flaky=False)
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": server.url + "/v1",
            "api_keys": [REVOKED], "max_retries": 2}}}, env={})
        reg = ProviderRegistry(config, PolicyHTTPClient(
            NetworkPolicy(allowed_hosts=["127.0.0.1"])))
        with pytest.raises(AuthenticationError, match="check the API key"):
            reg.get("p").complete(HI)
    finally:
        server.stop()
    assert len(server.requests) == 1  # a 401 is never retried with the same key
