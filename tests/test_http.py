"""PolicyHTTPClient against real loopback servers (plain and TLS)."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import CANARY, loopback_client
from loopback import CERT, Counter, Exchange, LoopbackServer, RefusingPort

from missy_providers.core.errors import (
    PolicyViolation,
    ProtocolError,
    ProviderUnavailable,
    RedirectRefused,
    RequestTimeout,
    UsageError,
)
from missy_providers.core.http import PolicyHTTPClient, Timeouts
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.wire import SEPARATE_BODY_BYTES


def ok(ex: Exchange) -> None:
    ex.json(200, {"ok": True, "path": ex.req.path})


def test_plain_request_and_json(server: LoopbackServer, client: PolicyHTTPClient) -> None:
    server.reset(ok)
    r = client.request("POST", server.url + "/v1/x?q=1", json={"a": 1})
    assert r.status == 200
    assert r.json() == {"ok": True, "path": "/v1/x?q=1"}
    req = server.requests[0]
    assert req.json() == {"a": 1}
    assert req.headers["content-type"] == "application/json"
    assert req.headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("size", [SEPARATE_BODY_BYTES - 100, SEPARATE_BODY_BYTES + 100,
                                  2 * 1024 * 1024])
def test_a_body_of_any_size_arrives_whole(server: LoopbackServer, client: PolicyHTTPClient,
                                          size: int) -> None:
    """A large body is sent after its head rather than copied behind it: the server gets the
    same request either way, on a connection that stays reusable."""
    server.reset(ok)
    text = "é" + "x" * size
    for _ in range(2):
        assert client.request("POST", server.url + "/big", json={"t": text}).status == 200
    assert [r.json() for r in server.requests] == [{"t": text}] * 2
    assert server.requests[0].headers["content-length"] == str(len(text.encode()) + 8)
    assert pieces_of(size) == (1 if size < SEPARATE_BODY_BYTES - 10 else 2)


def pieces_of(size: int) -> int:
    from missy_providers.core.policy import NetworkPolicy as Policy
    from missy_providers.core.wire import Payload, frame_request

    target = Policy(allowed_hosts=["127.0.0.1"]).check("http://127.0.0.1:1/x").target
    assert target is not None
    return len(frame_request("POST", target, "/x", Payload(b"x" * size), {}))


def test_refused_before_any_connection(server: LoopbackServer) -> None:
    server.reset(ok)
    deny_all = PolicyHTTPClient(NetworkPolicy())
    with pytest.raises(PolicyViolation, match="not allowed by the network policy"):
        deny_all.request("GET", server.url + "/")
    assert server.connections == 0
    with pytest.raises(PolicyViolation, match="only http:// and https://"):
        deny_all.request("GET", f"ftp://127.0.0.1:{server.port}/")
    assert server.connections == 0


def test_redirect_is_not_followed_and_key_stays(server: LoopbackServer) -> None:
    elsewhere = Counter()
    try:
        target = f"http://127.0.0.1:{elsewhere.port}/steal?token=x"
        server.reset(lambda ex: ex.send(302, b"", [("Location", target)]))
        client = loopback_client()
        with pytest.raises(RedirectRefused) as info:
            client.request("POST", server.url + "/v1/messages", headers={"x-api-key": CANARY},
                           json={})
        assert info.value.location == f"http://127.0.0.1:{elsewhere.port}"  # never the path
        assert info.value.status == 302
        assert CANARY not in str(info.value)
        time.sleep(0.1)
        assert elsewhere.accepted == 0
    finally:
        elsewhere.stop()


def test_environment_proxies_are_ignored(server: LoopbackServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = Counter()
    try:
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                    "all_proxy"):
            monkeypatch.setenv(var, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        server.reset(ok)
        assert loopback_client().request("GET", server.url + "/").status == 200
        time.sleep(0.1)
        assert proxy.accepted == 0
        assert server.connections == 1
    finally:
        proxy.stop()


def test_configured_proxy_gets_absolute_form(server: LoopbackServer) -> None:
    server.reset(ok)
    policy = NetworkPolicy(allowed_hosts=["127.0.0.1", "api.example.com"])
    client = PolicyHTTPClient(policy, proxy=server.url, allow_plain_http_proxy=True)
    r = client.request("GET", "http://api.example.com/v1/models")
    assert r.status == 200
    assert server.requests[0].path == "http://api.example.com:80/v1/models"


def test_proxy_must_pass_the_policy(server: LoopbackServer) -> None:
    with pytest.raises(PolicyViolation):
        PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"]), proxy=server.url)


def test_dns_rebinding_is_refused(server: LoopbackServer) -> None:
    server.reset(ok)
    rebinding = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"]),
                                 resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(PolicyViolation, match="DNS rebinding"):
        rebinding.request("GET", f"http://api.example.com:{server.port}/")
    assert server.connections == 0


def test_private_answer_allowed_by_cidr_connects_to_checked_address(
        server: LoopbackServer) -> None:
    server.reset(ok)
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"],
                                            allowed_cidrs=["127.0.0.0/8"]), resolver=resolver)
    for _ in range(3):
        assert client.request("GET", f"http://api.example.com:{server.port}/").status == 200
    assert server.requests[0].headers["host"] == f"api.example.com:{server.port}"
    assert asked == ["api.example.com"]  # resolved once, then the checked answer is reused


def test_keep_alive_reuses_one_connection(server: LoopbackServer,
                                          client: PolicyHTTPClient) -> None:
    server.reset(ok)
    for i in range(100):
        assert client.request("POST", server.url + f"/{i}", json={"i": i}).json()["ok"]
    assert len(server.requests) == 100
    assert server.connections == 1
    assert client.idle_connections() == 1


def test_host_header_cannot_be_overridden(server: LoopbackServer,
                                          client: PolicyHTTPClient) -> None:
    with pytest.raises(UsageError, match="HOST header is set by the client"):
        client.request("GET", server.url + "/", headers={"HOST": "evil.example"})
    with pytest.raises(UsageError, match="value not shown"):
        client.request("GET", server.url + "/", headers={"x-api-key": CANARY + "\r\nX: y"})


def test_stall_before_headers_hits_read_timeout(server: LoopbackServer,
                                                client: PolicyHTTPClient) -> None:
    server.reset(lambda ex: time.sleep(3))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        client.request("GET", server.url + "/", timeout=Timeouts(connect=1, read=0.3))
    assert time.monotonic() - started < 2


def test_stall_mid_stream_hits_read_timeout(server: LoopbackServer,
                                            client: PolicyHTTPClient) -> None:
    def stall(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk("data: one\n\n")
        time.sleep(3)

    server.reset(stall)
    r = client.request("GET", server.url + "/", stream=True,
                       timeout=Timeouts(connect=1, read=0.3))
    chunks = r.iter_raw()
    assert next(chunks) == b"data: one\n\n"
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="read timeout"):
        next(chunks)
    assert time.monotonic() - started < 2
    assert client.idle_connections() == 0


def test_overall_deadline(server: LoopbackServer, client: PolicyHTTPClient) -> None:
    def trickle(ex: Exchange) -> None:
        ex.start_chunked()
        for _ in range(40):
            ex.chunk("data: x\n\n")
            time.sleep(0.05)
        ex.end_chunked()

    server.reset(trickle)
    r = client.request("GET", server.url + "/", stream=True,
                       timeout=Timeouts(connect=1, read=1, total=0.5))
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"deadline passed .* total timeout 0\.5s"):
        for _ in r.iter_raw():
            pass
    assert time.monotonic() - started < 1.5


def test_declared_huge_body_is_refused(server: LoopbackServer, client: PolicyHTTPClient) -> None:
    def huge(ex: Exchange) -> None:
        ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: 2147483648\r\n\r\n{")
        time.sleep(0.2)
        ex.hang_up()

    server.reset(huge)
    with pytest.raises(ProtocolError, match="declares 2147483648 bytes"):
        client.request("GET", server.url + "/")


def test_body_over_limit_is_refused(server: LoopbackServer) -> None:
    def big(ex: Exchange) -> None:
        ex.start_chunked(content_type="application/json")
        for _ in range(10):
            ex.chunk(b"x" * 500)
        ex.end_chunked()

    server.reset(big)
    small = loopback_client(max_body_bytes=1000)
    with pytest.raises(ProtocolError, match="over the 1000-byte limit"):
        small.request("GET", server.url + "/")


def test_truncated_chunked_body(server: LoopbackServer, client: PolicyHTTPClient) -> None:
    def truncated(ex: Exchange) -> None:
        ex.start_chunked(content_type="application/json")
        ex.raw(b"100\r\n{\"partial\": ")
        ex.hang_up()

    server.reset(truncated)
    with pytest.raises(ProtocolError, match="ended after 12 bytes without its last chunk"):
        client.request("GET", server.url + "/")


def test_refused_connection(client: PolicyHTTPClient) -> None:
    closed = RefusingPort()
    with pytest.raises(ProviderUnavailable, match="refused"):
        client.request("GET", f"http://127.0.0.1:{closed.port}/")
    closed.close()


def test_stream_closed_early_closes_its_connection(server: LoopbackServer,
                                                   client: PolicyHTTPClient) -> None:
    def endless(ex: Exchange) -> None:
        ex.start_chunked()
        for _ in range(50):
            ex.chunk("data: x\n\n")
            time.sleep(0.01)
        ex.end_chunked()

    server.reset(endless)
    with client.request("GET", server.url + "/", stream=True) as r:
        next(r.iter_raw())
    assert client.idle_connections() == 0
    server.handler = ok
    client.request("GET", server.url + "/")
    assert server.connections == 2


def test_stream_read_to_end_returns_connection(server: LoopbackServer,
                                               client: PolicyHTTPClient) -> None:
    def short(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk("data: a\n\n")
        ex.end_chunked()

    server.reset(short)
    for _ in range(3):
        with client.request("GET", server.url + "/", stream=True) as r:
            assert b"".join(r.iter_raw()) == b"data: a\n\n"
    assert server.connections == 1


def test_server_closing_idle_connection_is_survived(server: LoopbackServer,
                                                    client: PolicyHTTPClient) -> None:
    def ok_then_close(ex: Exchange) -> None:
        ex.send(200, b"{}", [("Connection", "keep-alive")])
        ex.hang_up()  # the server drops the keep-alive connection after answering

    server.reset(ok_then_close)
    client.request("GET", server.url + "/")
    time.sleep(0.05)
    assert client.request("GET", server.url + "/").status == 200
    assert server.connections == 2


def test_tls_verifies_with_ca_bundle(tls_server: LoopbackServer) -> None:
    tls_server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["localhost", "127.0.0.1"]),
                              ca_bundle=str(CERT))
    assert client.request("GET", f"https://localhost:{tls_server.port}/").json()["ok"]
    assert client.request("GET", f"https://127.0.0.1:{tls_server.port}/").json()["ok"]
    assert tls_server.requests[0].headers["host"] == f"localhost:{tls_server.port}"


def test_tls_without_trust_fails_closed(tls_server: LoopbackServer) -> None:
    tls_server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["localhost"]))
    with pytest.raises(ProviderUnavailable, match="TLS with localhost failed"):
        client.request("GET", f"https://localhost:{tls_server.port}/")
    assert tls_server.requests == []


def test_audit_hook_records_every_decision_without_secrets(server: LoopbackServer) -> None:
    server.reset(ok)
    records: list[dict[str, object]] = []
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), audit=records.append)
    client.request("POST", server.url + f"/v1/x?key={CANARY}", headers={"x-api-key": CANARY},
                   json={"k": CANARY})
    with pytest.raises(PolicyViolation):
        client.request("GET", f"http://user:{CANARY}@127.0.0.1/")
    with pytest.raises(PolicyViolation):
        client.request("GET", "https://evil.example/")
    assert records[0]["event"] == "policy"  # the effective policy, once, when built
    records = records[1:]
    assert [r["allowed"] for r in records] == [True, False, False]
    assert records[0]["path"] == "/v1/x" and records[0]["port"] == server.port
    assert records[2]["host"] == "evil.example"
    assert CANARY not in json.dumps(records)


def test_audit_log_file(server: LoopbackServer, tmp_path: object) -> None:
    from pathlib import Path

    log = Path(str(tmp_path)) / "audit.jsonl"
    server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), audit_log=str(log))
    client.request("GET", server.url + "/a")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["event"] == "policy"
    assert lines[0]["allowed"] == {"127.0.0.1": "network.allowed_hosts"}
    assert len(lines) == 2 and lines[1]["allowed"] is True and lines[1]["path"] == "/a"


def test_the_audit_log_is_private_keeps_no_query_and_fails_closed(
        server: LoopbackServer, tmp_path: object) -> None:
    """Created 0600; an existing 0644 log is tightened before the first line; no query string
    and no header value is logged; a log that cannot be written refuses the request, and
    nothing is sent."""
    import os
    import stat
    from pathlib import Path

    from missy_providers.core.errors import ConfigError

    server.reset(ok)
    new, old = Path(str(tmp_path)) / "new.jsonl", Path(str(tmp_path)) / "old.jsonl"
    old.write_text("")
    os.chmod(old, 0o644)
    for log in (new, old):
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]),
                                  audit_log=str(log))
        client.request("POST", server.url + f"/v1/x?key={CANARY}", json={},
                       headers={"x-api-key": CANARY}).close()
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        text = log.read_text()
        assert CANARY not in text and "?" not in text and "/v1/x" in text
    sent = len(server.requests)
    blocked = Path(str(tmp_path)) / "blocked.jsonl"
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]),
                              audit_log=str(blocked))
    blocked.unlink()
    blocked.mkdir()  # the log can no longer be written
    with pytest.raises(ConfigError, match="nothing was sent"):
        client.request("GET", server.url + "/")
    assert len(server.requests) == sent


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 86401, True, "5"])
def test_timeouts_are_validated(bad: object) -> None:
    with pytest.raises(UsageError, match=r"timeouts.read must be a number > 0 and <= 86400"):
        Timeouts(read=bad)  # type: ignore[arg-type]


class ConnectProxy:
    """A minimal HTTPS forward proxy: answers CONNECT, then pipes bytes both ways."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(1024)
            self.requests.append(head.split(b"\r\n")[0])
            port = head.split()[1].decode().rpartition(":")[2]  # always to 127.0.0.1
            upstream = socket.create_connection(("127.0.0.1", int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: object, dst: object) -> None:
        try:
            while data := src.recv(65536):  # type: ignore[attr-defined]
                dst.sendall(data)  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()  # type: ignore[attr-defined]
                except OSError:
                    pass

    def stop(self) -> None:
        self.sock.close()


def test_https_through_a_configured_proxy_uses_connect(tls_server: LoopbackServer) -> None:
    tls_server.reset(ok)
    proxy = ConnectProxy()
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1", "localhost"]),
                                  proxy=f"http://127.0.0.1:{proxy.port}", ca_bundle=str(CERT))
        r = client.request("GET", f"https://localhost:{tls_server.port}/v1/x")
        assert r.json() == {"ok": True, "path": "/v1/x"}
        [connect] = proxy.requests  # http.client tunnels with an HTTP/1.0 CONNECT line
        assert connect.startswith(f"CONNECT localhost:{tls_server.port} HTTP/".encode())
        assert tls_server.requests[0].headers["host"] == f"localhost:{tls_server.port}"
        denied = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]),
                                  proxy=f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(PolicyViolation):  # the target is checked too, before the proxy
            denied.request("GET", f"https://localhost:{tls_server.port}/")
        assert len(proxy.requests) == 1
    finally:
        proxy.stop()


