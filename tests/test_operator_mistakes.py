"""What a new user and an operator hit first: global options in either place, one line and the
right exit code for every mistake, config check catching what would fail later, and the API
refusing wrong argument types before any I/O. CLI cases run ``missy`` as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import LoopbackServer
from test_cli_commands import OK_BODY, env_without_keys, missy, write_config

from missy_providers.config import config_from_dict
from missy_providers.core.errors import ConfigError, UsageError
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.anthropic import AnthropicProvider
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message, Tool

ROOT = Path(__file__).resolve().parents[1]


def one_line(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- global options -----------------------------------------------------------------------


def test_global_options_work_before_the_command(server: LoopbackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server)
    before = subprocess.run([sys.executable, "-m", "missy", "--config", str(config),
                             "providers", "--json"], cwd=ROOT, env=env_without_keys(),
                            capture_output=True, text=True, timeout=60)
    after = missy("providers", "--json", config=config)
    assert before.returncode == after.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert {r["name"] for r in json.loads(before.stdout)["providers"]} == {"claude", "local"}
    # --config before the command is not silently replaced by another config.
    missing = subprocess.run([sys.executable, "-m", "missy", "--config", str(tmp_path / "no"),
                              "providers"], cwd=ROOT, env=env_without_keys(),
                             capture_output=True, text=True, timeout=60)
    one_line(missing, 2, "config file not found; check the path")
    assert "pass --config" not in missing.stderr


def test_verbose_and_quiet_before_the_command(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, OK_BODY))
    config = write_config(tmp_path, server)
    argv = [sys.executable, "-m", "missy", "-v", "--config", str(config), "ask", "--no-stream",
            "hi"]
    loud = subprocess.run(argv, cwd=ROOT, env=env_without_keys(), capture_output=True,
                          text=True, timeout=60)
    assert loud.returncode == 0 and loud.stdout == "Hello there\n"
    assert "usage: prompt 3 (cached 0" in loud.stderr and "DEBUG" in loud.stderr
    quiet = subprocess.run([*argv[:3], "-q", *argv[4:]], cwd=ROOT, env=env_without_keys(),
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_version_and_every_option_has_help() -> None:
    from missy_providers.cli import _parser

    version = missy("--version")
    # The name is how it was started (here `python -m missy`), as in every hint it prints.
    assert version.returncode == 0 and version.stdout.strip() == "python -m missy 0.1.0"
    parser = _parser()
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        for action in p._actions:
            if action.choices and isinstance(action.choices, dict):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                assert action.help, f"{p.prog} {action.option_strings} has no help text"


# --- one line, right exit code --------------------------------------------------------------


def test_yaml_config_without_pyyaml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("providers: {}\n")
    # -I -S: no site-packages, so no PyYAML (the vendored case).
    result = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "missy.py"), "providers",
                             "--config", str(config)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    # PyYAML is installed here, but -S hides site-packages: the message says which.
    one_line(result, 2, "this Python runs with -S, which hides site-packages (and PyYAML in "
                        "it): use a .json config (the same keys), or install PyYAML")


@pytest.mark.parametrize("where, fragment", [
    ("missing/config.yaml", "does not exist; create it first"),
    (".", "is a directory; give a file path"),
])
def test_config_init_mistakes(tmp_path: Path, where: str, fragment: str) -> None:
    one_line(missy("config", "init", str(tmp_path / where)), 2, fragment)


def test_config_init_into_unwritable_dir(tmp_path: Path) -> None:
    # A path through a regular file: unwritable for root too (a 0500 directory is not).
    (tmp_path / "plain").write_text("")
    one_line(missy("config", "init", str(tmp_path / "plain" / "config.yaml")), 2,
             "cannot write")
    if os.geteuid() != 0:
        locked = tmp_path / "ro" / "config.yaml"
        locked.parent.mkdir(mode=0o500)
        one_line(missy("config", "init", str(locked)), 2, "cannot write")


def test_config_init_is_exclusive_and_private(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "elsewhere.yaml")
    assert missy("config", "init", str(target)).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    one_line(missy("config", "init", str(target)), 2, "exists; pass --force")
    target.chmod(0o644)
    assert missy("config", "init", str(target), "--force").returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # A symlink at the path is not followed, even with --force.
    assert missy("config", "init", str(link), "--force").returncode == 2
    assert not (tmp_path / "elsewhere.yaml").exists()


def test_a_command_line_mistake_is_one_escaped_scrubbed_line(tmp_path: Path) -> None:
    """argparse quotes what it could not parse: the line is escaped (no ESC, BEL or line
    break reaches the terminal) and a key pasted there is redacted."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {}}))
    result = missy("providers", "extra\x1b]0;pwned\x07\nsecond line",
                   "sk-proj-abcdefghijklmnop123456", config=config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "unrecognized arguments: extra\\x1b]0;pwned\\x07\\x0asecond line" in result.stderr
    assert "sk-proj-abcdefghijklmnop123456" not in result.stderr


@pytest.mark.parametrize("args, fragment", [
    (("providers", "--check", "--timeout", "0"), "argument --timeout: must be > 0, got 0"),
    (("providers", "--check", "--timeout", "1e10"),
     "argument --timeout: must be <= 86400, got 1e10"),
    (("ask", "--max-tokens", "0", "hi"), "argument --max-tokens: must be > 0, got 0"),
    (("ask", "--max-tokens", "-3", "hi"), "argument --max-tokens: must be > 0, got -3"),
])
def test_bad_numbers_are_refused(server: LoopbackServer, tmp_path: Path,
                                 args: tuple[str, ...], fragment: str) -> None:
    result = missy(*args, config=write_config(tmp_path, server))
    assert result.returncode == 2 and fragment in result.stderr
    # One line, like every operator mistake: not argparse's usage block.
    assert result.stderr.count("\n") == 1 and "UsageError: " in result.stderr
    assert "Traceback" not in result.stderr and server.requests == []


@pytest.mark.parametrize("bad_key, col", [
    (CANARY + "\u200b", len(CANARY)),          # a pasted zero-width space
    (CANARY[:5] + "\n" + CANARY[5:], 5),       # a newline inside
    ("é" + CANARY, 0),                         # not ASCII
])
def test_key_that_cannot_be_a_header(server: LoopbackServer, tmp_path: Path, bad_key: str,
                                     col: int) -> None:
    config = write_config(tmp_path, server)
    data = json.loads(config.read_text())
    data["providers"]["claude"]["api_key"] = bad_key
    config.write_text(json.dumps(data))
    result = missy("ask", "hi", config=config)
    one_line(result, 2, f"cannot be sent in an HTTP header at index {col}")
    assert "(at providers.claude.api_key)" in result.stderr
    assert server.requests == []


def test_python_too_old_is_one_line(tmp_path: Path) -> None:
    code = ("import sys, runpy; sys.version_info = (3, 9, 18); "
            f"runpy.run_path({str(ROOT / 'missy.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, "providers"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2  # an operator mistake, like the others
    assert result.stderr.startswith("missy: needs Python 3.10+") and result.stderr.count("\n") == 1


# --- config check catches what later fails --------------------------------------------------


def check_config(tmp_path: Path, server: LoopbackServer, **extra: Any) -> Path:
    return write_config(tmp_path, server, **extra)


@pytest.mark.parametrize("network, fragment, path", [
    ({"ca_bundle": "/nonexistent/ca.pem"}, "the CA bundle file does not exist",
     "network.ca_bundle"),
    ({"ca_bundle": "README.md"}, "the CA bundle holds no PEM certificate", "network.ca_bundle"),
    ({"audit_log": "/nonexistent-dir/audit.jsonl"}, "does not exist", "network.audit_log"),
    ({"audit_log": "."}, "the audit log is a directory", "network.audit_log"),
])
def test_config_check_catches_bad_local_files(server: LoopbackServer, tmp_path: Path,
                                              network: dict[str, str], fragment: str,
                                              path: str) -> None:
    config = write_config(tmp_path, server, network=network)
    result = missy("config", "check", config=config)
    assert result.returncode == 2 and fragment in result.stderr
    assert f"(at {path})" in result.stderr and "1 problem(s)" in result.stderr
    # Used for real, the same problem is the same one line, not a traceback.
    listing = missy("providers", "--check", "--timeout", "1", config=config)
    one_line(listing, 2, fragment)


def test_codex_auth_file_that_is_not_json(server: LoopbackServer, tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text("{not json")
    config = write_config(tmp_path, server)
    data = json.loads(config.read_text())
    data["providers"]["codex"] = {"name": "openai-codex", "model": "gpt-5-codex",
                                  "auth_file": str(auth)}
    config.write_text(json.dumps(data))
    check = missy("config", "check", config=config)
    assert check.returncode == 2 and "is not valid JSON (at providers.codex.auth_file)" in \
        check.stderr
    listing = missy("providers", "--check", "--json", "--timeout", "1", config=config)
    # Exit 0: the default provider (the first, claude) passed; codex's failure is shown.
    assert listing.returncode in (0, 1) and "Exception in thread" not in listing.stderr
    codex = next(r for r in json.loads(listing.stdout)["providers"] if r["name"] == "codex")
    assert codex["available"] is False and "JSONDecodeError" in codex["check"]["reason"]
    auth.unlink()  # no login made yet: not wrong, but said
    check = missy("config", "check", config=config)
    assert check.returncode == 0 and f"providers.codex.auth_file: {auth} does not exist yet; " \
        "run `codex login`" in check.stderr


def test_default_provider_disabled_is_an_error_fallback_disabled_is_skipped(
        server: LoopbackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server, default_provider="local")
    data = json.loads(config.read_text())
    data["providers"]["local"]["enabled"] = False
    config.write_text(json.dumps(data))
    result = missy("config", "check", config=config)
    assert result.returncode == 2 and "'local' is disabled" in result.stderr
    assert "(at default_provider)" in result.stderr
    del data["default_provider"]
    data["fallback"] = ["local", "claude"]
    config.write_text(json.dumps(data))
    result = missy("config", "check", config=config)
    assert result.returncode == 0
    assert "note: fallback.0: 'local' is disabled and is skipped in the fallback chain" in \
        result.stderr
    registry = ProviderRegistry.from_config(str(config))
    assert registry.fallback_order() == ["claude"]


def test_unset_var_does_not_hide_the_other_providers(server: LoopbackServer,
                                                     tmp_path: Path) -> None:
    config = write_config(tmp_path, server)
    data = json.loads(config.read_text())
    data["providers"]["claude"]["api_key"] = "$MISSY_TEST_UNSET_KEY"
    config.write_text(json.dumps(data))
    listing = missy("providers", config=config)
    assert listing.returncode == 0, listing.stderr
    claude = next(line for line in listing.stdout.splitlines() if line.startswith("claude"))
    assert "unset $MISSY_TEST_UNSET_KEY" in claude and claude.split()[-1] == "no"
    assert any(line.startswith("local") for line in listing.stdout.splitlines())
    ask = missy("ask", "--provider", "claude", "hi", config=config)
    one_line(ask, 1, "no key: $MISSY_TEST_UNSET_KEY is not set")
    check = missy("config", "check", config=config)
    assert check.returncode == 0 and "note: providers.claude: $MISSY_TEST_UNSET_KEY is not set" \
        in check.stderr


# --- small things ---------------------------------------------------------------------------


def test_truncated_stream_ends_its_line_before_the_error(server: LoopbackServer,
                                                          tmp_path: Path) -> None:
    def cut(ex: Any) -> None:
        ex.start_chunked()
        ex.chunk(b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
                 b'"model":"claude-x","content":[],"usage":{"input_tokens":3}}}\n\n'
                 b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
                 b'"content_block":{"type":"text","text":""}}\n\n'
                 b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                 b'"delta":{"type":"text_delta","text":"partial"}}\n\n')
        ex.h.wfile.flush()
        ex.h.connection.shutdown(socket.SHUT_RDWR)

    server.reset(cut)
    result = missy("ask", "hi", config=write_config(tmp_path, server))
    assert result.returncode == 1
    assert result.stdout == "partial\n"
    assert result.stderr.startswith("missy: ") and result.stderr.count("\n") == 1


def test_ask_says_it_reads_stdin_only_on_a_terminal(server: LoopbackServer,
                                                    tmp_path: Path) -> None:
    server.reset(lambda ex: ex.json(200, OK_BODY))
    piped = missy("ask", "--no-stream", config=write_config(tmp_path, server), stdin="hi")
    assert piped.returncode == 0 and "reading the prompt" not in piped.stderr


def test_reprs_say_what_they_are() -> None:
    config = config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                                   "api_key": CANARY}}}, env={})
    registry = ProviderRegistry(config)
    assert repr(registry) == "ProviderRegistry(source='<dict>', providers=['a'], default='a')"
    assert repr(registry.client) == "PolicyHTTPClient(default_deny=True, idle_connections=0)"
    for text in (repr(registry), repr(registry.get("a")), repr(registry.client)):
        assert CANARY not in text
    for cls in ("AnthropicProvider", "OpenAIProvider", "CodexProvider", "OllamaProvider"):
        import missy_providers

        assert getattr(missy_providers, cls).__doc__


