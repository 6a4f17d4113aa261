"""Missy's call sites, driven with the arguments Missy passes, against loopback fakes of the
APIs. The numbers are the items of the survey of Missy's surface (MissyLabs/missy at
5632c314): runtime.py, cli/main.py, api/*, and the other modules that call the provider layer.
The config is Missy's own example (tests/data/missy/config.yaml) with its endpoints moved to
the loopback server. Missy's tool, output schema and provider shapes are re-created here from
the survey's description (no Missy code is used)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import CANARY
from loopback import Exchange, LoopbackServer
from test_providers import STREAMS

from missy_providers import registry as registry_module
from missy_providers.config import config_from_dict
from missy_providers.core.errors import ProviderError, UsageError
from missy_providers.events import CallEvent
from missy_providers.providers.base import BaseProvider
from missy_providers.providers.ollama import OllamaProvider
from missy_providers.registry import (
    ModelRouter,
    ProviderRegistry,
    RegistryNotInitialised,
    get_registry,
    init_registry,
)
from missy_providers.types import CompletionResponse, Message, ToolCall, ToolResult

DATA = Path(__file__).resolve().parent / "data" / "missy"
SYSTEM = "You are Missy, a helpful assistant."
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24


# --- the fakes: Anthropic, OpenAI and Ollama on one loopback server -----------------------------

def _text_reply(path: str, text: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {"type": "message", "id": "m", "model": "claude-x", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": 7, "output_tokens": 3}}
    if path == "/v1/chat/completions":
        return {"id": "c", "model": "gpt-x", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    return {"model": "llama3.2", "message": {"role": "assistant", "content": text},
            "done": True, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3}


def _tool_reply(path: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {"type": "message", "id": "m", "model": "claude-x", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "calculator",
                             "input": {"expression": "2+2"}}],
                "usage": {"input_tokens": 7, "output_tokens": 3}}
    return {"id": "c", "model": "gpt-x", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "calculator", "arguments": '{"expression": "2+2"}'}}]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


STREAM_OF = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai",
             "/api/chat": "ollama"}


def fake_apis(ex: Exchange) -> None:
    path = ex.req.path
    if path == "/api/tags":
        ex.json(200, {"models": [{"name": "llama3.2:latest"}]})
        return
    body = ex.req.json()
    if body.get("stream"):
        ex.start_chunked(content_type="application/x-ndjson" if path == "/api/chat" else
                         "text/event-stream")
        for piece in STREAMS[STREAM_OF[path]]:
            ex.chunk(piece)
        ex.end_chunked()
        return
    last = body["messages"][-1]
    answered = last.get("role") == "tool" or (isinstance(last.get("content"), list) and any(
        b.get("type") == "tool_result" for b in last["content"]))
    if body.get("tools") and not answered:
        ex.json(200, _tool_reply(path))
    elif body.get("response_format") or body.get("output_config") or body.get("format"):
        ex.json(200, _text_reply(path, '{"verdict": "pass"}'))
    else:
        ex.json(200, _text_reply(path, "4"))


def missy_config(server: LoopbackServer, **changes: Any) -> dict[str, Any]:
    """Missy's example config with its endpoints on the loopback server."""
    data: dict[str, Any] = yaml.safe_load((DATA / "config.yaml").read_text(encoding="utf-8"))
    providers = data["providers"]
    providers["anthropic"].update(base_url=server.url, max_retries=0)
    providers["openai"].update(base_url=server.url + "/v1", api_key="sk-test-openai-0001",
                               max_retries=0)
    providers["ollama"].update(base_url=server.url, max_retries=0)
    for name, settings in changes.items():
        providers[name].update(settings)
    return data


@pytest.fixture
def registry(server: LoopbackServer) -> Iterator[ProviderRegistry]:
    server.reset(fake_apis)
    config = config_from_dict(missy_config(server), env={"ANTHROPIC_API_KEY": CANARY})
    reg = ProviderRegistry(config)
    yield reg
    reg.close()