@pytest.mark.parametrize("headers, fragment", [
    ({"Content-Length": "5"}, "Content-Length header is set by the client"),
    ({"transfer-encoding": "chunked"}, "transfer-encoding header is set by the client"),
    ({"Connection": "close"}, "Connection header is set by the client"),
    ({"TE": "trailers"}, "TE header is set by the client"),
    ({"Trailer": "x"}, "Trailer header is set by the client"),
    ({"Upgrade": "h2c"}, "Upgrade header is set by the client"),
    ({"Expect": "100-continue"}, "Expect header is set by the client"),
    ({"Host\t": "evil.example"}, "header name has a character that is not allowed at index 4"),
    ({"X\x0bY": "1"}, "header name has a character that is not allowed at index 1"),
    ({"X\x00": "1"}, "header name has a character that is not allowed at index 1"),
    ({"": "1"}, "a header name must be a non-empty string"),
    ({"x-a": "v\x00"}, "a header value has a character that cannot be sent"),
    ({"x-a": "\u2603"}, "a header value has a character that cannot be sent"),
])
def test_request_framing_is_the_clients(server: LoopbackServer, client: PolicyHTTPClient,
                                        headers: dict[str, str], fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        client.request("POST", server.url + "/", headers=headers, json={})
    assert server.requests == [] and server.connections == 0


@pytest.mark.parametrize("method", ["GET http://evil.example/ HTTP/1.1\r\nX:", "PUT", "get",
                                    "CONNECT"])
def test_methods_come_from_a_fixed_set(server: LoopbackServer, client: PolicyHTTPClient,
                                       method: str) -> None:
    with pytest.raises(UsageError, match="is not one of GET, POST, HEAD, DELETE"):
        client.request(method, server.url + "/")
    assert server.connections == 0


def test_a_stream_left_early_in_the_same_thread_closes_its_socket(
        server: LoopbackServer, client: PolicyHTTPClient) -> None:
    def long(ex: Exchange) -> None:
        ex.start_chunked()
        for _ in range(50):
            ex.chunk("data: x\n\n")
        ex.end_chunked()

    server.reset(long)
    for _ in range(3):
        with client.request("GET", server.url + "/", stream=True) as r:
            chunks = r.iter_raw()
            next(chunks)  # the generator stays suspended (and referenced) past the block
        assert r._conn.sock.fileno() == -1  # closed now, not when the generator is collected
        del chunks
    assert client.idle_connections() == 0


def test_a_callers_header_in_another_case_replaces_ours(server: LoopbackServer,
                                                        client: PolicyHTTPClient) -> None:
    """One pass over the caller's headers (request_headers): a name given in any case
    replaces ours, and the request carries that header once."""
    from missy_providers.core.headers import request_headers

    ours = {"User-Agent": "u", "Accept": "application/json", "Content-Type": "application/json"}
    out, found = request_headers(ours, {"accept": "text/plain", "ACCEPT": "text/html"},
                                 {name.lower(): name for name in ours})
    assert [k for k in out if k.lower() == "accept"] == ["ACCEPT"] and found == []
    out, _ = request_headers({"Accept": "application/json"}, {"content-type": "text/plain"},
                             {"accept": "Accept", "content-type": "Content-Type"})
    assert dict(out) == {"Accept": "application/json", "content-type": "text/plain"}
    server.reset(ok)
    client.request("GET", server.url + "/", headers={"accept": "text/plain",
                                                     "content-type": "text/x"})
    client.request("POST", server.url + "/", headers={"CONTENT-TYPE": "text/y"}, json={})
    assert [(r.headers["accept"], r.headers["content-type"]) for r in server.requests] == \
        [("text/plain", "text/x"), ("application/json", "text/y")]


def test_every_credential_among_a_requests_headers_is_found() -> None:
    """A Secret, a Credential, and a literal in a header whose name says credential are each
    the credential door's; a literal in any other header is not."""
    from missy_providers.core.headers import Credential, request_headers
    from missy_providers.core.secret import Secret

    key, token = Secret(CANARY), Secret(CANARY + "t")
    _, found = request_headers({}, {"X-Api-Key": key, "Authorization": Credential(token, "B"),
                                    "X-Auth-Token": "literal-token", "X-Tenant": "t1"})
    assert found[:2] == [key, token] and len(found) == 3
    assert repr(found[2]) == "Secret('***')" and found[2].origin == "header X-Auth-Token"


def test_a_user_agent_that_would_frame_a_header_is_refused() -> None:
    with pytest.raises(UsageError, match="user_agent: a header value has a character"):
        PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]),
                         user_agent="missy\r\nX-Injected: 1")