# --- input types at the API boundary --------------------------------------------------------


@pytest.fixture
def provider(server: LoopbackServer) -> AnthropicProvider:
    server.reset(lambda ex: ex.json(200, OK_BODY))
    config = config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                                   "base_url": server.url, "api_key": "k"}}},
                              env={})
    return AnthropicProvider(config.providers["a"],
                             PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])))


@pytest.mark.parametrize("messages, fragment", [
    ({"role": "user", "content": "hi"}, "messages must be a list of Message"),
    (42, "messages must be a list of Message"),
    ([{"role": "user", "content": "hi", "name": "x"}],
     "messages[0]: a user message dict has no key(s) ['name']"),
    ([{"role": "robot", "content": "hi"}], "messages[0].role: must be one of"),
    ([("user", "hi")], "messages[0] must be a Message, got tuple"),
    ([], "messages is empty"),
])
def test_wrong_messages_are_usage_errors(provider: AnthropicProvider, server: LoopbackServer,
                                         messages: Any, fragment: str) -> None:
    for call in (provider.complete, provider.stream):
        with pytest.raises(UsageError) as info:
            call(messages)
        assert fragment in str(info.value)
    assert server.requests == []


def test_message_content_must_be_text() -> None:
    with pytest.raises(UsageError, match="Message content must be a str or a list of "
                       "Text/Image/Document parts, got int"):
        Message("user", 123)  # type: ignore[arg-type]