class MissyTool:
    """Shaped like Missy's BaseTool: name, description, per-parameter dicts, get_schema()."""

    name = "calculator"
    description = "Evaluate an arithmetic expression."
    parameters: ClassVar[dict[str, Any]] = {
        "expression": {"type": "string", "description": "e.g. 2+2", "required": True}}

    def get_schema(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": {
            "type": "object", "required": ["expression"],
            "properties": {"expression": {"type": "string", "description": "e.g. 2+2"}}}}


class Verdict:  # stands in for the pydantic model class of Missy's OutputSchema
    pass


class OutputSchema:
    """Shaped like Missy's OutputSchema (agent/structured_output.py)."""

    model_class = Verdict
    strict = True
    description = "A verdict."
    max_retries = 1

    def to_json_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"verdict": {"type": "string"}},
                "required": ["verdict"], "additionalProperties": False}


def events_of(registry: ProviderRegistry) -> list[CallEvent]:
    seen: list[CallEvent] = []
    registry.subscribe(seen.append)
    return seen


# --- 1A. runtime.py -----------------------------------------------------------------------------

def test_2_19_33_process_registry(server: LoopbackServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """get_registry() before init_registry() is a RuntimeError (Missy catches exactly that,
    items 51, 82); init_registry(config) replaces the process's registry."""
    monkeypatch.setattr(registry_module, "_PROCESS_REGISTRY", {})
    with pytest.raises(RuntimeError, match="not been initialised") as info:
        get_registry()
    assert isinstance(info.value, (RegistryNotInitialised, UsageError))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(missy_config(server)))
    first = init_registry(str(path))
    assert get_registry() is first
    second = init_registry(str(path))
    assert get_registry() is second and second is not first


def test_3_38_43_60_75_set_default(registry: ProviderRegistry) -> None:
    registry.set_default("anthropic")  # positional str; available (it has a key)
    assert registry.get_default_name() == "anthropic"
    for name, fragment in (("nope", "'nope' is not registered"),):
        with pytest.raises(ValueError, match=fragment):
            registry.set_default(name)
    registry.set_enabled("openai", False)
    with pytest.raises(ValueError, match="'openai' is disabled; enable it first"):
        registry.set_default("openai")
    registry.client.policy = type(registry.client.policy)()  # Ollama now unreachable
    with pytest.raises(ValueError, match="'ollama' is not available or its probe timed out"):
        registry.set_default("ollama")
    assert registry.get_default_name() == "anthropic"


def test_4_25_40_55_get_returns_none_for_an_unknown_name(registry: ProviderRegistry) -> None:
    provider = registry.get("anthropic")
    assert provider is not None and provider.is_available() is True
    assert registry.get("acpx") is None and registry.get("not-configured") is None


def test_5_26_select_weighted(server: LoopbackServer) -> None:
    server.reset(fake_apis)
    config = config_from_dict(missy_config(server, openai={"weight": 3},
                                           anthropic={"weight": 1},
                                           ollama={"weight": 0}),
                              env={"ANTHROPIC_API_KEY": CANARY})
    registry = ProviderRegistry(config)
    picks = [registry.select_weighted(exclude={"ollama"}).name for _ in range(8)]
    assert picks == ["openai", "anthropic", "openai", "openai"] * 2  # 3:1, spread out
    assert registry.select_weighted(exclude={"anthropic", "openai"}).name == "ollama"
    tried = {"anthropic"}
    assert registry.select_weighted(exclude=tried, only={"openai"}).name == "openai"
    assert registry.select_weighted(exclude=tried, only=set()) is None
    registry.close()


def test_7_stream_with_the_system_prompt_once(registry: ProviderRegistry,
                                             server: LoopbackServer) -> None:
    msg_objects = [Message("system", SYSTEM), Message("user", "hi")]
    chunks = list(registry.get("anthropic").stream(msg_objects, system=SYSTEM))
    assert "".join(chunks) == "Hello" and all(isinstance(c, str) for c in chunks)
    assert server.requests[-1].json()["system"] == SYSTEM


