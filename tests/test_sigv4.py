"""core/sigv4.py: every case of AWS's SigV4 test suite byte for byte, Bedrock requests exactly
as botocore signs them (the model id encoded twice in the canonical request), the parts of
the canonical request at their edges, refusals, and the secret in no repr or message."""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from missy_providers.core.errors import UsageError
from missy_providers.core.secret import Secret
from missy_providers.core.sigv4 import (
    AwsCredentials,
    canonical_request,
    path_label,
    sign,
    string_to_sign,
)

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "sigv4"
VECTORS = sorted(p.relative_to(SUITE).with_suffix("") for p in SUITE.rglob("*.req"))
# The suite's public example credentials, region, service and time.
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
SCOPE = "20150830/us-east-1/service/aws4_request"


def parse_request(raw: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, headers, body) of a ``.req``. A line starting with a space continues
    the header before it (an obs-fold, replaced by a space as RFC 9112 section 5.2 says)."""
    head, _, body = raw.partition("\n\n")
    request_line, *lines = head.rstrip("\n").split("\n")
    method, rest = request_line.split(" ", 1)
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            name, value = headers.pop()
            headers.append((name, f"{value} {line}"))
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, rest.rpartition(" ")[0], headers, body.encode()


def read(vector: Path, suffix: str) -> str:
    return (SUITE / vector).with_suffix(suffix).read_text(encoding="utf-8")


def test_the_whole_suite_is_there() -> None:
    """A missing case is a failure, never a shorter parameter list."""
    assert len(VECTORS) == 34
    for vector in VECTORS:
        for suffix in (".creq", ".sts", ".authz", ".sreq"):
            assert (SUITE / vector).with_suffix(suffix).is_file()


@pytest.mark.parametrize("vector", VECTORS, ids=str)
def test_suite_vector(vector: Path) -> None:
    method, target, headers, body = parse_request(read(vector, ".req"))
    expected_creq = read(vector, ".creq")
    host = next(value for name, value in headers if name.lower() == "host")
    url = f"https://{host}{target}"
    # A token the canonical request signs is a credential, added by sign() (the -with-
    # session-token and post-sts-header-before cases); post-sts-header-after signs none.
    token = next((line.partition(":")[2] for line in expected_creq.split("\n")
                  if line.startswith("x-amz-security-token:")), None)
    sent = [(n, v) for n, v in headers if n.lower() != "x-amz-security-token"]
    signed_headers = sent + ([("X-Amz-Security-Token", token)] if token else [])

    creq, signed = canonical_request(method, url, signed_headers,
                                     hashlib.sha256(body).hexdigest())
    assert creq == expected_creq
    assert string_to_sign("20150830T123600Z", SCOPE, creq) == read(vector, ".sts")

    credentials = AwsCredentials(ACCESS_KEY, Secret(SECRET_KEY),
                                 Secret(token) if token else None)
    given = [(n, v) for n, v in sent if n.lower() != "x-amz-date"]  # sign() adds it
    added = sign(method, url, given, body, region="us-east-1", service="service",
                 credentials=credentials, now=NOW)
    assert added["Authorization"] == read(vector, ".authz")
    assert f"SignedHeaders={signed}," in added["Authorization"]
    assert added["X-Amz-Date"] == dict(headers)["X-Amz-Date"]
    assert set(added) == {"Authorization", "X-Amz-Date"} | (
        {"X-Amz-Security-Token"} if token else set())


# --- Bedrock, as botocore signs it ------------------------------------------------------------

BEDROCK = json.loads((DATA / "bedrock-sigv4" / "botocore.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", BEDROCK["cases"], ids=lambda c: c["name"])
def test_bedrock_request_signed_as_botocore_signs_it(case: dict[str, Any]) -> None:
    operation = case["operation"].replace("_", "-")  # converse, converse-stream
    url = (f"https://bedrock-runtime.{case['region']}.amazonaws.com/model/"
           f"{path_label(case['model_id'])}/{operation}")
    assert url == case["url"]  # the model id encoded as botocore encodes it
    credentials = AwsCredentials(case["access_key_id"], Secret(case["secret_access_key"]),
                                 Secret(case["session_token"]) if case["session_token"] else None)
    now = datetime.strptime(case["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    body = case["body"].encode()
    added = sign("POST", url, case["headers"], body, region=case["region"], service="bedrock",
                 credentials=credentials, now=now)
    assert dict(added) == case["added"]
    extra = [(n, v) for n, v in case["added"].items() if n != "Authorization"]
    creq, _ = canonical_request("POST", url, [*case["headers"].items(), *extra],
                                hashlib.sha256(body).hexdigest())
    assert creq == case["canonical_request"]
    scope = f"{case['time'][:8]}/{case['region']}/bedrock/aws4_request"
    assert string_to_sign(case["time"], scope, creq) == case["string_to_sign"]


def test_bedrock_model_id_is_encoded_once_on_the_wire_and_twice_when_signed() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    path = f"/model/{path_label(arn)}/converse"
    assert path == ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
                    "%2Fus.anthropic.claude-v1%3A0/converse")
    creq, _ = canonical_request("POST", f"https://bedrock-runtime.us-east-1.amazonaws.com{path}",
                                [], "0" * 64)
    assert creq.split("\n")[1] == path.replace("%", "%25")


@pytest.mark.parametrize("value, label", [
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1%3A0"),
    ("a/b", "a%2Fb"), ("-._~", "-._~"), ("a b+c", "a%20b%2Bc"), ("é", "%C3%A9"), ("%", "%25"),
])
def test_path_label(value: str, label: str) -> None:
    assert path_label(value) == label


# --- the canonical request at its edges -------------------------------------------------------

def canonical_line(url: str, line: int, headers: list[tuple[str, str]] | None = None) -> str:
    return canonical_request("GET", url, headers or [], "0" * 64)[0].split("\n")[line]


@pytest.mark.parametrize("path, canonical", [
    ("", "/"), ("/", "/"), ("/a/b/../c/./d", "/a/c/d"), ("/a/..", "/"), ("/../..", "/"),
    ("//a///b//", "/a/b/"), ("/a/b/..", "/a"),  # as botocore: no slash left after a last '..'
    ("/%2E%2E/a", "/%252E%252E/a"),  # an encoded dot is a name, not a dot segment
    ("/a%2Fb", "/a%252Fb"), ("/~user/a b", "/~user/a%20b"), ("/a:b@c", "/a%3Ab%40c"),
])
def test_canonical_path(path: str, canonical: str) -> None:
    assert canonical_line(f"https://example.com{path}", 1) == canonical


@pytest.mark.parametrize("query, canonical", [
    ("", ""), ("a", "a="), ("b=2&a=1", "a=1&b=2"), ("a=2&a=10&a=1", "a=1&a=10&a=2"),
    ("a=1&&b=", "a=1&b="), ("x=a b", "x=a%20b"), ("x=a+b", "x=a%2Bb"), ("x=%7e%41", "x=~A"),
    ("k%3D=v%26", "k%3D=v%26"), ("Z=1&a=1&_=1", "Z=1&_=1&a=1"), ("é=%C3%A9", "%C3%A9=%C3%A9"),
    ("bad=%FF", "bad=%FF"),  # bytes stay bytes: not replaced by U+FFFD
])
def test_canonical_query(query: str, canonical: str) -> None:
    assert canonical_line(f"https://example.com/?{query}", 2) == canonical


@pytest.mark.parametrize("url, host", [
    ("https://Example.COM/", "example.com"), ("https://example.com:443/", "example.com"),
    ("https://example.com:8443/", "example.com:8443"), ("http://example.com:80/", "example.com"),
    ("http://example.com:443/", "example.com:443"), ("https://[::1]:443/", "[::1]"),
])
def test_host_from_the_url(url: str, host: str) -> None:
    assert canonical_line(url, 3) == f"host:{host}"


def test_headers_lower_cased_trimmed_joined_sorted_and_unsigned_ones_left_out() -> None:
    creq, signed = canonical_request("GET", "https://ignored.example/", [
        ("X-B", " two  words\tand  more "), ("Host", "given.example"), ("x-b", "again"),
        ("User-Agent", "not signed"), ("Connection", "keep-alive"), ("A", ""),
    ], "0" * 64)
    assert creq.split("\n")[3:7] == ["a:", "host:given.example", "x-b:two words and more,again",
                                     ""]
    assert signed == "a;host;x-b"


def test_content_sha256_header_when_asked() -> None:
    added = sign("PUT", "https://s.example/", {}, b"body", region="us-east-1", service="svc",
                 credentials=AwsCredentials("AKID", Secret("secret-key-123")), now=NOW,
                 content_sha256=True)
    assert added["X-Amz-Content-Sha256"] == hashlib.sha256(b"body").hexdigest()
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in added["Authorization"]


def test_the_time_is_taken_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    credentials = AwsCredentials(ACCESS_KEY, Secret(SECRET_KEY))
    added = sign("GET", "https://example.amazonaws.com/", {}, b"", region="us-east-1",
                 service="service", credentials=credentials,
                 now=datetime(2015, 8, 30, 14, 36, tzinfo=paris))
    assert added["Authorization"] == read(Path("get-vanilla/get-vanilla"), ".authz")


# --- refusals and secrecy ---------------------------------------------------------------------

CREDS = AwsCredentials(ACCESS_KEY, Secret(SECRET_KEY), Secret("session-token-1234567"))


@pytest.mark.parametrize("change, message", [
    ({"method": "post"}, "the method to sign must be an upper-case name such as 'POST'"),
    ({"region": "us-east-1/x"}, "the region to sign with must be a name such as 'us-east-1'"),
    ({"service": ""}, "the service to sign with must be a name such as 'us-east-1'"),
    ({"now": datetime(2015, 8, 30)},
     "the signing time must be timezone-aware (a naive time is ambiguous)"),
    ({"credentials": ("AKID", SECRET_KEY)}, "credentials must be AwsCredentials"),
    ({"headers": {"X-Amz-Date": "20150830T123600Z"}},
     "header 'X-Amz-Date' is set by sign(); do not pass it in"),
    ({"headers": {"authorization": "x"}},
     "header 'authorization' is set by sign(); do not pass it in"),
    ({"headers": {"X-Amz-Security-Token": "x"}},
     "header 'X-Amz-Security-Token' is set by sign(); do not pass it in"),
    ({"headers": {"X-Amz-Content-Sha256": "x"}, "content_sha256": True},
     "header 'X-Amz-Content-Sha256' is set by sign(); do not pass it in"),
    ({"headers": {"X-Note": f"a\r\nInjected: {SECRET_KEY}"}},
     "cannot sign header 'X-Note': a header value has a character that cannot be sent in an "
     "HTTP header at index 1 (U+000D; value not shown)"),
    ({"headers": {"Bad Name": "x"}}, "cannot sign header 'Bad Name': header name has a "
                                     "character that is not allowed at index 3"),
    ({"url": "https://user:pw@example.com/"},
     "cannot sign a URL with credentials in it (user@host)"),
])
def test_refusals(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"method": "POST", "url": "https://example.com/", "headers": {},
                            "body": b"", "region": "us-east-1", "service": "bedrock",
                            "credentials": CREDS, "now": NOW} | change
    with pytest.raises(UsageError) as exc:
        sign(**args)
    assert str(exc.value) == message
    assert SECRET_KEY not in repr(exc.value)


@pytest.mark.parametrize("access_key, secret, token, message", [
    ("", Secret(SECRET_KEY), None, "the AWS access key id must be printable ASCII without "
                                   "spaces or '/'"),
    ("AKID/x", Secret(SECRET_KEY), None, "the AWS access key id must be printable ASCII "
                                         "without spaces or '/'"),
    ("AKID EX", Secret(SECRET_KEY), None, "the AWS access key id must be printable ASCII "
                                          "without spaces or '/'"),
    ("AKID", SECRET_KEY, None, "the AWS secret access key and session token must be Secrets"),
    ("AKID", Secret(SECRET_KEY), "token", "the AWS secret access key and session token must "
                                          "be Secrets"),
])
def test_credentials_refused(access_key: Any, secret: Any, token: Any, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        AwsCredentials(access_key, secret, token)
    assert str(exc.value) == message
    assert SECRET_KEY not in str(exc.value)


def test_no_secret_in_any_repr() -> None:
    added = sign("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
                 {"Content-Type": "application/json"}, b"{}", region="us-east-1",
                 service="bedrock", credentials=CREDS, now=NOW)
    assert added["X-Amz-Security-Token"] == "session-token-1234567"  # sent, as it must be
    for text in (repr(CREDS), str(CREDS), repr(added), str(added), repr(CREDS.secret_access_key),
                 repr(CREDS.session_token)):
        assert SECRET_KEY not in text and "session-token-1234567" not in text
        assert "Signature=" not in text  # the Authorization value is hidden too
    assert repr(CREDS) == ("AwsCredentials(access_key_id='AKIDEXAMPLE', "
                           "secret_access_key=Secret('***'), session_token=Secret('***'))")
    with pytest.raises(TypeError):
        pickle.dumps(CREDS)


def test_credentials_are_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        CREDS.access_key_id = "other"
