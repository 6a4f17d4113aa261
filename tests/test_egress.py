"""Egress policy, round two: every special address form (both edges of every range), exact-IP
entries bound to their port, an immutable policy, a proxy checked on every request, IPv6
through a proxy, and the audit record of the effective policy. End to end through
PolicyHTTPClient with stub resolvers, counting the connections the server accepts."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from typing import Any

import pytest
from loopback import Counter, Exchange, LoopbackServer

from missy_providers.config import config_from_dict, http_client, network_policy
from missy_providers.core.errors import ConfigError, PolicyViolation
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy, Target, special_ranges, special_reason

_SPECIAL_V4, _SPECIAL_V6 = special_ranges()


@pytest.mark.parametrize("net, what", [*_SPECIAL_V4, *_SPECIAL_V6], ids=str)
def test_both_edges_of_every_special_range(net: Any, what: str) -> None:
    for edge in (net[0], net[-1]):
        reason = special_reason(edge)
        inner = [w for n, w in (*_SPECIAL_V4, *_SPECIAL_V6) if n.version == net.version
                 and n.prefixlen > net.prefixlen and edge in n]
        assert reason is not None and (inner[0] if inner else what) in reason, (edge, reason)
    # Just outside: public, or another range's verdict (never this one's).
    for outside in (int(net[0]) - 1, int(net[-1]) + 1):
        if 0 <= outside < 2 ** net.max_prefixlen:
            neighbour = ipaddress.ip_address(outside) if net.version == 4 else \
                ipaddress.IPv6Address(outside)
            reason = special_reason(neighbour)
            assert reason is None or f"({net})" not in reason, (neighbour, reason)


@pytest.mark.parametrize("address, special", [
    ("8.8.8.8", False), ("1.1.1.1", False), ("100.63.255.255", False), ("100.128.0.0", False),
    ("172.15.255.255", False), ("172.32.0.0", False), ("223.255.255.255", False),
    ("2606:4700::1111", False), ("2a00:1450:4001::1", False),
    ("64:ff9b::808:808", False),            # NAT64 of 8.8.8.8: public
    ("2002:808:808::1", False),             # 6to4 of 8.8.8.8: public
    ("64:ff9b::a9fe:a9fe", True),           # NAT64 of the metadata service
    ("64:ff9b::7f00:1", True),              # NAT64 of loopback
    ("64:ff9b:1::a9fe:a9fe", True),         # local-use NAT64: special outright
    ("2002:a9fe:a9fe::", True),             # 6to4 of 169.254.169.254
    ("2002:7f00:1::", True),                # 6to4 of loopback
    ("::127.0.0.1", True),                  # IPv4-compatible
    ("::ffff:0:a9fe:a9fe", True),           # IPv4-translated
    ("::ffff:169.254.169.254", True),       # IPv4-mapped
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo
    ("4000::1", True),                      # outside global unicast
    ("169.254.169.254", True), ("0.0.0.0", True), ("255.255.255.255", True),
    ("192.0.2.1", True), ("198.18.0.1", True), ("240.0.0.1", True), ("224.0.0.1", True),
])
def test_address_forms(address: str, special: bool) -> None:
    assert (special_reason(ipaddress.ip_address(address)) is not None) is special


FORMS_OF_METADATA = ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
                     "64:ff9b:1::a9fe:a9fe", "2002:a9fe:a9fe::1", "::169.254.169.254",
                     "::ffff:0:a9fe:a9fe", "2001:0:a9fe:a9fe::1"]


@pytest.mark.parametrize("answer", FORMS_OF_METADATA)
def test_a_name_resolving_to_a_hidden_special_address_never_connects(answer: str) -> None:
    counter = Counter()
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"]),
                                  resolver=lambda host, port: [answer])
        with pytest.raises(PolicyViolation, match="DNS rebinding"):
            client.request("GET", f"http://api.example.com:{counter.port}/")
        open_mode = PolicyHTTPClient(NetworkPolicy(default_deny=False),
                                     resolver=lambda host, port: [answer])
        with pytest.raises(PolicyViolation):
            open_mode.request("GET", f"http://api.example.com:{counter.port}/")
    finally:
        counter.stop()
    assert counter.accepted == 0


def test_exact_ip_entry_allows_only_its_own_port(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {}))
    to_loopback = {"resolver": lambda host, port: ["127.0.0.1"]}
    other_port = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com",
                                                               "127.0.0.1:9"]), **to_loopback)
    with pytest.raises(PolicyViolation, match="DNS rebinding"):
        other_port.request("GET", f"http://api.example.com:{server.port}/")
    assert server.connections == 0
    same_port = PolicyHTTPClient(NetworkPolicy(allowed_hosts=[
        "api.example.com", f"127.0.0.1:{server.port}"]), **to_loopback)
    assert same_port.request("GET", f"http://api.example.com:{server.port}/").status == 200
    any_port = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com", "127.0.0.1"]),
                                **to_loopback)
    assert any_port.request("GET", f"http://api.example.com:{server.port}/").status == 200


def test_a_provider_base_url_ip_allows_only_its_port(server: LoopbackServer) -> None:
    config = config_from_dict({"providers": {"o": {"name": "ollama", "model": "m",
                                                   "base_url": "http://127.0.0.1:9"}},
                               "network": {"allowed_hosts": ["api.example.com"]}}, env={})
    client = PolicyHTTPClient(network_policy(config),
                              resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(PolicyViolation):
        client.request("GET", f"http://api.example.com:{server.port}/")
    assert server.connections == 0


def test_policy_is_immutable_and_a_new_one_applies_at_once(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(200, {}))
    policy = NetworkPolicy(allowed_hosts=["127.0.0.1"])
    with pytest.raises(AttributeError, match="immutable"):
        policy.allowed_hosts = ()  # type: ignore[misc]
    client = PolicyHTTPClient(policy)
    assert client.request("GET", server.url + "/").status == 200
    assert client.idle_connections() == 1
    client.policy = NetworkPolicy()  # deny everything
    assert client.idle_connections() == 0  # pooled connections made under the old one: gone
    with pytest.raises(PolicyViolation):
        client.request("GET", server.url + "/")
    assert server.connections == 1
    assert NetworkPolicy(allowed_hosts=["a.example"]) == NetworkPolicy(allowed_hosts=["a.example"])


def connect_proxy(log: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        try:
            listener.settimeout(3)
            conn, _ = listener.accept()
            conn.settimeout(3)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            log.append(data)
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            conn.close()
        except OSError:  # closed by the test: nobody came, as it should be
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener, thread


def test_proxy_is_checked_on_every_request() -> None:
    log: list[bytes] = []
    listener, thread = connect_proxy(log)
    port = listener.getsockname()[1]
    try:
        proxy = f"http://127.0.0.1:{port}"
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com",
                                                               f"127.0.0.1:{port}"]),
                                  proxy=proxy)
        client.policy = NetworkPolicy(allowed_hosts=["api.example.com"])  # proxy no longer
        with pytest.raises(PolicyViolation, match=f"127.0.0.1:{port}"):
            client.request("GET", "https://api.example.com/", headers={"x-api-key": "k"})
    finally:
        listener.close()
        thread.join(1)
    assert log == []  # not even a CONNECT


def test_ipv6_target_through_a_proxy_is_bracketed() -> None:
    log: list[bytes] = []
    listener, thread = connect_proxy(log)
    port = listener.getsockname()[1]
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["[2001:db8::1]:443",
                                                               f"127.0.0.1:{port}"]),
                                  proxy=f"http://127.0.0.1:{port}")
        with pytest.raises(Exception, match="refused to tunnel"):
            client.request("GET", "https://[2001:db8::1]:443/v1")
    finally:
        listener.close()
        thread.join(1)
    assert log[0].startswith(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n")


def test_plain_http_through_a_proxy_needs_an_explicit_yes(server: LoopbackServer) -> None:
    base = {"providers": {"o": {"name": "ollama", "model": "m",
                                "base_url": "http://ollama.internal:11434"}},
            "network": {"proxy": server.url, "allowed_hosts": ["127.0.0.1"]}}
    with pytest.raises(ConfigError, match="allow_plain_http_proxy"):
        config_from_dict(base, env={})
    base["network"]["allow_plain_http_proxy"] = True  # type: ignore[index]
    assert config_from_dict(base, env={}).network.allow_plain_http_proxy is True


def test_the_effective_policy_is_one_audit_record_with_origins() -> None:
    records: list[dict[str, Any]] = []
    config = config_from_dict({
        "providers": {"a": {"name": "anthropic", "model": "m"},
                      "o": {"name": "ollama", "model": "m"}},
        "network": {"allowed_hosts": ["extra.example"], "allowed_cidrs": ["10.1.0.0/16"]}},
        env={})
    http_client(config, audit=records.append)
    assert len(records) == 1
    policy = records[0]
    assert policy["event"] == "policy"
    assert policy["allowed"] == {
        "extra.example": "network.allowed_hosts", "10.1.0.0/16": "network.allowed_cidrs",
        "api.anthropic.com:443": "providers.a.base_url",
        "localhost:11434": "providers.o.base_url"}
    assert policy["default_deny"] is True and policy["trust"] == "system store"
    json.dumps(records)  # a JSON line as it is


def test_target_repr_hides_the_query() -> None:
    target = Target("https", "h", 443, "/p?key=secret")
    assert "secret" not in repr(target)


def exchange_ok(ex: Exchange) -> None:
    ex.json(200, {})


# --- audit truth: keys never in clear text off the machine; explicit TLS trust -------------


def test_a_key_over_plain_http_to_a_non_loopback_address_is_refused(server: LoopbackServer
                                                                     ) -> None:
    server.reset(exchange_ok)
    config = config_from_dict({"providers": {"o": {
        "name": "openai", "model": "m", "base_url": f"http://api.example.com:{server.port}",
        "api_key": "sk-test-key-123456", "max_retries": 0}},
        "network": {"allowed_cidrs": ["127.0.0.0/8", "10.0.0.0/8"]}}, env={})
    from missy_providers.registry import ProviderRegistry
    from missy_providers.types import Message

    remote = PolicyHTTPClient(network_policy(config), resolver=lambda h, p: ["10.1.2.3"])
    provider = ProviderRegistry(config, remote).get("o")
    with pytest.raises(PolicyViolation, match="refusing to send a credential in clear text over "
                                              r"http:// to api\.example\.com") as info:
        provider.complete([Message("user", "hi")])
    assert "set providers.o.allow_plain_http: true" in str(info.value)
    assert server.connections == 0
    local = PolicyHTTPClient(network_policy(config), resolver=lambda h, p: ["127.0.0.1"])
    # the same host resolving to loopback: the key stays on this machine
    server.reset(lambda ex: ex.json(200, {"choices": [{"message": {"content": "ok"},
                                                       "finish_reason": "stop"}]}))
    assert ProviderRegistry(config, local).get("o").complete([Message("user", "hi")]).content \
        == "ok"
    opted = config_from_dict({"providers": {"o": {
        "name": "openai", "model": "m", "base_url": f"http://api.example.com:{server.port}",
        "api_key": "sk-test-key-123456", "allow_plain_http": True}}}, env={})
    assert opted.providers["o"].allow_plain_http is True


def test_system_trust_ignores_ssl_cert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = PolicyHTTPClient(NetworkPolicy())._context().cert_store_stats()["x509_ca"]
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    assert PolicyHTTPClient(NetworkPolicy())._context().cert_store_stats()["x509_ca"] == baseline


def test_ca_bundle_replaces_unless_told_to_add() -> None:
    from loopback import CERT

    only = PolicyHTTPClient(NetworkPolicy(), ca_bundle=str(CERT))._context()
    both = PolicyHTTPClient(NetworkPolicy(), ca_bundle=str(CERT),
                            ca_bundle_adds_to_system=True)._context()
    assert only.cert_store_stats()["x509_ca"] == 1
    assert both.cert_store_stats()["x509_ca"] > 1


def test_ssl_key_log_is_ignored_unless_enabled(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Any) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    assert PolicyHTTPClient(NetworkPolicy())._context().keylog_filename is None
    enabled = PolicyHTTPClient(NetworkPolicy(), tls_key_log=True)._context()
    assert enabled.keylog_filename == str(tmp_path / "keys.log")
