"""AWS Signature Version 4 request signing: pure, on ``hmac`` and ``hashlib``, with no clock.

The four steps of AWS's "Create a signed AWS API request" (IAM User Guide): canonical request,
string to sign, signing key, ``Authorization`` header. Checked byte for byte against AWS's
test suite (tests/data/sigv4/) and botocore's bedrock-runtime requests (tests/data/
bedrock-sigv4/). The canonical URI of every service but S3 (not supported here) is the path
as sent, already percent-encoded, without dot and empty segments, percent-encoded once more:
a Bedrock model id's ``:`` is ``%3A`` on the request line and ``%253A`` when signed, as
botocore signs it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import timezone
from urllib.parse import quote, unquote_to_bytes, urlsplit

from .errors import UsageError
from .headers import RedactedHeaders, header_name_problem, header_value_problem
from .secret import Secret
from .values import Final, Value, own_text

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

ALGORITHM = "AWS4-HMAC-SHA256"
# Never signed (botocore's SIGNED_HEADERS_BLACKLIST): hop-by-hop headers and ones that proxies
# and HTTP stacks rewrite; a signature over them would break in transit.
UNSIGNED_HEADERS = frozenset({"connection", "expect", "keep-alive", "proxy-authenticate",
                              "proxy-authorization", "te", "trailer", "transfer-encoding",
                              "upgrade", "user-agent", "x-amzn-trace-id"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class AwsCredentials(Value, Final):  # final: the keys checked are the keys signed with
    """An access key id (not a secret: it is sent in every Authorization header), its secret
    access key, and the session token of temporary credentials (STS)."""

    __slots__ = ("access_key_id", "secret_access_key", "session_token")
    access_key_id: str
    secret_access_key: Secret
    session_token: Secret | None

    def __init__(self, access_key_id: str, secret_access_key: Secret,
                 session_token: Secret | None = None) -> None:
        if isinstance(access_key_id, str):
            access_key_id = own_text(access_key_id)  # formatted into every Authorization
        if not access_key_id or header_value_problem(access_key_id, credential=True) or \
                "/" in access_key_id:
            raise UsageError("the AWS access key id must be printable ASCII without spaces or "
                             "'/'")
        if type(secret_access_key) is not Secret or not (
                session_token is None or type(session_token) is Secret):
            raise UsageError("the AWS secret access key and session token must be Secrets")
        self._set(access_key_id=access_key_id, secret_access_key=secret_access_key,
                  session_token=session_token)


def path_label(value: str) -> str:
    """``value`` as a label of a request path (``/model/{modelId}/converse``): every byte
    but the RFC 3986 unreserved ones percent-encoded, ``/`` and ``:`` included, as botocore's
    rest-json serializer encodes a non-greedy label."""
    return quote(value, safe="")


def canonical_request(method: str, url: str, headers: Iterable[tuple[str, str]],
                      payload_hash: str) -> tuple[str, str]:
    """(canonical request, signed headers) of SigV4 step 1. ``headers`` are every header to
    sign, repeated names allowed (their values are joined with ``,`` in order); without a
    ``host`` one, the URL's host (and port, unless the scheme's default) is signed."""
    parts = urlsplit(url)
    values: dict[str, list[str]] = {}
    for name, value in _checked(headers):
        lname = name.lower()
        if lname not in UNSIGNED_HEADERS:  # "Trimall": trimmed, each run of blanks one space
            values.setdefault(lname, []).append(" ".join(value.split()))  # (as botocore)
    if "host" not in values:
        if "@" in parts.netloc:
            raise UsageError("cannot sign a URL with credentials in it (user@host)")
        default_port = _DEFAULT_PORTS.get(parts.scheme)
        host = parts.netloc.lower()
        values["host"] = [host.removesuffix(default_port) if default_port else host]
    names = sorted(values)
    lines = [method, _canonical_path(parts.path), _canonical_query(parts.query),
             *(f"{name}:{','.join(values[name])}" for name in names), "",
             ";".join(names), payload_hash]
    return "\n".join(lines), lines[-2]


def _checked(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers, if each can be sent as it is (no CR, LF or NUL to smuggle a header in)."""
    pairs = list(headers)
    for name, value in pairs:
        why = header_name_problem(name) or header_value_problem(value)
        if why:
            raise UsageError(f"cannot sign header {str(name)[:60]!r}: {why}")
    return pairs


