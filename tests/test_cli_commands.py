"""Every CLI command and exit code, as a subprocess against loopback servers. A canary key is
configured throughout and must never reach stdout or stderr."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer, RefusingPort, wait_until

ROOT = Path(__file__).resolve().parents[1]
OK_BODY = {"type": "message", "id": "m", "model": "claude-x", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "Hello there"}],
           "usage": {"input_tokens": 3, "output_tokens": 2}}


def env_without_keys(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.endswith("_API_KEY") and k not in ("MISSY_CONFIG", "OLLAMA_HOST",
                                                        "OPENAI_BASE_URL", "CODEX_HOME")}
    return {**base, **extra}


def missy(*args: str, config: Path | None = None, stdin: str | None = None,
          **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "missy", *args]
    if config is not None:
        argv += ["--config", str(config)]
    result = subprocess.run(argv, cwd=ROOT, env=env_without_keys(**env), input=stdin,
                            capture_output=True, text=True, timeout=60)
    assert CANARY not in result.stdout + result.stderr
    return result


def write_config(tmp_path: Path, server: LoopbackServer, name: str = "config.json",
                 **extra: Any) -> Path:
    data = {"providers": {
        "claude": {"name": "anthropic", "model": "claude-x", "fast_model": "claude-small",
                   "base_url": server.url, "api_key": CANARY, "max_retries": 0},
        "local": {"name": "ollama", "model": "llama3.2", "base_url": server.url},
    }, **extra}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def anthropic_stream(ex: Exchange) -> None:
    ex.start_chunked()
    for piece in (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":'
        '"claude-x","content":[],"usage":{"input_tokens":3}}}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Hello"}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":" there"}}\n\n',
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        '"end_turn"},"usage":{"output_tokens":2}}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ):
        ex.chunk(piece)
    ex.end_chunked()


def route(ex: Exchange) -> None:
    if ex.req.path == "/api/tags":
        ex.json(200, {"models": [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}]})
    elif ex.req.path == "/v1/models":
        ex.json(200, {"data": [{"id": "claude-x"}]})
    elif ex.req.json().get("stream"):
        anthropic_stream(ex)
    else:
        ex.json(200, OK_BODY)


# --- providers ------------------------------------------------------------------------------


def test_providers_check_probes_in_parallel(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(route)
    result = missy("providers", "--check", config=write_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[-1] == "CHECK"
    claude = next(line for line in lines if line.startswith("claude"))
    local = next(line for line in lines if line.startswith("local"))
    assert " OK " in claude and "ms" in claude and "(models: claude-x)" in claude
    assert "(models: llama3.2:latest, qwen3:8b)" in local
    by_path = {r.path: r for r in server.requests}
    assert by_path["/v1/models"].headers["x-api-key"] == CANARY  # sent, never printed
    assert "x-api-key" not in by_path["/api/tags"].headers


def test_providers_check_json_reasons(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(401, {"error": {"message": "bad key"}}))
    config = write_config(tmp_path, server)
    data = json.loads(config.read_text())
    data["providers"]["nokey"] = {"name": "anthropic", "model": "m", "base_url": server.url}
    gone = RefusingPort()  # a port nobody listens on
    port = gone.port
    data["providers"]["down"] = {"name": "ollama", "model": "m",
                                 "base_url": f"http://127.0.0.1:{port}"}
    config.write_text(json.dumps(data))
    result = missy("providers", "--check", "--json", "--timeout", "1", config=config)
    assert result.returncode == 1, result.stderr  # the default provider failed its check
    rows = {r["name"]: r for r in json.loads(result.stdout)["providers"]}
    assert rows["claude"]["check"]["reason"] == "auth failed (HTTP 401)"
    assert rows["claude"]["available"] is False
    assert rows["nokey"]["check"]["reason"].startswith("no key: set providers.nokey.api_key")
    assert rows["down"]["check"]["reason"].startswith("unreachable: down: connection to")
    assert rows["down"]["check"]["reason"].endswith("refused")


def test_providers_check_total_time_is_the_slowest_not_the_sum(tmp_path: Path) -> None:
    slow = [LoopbackServer() for _ in range(4)]
    try:
        for srv in slow:
            srv.reset(lambda ex: time.sleep(1.5))
        providers = {f"s{i}": {"name": "ollama", "model": "m", "base_url": srv.url}
                     for i, srv in enumerate(slow)}
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"providers": providers}))
        started = time.monotonic()
        result = missy("providers", "--check", "--timeout", "1", "--json", config=config)
        elapsed = time.monotonic() - started
        assert result.returncode == 1  # the default provider failed its check
        reasons = [r["check"]["reason"] for r in json.loads(result.stdout)["providers"]]
        assert all("timed out" in r and "the live check's timeout 1s" in r
                   for r in reasons), reasons
        assert elapsed < 3.5  # four 1 s timeouts one after another: 4 s; in parallel: 1 s
    finally:
        for srv in slow:
            srv.stop()


# --- ask --------------------------------------------------------------------------------------


def test_ask_streams(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(route)
    result = missy("ask", "say", "hello", "-v", config=write_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello there\n"
    assert ("usage: prompt 3 (cached 0, cache write 0), completion 2 (reasoning 0), total 5 "
            "tokens; finish: stop (end_turn); model: claude-x") in result.stderr
    events = [line.split()[4] for line in result.stderr.splitlines()
              if line.startswith("missy: event [1] claude ")]
    assert events == ["call_started", "attempt", "first_token", "call_finished"]
    body = server.requests[-1].json()
    assert body["stream"] is True and body["messages"] == [{"role": "user",
                                                           "content": "say hello"}]


def test_ask_json_stdin_tier_and_options(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(route)
    result = missy("ask", "--json", "--tier", "auto", "--system", "terse", "--max-tokens", "9",
                   "--temperature", "0.5", config=write_config(tmp_path, server),
                   stdin="what is up")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out == {"content": "Hello there", "model": "claude-x", "provider": "claude",
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                   "cached_prompt_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
                   "tool_calls": [], "finish_reason": "stop"}
    body = server.requests[-1].json()
    assert (body["model"], body["system"], body["max_tokens"], body["temperature"]) == (
        "claude-small", "terse", 9, 0.5)


def test_ask_other_provider_no_stream(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, {"model": "llama3.2", "done": True, "message": {
        "role": "assistant", "content": "local answer"}}))
    result = missy("ask", "--provider", "local", "--no-stream", "--model", "qwen3:8b", "hi",
                   config=write_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "local answer\n"
    assert server.requests[-1].json()["model"] == "qwen3:8b"


@pytest.mark.parametrize(("handler", "code", "fragment"), [
    (lambda ex: ex.json(401, {"error": {"type": "authentication_error",
                                        "message": f"invalid key {CANARY}"}}),
     1, "AuthenticationError"),
    (lambda ex: ex.json(529, {"error": {"type": "overloaded_error", "message": "Overloaded"}}),
     1, "OverloadedError"),
])
def test_ask_provider_errors_exit_1(server: LoopbackServer, tmp_path: Path, handler: Any,
                                   code: int, fragment: str) -> None:
    server.reset(handler)
    result = missy("ask", "hi", config=write_config(tmp_path, server))
    assert result.returncode == code
    assert result.stdout.strip() == ""
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_a_proxy_the_policy_refuses_is_a_config_error(server: LoopbackServer,
                                                      tmp_path: Path) -> None:
    server.reset(route)
    # A proxy must itself pass the policy; this one is not allowed anywhere: the config says
    # so when it is loaded, before any request.
    config = write_config(tmp_path, server, network={"proxy": "http://proxy.example:3128"})
    result = missy("ask", "hi", config=config)
    assert result.returncode == 2
    assert result.stderr.startswith("missy: ConfigError: ")
    assert "the proxy is refused by the network policy: host 'proxy.example:3128' is not " \
           "allowed" in result.stderr and "(at network.proxy)" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = missy("ask", "hi", "-v", config=config)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    check = missy("config", "check", config=config)
    assert check.returncode == 2 and "(at network.proxy)" in check.stderr
    assert server.requests == []


def test_ask_attaches_images_and_pdfs(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(route)
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 8
    (tmp_path / "shot.jpg").write_bytes(png)  # named .jpg: the type comes from the bytes
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4 tiny")
    result = missy("ask", "what", "--image", str(tmp_path / "shot.jpg"), "--image",
                   str(tmp_path / "shot.jpg"), "--file", str(tmp_path / "doc.pdf"),
                   config=write_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    content = server.requests[-1].json()["messages"][0]["content"]
    assert [b["type"] for b in content] == ["text", "image", "image", "document"]
    assert content[1]["source"] == {"type": "base64", "media_type": "image/png",
                                    "data": base64.b64encode(png).decode()}
    assert content[3]["title"] == "doc.pdf"
    bad = missy("ask", "what", "--file", str(tmp_path / "shot.jpg"),
                config=write_config(tmp_path, server))
    assert bad.returncode == 2 and "Document media type must be one of" in bad.stderr
    missing = missy("ask", "what", "--image", str(tmp_path / "nope.png"),
                    config=write_config(tmp_path, server))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_models_lists_every_enabled_provider(server: LoopbackServer, tmp_path: Path) -> None:
    def models(ex: Exchange) -> None:
        if ex.req.path == "/v1/models":
            ex.json(200, {"data": [{"id": "claude-x"}, {"id": "claude-small"}]})
        else:
            ex.json(200, {"models": [{"name": "llama3.2:latest"}]})

    server.reset(models)
    config = write_config(tmp_path, server)
    result = missy("models", config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["claude\tclaude-x", "claude\tclaude-small",
                                          "local\tllama3.2:latest"]
    as_json = json.loads(missy("models", "--json", "--provider", "local", config=config).stdout)
    assert as_json == {"providers": {"local": {"models": ["llama3.2:latest"]}}}
    server.reset(lambda ex: ex.json(401, {"error": {"message": f"bad key {CANARY}"}}))
    failed = missy("models", config=config)
    assert failed.returncode == 1 and "missy: claude: AuthenticationError" in failed.stderr


def test_ask_usage_errors_exit_2(server: LoopbackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server)
    assert missy("ask", "--provider", "nope", "hi", config=config).returncode == 2
    assert missy("ask", config=config, stdin="  ").returncode == 2
    assert missy("ask", "--tier", "mega", "hi", config=config).returncode == 2


def test_ctrl_c_ends_a_stream_cleanly(server: LoopbackServer, tmp_path: Path) -> None:
    released = threading.Event()
    closed = threading.Event()

    def slow(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk('event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
                 '"model":"x","content":[],"usage":{}}}\n\nevent: content_block_start\ndata: '
                 '{"type":"content_block_start","index":0,"content_block":{"type":"text"}}\n\n'
                 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                 '"delta":{"type":"text_delta","text":"first "}}\n\n')
        for _ in range(100):  # keeps sending until the client goes away
            if released.wait(0.05):
                break
            try:
                ex.h.wfile.write(b"d\r\n: keep-alive\n\n\r\n")
                ex.h.wfile.flush()
            except OSError:
                closed.set()
                return

    server.reset(slow)
    proc = subprocess.Popen([sys.executable, "-m", "missy", "ask", "hi", "--config",
                             str(write_config(tmp_path, server))], cwd=ROOT,
                            env=env_without_keys(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(6)
        assert first == "first "
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        assert code == 130
        assert wait_until(closed.is_set, timeout=5)  # the connection was closed, not left open
        assert "interrupted" in (proc.stderr.read() if proc.stderr else "")
    finally:
        released.set()
        proc.kill()
        proc.wait()


# --- policy -----------------------------------------------------------------------------------


def test_policy_check_and_show(server: LoopbackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server, network={"allowed_domains": ["*.example.org"]})
    result = missy("policy", "check", f"{server.url}/v1/messages", "https://a.example.org/x",
                   config=config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"allowed  {server.url}/v1/messages  allowed as provider host")
    assert lines[1] == ("allowed  https://a.example.org/x  allowed by network.allowed_domains "
                        "entry '*.example.org'")
    denied = missy("policy", "check", f"https://user:{CANARY}@evil.example/?k={CANARY}",
                   "https://evil.example/", config=config)
    assert denied.returncode == 3
    assert denied.stdout.splitlines()[0].startswith("denied   https://***@evil.example/  ")
    assert "not allowed by the network policy" in denied.stdout.splitlines()[1]
    resolved = missy("policy", "check", "--resolve", "--json", "http://localhost:1/",
                     config=write_config(tmp_path, server, "local.json", network={
                         "allowed_hosts": ["localhost"]}))
    [entry] = json.loads(resolved.stdout)["results"]
    assert entry["addresses"] and all(a["allowed"] for a in entry["addresses"])
    show = missy("policy", "show", config=config)
    assert show.returncode == 0
    assert "default_deny: true" in show.stdout
    assert f"127.0.0.1:{server.port}  (providers.claude.base_url)" in show.stdout
    shown = json.loads(missy("policy", "show", "--json", config=config).stdout)
    assert shown["allowed_domains"] == ["*.example.org"]


# --- config -----------------------------------------------------------------------------------


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"providers:\n  a:\n    name: anthropic\n    api_key: {CANARY}\n"
                   "  b:\n    name: olama\n    model: m\nnetwork:\n  default_deny: maybe\n")
    result = missy("config", "check", config=bad)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 4
    assert "missing required key 'model'" in lines[0] and "(at providers.a)" in lines[0]
    assert "unknown provider type 'olama'; did you mean 'ollama'" in lines[1]
    assert "(at network.default_deny)" in lines[2]
    assert lines[3] == f"3 problem(s) in {bad}"
    good = missy("config", "check", config=ROOT / "examples" / "config.yaml")
    assert good.returncode == 0
    assert good.stdout.endswith("ok (5 providers, 4 enabled)\n")


def test_config_init(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    result = missy("config", "init", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == (ROOT / "examples" / "config.yaml").read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it will hold keys
    again = missy("config", "init", str(target))
    assert again.returncode == 2 and "pass --force" in again.stderr
    assert missy("config", "init", str(target), "--force").returncode == 0
    via_env = missy("config", "check", MISSY_CONFIG=str(target))
    assert via_env.returncode == 0


def test_quiet_and_help() -> None:
    result = missy("--help")
    assert result.returncode == 0 and "exit codes: 0 ok" in result.stdout
    assert missy("providers", "-q", "-v").returncode == 2  # mutually exclusive
