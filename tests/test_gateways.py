"""Gateways that regulated deployments put in front of models (#31), at the core: client
certificates (mutual TLS), requests signed by the core (AWS SigV4) after every check."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from loopback import CERT, KEY, LoopbackServer

from missy_providers.core.errors import ConfigError, MissyError, PolicyViolation
from missy_providers.core.http import ClientCert, PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.core.secret import Secret
from missy_providers.core.sigv4 import AwsCredentials, AwsSigner, canonical_request, sign


def private_key(tmp_path: Path, mode: int = 0o600) -> Path:
    key = tmp_path / "client.key"
    shutil.copy(KEY, key)
    os.chmod(key, mode)
    return key


def test_a_client_certificate_is_presented_to_a_gateway_that_requires_one(
        tmp_path: Path) -> None:
    server = LoopbackServer(tls=True, client_ca=CERT)
    server.reset(lambda ex: ex.json(200, {"ok": True}))
    try:
        policy = NetworkPolicy(allowed_hosts=["127.0.0.1"])
        anonymous = PolicyHTTPClient(policy, ca_bundle=str(CERT))
        with pytest.raises(MissyError):
            anonymous.request("GET", server.url + "/")
        cert = ClientCert(str(CERT), str(private_key(tmp_path)))
        client = PolicyHTTPClient(policy, ca_bundle=str(CERT), client_cert=cert)
        assert client.request("GET", server.url + "/").json() == {"ok": True}
        per_request = anonymous.request("GET", server.url + "/x", client_cert=cert)
        assert per_request.status == 200
    finally:
        server.stop()
    assert [r.path for r in server.requests] == ["/", "/x"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_client_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    cert = ClientCert(str(CERT), str(private_key(tmp_path, mode)))
    with pytest.raises(ConfigError, match=r"readable or writable by others .*chmod 600"):
        PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), client_cert=cert)
    assert stat.S_IMODE(os.stat(cert.key).st_mode) == mode  # refused, never changed


def test_the_core_signs_the_request_it_sends() -> None:
    server = LoopbackServer()
    server.reset(lambda ex: ex.json(200, {"output": {}}))
    credentials = AwsCredentials("AKIDEXAMPLE", Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                 Secret("session-token-1234567"))
    signer = AwsSigner(credentials, "us-east-1", "bedrock")
    try:
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
        url = server.url + "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        client.request("POST", url, json={"messages": []}, signer=signer).close()
    finally:
        server.stop()
    req = server.requests[0]
    assert req.headers["x-amz-security-token"] == "session-token-1234567"
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and \
        "/us-east-1/bedrock/aws4_request" in auth
    # Recompute from what the server received: the same signature, over the same bytes.
    from datetime import datetime, timezone

    when = datetime.strptime(req.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=timezone.utc)
    names = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    signed = [(n, req.headers[n]) for n in names
              if n not in ("x-amz-date", "x-amz-security-token")]
    again = sign("POST", f"http://{req.headers['host']}{req.path}", signed, req.body,
                 region="us-east-1", service="bedrock", credentials=credentials, now=when)
    assert again["Authorization"] == auth
    canonical, _ = canonical_request("POST", f"http://{req.headers['host']}{req.path}",
                                     [*signed, ("x-amz-date", req.headers["x-amz-date"])],
                                     "0" * 64)
    assert "%253A0" in canonical  # the model id's ':' encoded twice, as AWS signs it


def test_a_signers_keys_obey_the_credential_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    opened: list[object] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a))
    signer = AwsSigner(AwsCredentials("AKIDEXAMPLE", Secret("secret-access-key-123")),
                       "us-east-1", "bedrock")
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["gateway.example"],
                                            allowed_cidrs=["192.0.2.0/24"]),
                              resolver=lambda host, port: ["192.0.2.7"])
    with pytest.raises(PolicyViolation, match="clear text over http://"):
        client.request("POST", "http://gateway.example/model/m/converse", json={},
                       signer=signer)
    assert opened == []
    assert "secret-access-key" not in repr(signer)
