"""README claims that no other test proved, each against real 127.0.0.1 servers: the test
named beside a sentence of README.md asserts exactly that sentence."""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY, loopback_client, loopback_provider
from loopback import Counter, Exchange, LoopbackServer
from test_cli_commands import missy, write_config

import missy_providers
from missy_providers.config import config_from_dict
from missy_providers.content import Image, Text
from missy_providers.core.errors import (
    AllProvidersFailed,
    AuthenticationError,
    ConfigError,
    ContentRefused,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(missy_providers.__file__).resolve().parent
README = ROOT / "README.md"
ANSWER = {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"content": "ok"}}]}


def answer(ex: Exchange) -> None:
    ex.json(200, ANSWER)


def registry(providers: dict[str, Any], **top: Any) -> ProviderRegistry:
    config = config_from_dict({"providers": providers, **top}, env={})
    return ProviderRegistry(config, loopback_client())


# --- Images, documents and caching ------------------------------------------------------------

def test_an_image_url_is_sent_for_the_server_to_fetch_never_fetched(server: LoopbackServer
                                                                     ) -> None:
    """The image's host is allowed by the policy too: only the client's choice keeps it from
    being fetched."""
    images = LoopbackServer()
    try:
        images.reset(lambda ex: ex.send(200, b"\x89PNG\r\n\x1a\n", content_type="image/png"))
        server.reset(answer)
        url = f"{images.url}/cat.png"
        reply = loopback_provider(server, "openai").complete(
            [Message("user", [Text("What is this?"), Image.from_url(url)])])
        assert reply.content == "ok"
        sent = server.requests[0].json()["messages"][0]["content"]
        assert sent[1] == {"type": "image_url", "image_url": {"url": url}}
        time.sleep(0.05)
        assert images.connections == 0 and images.requests == []
    finally:
        images.stop()


# --- Headers and provider options -------------------------------------------------------------

@pytest.mark.parametrize("ptype, header", [
    ("openai", "OpenAI-Organization"), ("openai", "openai-project"),
    ("openai-codex", "chatgpt-account-id"), ("anthropic", "anthropic-version"),
    ("ollama", "Authorization"),
])
def test_each_providers_own_headers_are_refused(server: LoopbackServer, ptype: str,
                                                header: str) -> None:
    with pytest.raises(ConfigError, match=f"providers.p.headers.{header}"):
        config_from_dict({"providers": {"p": {"name": ptype, "model": "m",
                                              "headers": {header: "x"}}}}, env={})
    with pytest.raises(UsageError, match="set by the client itself"):
        loopback_provider(server, ptype).complete("hi", headers={header: "x"})
    assert server.requests == []


# --- the options table: "-" is an unknown option ----------------------------------------------

TABLE_TYPES = ("anthropic", "openai", "openai-codex", "ollama")  # the table's columns, in order
VALUES = {"prompt_cache_key": "tenant-42", "reasoning_budget": 2048,
          "reasoning_summary": "auto", "think": True}


def dashes_in_the_options_table() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| option | Anthropic |"):].split("\n\n", 1)[0]
    found = []
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        options = re.findall(r"`(\w+)`", cells[0])
        found += [(ptype, option) for ptype, cell in zip(TABLE_TYPES, cells[1:], strict=True)
                  if cell == "-" for option in options]
    return found


def test_the_options_table_has_its_dashes() -> None:
    assert len(dashes_in_the_options_table()) >= 10


@pytest.mark.parametrize("ptype, option", dashes_in_the_options_table())
def test_every_dash_in_the_options_table_is_an_unknown_option(server: LoopbackServer,
                                                              ptype: str, option: str) -> None:
    with pytest.raises(UsageError, match=f"unknown option.*{option}"):
        loopback_provider(server, ptype).complete("hi", **{option: VALUES[option]})
    assert server.requests == []


# --- Network policy ---------------------------------------------------------------------------

def test_plain_http_through_a_proxy_is_refused_when_sent() -> None:
    """A client built without the config's check (PolicyHTTPClient directly) still refuses to
    hand a plain http:// request to the proxy: neither the proxy nor the target hears of it."""
    proxy, target = Counter(), Counter()
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]),
                                  proxy=f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(PolicyViolation, match="allow_plain_http_proxy"):
            client.request("POST", f"http://127.0.0.1:{target.port}/v1", json={})
        time.sleep(0.1)
        assert (proxy.accepted, target.accepted) == (0, 0)
    finally:
        proxy.stop()
        target.stop()