def test_8_9_10_11_12_tool_loop_with_native_dicts(registry: ProviderRegistry,
                                                  server: LoopbackServer) -> None:
    """The runtime's tool loop on a provider that accepts message dicts: three positional
    arguments, the system prompt also as the first dict; the assistant turn and the tool
    result go back as Missy builds them."""
    for name in ("anthropic", "openai"):
        target = registry.get(name)
        assert hasattr(target, "complete_with_tools")
        assert getattr(target, "accepts_message_dicts", False) is True
        loop = [{"role": "user", "content": "What is 2+2?"}]
        target_messages = [{"role": "system", "content": SYSTEM}, *loop]
        response = target.complete_with_tools(target_messages, [MissyTool()], SYSTEM)
        assert response.finish_reason == "tool_calls" and response.tool_calls
        tc = response.tool_calls[0]
        assert (tc.name, tc.arguments, sorted(tc.arguments.keys())) == (
            "calculator", {"expression": "2+2"}, ["expression"])
        loop.append({"role": "assistant", "content": response.content or "",
                     "tool_calls": [{"id": tc.id, "name": tc.name, "arguments": tc.arguments}]})
        loop.append({"role": "tool", "tool_call_id": tc.id, "name": tc.name, "content": "4",
                     "is_error": False})
        final = target.complete_with_tools([{"role": "system", "content": SYSTEM}, *loop],
                                           [MissyTool()], SYSTEM)
        assert final.finish_reason == "stop" and final.content == "4"
        sent = server.requests[-1].json()
        if name == "anthropic":
            assert sent["system"] == SYSTEM
            assert sent["messages"][1]["content"][0]["type"] == "tool_use"
            assert sent["messages"][2]["content"][0] == {"type": "tool_result",
                                                         "tool_use_id": tc.id, "content": "4"}
            assert sent["tools"][0]["input_schema"]["required"] == ["expression"]
        else:
            assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant",
                                                             "tool"]
            assert sent["messages"][2]["tool_calls"][0]["function"] == {
                "name": "calculator", "arguments": '{"expression": "2+2"}'}


def test_13_14_15_single_turn_with_metadata(registry: ProviderRegistry,
                                            server: LoopbackServer) -> None:
    seen = events_of(registry)
    for name in ("anthropic", "openai", "ollama"):
        target = registry.get(name)
        result = target.complete([Message("system", SYSTEM), Message("user", "hi")],
                                 session_id="5f0c-session", task_id="a1b2-task",
                                 temperature=0.7)
        usage = getattr(result, "usage", None) or {}
        assert (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)) == (7, 3)
        assert getattr(result, "model", "") and result.content == "4"
        sent = server.requests[-1]
        assert "5f0c-session" not in sent.body.decode() + repr(sent.headers)
    started = [e for e in seen if e.type == "call_started"]
    assert [(e.provider, e.fields["session_id"], e.fields["task_id"]) for e in started] == [
        (n, "5f0c-session", "a1b2-task") for n in ("anthropic", "openai", "ollama")]
    routed = registry.get("anthropic").complete([Message("user", "hi")], session_id="s",
                                                task_id="t", temperature=0.7, model="claude-y")
    assert routed.content == "4" and server.requests[-1].json()["model"] == "claude-y"
    with pytest.raises(UsageError, match="option session_id must be a string of at most 200"):
        registry.get("anthropic").complete([Message("user", "hi")], session_id=7)


def test_16_20_27_35_names_and_keys(registry: ProviderRegistry) -> None:
    provider = registry.get("openai")
    assert provider.name == "openai" and registry.key_for(provider) == "openai"
    assert registry.key_for(object()) is None


def test_21_22_private_configs_and_rotation(server: LoopbackServer) -> None:
    config = config_from_dict(missy_config(server, anthropic={
        "api_keys": ["sk-ant-first-0001", "sk-ant-second-0002"]}), env={})
    registry = ProviderRegistry(config)
    provider = registry.get("anthropic")
    registry_key = registry.key_for(provider) or provider.name
    pconfig = registry._provider_configs.get(registry_key)
    assert pconfig is not None and len(pconfig.api_keys) > 1
    registry.rotate_key(registry_key)
    key = provider.keys.current()
    assert key is not None and key.reveal() == "sk-ant-second-0002"


