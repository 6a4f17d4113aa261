"""The pieces behind Missy's registry surface, as tables: smooth weighted round robin, round
robin keys, the availability cache, the runtime toggle and default, and what a provider
answers about itself."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import CANARY
from loopback import LoopbackServer

from missy_providers.availability import AvailabilityCache
from missy_providers.config import config_from_dict
from missy_providers.core.errors import UsageError
from missy_providers.core.secret import Secret
from missy_providers.keys import KeyRing
from missy_providers.providers.anthropic import AnthropicProvider
from missy_providers.providers.ollama import OllamaProvider
from missy_providers.registry import ProviderRegistry, RegistryNotInitialised
from missy_providers.weighted import WeightedRoundRobin


def picks(weights: dict[str, float], count: int, order: str = "") -> str:
    wrr = WeightedRoundRobin()
    candidates = list(order or weights)
    return "".join(str(wrr.select(candidates, weights)) for _ in range(count))


@pytest.mark.parametrize("weights, count, order, expected", [
    ({"a": 3, "b": 1}, 8, "", "aabaaaba"),
    ({"a": 1, "b": 1, "c": 1}, 6, "", "abcabc"),
    ({"a": 1, "b": 1}, 4, "ba", "baba"),  # ties go to the first candidate
    ({"a": 2, "b": 1}, 6, "", "abaaba"),
    ({"a": 5, "b": 1, "c": 1}, 7, "", "aabacaa"),
    ({"a": 0, "b": 1}, 3, "", "bbb"),
    ({"a": -1, "b": 1}, 3, "", "bbb"),  # below 0 counts as 0
    ({"a": 0, "b": 0}, 2, "", "NoneNone"),
    ({}, 2, "xy", "xy"),  # no weight given: 1.0 each
])
def test_smooth_weighted_round_robin(weights: dict[str, float], count: int, order: str,
                                     expected: str) -> None:
    assert picks(weights, count, order) == expected


def test_credit_is_kept_while_the_candidates_change() -> None:
    wrr = WeightedRoundRobin()
    assert [wrr.select(["a", "b", "c"], {}), wrr.select(["b", "c"], {}),
            wrr.select(["a", "b", "c"], {})] == ["a", "b", "c"]


def test_shares_hold_across_threads() -> None:
    wrr, seen, lock = WeightedRoundRobin(), Counter[str](), threading.Lock()

    def work() -> None:
        for _ in range(250):
            pick = wrr.select(["a", "b"], {})
            with lock:
                seen[str(pick)] += 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": 500, "b": 500}


def ring(count: int, weights: tuple[float, ...] | None = None,
         clock: Any = time.monotonic) -> KeyRing:
    return KeyRing([Secret(f"key-{i}-0123456789") for i in range(count)], clock=clock,
                   weights=weights)


@pytest.mark.parametrize("count, weights, starts", [
    (3, None, [0, 0, 0, 0]),  # failover: the current key, call after call
    (3, (), [0, 1, 2, 0]),  # round robin, equal weights
    (2, (3.0, 1.0), [0, 0, 1, 0, 0, 0, 1, 0]),
    (1, (), [0, 0]),  # one key: nothing to balance
])
def test_each_call_starts_on(count: int, weights: tuple[float, ...] | None,
                             starts: list[int]) -> None:
    keys = ring(count, weights)
    assert [keys.start() for _ in starts] == starts
    assert keys.round_robin is (weights is not None and count > 1)


def test_round_robin_skips_a_refused_key() -> None:
    now = [0.0]
    keys = ring(3, (), clock=lambda: now[0])
    keys.refused(1)
    assert [keys.start() for _ in range(4)] == [0, 2, 0, 2]
    now[0] = 10_000.0  # the cool-down is over
    assert sorted({keys.start() for _ in range(3)}) == [0, 1, 2]


def test_round_robin_calls_share_the_keys(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"type": "message", "model": "m", "content": [
        {"type": "text", "text": "ok"}], "stop_reason": "end_turn"}))
    config = config_from_dict({"providers": {"a": {
        "name": "anthropic", "model": "m", "base_url": server.url,
        "api_keys": ["sk-ant-one-0000001", "sk-ant-two-0000002"],
        "key_rotation_strategy": "round_robin", "account_weights": [2, 1]}}}, env={})
    provider = ProviderRegistry(config).provider("a")
    assert provider.is_multi_account and provider.account_count == 2
    for _ in range(6):
        provider.complete("hi")
    used = [r.headers["x-api-key"][-1] for r in server.requests]
    assert used == ["1", "2", "1", "1", "2", "1"]


class Probed:
    def __init__(self, answer: Any, delay: float = 0.0) -> None:
        self.answer, self.delay, self.calls = answer, delay, 0

    def is_available(self) -> bool:
        self.calls += 1
        time.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return bool(self.answer)


def test_availability_cache() -> None:
    now = [100.0]
    cache = AvailabilityCache(5.0, clock=lambda: now[0])
    up, down, broken = Probed(True), Probed(False), Probed(RuntimeError(CANARY))
    names = cache.available([("up", up), ("down", down), ("broken", broken)], wait=1.0)
    assert names == ["up"]
    cache.available([("up", up)], wait=1.0)
    assert up.calls == 1  # fresh: reused
    now[0] += 5.1
    cache.available([("up", up)], wait=1.0)
    assert up.calls == 2  # stale: asked again
    assert not cache.answer("up", Probed(True))  # another object under the name: no answer


def test_a_slow_probe_is_absent_this_time_and_kept_for_the_next() -> None:
    cache = AvailabilityCache(5.0)
    slow = Probed(True, delay=0.3)
    started = time.monotonic()
    assert cache.available([("slow", slow), ("up", Probed(True))], wait=0.05) == ["up"]
    assert time.monotonic() - started < 0.25
    time.sleep(0.4)
    assert cache.available([("slow", slow)], wait=0.05) == ["slow"] and slow.calls == 1


CONFIG: dict[str, Any] = {"providers": {
    "a": {"name": "anthropic", "model": "m", "api_key": "sk-ant-0123456789"},
    "b": {"name": "anthropic", "model": "m", "api_key": "sk-ant-9876543210", "weight": 2},
    "off": {"name": "anthropic", "model": "m", "enabled": False}},
    "fallback": ["a", "b"]}


def test_default_names() -> None:
    implicit = ProviderRegistry(config_from_dict(CONFIG, env={}))
    assert implicit.default_name == "a" and implicit.get_default_name() is None
    named = ProviderRegistry(config_from_dict({**CONFIG, "default_provider": "b"}, env={}))
    assert named.default_name == "b" and named.get_default_name() == "b"
    named.set_default("a")
    assert named.get_default_name() == "a" and named.default is named.get("a")


def test_runtime_toggle_leaves_a_provider_out_of_chains() -> None:
    registry = ProviderRegistry(config_from_dict(CONFIG, env={}))
    registry.set_enabled("b", False)
    assert registry.fallback_order() == ["a"]
    assert registry.get("b") is not None and registry.provider("b") is registry.get("b")
    assert [p.name for p in registry.get_available()] == ["a"]
    assert registry.select_weighted(exclude={"a"}) is None
    registry.set_enabled("b", True)
    assert registry.select_weighted(exclude={"a"}).name == "b"
    with pytest.raises(UsageError, match="disabled in the config"):
        registry.set_enabled("off", False)


@pytest.mark.parametrize("name", ["", None, 3])
def test_register_needs_a_name(name: Any) -> None:
    with pytest.raises(UsageError, match="a provider name is a non-empty str"):
        ProviderRegistry().register(name, object())


def test_not_initialised_is_both_kinds() -> None:
    assert issubclass(RegistryNotInitialised, RuntimeError)
    assert issubclass(RegistryNotInitialised, UsageError)


def test_diagnostics_say_what_is_wrong_without_a_call() -> None:
    config = config_from_dict({"providers": {
        "a": {"name": "anthropic", "model": "m", "fast_model": "f"},
        "o": {"name": "ollama", "model": "llama", "base_url": "http://10.9.9.9:11434"}}},
        env={})
    registry = ProviderRegistry(config)
    report = registry.provider("a").diagnostics()
    checks = {c["name"]: c for c in report["checks"]}
    assert report["status"] == "error" and report["type"] == "anthropic"
    assert checks["credentials"] == {"name": "credentials", "status": "error",
                                     "summary": "none", "remediation":
                                     "no key: set providers.a.api_key or ANTHROPIC_API_KEY"}
    assert checks["model_selection"]["summary"] == {"model": "m", "fast_model": "f",
                                                    "premium_model": ""}
    ollama = {c["name"]: c for c in registry.provider("o").diagnostics()["checks"]}
    assert ollama["credentials"]["summary"] == "not needed"
    assert ollama["network_policy"]["status"] == "ok"  # its base_url's host is added
    assert ollama["circuit_breaker"]["summary"]["state"] == "closed"
    assert ollama["keys"]["summary"] == {"count": 0, "strategy": "failover", "cooling": []}


def test_structured_output_kwargs() -> None:
    class Odd:
        pass

    class Schema:
        model_class = type("Weird Name!", (), {})

        def to_json_schema(self) -> dict[str, Any]:
            return {"type": "object"}

    provider = OllamaProvider({"model": "m"})
    assert provider.structured_output_kwargs({"type": "object"}) == {
        "schema": {"type": "object"}, "schema_name": "answer"}
    assert provider.structured_output_kwargs(Schema())["schema_name"] == "Weird_Name_"
    with pytest.raises(UsageError, match="the schema must be a JSON Schema object"):
        provider.structured_output_kwargs({})
    with pytest.raises(UsageError, match="got Odd"):
        provider.structured_output_kwargs(Odd())
    provider.close()


def test_a_provider_built_directly(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {"models": []}))
    direct = OllamaProvider({"model": "m", "base_url": server.url})
    try:
        assert direct.owns_client and direct.client.policy.check(server.url).allowed
        assert not direct.client.policy.check("https://elsewhere.example/").allowed
        assert direct.list_models() == []
    finally:
        direct.close()
    with pytest.raises(UsageError, match="the settings name type 'ollama'; this provider's "
                       "type is 'anthropic'"):
        AnthropicProvider({"name": "ollama", "model": "m"})
    with pytest.raises(UsageError, match=r"takes a ProviderConfig .* or a mapping of its "
                       r"settings, got builtins\.str"):
        OllamaProvider("llama3.2")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="unknown key 'modle'"):
        OllamaProvider({"modle": "m"})
