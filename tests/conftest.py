from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import ProviderError
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry

LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"})


def _loopback_only(event: str, args: tuple[Any, ...]) -> None:
    """No test reaches past this machine: a connect to, or a DNS lookup of, anything that is
    not loopback fails the test that tried (a refusal must come before the socket)."""
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not str(host).startswith("127.") and host not in LOOPBACK_NAMES:
            raise RuntimeError(f"a test tried to connect to {host}: tests stay on loopback")
    elif event == "socket.getaddrinfo":
        host = args[0]
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not str(name).startswith("127.") and \
                name not in LOOPBACK_NAMES:
            raise RuntimeError(f"a test tried to resolve {name}: tests stay on loopback")


sys.addaudithook(_loopback_only)

CANARY = "sk-canary-9f8e7d6c5b4a3210-DO-NOT-LEAK"
TRAFFIC = Path(__file__).resolve().parent / "data" / "real-traffic"
RECORDED_EXCHANGES = 60


def recorded_exchanges() -> list[Path]:
    """The recorded real exchanges in tests/data/real-traffic. A missing or short corpus is an
    error at collection, never an empty parameter list that pytest would quietly skip."""
    found = sorted(TRAFFIC.glob("*.json"))
    if len(found) != RECORDED_EXCHANGES:
        raise RuntimeError(f"expected {RECORDED_EXCHANGES} recorded exchanges in {TRAFFIC}, "
                           f"found {len(found)}: the test data is missing or incomplete")
    return found


@pytest.fixture(scope="module")
def module_server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.stop()


@pytest.fixture
def server(module_server: LoopbackServer) -> LoopbackServer:
    module_server.reset()
    return module_server


@pytest.fixture(scope="module")
def module_tls_server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer(tls=True)
    yield srv
    srv.stop()


@pytest.fixture
def tls_server(module_tls_server: LoopbackServer) -> LoopbackServer:
    module_tls_server.reset()
    return module_tls_server


def loopback_client(**kw: Any) -> PolicyHTTPClient:
    """A client whose policy allows 127.0.0.1 (any port) and nothing else."""
    policy = NetworkPolicy(allowed_hosts=["127.0.0.1"])
    return PolicyHTTPClient(policy, **kw)


@pytest.fixture
def client() -> Iterator[PolicyHTTPClient]:
    c = loopback_client()
    yield c
    c.close()


def loopback_provider(server: LoopbackServer, ptype: str, **settings: Any) -> Any:
    """A provider of ``ptype`` pointed at the loopback server (no retries)."""
    base = server.url + ("/v1" if ptype in ("openai", "openai-codex") else "")
    config = config_from_dict({"providers": {"p": {
        "name": ptype, "model": "m", "base_url": base, "api_key": "sk-test-123456",
        "max_retries": 0, **settings}}}, env={})
    return ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).get("p")


def sent_body(server: LoopbackServer, ptype: str, messages: Any, tools: Any = None,
              **opts: Any) -> dict[str, Any]:
    """The JSON body a provider of ``ptype`` sends for this call, as the server received it
    (the server answers 400 so that nothing after the request matters)."""
    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    provider = loopback_provider(server, ptype)
    with pytest.raises(ProviderError, match="captured"):
        if tools is None:
            provider.complete(messages, **opts)
        else:
            provider.complete_with_tools(messages, tools, **opts)
    body: dict[str, Any] = json.loads(server.requests[-1].body)
    return body


# The README says how long the whole suite takes at most; a whole run that takes longer fails
# (a selection of tests, or a run with -x that stopped early, is not judged).
SUITE_LIMIT_SECONDS = 240  # CI allows 5 minutes on 2 cores
_started: list[float] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _started.append(time.monotonic())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import time

    whole = session.config.args == ["tests"] or session.config.args == [str(TRAFFIC.parents[1])]
    took = time.monotonic() - _started[0]
    if whole and exitstatus == 0 and not session.config.option.keyword and \
            not session.config.option.markexpr and took > SUITE_LIMIT_SECONDS:
        session.config.get_terminal_writer().line(
            f"the whole suite took {took:.0f} s, over the README's limit of "
            f"{SUITE_LIMIT_SECONDS} s", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