def _canonical_path(path: str) -> str:
    """RFC 3986 section 5.2.4 dot segments removed and empty segments dropped (AWS services
    other than S3 normalise so), then every character but the unreserved and ``/`` encoded:
    a ``%`` already in the path becomes ``%25``."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normal = "/" + "/".join(segments) + ("/" if segments and path.endswith("/") else "")
    return quote(normal, safe="/")


def _canonical_query(query: str) -> str:
    """Each name and value decoded, then encoded once (RFC 3986: only the unreserved kept,
    a space is %20 and a ``+`` is ``%2B``), sorted by name, then value."""
    pairs = []
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((quote(unquote_to_bytes(name), safe=""),
                          quote(unquote_to_bytes(value), safe="")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """SigV4 step 2."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def sign(method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
         body: bytes, *, region: str, service: str, credentials: AwsCredentials,
         now: datetime, content_sha256: bool = False) -> dict[str, str]:
    """The headers to add to a request so that AWS accepts it: ``Authorization``,
    ``X-Amz-Date``, ``X-Amz-Security-Token`` with temporary credentials (signed, as botocore
    does), ``X-Amz-Content-Sha256`` if asked. ``url`` and ``headers`` must be exactly what is
    sent (the path percent-encoded as on the request line). The result is RedactedHeaders:
    its repr hides the Authorization value and the token."""
    if not all(isinstance(part, str) for part in (method, region, service)):
        raise UsageError("the method, region and service to sign with must be str")
    # Plain text: each is formatted into the scope and the Authorization header.
    method, region, service = own_text(method), own_text(region), own_text(service)
    if not method.isascii() or not method.isalpha() or not method.isupper():
        raise UsageError("the method to sign must be an upper-case name such as 'POST'")
    for what, part in (("region", region), ("service", service)):
        if not part or not _SCOPE_CHARS.issuperset(part):  # a '/' would forge the scope
            raise UsageError(f"the {what} to sign with must be a name such as 'us-east-1'")
    if type(credentials) is not AwsCredentials:
        raise UsageError("credentials must be AwsCredentials")
    if now.tzinfo is None:
        raise UsageError("the signing time must be timezone-aware (a naive time is ambiguous)")
    token = credentials.session_token
    ours = {"authorization", "x-amz-date"}
    if content_sha256:
        ours.add("x-amz-content-sha256")
    if token is not None:
        ours.add("x-amz-security-token")
    # Every mistake is refused before a credential is revealed into a local of this frame.
    given = _checked(headers.items() if isinstance(headers, Mapping) else headers)
    for name, _ in given:
        if name.lower() in ours:
            raise UsageError(f"header {name!r} is set by sign(); do not pass it in")
    amz_date = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(body).hexdigest()
    added = {"X-Amz-Date": amz_date}
    if content_sha256:
        added["X-Amz-Content-Sha256"] = payload_hash
    if token is not None:
        added["X-Amz-Security-Token"] = token.reveal()
    canonical, signed = canonical_request(method, url, [*given, *added.items()], payload_hash)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    key = _signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.digest(key, string_to_sign(amz_date, scope, canonical).encode(), "sha256")
    added["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                              f"SignedHeaders={signed}, Signature={signature.hex()}")
    return RedactedHeaders(added)


def _signing_key(secret: Secret, date: str, region: str, service: str) -> bytes:
    """SigV4 step 3. The secret is revealed here only, straight into the first HMAC key; the
    encoding cannot fail, so no traceback ever holds it (a malformed secret gets a wrong
    signature, which AWS refuses)."""
    key = hmac.digest(("AWS4" + secret.reveal()).encode("utf-8", "surrogatepass"),
                      date.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


class AwsSigner(Value, Final):  # final: its secrets() are what it signs with
    """How a request to an AWS service is authenticated: the core signs the request's final
    bytes with these credentials (``PolicyHTTPClient.request(..., signer=)``), after every
    policy check, just before it is sent."""

    __slots__ = ("credentials", "region", "service")
    credentials: AwsCredentials
    region: str
    service: str

    def __init__(self, credentials: AwsCredentials, region: str, service: str) -> None:
        if type(credentials) is not AwsCredentials:
            raise UsageError("an AwsSigner signs with AwsCredentials")
        self._set(credentials=credentials, region=region, service=service)

    def secrets(self) -> list[Secret]:
        """The credentials, for the rules every credential obeys (question 2 of AUDIT.md)."""
        token = self.credentials.session_token
        return [self.credentials.secret_access_key, *([token] if token else [])]

    def __repr__(self) -> str:
        return f"AwsSigner({self.credentials.access_key_id[:4]}..., {self.region}, " \
               f"{self.service})"