def test_tools_must_be_tools(provider: AnthropicProvider, server: LoopbackServer) -> None:
    with pytest.raises(UsageError, match=r"tools\[0\] must be a Tool, an object with "
                       r"get_schema\(\), or a \{name, description, parameters\} dict, got int"):
        provider.complete_with_tools([Message("user", "hi")], [3])  # type: ignore
    with pytest.raises(UsageError, match="tools must be a list of Tool, got Tool"):
        provider.complete_with_tools([Message("user", "hi")], Tool("x"))  # type: ignore
    assert server.requests == []


@pytest.mark.parametrize("opts, fragment", [
    ({"max_tokens": 0}, "option max_tokens must be a whole number > 0, got 0"),
    ({"max_tokens": True}, "option max_tokens must be a whole number > 0, got True"),
    ({"max_tokens": "10"}, "option max_tokens must be a whole number > 0, got '10'"),
    ({"temperature": 2.5}, "option temperature must be a number from 0 to 2, got 2.5"),
    ({"temperature": "hot"}, "option temperature must be a number from 0 to 2"),
    ({"stop": [1]}, "option stop must be a string or a list of strings"),
    ({"model": ""}, "option model must be a non-empty string"),
])
def test_option_values_are_checked(provider: AnthropicProvider, server: LoopbackServer,
                                   opts: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        provider.complete([Message("user", "hi")], **opts)
    assert server.requests == []


def test_dicts_and_strings_are_a_documented_convenience(provider: AnthropicProvider,
                                                        server: LoopbackServer) -> None:
    assert provider.complete("hi").content == "Hello there"
    assert provider.complete([{"role": "user", "content": "hi"}]).content == "Hello there"
    assert [json.loads(r.body)["messages"] for r in server.requests] == [
        [{"role": "user", "content": "hi"}]] * 2


def test_config_error_for_a_dollar_that_is_not_a_variable_hides_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"providers": {"a": {"name": "anthropic", "model": "m",
                                              "api_key": "${" + CANARY + "}"}}}, env={})
    assert CANARY not in str(info.value) and "not a valid $VAR reference" in str(info.value)


