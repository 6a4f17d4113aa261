"""ProviderRegistry and ModelRouter."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from missy_providers.config import config_from_dict
from missy_providers.core.errors import UsageError
from missy_providers.core.secret import Secret
from missy_providers.keys import KeyRing
from missy_providers.providers.anthropic import AnthropicProvider
from missy_providers.providers.ollama import OllamaProvider
from missy_providers.registry import PROVIDER_CLASSES, ProviderRegistry, provider_class
from missy_providers.router import ModelRouter

CONFIG: dict[str, Any] = {
    "providers": {
        "anthropic": {"model": "claude-sonnet-4-6", "fast_model": "claude-haiku-4-5",
                      "premium_model": "claude-opus-4-6",
                      "api_keys": ["key-a", "key-b", "key-c"]},
        "ollama": {"model": "llama3.2"},
        "off": {"name": "openai", "model": "gpt", "enabled": False},
    },
}


def registry(data: dict[str, Any] = CONFIG, **top: Any) -> ProviderRegistry:
    return ProviderRegistry(config_from_dict({**data, **top}, env={}))


def test_get_default_and_types() -> None:
    reg = registry()
    assert isinstance(reg.get("anthropic"), AnthropicProvider)
    assert isinstance(reg.get("ollama"), OllamaProvider)
    assert reg.default_name == "anthropic"  # the first, when none is named
    assert reg.get() is reg.get("anthropic")
    reg.set_default("anthropic")  # available: it has its keys (Ollama would be probed)
    assert reg.default is reg.get("anthropic")
    assert registry(default_provider="ollama").default_name == "ollama"


def test_unknown_and_disabled() -> None:
    reg = registry()
    with pytest.raises(UsageError, match=r"no provider named 'nope'.*anthropic, ollama, off"):
        reg.provider("nope")
    with pytest.raises(UsageError, match=r"'off' is disabled \(providers.off.enabled: false\)"):
        reg.provider("off")
    assert reg.get("nope") is None and reg.get("off") is None  # Missy's get(): None
    with pytest.raises(UsageError, match=r"'off' is disabled in the config"):
        reg.set_default("off")
    assert "off" not in reg._providers  # disabled providers are never constructed


def test_no_enabled_provider() -> None:
    reg = registry({"providers": {"off": {"name": "openai", "model": "m", "enabled": False}}})
    with pytest.raises(UsageError, match="no enabled provider"):
        reg.get()
    with pytest.raises(UsageError, match="no enabled provider"):
        reg.provider()


def test_every_provider_type_has_a_real_class() -> None:
    for ptype in PROVIDER_CLASSES:
        cls = provider_class(ptype)
        assert cls.provider_type == ptype


def test_rotate_key_round_robin() -> None:
    reg = registry()
    provider = reg.get("anthropic")
    seen = []
    for _ in range(7):
        key = provider.keys.current()
        assert key is not None
        seen.append(key.reveal())
        reg.rotate_key("anthropic")
    assert seen == ["key-a", "key-b", "key-c", "key-a", "key-b", "key-c", "key-a"]


def test_rotate_key_skips_a_refused_key() -> None:
    clock = [0.0]
    ring = KeyRing([Secret("key-a"), Secret("key-b"), Secret("key-c")], cooldown=600.0,
                   clock=lambda: clock[0])
    ring.refused(1)
    # What rotate returns is the key the next call starts with: never the refused one.
    assert ring.rotate() == 2 and ring.pick() == 2
    assert ring.rotate() == 0 and ring.rotate() == 2
    ring.refused(0)
    ring.refused(2)
    assert ring.rotate() == 0  # every key refused: round the ring as before
    clock[0] = 601.0  # the cool-down is over: key #1 is used again
    assert ring.rotate() == 1 and ring.pick() == 1


def test_rotate_with_fewer_than_two_keys_is_a_noop() -> None:
    reg = registry({"providers": {"a": {"name": "anthropic", "model": "m", "api_key": "only"},
                                  "o": {"name": "ollama", "model": "m"}}})
    assert reg.rotate_key("a") == 0 and reg.rotate_key("a") == 0
    assert reg.rotate_key("o") == 0


def test_rotation_under_8_threads() -> None:
    reg = registry()
    ring = reg.get("anthropic").keys
    per_thread, seen, errors = 1000, set(), []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            index = reg.rotate_key("anthropic")
            if not 0 <= index < 3:
                errors.append(index)
            key = ring.current()
            seen.add(key.reveal() if key else None)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ring.index == (8 * per_thread) % 3  # no rotation was lost
    assert seen == {"key-a", "key-b", "key-c"}


def test_provider_rows_never_hold_keys() -> None:
    rows = registry().provider_rows()
    assert [r["name"] for r in rows] == ["anthropic", "ollama", "off"]
    first = rows[0]
    assert first == {"name": "anthropic", "type": "anthropic", "default": True,
                     "model": "claude-sonnet-4-6", "fast_model": "claude-haiku-4-5",
                     "premium_model": "claude-opus-4-6", "endpoint": "https://api.anthropic.com",
                     "key_source": "3 keys", "enabled": True, "ready": True}
    assert rows[1]["ready"] is True and rows[1]["key_source"] == "none"
    assert rows[2]["enabled"] is False and rows[2]["ready"] is False
    assert "key-a" not in repr(rows)


def test_from_config_accepts_dict_and_path(tmp_path: Any) -> None:
    assert ProviderRegistry.from_config({"providers": {"ollama": {"model": "m"}}}).names() == [
        "ollama"]
    path = tmp_path / "c.json"
    path.write_text('{"providers": {"ollama": {"model": "m"}}}')
    assert ProviderRegistry.from_config(str(path)).names() == ["ollama"]


# --- ModelRouter ------------------------------------------------------------------------------

router = ModelRouter()


@pytest.mark.parametrize(("prompt", "history", "tools", "tier"), [
    ("what is 2+2", 0, 0, "fast"),
    ("what" + "x" * 74, 0, 0, "primary"),  # one word, and not "what"
    ("x" * 75 + " how", 0, 0, "fast"),  # 79 chars
    ("what " + "x" * 74, 0, 0, "fast"),  # 79 chars, the word "what"
    ("what " + "x" * 75, 0, 0, "primary"),  # 80 chars
    ("WHERE is it", 0, 0, "fast"),
    ("where? is it", 0, 0, "primary"),  # "where?" is not the word "where"
    ("what is it", 0, 1, "primary"),  # tools offered: never fast
    ("hello there", 0, 0, "primary"),
    ("please debug this", 0, 0, "premium"),
    ("what should I refactor", 0, 0, "fast"),  # fast is checked first
    ("x" * 500, 0, 0, "primary"),
    ("x" * 501, 0, 0, "premium"),
    ("hi", 10, 0, "primary"),
    ("hi", 11, 0, "premium"),
    ("hi", 0, 3, "primary"),
    ("hi", 0, 4, "premium"),
    ("what is this", 11, 0, "fast"),  # fast checked first, history does not matter
    ("Analyze the logs", 0, 0, "premium"),
])
def test_score_complexity(prompt: str, history: int, tools: int, tier: str) -> None:
    assert router.score_complexity(prompt, history_length=history, tool_count=tools) == tier


def test_select_model_falls_back_to_model() -> None:
    reg = registry()
    full = reg.config.providers["anthropic"]
    bare = reg.config.providers["ollama"]
    assert router.select_model(full, "fast") == "claude-haiku-4-5"
    assert router.select_model(full, "premium") == "claude-opus-4-6"
    assert router.select_model(full, "primary") == "claude-sonnet-4-6"
    assert router.select_model(full, "turbo") == "claude-sonnet-4-6"
    assert router.select_model(bare, "fast") == "llama3.2"
    assert router.select_model(bare, "premium") == "llama3.2"
    assert router.route(full, "what time is it") == "claude-haiku-4-5"