def test_requests_without_a_timeout_share_the_default() -> None:
    """Timeouts are immutable: a request given none shares one default (and a total of its
    own still gets its own)."""
    assert Timeouts.of(None) is Timeouts.of(None) == Timeouts()
    assert Timeouts.of(None, total=5.0) == Timeouts(total=5.0)


class Sneaky(str):
    """Text that shows a check one thing and the wire another."""

    def __str__(self) -> str:
        return "ok\r\nX-Injected: 1"

    __format__ = lambda self, spec: "ok\r\nX-Injected: 1"  # noqa: E731
    __iter__ = lambda self: iter("ok")  # noqa: E731


class SneakyName(str):
    def lower(self) -> str:  # type: ignore[override]
        return "x-harmless"


class SneakyMethod(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def test_text_that_is_a_str_subclass_is_sent_as_its_own_characters(
        server: LoopbackServer) -> None:
    """A str subclass is made plain before it is checked (own_text): what is checked is what
    is sent, whatever its methods say (header names and values, a Secret's value, the method,
    the URL, the user agent)."""
    from missy_providers.core.headers import Credential
    from missy_providers.core.secret import Secret

    server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
    assert client.request("GET", Sneaky(server.url + "/"),
                          headers={"X-A": Sneaky("fine"), "X-Api-Key": Secret(Sneaky(CANARY))}
                          ).status == 200
    sent = server.requests[0].headers
    assert "x-injected" not in sent and sent["x-a"] == "fine" and sent["x-api-key"] == CANARY
    with pytest.raises(UsageError, match="the Transfer-Encoding header is set by the client"):
        client.request("GET", server.url + "/",
                       headers={SneakyName("Transfer-Encoding"): "chunked"})
    with pytest.raises(UsageError, match="is not one of GET, POST, HEAD, DELETE"):
        client.request(SneakyMethod("GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET"),
                       server.url + "/")
    with pytest.raises(UsageError, match="scheme must be a token"):
        client.request("GET", server.url + "/",
                       headers={"Authorization": Credential(Secret(CANARY), "Bearer\r\nX: 1")})
    for agent in (Sneaky("missy"), Secret(CANARY)):
        with pytest.raises(UsageError, match="user_agent must be a str"):
            PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), user_agent=agent)
    assert len(server.requests) == 1