def test_the_mistakes_of_the_first_hour_say_what_to_do(tmp_path: Path) -> None:
    """YAML saved as .json, a relative path that is not there, and what `count` means when
    the API cannot count: each answer says what happened and what to do."""
    yaml_as_json = tmp_path / "config.json"
    yaml_as_json.write_text("providers:\n  local: {name: ollama, model: m}\n")
    named = missy("providers", config=yaml_as_json)
    assert named.returncode == 2 and "reads like YAML: rename it to .yaml" in named.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"providers": }')
    assert "reads like YAML" not in missy("providers", config=broken).stderr
    absent = missy("providers", "--config", "not-here.yaml")
    assert absent.returncode == 2
    assert f"not found (looked for {ROOT / 'not-here.yaml'})" in absent.stderr
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m"}}}))
    counted = missy("count", "hello there", config=config)
    assert counted.returncode == 0
    assert counted.stdout == "3 tokens (estimated at about 4 characters a token: this API " \
                             "cannot count; o)\n"


def test_a_key_meant_as_a_variable_is_noted_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {
        "a": {"name": "anthropic", "model": "m", "api_key": "MY_ANTHROPIC_KEY"},
        "b": {"name": "anthropic", "model": "m", "api_keys": ["sk-ant-$SUFFIX"]},
        "c": {"name": "anthropic", "model": "m", "api_key": "sk-ant-ordinary-key-123"}}}))
    check = missy("config", "check", config=config)
    assert check.returncode == 0
    assert "providers.a.api_key: the value is shaped like a variable's name" in check.stderr
    assert "providers.b.api_keys.0: a '$' inside the value is sent as it is" in check.stderr
    assert "providers.c" not in check.stderr
    assert "MY_ANTHROPIC_KEY" not in check.stderr and "SUFFIX" not in check.stderr