def test_23_tool_support_is_declared(registry: ProviderRegistry) -> None:
    """Missy tells tool-capable providers by method identity; ours share one implementation,
    so Missy reads supports_tools instead (a change on its side, README)."""
    for name in registry.list_providers():
        assert registry.get(name).supports_tools is True
    assert type(registry.get("ollama")).complete_with_tools is BaseProvider.complete_with_tools


def test_24_list_providers_is_sorted_names(registry: ProviderRegistry) -> None:
    names = registry.list_providers()
    assert names == ["anthropic", "ollama", "openai"]
    assert ", ".join(names) and set(names) == {"anthropic", "ollama", "openai"}
    assert registry.list_providers() is not names  # a new list each call


def test_29_30_model_routing_and_breaker_settings(server: LoopbackServer) -> None:
    config = config_from_dict(missy_config(server, anthropic={
        "fast_model": "claude-haiku-4-5", "premium_model": "claude-opus-4-6",
        "circuit_breaker_threshold": 3, "circuit_breaker_cooldown_seconds": 12}),
        env={"ANTHROPIC_API_KEY": CANARY})
    registry = ProviderRegistry(config)
    pconfig = registry.get_config("anthropic")
    router = ModelRouter()
    tier = router.score_complexity("what is 2+2", history_length=0, tool_count=0)
    assert router.select_model(pconfig, tier) == "claude-haiku-4-5"
    assert getattr(pconfig, "circuit_breaker_threshold", None) == 3
    assert getattr(pconfig, "circuit_breaker_cooldown_seconds", None) == 12
    assert registry.get_config("nope") is None


def test_34_76_77_85_summarizer_condenser_judge_calls(registry: ProviderRegistry,
                                                      server: LoopbackServer) -> None:
    provider = registry.get("anthropic")
    summary = provider.complete([Message(role="user", content="summarise")], temperature=0.2,
                                max_tokens=4096)
    assert (summary.content or "") == "4"
    condensed = provider.complete([Message("user", "pick")], system="Answer with indices.",
                                  model="claude-haiku-4-5")
    assert condensed.content.strip() == "4"
    assert server.requests[-1].json()["system"] == "Answer with indices."
    judged = provider.complete([Message("user", "judge")], temperature=0.0, model="m2")
    assert str(getattr(judged, "content", "") or "") == "4"


# --- 1B. cli/main.py -------------------------------------------------------------------------

def test_39_42_providers_list(server: LoopbackServer) -> None:
    config = config_from_dict(missy_config(server, openai={
        "api_key": None, "api_keys": ["sk-one-00000001", "sk-two-00000002"],
        "key_rotation_strategy": "round_robin"}, ollama={"enabled": False}),
        env={"ANTHROPIC_API_KEY": CANARY})
    config_data = missy_config(server)
    registry = ProviderRegistry(config)
    rows = {}
    for key in config_data["providers"]:
        provider = registry.get(key)
        if provider is None:
            rows[key] = "not loaded"
            continue
        try:
            available = provider.is_available()
        except Exception:
            available = False
        if getattr(provider, "is_multi_account", False):
            rows[key] = f"round_robin ({provider.account_count} accounts) {available}"
        else:
            rows[key] = f"single {available}"
    assert rows == {"anthropic": "single True", "openai": "round_robin (2 accounts) True",
                    "ollama": "not loaded"}


def test_44_47_48_status_doctor_watchdog(registry: ProviderRegistry) -> None:
    assert bool(registry.get_available()) is True
    assert ", ".join(registry.list_providers()) == "anthropic, ollama, openai"
    for name in registry.list_providers():
        p = registry.get(name)
        assert (p.is_available() if p else False) is True