# RFC 9110 section 5.6.2's tchar, written out here apart from the package's own.
TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_the_header_value_rule_is_the_same_on_its_fast_path() -> None:
    """Printable ASCII is checked by str's own methods, anything else by the character sets
    the rule states (RFC 9110: visible ASCII, space, tab and obs-text; a credential: visible
    ASCII only): every character below U+0300, alone and inside a longer value, gets the
    sets' answer."""
    from missy_providers.core.headers import (
        _CREDENTIAL_CHARS,
        _VALUE_CHARS,
        header_name_problem,
        header_value_problem,
    )

    for code in range(0x300):
        ch = chr(code)
        for text in (ch, f"sk-{ch}-0123456789"):
            assert (header_value_problem(text) is None) == _VALUE_CHARS.issuperset(text)
            assert (header_value_problem(text, credential=True) is None) == \
                _CREDENTIAL_CHARS.issuperset(text)
            assert (header_name_problem(text) is None) == TOKEN.issuperset(text)
    assert header_value_problem("") is None and header_name_problem("") is not None


class FormatsOtherwise(str):
    """Text whose formatting (what an f-string writes) adds a header."""

    def __format__(self, spec: str) -> str:
        return str.__str__(self) + "\r\nX-Injected: 1"


class LyingLength(str):
    def __len__(self) -> int:
        return 1