def test_the_pool_keeps_at_most_max_async_workers_idle_connections(server: LoopbackServer
                                                                   ) -> None:
    def short(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk("data: a\n\n")
        ex.end_chunked()

    server.reset(short)
    client = loopback_client(max_async_workers=2)
    try:
        responses = [client.request("GET", server.url + "/", stream=True) for _ in range(3)]
        assert server.connections == 3 and client.idle_connections() == 0
        for response in responses:
            with response:
                assert b"".join(response.iter_raw()) == b"data: a\n\n"
        assert client.idle_connections() == 2  # the third went back to a full pool: closed
    finally:
        client.close()
    default = loopback_client()
    assert default.max_async_workers == 64


def test_a_non_streamed_body_is_limited_to_50_mib(server: LoopbackServer) -> None:
    def declares(size: int) -> Any:
        def handler(ex: Exchange) -> None:
            ex.raw(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n{{".encode())
            time.sleep(0.2)
            ex.hang_up()
        return handler

    client = loopback_client()
    assert client.max_body_bytes == 50 * 2**20
    server.reset(declares(50 * 2**20 + 1))
    with pytest.raises(ProtocolError, match=f"declares {50 * 2**20 + 1} bytes"):
        client.request("GET", server.url + "/")


def test_an_address_refusal_is_audited_with_the_address() -> None:
    records: list[dict[str, Any]] = []
    target = Counter()
    port = target.port
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"]),
                                  resolver=lambda host, port: ["127.0.0.1"],
                                  audit=records.append)
        with pytest.raises(PolicyViolation, match="DNS rebinding"):
            client.request("GET", f"http://api.example.com:{port}/v1/x?key={CANARY}",
                           headers={"authorization": f"Bearer {CANARY}"})
    finally:
        target.stop()
    assert target.accepted == 0
    allowed, refused = records[1:]  # records[0]: the effective policy, when built
    assert set(allowed) == {"time", "method", "allowed", "reason", "rule", "scheme", "host",
                            "port", "path"}
    assert (allowed["allowed"], allowed["path"], allowed["port"]) == (True, "/v1/x", port)
    assert set(refused) == set(allowed) | {"address"}
    assert (refused["allowed"], refused["address"], refused["method"]) == (False, "127.0.0.1",
                                                                           "GET")
    with pytest.raises(PolicyViolation, match="credentials in the URL"):
        client.request("GET", f"http://user:{CANARY}@api.example.com/")
    malformed = records[-1]
    assert (malformed["url"], malformed["rule"]) == ("<unparseable>", "url")
    assert "host" not in malformed and "path" not in malformed
    assert CANARY not in json.dumps(records)


# --- Failures and retries ---------------------------------------------------------------------

def test_a_403_moves_to_the_next_key_at_once(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(403, {"error": {"message": "forbidden"}})
                 if ex.req.headers["authorization"] == "Bearer sk-first-key-1234" else
                 answer(ex))
    provider = loopback_provider(server, "openai", api_key=None,
                                 api_keys=["sk-first-key-1234", "sk-second-key-123"])
    provider.sleep = lambda seconds: pytest.fail("a key's refusal moves on without a wait")
    assert provider.complete("hi").content == "ok"
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-first-key-1234", "Bearer sk-second-key-123"]
    assert provider.complete("hi").content == "ok"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-second-key-123"


def test_a_fallback_chain_skips_a_provider_without_credentials(server: LoopbackServer) -> None:
    server.reset(answer)
    reg = registry({"nokey": {"name": "anthropic", "model": "m", "base_url": server.url + "/a"},
                    "b": {"name": "openai", "model": "m", "base_url": server.url + "/b",
                          "api_key": "sk-b-key-123456"}}, fallback=["nokey", "b"])
    assert reg.complete("hi").content == "ok"
    assert [r.path for r in server.requests] == ["/b/chat/completions"]
    alone = registry({"nokey": {"name": "anthropic", "model": "m", "base_url": server.url}})
    with pytest.raises(AllProvidersFailed) as info:
        alone.complete("hi", providers=["nokey"])
    assert [type(e) for e in info.value.errors] == [AuthenticationError]


def test_a_content_refusal_does_not_move_a_fallback_chain_on(server: LoopbackServer) -> None:
    refused = {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"refusal": "I can't."}}]}
    server.reset(lambda ex: ex.json(200, refused) if ex.req.path.startswith("/a") else
                 answer(ex))
    reg = registry({"a": {"name": "openai", "model": "m", "base_url": server.url + "/a",
                          "api_key": "sk-a-key-123456"},
                    "b": {"name": "openai", "model": "m", "base_url": server.url + "/b",
                          "api_key": "sk-b-key-123456"}}, fallback=["a", "b"])
    with pytest.raises(ContentRefused):
        reg.complete("hi", raise_on_refusal=True)
    assert [r.path for r in server.requests] == ["/a/chat/completions"]


# --- Errors -----------------------------------------------------------------------------------

def longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(f"{char}+", text)), default=0)


def test_a_servers_error_message_is_at_most_500_characters_other_text_200(
        server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(400, {"error": {"message": "\x1b[2J" + "x" * 1000}}))
    with pytest.raises(ProviderError) as info:
        loopback_provider(server, "openai").complete("hi")
    shown = str(info.value)
    assert "\x1b" not in shown and "\\x1b[2J" in shown
    assert longest_run(shown, "x") == 500 - len("\\x1b[2J") and "x..." in shown
    server.reset(lambda ex: ex.send(400, "<html>" + "y" * 1000))  # not JSON: an excerpt
    with pytest.raises(ProviderError) as info:
        loopback_provider(server, "openai").complete("hi")
    assert longest_run(str(info.value), "y") == 200 - len("<html>")