def test_52_83_benchmark_runner_keywords(registry: ProviderRegistry) -> None:
    response = registry.get("openai").complete_with_tools(
        [Message("user", "What is 2+2?")], tools=[MissyTool()], system="")
    call = response.tool_calls[0]
    assert (call.name, dict(call.arguments)) == ("calculator", {"expression": "2+2"})
    assert response.usage.get("total_tokens") == 10 and response.model == "gpt-x"


# --- 1C. api/* -------------------------------------------------------------------------------

def test_53_54_56_57_58_65_70_diagnostics_and_operator_reads(registry: ProviderRegistry
                                                            ) -> None:
    assert list(registry.list_providers()) == ["anthropic", "ollama", "openai"]
    assert (registry.get_default_name() or "") == ""  # no default_provider in the file
    names = set(registry.list_providers())
    assert "openai" in names and "missing" not in names
    for name in names:
        report = registry.get(name).diagnostics()
        assert isinstance(report, dict) and report["provider"] == name
        for item in report.get("checks", []) or []:
            assert isinstance(item, dict)
            assert item.get("name", "diagnostic") and str(item.get("status", "warn")) in (
                "ok", "warn", "error")
            assert "summary" in item
        assert CANARY not in json.dumps(report)
    checks = {c["name"]: c for c in registry.get("anthropic").diagnostics()["checks"]}
    assert checks["credentials"]["summary"] == "env ANTHROPIC_API_KEY"
    assert checks["network_policy"]["status"] == "ok"


def test_59_60_62_63_operator_controls(registry: ProviderRegistry) -> None:
    assert registry.get("ollama").is_available() is True
    registry.set_default("ollama")
    assert bool(registry.is_enabled("openai")) is True
    registry.set_enabled("openai", False)
    assert registry.is_enabled("openai") is False
    assert [p.name for p in registry.get_available()] == ["anthropic", "ollama"]
    registry.set_enabled("openai", True)
    with pytest.raises(ValueError, match="is the current default"):
        registry.set_enabled("ollama", False)
    with pytest.raises(ValueError, match="'nope' is not registered"):
        registry.set_enabled("nope", True)
    assert registry.is_enabled("nope") is False


def test_62_63_never_enables_what_the_config_disabled(server: LoopbackServer) -> None:
    config = config_from_dict(missy_config(server, ollama={"enabled": False}),
                              env={"ANTHROPIC_API_KEY": CANARY})
    registry = ProviderRegistry(config)
    assert registry.is_enabled("ollama") is False
    with pytest.raises(ValueError, match=r"disabled in the config .* never enables it"):
        registry.set_enabled("ollama", True)
    assert registry.get("ollama") is None and "ollama" not in registry.list_providers()


def test_67_69_weights_and_provider_rows(server: LoopbackServer) -> None:
    config = config_from_dict(missy_config(server, ollama={"weight": 0}),
                              env={"ANTHROPIC_API_KEY": CANARY})
    registry = ProviderRegistry(config)
    assert getattr(registry.get_config("ollama"), "weight", 1.0) == 0.0
    assert getattr(registry.get_config("openai"), "weight", 1.0) == 1.0
    for name in registry.list_providers():
        config_of = registry.get_config(name)
        assert getattr(config_of, "model", "")
        assert bool(getattr(config_of, "api_key", None)) is (name != "ollama")
        assert int(getattr(registry.get(name), "account_count", 0) or 0) == 0
        assert getattr(config_of, "key_rotation_strategy", "") == "failover"


def test_68_71_status_and_new_sessions(registry: ProviderRegistry) -> None:
    assert [p.name for p in registry.get_available()] == ["anthropic", "openai", "ollama"]
    assert (registry.get_default_name() or "anthropic") == "anthropic"


def test_availability_probes_are_parallel_and_bounded(registry: ProviderRegistry,
                                                      server: LoopbackServer) -> None:
    """Missy waits at most AVAILABILITY_BULK_DEADLINE_SECONDS for the probes: a stalled one
    is unavailable this time, and the others are not held up."""
    release = threading.Event()

    def stalled(ex: Exchange) -> None:
        if ex.req.path == "/api/tags":
            release.wait(5)
        fake_apis(ex)

    server.reset(stalled)
    try:
        assert [p.name for p in registry.get_available()] == ["anthropic", "openai"]
    finally:
        release.set()


