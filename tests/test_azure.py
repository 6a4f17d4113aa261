"""Azure OpenAI replayed from recorded and documented exchanges (tests/data/azure/, sources
and licences in its README) against a loopback server: the v1 and deployment URLs, the
recorded requests sent again, a streamed tool loop, content filters as refusals (answers,
streams, HTTP 400s), the Responses API, and an Entra ID token file read when it changes and
once after a 401."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    AuthenticationError,
    ConfigError,
    ContentRefused,
    ProviderError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, Refusal, Tool, ToolResult

DATA = Path(__file__).parent / "data" / "azure"
SECRETS = Tool("secret_retrieval_tool", "A tool that requires a password to retrieve a secret.",
               {"properties": {"password": {"title": "Password", "type": "string"}},
                "required": ["password"], "additionalProperties": False, "type": "object"},
               strict=True)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def azure(server: LoopbackServer, model: str = "gpt-5-mini", **settings: Any) -> Any:
    key = {} if "token_file" in settings else {"api_key": "azure-key-0123456789"}
    config = config_from_dict({"providers": {"az": {
        "name": "azure-openai", "model": model, "base_url": server.url + "/openai/v1",
        "max_retries": 0, **key, **settings}}}, env={})
    return ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("az")


def answer(response: dict[str, Any]) -> Any:
    """Answer with a recorded response: its status, content type and body text as sent."""
    content_type = next((v for k, v in response.get("headers", {}).items()
                         if k.lower() == "content-type"), "application/json")
    body = response.get("body_text") or json.dumps(response["body"])
    headers = [(k, v) for k, v in response.get("headers", {}).items()
               if k.lower() in ("apim-request-id", "x-request-id", "x-ms-region")]
    return lambda ex: ex.send(response["status"], body, headers, content_type=content_type)


def test_a_streamed_tool_loop_replays_the_recorded_v1_exchange(server: LoopbackServer) -> None:
    turns = [load("chat-v1-stream-tool-calls"), load("chat-v1-stream-after-tool-result")]
    replies = iter(turns)
    server.reset(lambda ex: answer(next(replies)["response"])(ex))
    provider = azure(server)
    messages = [Message("system", "Use parallel tool calling."), Message(
        "user", "Please retrieve the secrets associated with each of these passwords: "
                "mellon,radiance")]
    with provider.complete_with_tools(messages, [SECRETS], stream=True) as stream:
        calls = [e.tool_call for e in stream.events() if e.type == "tool_call"]
    reply = stream.response
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("secret_retrieval_tool", {"password": "mellon"}),
        ("secret_retrieval_tool", {"password": "radiance"})]
    assert reply.model == "gpt-5-mini-2025-08-07" and reply.raw["id"].startswith("chatcmpl-")
    messages.append(reply.to_message())
    for call, result in zip(reply.tool_calls, ("Welcome to Moria!", "Life before Death"),
                            strict=True):
        messages.append(Message.tool(ToolResult(call.id, call.name, result)))
    final = provider.complete_with_tools(messages, [SECRETS], stream=True).response
    assert final.finish_reason == "stop" and final.usage["reasoning_tokens"] == 128
    assert "Moria" in final.content and final.refusal is None
    for request, turn in zip(server.requests, turns, strict=True):
        assert request.path == "/openai/v1/chat/completions"  # v1: no api-version
        assert request.json() == turn["request"]["body"]
        assert request.headers["api-key"] == "azure-key-0123456789"
        assert "authorization" not in request.headers
    assert calls == reply.tool_calls


def test_the_older_deployment_urls(server: LoopbackServer) -> None:
    for name in ("chat-deployments-2024-10-21-nonstream", "chat-deployments-2024-10-21-stream"):
        data = load(name)
        server.reset(answer(data["response"]))
        provider = azure(server, model="gpt-4o-mini", api_version="2024-10-21")
        ask = [Message("user", "What is 4200 + 42?")]
        reply = provider.stream(ask).response if "stream" in name[-6:] else \
            provider.complete(ask)
        assert "4242" in reply.content.replace(",", "") and reply.refusal is None
        assert server.requests[0].path == \
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        body = server.requests[0].json()
        assert {k: body[k] for k in ("model", "messages")} == {
            k: data["request"]["body"][k] for k in ("model", "messages")}
    preview = load("chat-deployments-2024-12-01-preview-nonstream")
    server.reset(answer(preview["response"]))
    named = azure(server, model="gpt-4o", api_version="2024-12-01-preview",
                  deployment="prod eu")
    assert named.complete([Message("user", "What is the capital of France?")]).content == \
        "The capital of France is **Paris**."
    assert server.requests[0].path == \
        "/openai/deployments/prod%20eu/chat/completions?api-version=2024-12-01-preview"


def test_a_recorded_answer_with_filter_results_is_not_a_refusal(server: LoopbackServer) -> None:
    data = load("chat-v1-nonstream-content-filter-results")
    server.reset(answer(data["response"]))
    reply = azure(server).complete([Message("user", "What is 4200 + 42?")], max_tokens=50)
    assert (reply.content, reply.refusal, reply.usage["total_tokens"]) == ("4242", None, 27)
    assert reply.request_id == data["response"]["headers"]["x-request-id"]
    assert server.requests[0].json()["max_completion_tokens"] == 50  # whatever the name
    server.reset(answer(load("chat-v1-stream-content-filter-results")["response"]))
    assert azure(server).stream([Message("user", "What is 4200 + 42?")]).response \
        .content == "4242"


@pytest.mark.parametrize("name, category", [
    ("error-400-content-filter-prompt-v1", "self_harm"),
    ("error-400-content-filter-prompt-v1-stream-requested", "self_harm"),
    ("error-400-content-filter-prompt-deployments", "self_harm"),
    ("responses-preview-error-400-content-filter", None),  # (no innererror there)
])
def test_a_filtered_prompt_is_content_refused(server: LoopbackServer, name: str,
                                              category: str | None) -> None:
    data = load(name)
    server.reset(answer(data["response"]))
    provider = azure(server, api="responses") if name.startswith("responses") else \
        azure(server)
    with pytest.raises(ContentRefused) as info:
        if "stream" in name:
            provider.stream([Message("user", "hi")])
        else:
            provider.complete([Message("user", "hi")])
    assert info.value.failure == "content_policy" and info.value.status == 400
    assert info.value.response.refusal.category == category
    flagged = data["response"]["body"]["error"].get("innererror", {}) \
        .get("content_filter_result", {})
    assert [k for k, v in flagged.items() if v.get("filtered")] == \
        ([category] if category else [])


def test_filtered_streams_are_refusals(server: LoopbackServer) -> None:
    """The asynchronous filter's documented stream: text, a stop, then annotation chunks (no
    delta, empty id) of which the last says content_filter."""
    server.reset(answer(load("doc-chat-stream-async-filter-blocked")["response"]))
    with azure(server, model="gpt-35-turbo", api_version="2024-10-21").stream(
            [Message("user", 'Tell me the lyrics to "Hey Jude".')]) as stream:
        text = "".join(stream)
    reply = stream.response
    assert text == reply.content and reply.content.startswith("Hey Jude")
    assert reply.refusal == Refusal(category="protected_material_text")
    assert (reply.finish_reason, reply.stop_reason) == ("stop", "content_filter")
    server.reset(answer(load("doc-chat-stream-async-filter-passes")["response"]))
    passed = azure(server).stream([Message("user", "hi")]).response
    assert passed.refusal is None and passed.content.startswith("Color is a")


def test_the_responses_api(server: LoopbackServer) -> None:
    data = load("responses-v1-nonstream-content-filters")
    server.reset(answer(data["response"]))
    provider = azure(server, model="gpt-5.5", api="responses")
    reply = provider.complete([Message("user", "What is the capital of France? Answer in one "
                                                "word.")])
    assert (reply.content, reply.refusal, reply.usage["reasoning_tokens"]) == ("Paris", None, 9)
    request = server.requests[0]
    assert request.path == "/openai/v1/responses"
    body = request.json()
    assert {k: body[k] for k in ("model", "input", "include")} == {
        k: data["request"]["body"][k] for k in ("model", "input", "include")}
    assert "instructions" not in body and body["store"] is False
    stream = load("responses-preview-stream-incomplete-content-filter")
    server.reset(answer(stream["response"]))
    preview = azure(server, model="gpt-4o-mini", api="responses",
                    api_version="2025-03-01-preview")
    filtered = preview.stream([Message("user", "hi")]).response
    assert server.requests[0].path == "/openai/responses?api-version=2025-03-01-preview"
    assert filtered.refusal == Refusal() and filtered.stop_reason == "content_filter"
    assert filtered.content == "I'm sorry, but I cannot assist with that request."


def test_an_unknown_deployment_is_a_plain_error(server: LoopbackServer) -> None:
    server.reset(answer(load("error-400-unknown-model-v1")["response"]))
    with pytest.raises(ProviderError, match="Unknown model") as info:
        azure(server, model="this-model-does-not-exist-12345").complete([Message("user", "x")])
    assert info.value.error_type == "unknown_model" and info.value.failure == "invalid_request"


def test_max_tokens_goes_by_the_name_every_azure_model_takes(server: LoopbackServer) -> None:
    """The recorded 400: a reasoning model refuses max_tokens. A deployment's name says
    nothing of its model, so we always send max_completion_tokens."""
    data = load("error-400-unsupported-parameter-v1")
    server.reset(answer(data["response"]))
    with pytest.raises(ProviderError, match="Unsupported parameter: 'max_tokens'"):
        azure(server).complete([Message("user", "List all U.S. states.")], max_tokens=50)
    sent = server.requests[0].json()
    assert data["request"]["body"]["max_tokens"] == sent["max_completion_tokens"] == 50
    assert "max_tokens" not in sent


# --- Entra ID access tokens from a file an agent keeps fresh --------------------------------

def token_file(tmp_path: Path, token: str, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    fresh = path.with_suffix(".new")
    fresh.write_text(token + "\n")
    os.chmod(fresh, mode)
    os.replace(fresh, path)  # as an agent rewrites it: atomically
    return path


def test_a_token_file_is_read_when_it_changes_and_once_after_a_401(
        server: LoopbackServer, tmp_path: Path) -> None:
    path = token_file(tmp_path, "eyJ0b2tlbi0x.first.token")
    seen: list[str] = []

    def handler(ex: Exchange) -> None:
        seen.append(ex.req.headers["authorization"])
        if ex.req.headers["authorization"].endswith("stale.token"):
            token_file(tmp_path, "eyJ0b2tlbi0z.third.token")  # the agent, just in time
            ex.json(401, {"error": {"code": "401", "message": "expired token"}})
            return
        ex.json(200, load("chat-v1-nonstream-content-filter-results")["response"]["body"])

    server.reset(handler)
    provider = azure(server, token_file=str(path))
    assert provider.credential_source() == f"token file {path}"
    assert provider.send_plan() == (0, 0, False, True)
    provider.complete([Message("user", "x")])
    token_file(tmp_path, "eyJ0b2tlbi0y.stale.token")
    provider.complete([Message("user", "x")])  # 401, read again, sent once more
    assert seen == ["Bearer eyJ0b2tlbi0x.first.token", "Bearer eyJ0b2tlbi0y.stale.token",
                    "Bearer eyJ0b2tlbi0z.third.token"]
    assert all("api-key" not in r.headers for r in server.requests)
    server.reset(lambda ex: ex.json(401, {"error": {"message": "no"}}))
    with pytest.raises(AuthenticationError):
        provider.complete([Message("user", "x")])
    assert len(server.requests) == 1  # the same token again is not sent again


def test_a_token_file_others_can_read_is_refused_at_load(tmp_path: Path) -> None:
    path = token_file(tmp_path, CANARY, mode=0o640)
    with pytest.raises(ConfigError, match="readable or writable by others") as info:
        config_from_dict({"providers": {"az": {"name": "azure-openai", "model": "m",
                                               "resource": "contoso",
                                               "token_file": str(path)}}}, env={})
    assert info.value.path == ("providers", "az", "token_file") and CANARY not in str(info.value)


def test_the_config_keys(tmp_path: Path) -> None:
    env = {"AZURE_OPENAI_API_KEY": "azure-env-key-123456"}
    plain = config_from_dict({"providers": {"az": {"name": "azure-openai", "model": "m",
                                                   "resource": "contoso"}}}, env=env)
    p = plain.providers["az"]
    assert (p.base_url, p.key_source, p.api) == ("https://contoso.openai.azure.com",
                                                 "env AZURE_OPENAI_API_KEY", "chat")
    portal = config_from_dict({"providers": {"az": {
        "name": "azure-openai", "model": "m",
        "base_url": "https://contoso.openai.azure.com/openai/v1/"}}}, env=env)
    assert portal.providers["az"].base_url == "https://contoso.openai.azure.com"
    for settings, problem in (
            ({}, "missing 'resource'"),
            ({"resource": "Contoso!"}, "an Azure resource name"),
            ({"resource": "c1", "deployment": "d"}, "give api_version too"),
            ({"resource": "c1", "api": "assistants"}, "one of chat, responses"),
            ({"resource": "c1", "api_key": "k-12345678", "token_file": str(tmp_path / "t")},
             "give api_key or token_file, not both")):
        with pytest.raises(ConfigError, match=problem):
            config_from_dict({"providers": {"az": {"name": "azure-openai", "model": "m",
                                                   **settings}}}, env={})
