from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackServer

from missy_providers.http import PolicyHTTPClient
from missy_providers.policy import NetworkPolicy

CANARY = "sk-canary-9f8e7d6c5b4a3210-DO-NOT-LEAK"
TRAFFIC = Path(__file__).resolve().parent / "data" / "real-traffic"
RECORDED_EXCHANGES = 54


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