# --- 1D. other modules -----------------------------------------------------------------------

def test_74_hot_reload_dry_run_then_init(server: LoopbackServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_PROCESS_REGISTRY", {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(missy_config(server)))
    ProviderRegistry.from_config(str(path))  # the dry run: a bad file stops the reload here
    init_registry(str(path))
    assert get_registry().get_default_name() is None  # a fresh registry: Missy seeds it
    path.write_text("providers:\n  anthropic:\n    modle: x\n")
    with pytest.raises(ValueError, match="unknown key 'modle'"):
        ProviderRegistry.from_config(str(path))


def test_78_82_first_available_then_complete(registry: ProviderRegistry) -> None:
    provider = None
    for name in registry.list_providers():
        candidate = registry.get(name)
        if candidate is not None and candidate.is_available():
            provider = candidate
            break
    assert provider is not None
    response = provider.complete([Message(role="user", content="hi")])
    assert getattr(response, "content", "").strip() == "4" and getattr(response, "model", "")


def test_79_structured_output(registry: ProviderRegistry, server: LoopbackServer) -> None:
    for name in ("anthropic", "openai", "ollama"):
        provider = registry.get(name)
        native = dict(provider.structured_output_kwargs(OutputSchema()) or {})
        assert native["schema_name"] == "Verdict"
        response = provider.complete([Message("user", "judge this")],
                                     system=f"{SYSTEM}\nAnswer in JSON.", **native)
        assert response.parsed == {"verdict": "pass"}
    assert server.requests[-1].json()["format"]["required"] == ["verdict"]
    with pytest.raises(UsageError, match="takes a JSON Schema mapping or an object with "
                       "to_json_schema"):
        registry.get("openai").structured_output_kwargs(42)


def test_80_vision_direct_ollama_and_image_parts(registry: ProviderRegistry,
                                                 server: LoopbackServer) -> None:
    direct = OllamaProvider({"model": "llama3.2", "base_url": server.url})
    try:
        assert direct.is_available() is True
        b64 = base64.b64encode(PNG).decode()
        for block in ({"type": "image_url", "image_url": {
                          "url": f"data:image/jpeg;base64,{b64}", "detail": "auto"}},
                      {"type": "image", "source": {"type": "base64",
                                                   "media_type": "image/jpeg", "data": b64}}):
            messages = [Message(role="user", content=[  # type: ignore[list-item]
                block, {"type": "text", "text": "What is this?"}])]
            response = direct.complete(messages, session_id="s", task_id="t")
            assert response.content == "4"
            sent = server.requests[-1].json()["messages"][0]
            assert sent["images"] == [b64] and sent["content"] == "What is this?"
    finally:
        direct.close()
    names = [p.name for p in registry.get_available() if p.name != "acpx"]
    assert names == ["anthropic", "openai", "ollama"]


def test_84_a_host_provider_subclass(registry: ProviderRegistry) -> None:
    """Missy's MockToolProvider: a BaseProvider subclass with a class-level name, its own
    __init__ that never calls ours, complete / is_available / complete_with_tools."""

    class MockToolProvider(BaseProvider):
        name = "mock"  # type: ignore[assignment]

        def __init__(self, call_tool: bool = True) -> None:
            self.call_tool = call_tool

        def is_available(self) -> bool:
            return True

        def complete(self, messages: Any, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(content="done", model="mock-1", provider=self.name,
                                      usage={"prompt_tokens": 1, "completion_tokens": 1},
                                      raw={})

        def complete_with_tools(self, messages: Any, tools: Any, system: str = "",
                                **kw: Any) -> CompletionResponse:
            schema = tools[0].get_schema()["parameters"]
            return CompletionResponse(content="", model="mock-1", provider=self.name,
                                      usage={}, raw={}, finish_reason="tool_calls",
                                      tool_calls=[ToolCall(id="t1", name=tools[0].name,
                                                           arguments={k: "x" for k in
                                                                      schema["properties"]})])

    mock = MockToolProvider()
    registry.register("mock", mock)
    registry.register("mock", mock)  # the same object again: nothing happens
    with pytest.raises(ValueError, match="'mock' is already registered"):
        registry.register("mock", MockToolProvider())
    assert registry.get("mock") is mock and "mock" in registry.list_providers()
    assert registry.get_config("mock") is None
    assert registry.key_for(mock) == "mock"
    reply = mock.complete_with_tools([Message("user", "go")], [MissyTool()], system="")
    assert reply.tool_calls[0].arguments == {"expression": "x"}
    assert isinstance(mock, BaseProvider) and ToolResult("t1", "calculator", "4").content == "4"


def test_empty_registry_and_register(server: LoopbackServer) -> None:
    """Missy's ProviderRegistry() with no arguments, filled by register()."""
    server.reset(fake_apis)
    empty = ProviderRegistry()
    assert empty.list_providers() == [] and empty.get_available() == []
    assert empty.select_weighted() is None and empty.get_default_name() is None
    direct = OllamaProvider({"model": "llama3.2", "base_url": server.url})
    config = {"weight": 2.0}
    empty.register("local", direct, config=config)
    config["weight"] = 9.0  # the registry keeps its own copy
    assert empty.get_config("local") == {"weight": 2.0}
    assert empty.select_weighted() is direct and empty.provider("local") is direct
    with pytest.raises(ValueError, match="already registered with different config"):
        empty.register("local", direct, config={"weight": 1.0})
    direct.close()


def test_failure_words_reach_missy(registry: ProviderRegistry, server: LoopbackServer) -> None:
    """What Missy's runtime sees on a failed call: one of our ProviderErrors, with its class
    in .failure and in words (the table of every class is in test_failure_classes)."""
    server.reset(lambda ex: ex.json(401, {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}))
    with pytest.raises(ProviderError) as info:
        registry.get("anthropic").complete([Message("user", "hi")], session_id="s",
                                           task_id="t", temperature=0.7)
    assert info.value.failure == "auth"
    assert "authentication failed" in str(info.value).lower()


def test_the_readme_glue_gives_missy_its_module_paths(tmp_path: Path,
                                                      server: LoopbackServer) -> None:
    """The glue in the README, written into a stand-in ``missy`` tree file by file: Missy's
    module paths then give our objects, and a Missy-style start-up runs on them."""
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Using it as Missy's provider layer"):]
    start = section.index("```py\n") + 6
    block = section[start:section.index("```\n", start)]
    files: dict[str, list[str]] = {}
    current = ""
    for line in block.splitlines():
        if line.startswith("# missy/"):
            current = line.split()[1].rstrip(":")
            files[current] = []
        elif line.startswith("# where"):
            current = ""  # Missy's start-up code, not a file
        elif current and line:
            files[current].append(line)
    assert sorted(files) == ["missy/core/exceptions.py", "missy/providers/base.py",
                             "missy/providers/ollama_provider.py",
                             "missy/providers/registry.py"]
    for name, lines in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n")
    for package in ("missy", "missy/core", "missy/providers"):
        (tmp_path / package / "__init__.py").touch()
    server.reset(fake_apis)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(missy_config(server)))
    script = f"""
from missy.core.exceptions import ProviderError
from missy.providers.base import BaseProvider, CompletionResponse, Message, ToolCall, ToolResult
from missy.providers.ollama_provider import OllamaProvider
from missy.providers.registry import ModelRouter, ProviderRegistry, get_registry, init_registry
import missy_providers
assert ProviderError is missy_providers.ProviderError
assert BaseProvider is missy_providers.BaseProvider
init_registry({str(config)!r})
registry = get_registry()
reply = registry.get("ollama").complete([Message("user", "hi")], session_id="s", task_id="t",
                                        temperature=0.7)
print(registry.list_providers(), reply.content, isinstance(registry.get("ollama"), OllamaProvider))
"""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path,
                            env={"PYTHONPATH": f"{tmp_path}:{root}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['anthropic', 'ollama', 'openai'] 4 True\n"