def test_a_provider_of_a_type_we_lack_is_said_not_silently_dropped(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"claude": {"name": "claude", "model": "m"}}}))
    listed = missy("providers", config=config)
    assert listed.returncode == 0 and "no providers configured" in listed.stdout
    assert "note: providers.claude: type 'claude' is not one this package provides" in \
        listed.stderr
    asked = missy("ask", "hi", config=config)
    assert asked.returncode == 2 and "`config check` names any that were skipped" in \
        asked.stderr


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`missy policy show | head -1`: the CLI stops quietly, exit 141 (128 + SIGPIPE) as a
    shell reports it, no traceback."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {f"p{i}": {
        "name": "ollama", "model": "m", "base_url": f"http://127.0.0.1:{1000 + i}"}
        for i in range(200)}}))
    child = subprocess.Popen([sys.executable, "-m", "missy", "policy", "show", "--config",
                              str(config)], cwd=ROOT, env=env_without_keys(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line
    errors = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_a_config_with_no_provider_is_noted_and_a_skipped_one_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    check = missy("config", "check", config=empty)
    assert check.returncode == 0 and "note: no enabled provider" in check.stderr
    skipped = tmp_path / "s.json"
    skipped.write_text(json.dumps({"providers": {
        "claude": {"name": "claude", "model": "m"},
        "local": {"name": "ollama", "model": "m", "base_url": "http://127.0.0.1:9"}}}))
    pinned = missy("ask", "hi", "--provider", "claude", config=skipped)
    assert pinned.returncode == 2
    assert "provider 'claude' was skipped: its type 'claude' is not one this package " \
           "provides" in pinned.stderr and "usable: local)" in pinned.stderr


def test_the_third_walkthroughs_mistakes(tmp_path: Path) -> None:
    """~/.missy that is a file, an empty HOME, a JSON file with a BOM, tabs in YAML, a
    base_url without its scheme, 1.5e3: each one line saying what to do."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".missy").write_text("not a folder")
    init = missy("config", "init", HOME=str(home))
    assert init.returncode == 2 and init.stderr.count("\n") == 1
    assert "exists and is not a directory" in init.stderr and "Traceback" not in init.stderr
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"providers": {}}).encode())
    assert missy("config", "check", config=bom).returncode == 0
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("providers:\n\tlocal: {}\n")
    assert "YAML indents with spaces, never tabs" in missy("config", "check", config=tabs).stderr
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"providers": {"o": {
        "name": "ollama", "model": "m", "base_url": "localhost:11434", "total_timeout": "1.5e3"}}}))
    check = missy("config", "check", config=bare).stderr
    assert "write it with its scheme (http:// or https://)" in check
    assert "got the string '1.5e3' (YAML reads that form as text: write 1500)" in check


def test_an_empty_home_is_never_the_root() -> None:
    from missy_providers.core.env import expand_user

    previous = os.environ.get("HOME")
    os.environ["HOME"] = ""
    try:
        expanded = expand_user("~/.missy/config.yaml")
    finally:
        if previous is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = previous
    assert expanded.endswith("/.missy/config.yaml") and expanded != "/.missy/config.yaml"
