"""count_tokens (the API's own endpoint through the policy client within a call budget, else the
estimate, saying which) and model_info (what the API says, None where it says nothing), from
recorded exchanges and documented or schema-derived answers (tests/data/dialects/); and the
CLI's `missy count` and `missy models --long`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import loopback_provider
from dialect_data import load, send_answer
from loopback import Exchange, LoopbackServer
from test_cli_commands import missy, write_config

from missy_providers.core.errors import PolicyViolation, ProviderError, UsageError
from missy_providers.types import Message, ModelInfo, TokenCount, Tool


def test_anthropic_count_tokens_recorded(server: LoopbackServer) -> None:
    data = load("anthropic-count-tokens")
    counted, call = data["exchanges"]
    server.reset(lambda ex: send_answer(ex, counted["response"]))
    provider = loopback_provider(server, "anthropic")
    recorded = counted["request"]["body"]
    spec = recorded["tools"][0]
    tool = Tool(spec["name"], spec["description"], spec["input_schema"])
    result = provider.count_tokens([Message("user", "What is the capital of France?")], [tool],
                                   model=recorded["model"])
    assert result == TokenCount(671, True, "POST /v1/messages/count_tokens")
    assert result.tokens == call["response"]["body"]["usage"]["input_tokens"]  # the same 671
    [sent] = server.requests
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["x-api-key"] == "sk-test-123456"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    body = sent.json()
    assert body == {"model": "claude-opus-4-6", "messages": [
        {"role": "user", "content": "What is the capital of France?"}], "tools": recorded["tools"]}
    assert "max_tokens" not in body and "stream" not in body  # not accepted there


def test_anthropic_count_tokens_404_recorded(server: LoopbackServer) -> None:
    data = load("anthropic-count-tokens-error-404")
    server.reset(lambda ex: send_answer(ex, data["response"]))
    provider = loopback_provider(server, "anthropic")
    with pytest.raises(ProviderError) as info:
        provider.count_tokens("hello", model="claude-does-not-exist")
    assert info.value.status == 404 and info.value.error_type == "not_found_error"
    assert info.value.message.startswith("model or endpoint not found: model: "
                                         "claude-does-not-exist")
    assert info.value.request_id == "req_011CVEA3SF7rnb3DuBZytqQa"


def test_responses_input_tokens_recorded(server: LoopbackServer) -> None:
    data = load("responses-input-tokens")
    server.reset(lambda ex: send_answer(ex, data["response"]))
    provider = loopback_provider(server, "openai-codex")  # an api_key: the public API
    result = provider.count_tokens([Message("user", "")], system="Follow the system "
                                                                 "instructions.",
                                   model="gpt-4.1-mini")
    assert result == TokenCount(16, True, "POST /responses/input_tokens")
    [sent] = server.requests
    assert sent.path == "/v1/responses/input_tokens"
    assert sent.json() == data["request"]["body"]  # exactly the recorded request


@pytest.mark.parametrize("ptype, settings", [
    ("openai", {}), ("ollama", {}),
    ("openai-codex", {"base_url": "https://chatgpt.com/backend-api/codex"})])
def test_count_tokens_estimates_where_the_api_cannot_count(server: LoopbackServer, ptype: str,
                                                          settings: dict[str, Any]) -> None:
    provider = loopback_provider(server, ptype, **settings)
    tool = Tool("now", "the time", {})
    schema_chars = len(json.dumps(provider.get_tool_schema([tool])))
    result = provider.count_tokens([Message("user", "x" * 400)], [tool], system="y" * 40)
    assert result == TokenCount(100 + 1 + 10 + schema_chars // 4, False, "estimate")
    assert server.requests == []


def test_count_tokens_goes_through_the_policy_and_the_call_budget(server: LoopbackServer
                                                                  ) -> None:
    server.reset(lambda ex: ex.json(500, {"error": {"message": "down"}}))
    provider = loopback_provider(server, "anthropic", max_retries=1)
    provider.sleep = lambda seconds: None
    with pytest.raises(ProviderError, match="down"):
        provider.count_tokens("hi")
    assert len(server.requests) == 2  # one try and the one retry this call allows
    denied = loopback_provider(server, "anthropic", base_url="http://127.0.0.2:9")
    server.reset()
    with pytest.raises(PolicyViolation):
        denied.count_tokens("hi")
    with pytest.raises(UsageError, match="messages is empty"):
        provider.count_tokens([])


# --- model_info -------------------------------------------------------------------------------

def test_anthropic_model_info_schema_derived(server: LoopbackServer) -> None:
    data = load("anthropic-model-info-schema-derived")
    server.reset(lambda ex: send_answer(ex, data["response"]))
    provider = loopback_provider(server, "anthropic")
    info = provider.model_info("claude-haiku-4-5-20251001")
    path = "/v1/models/claude-haiku-4-5-20251001"
    assert server.requests[0].path == path and server.requests[0].method == "GET"
    assert info == ModelInfo("claude-haiku-4-5-20251001", 200000, 64000, vision=True,
                             tools=None, thinking=True, structured_output=True,
                             source=f"GET {path}")
    bare = {"type": "model", "id": "claude-old", "display_name": "Old", "created_at": "x"}
    server.reset(lambda ex: ex.json(200, {"data": [bare, data["response"]["body"]]}))
    assert provider.list_model_info() == [ModelInfo("claude-old", source="GET /v1/models"),
                                          ModelInfo(**{**info.as_dict(),
                                                       "source": "GET /v1/models"})]


def test_ollama_model_info_documented(server: LoopbackServer) -> None:
    data = load("ollama-show-docs")
    server.reset(lambda ex: send_answer(ex, data["response"]))
    provider = loopback_provider(server, "ollama")
    info = provider.model_info("llava")
    assert (server.requests[0].method, server.requests[0].path) == ("POST", "/api/show")
    assert server.requests[0].json() == data["request"]["body"]
    assert info == ModelInfo("llava", 8192, None, vision=True, tools=False, thinking=False,
                             structured_output=None, source="POST /api/show")


def test_ollama_list_model_info_from_tags(server: LoopbackServer) -> None:
    """v0.30 /api/tags entries carry capabilities and details.context_length; an entry of an
    older server says less (None: unknown), and is not asked with /api/show one by one (the
    server would choose how many requests the call sends); model_info(name) asks it."""
    show = load("ollama-show-docs")["response"]["body"]

    def answer(ex: Exchange) -> None:
        if ex.req.path == "/api/tags":
            ex.json(200, {"models": [
                {"name": "qwen3:8b", "model": "qwen3:8b", "capabilities": [
                    "completion", "tools", "thinking"], "details": {
                    "format": "gguf", "family": "qwen3", "context_length": 40960}},
                {"name": "llava:latest", "model": "llava:latest", "details": {}}]})
        else:
            ex.json(200, show)

    server.reset(answer)
    provider = loopback_provider(server, "ollama")
    infos = provider.list_model_info()
    assert infos == [ModelInfo("qwen3:8b", 40960, vision=False, tools=True, thinking=True,
                               source="GET /api/tags"),
                     ModelInfo("llava:latest", None, source="GET /api/tags")]
    assert [r.path for r in server.requests] == ["/api/tags"]
    assert provider.model_info("llava:latest") == ModelInfo(
        "llava:latest", 8192, vision=True, tools=False, thinking=False, source="POST /api/show")


def test_compatible_model_info_from_the_list(server: LoopbackServer) -> None:
    """OpenAI's own entry says nothing of windows or capabilities; OpenRouter's, Groq's and
    vLLM's fields are read where they are."""
    entries = [
        {"id": "gpt-4o", "object": "model", "created": 1686935002, "owned_by": "openai"},
        {"id": "anthropic/claude-sonnet-4.5", "context_length": 1000000,
         "architecture": {"input_modalities": ["text", "image"]},
         "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000},
         "supported_parameters": ["tools", "reasoning", "structured_outputs"]},
        {"id": "llama-3.3-70b-versatile", "context_window": 131072,
         "max_completion_tokens": 32768},
        {"id": "Qwen/Qwen3-8B", "max_model_len": 32768}]
    server.reset(lambda ex: ex.json(200, {"object": "list", "data": entries}))
    provider = loopback_provider(server, "openai")
    source = "GET /models"
    assert provider.model_info("gpt-4o") == ModelInfo("gpt-4o", source=source)
    assert provider.model_info("anthropic/claude-sonnet-4.5") == ModelInfo(
        "anthropic/claude-sonnet-4.5", 1000000, 64000, vision=True, tools=True, thinking=True,
        structured_output=True, source=source)
    assert provider.model_info("llama-3.3-70b-versatile") == ModelInfo(
        "llama-3.3-70b-versatile", 131072, 32768, source=source)
    assert provider.model_info("Qwen/Qwen3-8B").context_window == 32768
    with pytest.raises(ProviderError, match="model 'gpt-9' is not in the list of /models"):
        provider.model_info("gpt-9")
    chatgpt = loopback_provider(server, "openai-codex",
                                base_url="https://chatgpt.com/backend-api/codex")
    with pytest.raises(UsageError, match="has no endpoint that lists models"):
        chatgpt.model_info()


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_count(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, {"input_tokens": 12}))
    config = write_config(tmp_path, server)
    result = missy("count", "--provider", "claude", "--system", "Be brief", "Hello there",
                   config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "12 tokens (counted by POST /v1/messages/count_tokens; claude)\n"
    assert server.requests[0].json()["system"] == "Be brief"
    as_json = json.loads(missy("count", "--provider", "local", "--json", config=config,
                               stdin="x" * 80).stdout)
    assert as_json == {"provider": "local", "tokens": 21, "exact": False,
                       "source": "estimate"}
    assert len(server.requests) == 1  # the estimate contacts nothing


def test_cli_models_long(server: LoopbackServer, tmp_path: Path) -> None:
    info = load("anthropic-model-info-schema-derived")["response"]["body"]

    def models(ex: Exchange) -> None:
        if ex.req.path == "/v1/models":
            ex.json(200, {"data": [info]})
        else:
            ex.json(200, {"models": [{"name": "qwen3:8b", "capabilities": ["tools"],
                                      "details": {"context_length": 40960}}]})

    server.reset(models)
    config = write_config(tmp_path, server)
    result = missy("models", "--long", config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "claude\tclaude-haiku-4-5-20251001\tcontext 200000\toutput 64000\tvision=yes,tools=-,"
        "thinking=yes,structured_output=yes",
        "local\tqwen3:8b\tcontext 40960\toutput -\tvision=no,tools=yes,thinking=no,"
        "structured_output=-"]
    as_json = json.loads(missy("models", "--long", "--json", "--provider", "local",
                               config=config).stdout)
    assert as_json["providers"]["local"]["models"][0]["context_window"] == 40960