class LyingBytes(bytes):
    def __len__(self) -> int:
        return 2


class ClaimsToBeASecret:
    """An object that tells isinstance() it is a Secret."""

    __class__ = property(lambda self: __import__(  # type: ignore[assignment]
        "missy_providers.core.secret", fromlist=["Secret"]).Secret)

    def reveal(self) -> str:
        return "ok\r\nX-Injected: 1"


def test_the_door_takes_its_own_types_exactly(server: LoopbackServer) -> None:
    """Secret and Credential are final and checked by exact type; what they hold is plain
    text; a body is its own bytes; a method that is a StrEnum is its plain text."""
    import http
    from array import array
    from datetime import datetime, timezone

    from missy_providers.core.headers import Credential
    from missy_providers.core.secret import Secret, scrub
    from missy_providers.core.sigv4 import AwsCredentials, sign

    for final in (Secret, Credential):
        with pytest.raises(TypeError, match="cannot be subclassed"):
            type("Sub", (final,), {})
    with pytest.raises(UsageError, match="a Credential holds a Secret"):
        Credential(ClaimsToBeASecret(), "Bearer")  # type: ignore[arg-type]
    value = "lying-about-its-length-7f3a9c"
    held = Secret(LyingLength(value))  # its own length decides that it is scrubbed
    assert scrub(f"key {value}") == "key [REDACTED]" and held.reveal() == value
    server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
    with pytest.raises(UsageError, match="a header value must be a string"):
        client.request("GET", server.url + "/", headers={"X-A": ClaimsToBeASecret()})
    words = array("I", [0x41414141] * 4)  # 16 bytes, 4 items
    for body in (LyingBytes(b"0123456789"), memoryview(words)):
        client.request(http.HTTPMethod.POST, server.url + "/", body=body)
    assert [r.body for r in server.requests] == [b"0123456789", b"A" * 16]
    with pytest.raises(UsageError, match="body must be bytes, got int"):
        client.request("POST", server.url + "/", body=5)  # type: ignore[arg-type]
    signed = sign("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/x", {}, b"",
                  region=FormatsOtherwise("us-east-1"), service=FormatsOtherwise("bedrock"),
                  credentials=AwsCredentials(FormatsOtherwise("AKIDEXAMPLE"),
                                             Secret(CANARY)),
                  now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert "\r" not in signed["Authorization"] and "\n" not in signed["Authorization"]
    assert len(server.requests) == 2


class Pretends(str):
    """Text whose methods tell a check something other than its characters."""

    def lower(self) -> str:  # type: ignore[override]
        return self

    def partition(self, sep: str) -> tuple[str, str, str]:  # type: ignore[override]
        return ("93.184.216.34", "", "")  # a public address, for the rebinding check

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def test_what_decides_egress_is_read_as_plain_text_once(server: LoopbackServer) -> None:
    """The resolver's answer, the policy's entries and a provider's reserved header names are
    made plain before they are checked; the signer and its keys are final; a URL that is not
    text is refused before the decision cache."""
    from missy_providers.core.headers import header_problems
    from missy_providers.core.sigv4 import AwsCredentials, AwsSigner

    for final in (AwsSigner, AwsCredentials):
        with pytest.raises(TypeError, match="cannot be subclassed"):
            type("Sub", (final,), {})
    server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["api.example.com"]),
                              resolver=lambda host, port: [Pretends("127.0.0.1")])
    with pytest.raises(PolicyViolation, match=r"resolved to 127\.0\.0\.1"):
        client.request("GET", f"http://api.example.com:{server.port}/")
    entry = Pretends("api.openai.com")
    policy = NetworkPolicy(allowed_hosts=[entry], allowed_domains=[entry])
    assert not policy.check("https://metadata.example/").allowed
    assert header_problems({Pretends("X-Api-Key"): "v"},
                           frozenset({"x-api-key"})) == [
        ("X-Api-Key", "set by the client itself, it cannot be overridden")]
    with pytest.raises(UsageError, match="url must be a str, got int"):
        client.request("GET", 5)  # type: ignore[arg-type]
    assert server.requests == []