@pytest.mark.parametrize("handler", [
    lambda ex: ex.json(500, {"error": {"message": "down"}}),
    lambda ex: ex.send(200, '{"not json', content_type="application/json"),
], ids=["HTTP 500", "malformed JSON"])
def test_an_error_leaves_a_public_call_without_our_frames_or_a_foreign_cause(
        server: LoopbackServer, handler: Any) -> None:
    server.reset(handler)
    with pytest.raises(ProviderError) as info:
        loopback_provider(server, "openai").complete("hi")
    ours = [frame.f_code.co_name for frame, _ in traceback.walk_tb(info.value.__traceback__)
            if Path(frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)]
    assert ours == ["boundary"]  # the public entry point's wrapper, and nothing below it
    assert info.value.__cause__ is None and info.value.__context__ is None
    try:
        try:
            json.loads("{")
        except ValueError as exc:
            raise ProtocolError("p: not JSON") from exc
    except ProtocolError as err:
        assert err.__cause__ is None and err.__context__ is None  # foreign: not chained
        outer = ProviderError("p: wrapped")
        outer.__cause__ = err
        assert outer.__cause__ is err  # our own (scrubbed when built) is kept


# --- Call events ------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges there")
def test_the_call_log_is_never_written_through_a_symlink(server: LoopbackServer,
                                                         tmp_path: Path) -> None:
    server.reset(answer)
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("")
    link = tmp_path / "calls.jsonl"
    link.symlink_to(elsewhere)
    reg = registry({"p": {"name": "openai", "model": "m", "base_url": server.url,
                          "api_key": "sk-p-key-1234567"}}, observability={"call_log": str(link)})
    with pytest.raises(ConfigError, match=r"observability\.call_log"):
        reg.get("p").complete("hi")
    assert elsewhere.read_text() == "" and server.requests == []


# --- CLI --------------------------------------------------------------------------------------

def test_providers_without_check_contacts_nothing(server: LoopbackServer, tmp_path: Path
                                                  ) -> None:
    server.reset(answer)
    result = missy("providers", config=write_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[-1] == "READY"
    time.sleep(0.05)
    assert server.connections == 0
    checked = missy("providers", "--check", "--timeout", "2",
                    config=write_config(tmp_path, server))
    assert checked.stdout.splitlines()[0].split()[-1] == "CHECK" and server.connections > 0


# --- Tests ------------------------------------------------------------------------------------

def test_mutation_testing_mutates_modules_that_exist_and_is_never_a_dependency() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    modules = project["tool"]["mutmut"]["only_mutate"]
    assert [m for m in modules if not (ROOT / m).is_file()] == []
    assert [t for t in project["tool"]["mutmut"]["tests_dir"] if not (ROOT / t).is_file()] == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("Mutation testing checks"):].split("\n\n", 1)[0]
    assert sorted(re.findall(r"`([\w/]+\.py)`", listed)) == \
        sorted(m.removeprefix("missy_providers/") for m in modules)
    requirements = [*project["project"]["dependencies"],
                    *(r for extra in project["project"]["optional-dependencies"].values()
                      for r in extra)]
    assert not [r for r in requirements if "mutmut" in r.lower()]


def test_the_layout_names_every_module_where_it_is() -> None:
    """README's Layout block: every module of the package, in its folder, and nothing else."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```\n") + 4:]
    block = block[:block.index("```")]
    named: set[str] = set()
    folder = ""
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        column = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]  # the name column
        if indent == 2:
            folder = column if column.endswith("/") else ""
        where = {0: "", 2: "missy_providers/", 4: "missy_providers/" + folder}.get(indent, "?")
        named |= {where + name for name in re.findall(r"\w+\.py", column)}
    package = ROOT / "missy_providers"
    actual = {str(p.relative_to(ROOT)) for p in package.rglob("*.py")
              if not (p.name == "__init__.py" and p.parent != package)} | {"missy.py"}
    assert named == actual


def readme_cli_samples() -> list[tuple[list[str], list[str]]]:
    """Each `$ missy ...` line of README.md's code blocks, with the lines shown after it."""
    import shlex

    blocks: list[list[str]] = []
    inside = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    samples: list[tuple[list[str], list[str]]] = []
    for block in blocks:
        for line in block:
            if line.startswith("$ "):
                samples.append((shlex.split(line[2:]), []))
            elif samples and block[0].startswith("$ "):
                samples[-1][1].append(line)
    return [(argv[1:], shown) for argv, shown in samples if argv[0] == "missy"]


def test_readme_cli_outputs_are_what_the_cli_prints() -> None:
    samples = readme_cli_samples()
    # Those on examples/ files are run; demo.yaml needs a live server (its ports and times).
    checked = [(argv, shown) for argv, shown in samples
               if any(a.startswith("examples/") for a in argv)]
    live = [argv for argv, _ in samples if "demo.yaml" in argv]
    assert len(checked) >= 3 and len(checked) + len(live) == len(samples)
    for argv, shown in checked:
        result = missy(*argv)
        assert (result.stdout + result.stderr).splitlines() == shown, argv