def test_a_decision_never_lands_in_another_policys_cache(server: LoopbackServer) -> None:
    """A policy and the decisions made under it are one value: a request that read the old
    policy cannot leave its decision for requests under the new one."""
    server.reset(ok)
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
    policy, decisions = client._policy_state
    client.policy = NetworkPolicy(allowed_hosts=[])
    decisions[server.url + "/"] = policy.check(server.url + "/")  # a late write, as a race
    with pytest.raises(PolicyViolation):
        client.request("GET", server.url + "/")
    assert server.requests == []


def test_a_client_certificate_is_exactly_one(tls_server: LoopbackServer) -> None:
    """ClientCert is final and taken by exact type (its load() is handed the TLS context,
    where verification could be switched off); its paths are plain text."""
    from pathlib import Path

    from missy_providers.core.http import ClientCert

    class SwitchesVerificationOff:
        def load(self, ctx: object) -> None:
            ctx.check_hostname = False  # type: ignore[attr-defined]
            ctx.verify_mode = 0  # type: ignore[attr-defined]

        def check(self) -> None:
            pass

    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("Sub", (ClientCert,), {})
    with pytest.raises(UsageError, match="are file paths, got int"):
        ClientCert(123, "k")  # type: ignore[arg-type]
    assert type(ClientCert(Path("/tmp/c.pem"), Pretends("/tmp/k.pem")).key) is str  # type: ignore[arg-type]
    policy = NetworkPolicy(allowed_hosts=["127.0.0.1"])
    with pytest.raises(UsageError, match="client_cert must be a ClientCert"):
        PolicyHTTPClient(policy, client_cert=SwitchesVerificationOff())  # type: ignore[arg-type]
    client = PolicyHTTPClient(policy)  # no CA bundle: the test server is not trusted
    with pytest.raises(UsageError, match="client_cert must be a ClientCert"):
        client.request("GET", tls_server.url + "/",
                       client_cert=SwitchesVerificationOff())  # type: ignore[arg-type]
    assert tls_server.requests == []


def test_the_scrubber_reads_a_texts_own_characters() -> None:
    """Text handed to scrub or sanitize as a str subclass is read as its characters, not
    through its len(), find() or slicing."""
    from missy_providers.core.secret import Secret, sanitize, scrub

    class Hides(str):
        def __len__(self) -> int:
            return 0

        def find(self, *args: object) -> int:  # type: ignore[override]
            return -1

    held = Secret("Hunter2.correct.horse.battery")
    text = Hides(f"server said {held.reveal()} ok")
    assert scrub(text) == "server said [REDACTED] ok"
    assert sanitize(text) == "server said [REDACTED] ok"
