"""PolicyHTTPClient: the ONLY module of the package that opens sockets.

Every byte a provider sends leaves through :meth:`PolicyHTTPClient.request`, in this order:
the URL is checked by the :class:`~missy_providers.policy.NetworkPolicy`; the host is resolved
once and every address checked again (DNS rebinding); the connection goes to that exact
address, with SNI, certificate check and ``Host`` using the checked name. Redirects are never
followed, environment proxies never used, TLS verification never off. Every decision goes to
the audit hook.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from .errors import (
    ConfigError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RedirectRefused,
    RequestTimeout,
    UsageError,
    at_boundary,
    excerpt,
)
from .files import append_private
from .headers import (
    CLIENT_OWNED,
    RedactedHeaders,
    header_name_problem,
    header_value_problem,
)
from .policy import Decision, NetworkPolicy, Target, parse_ip
from .preflight import ca_bundle_problem, writable_file_problem
from .secret import Secret
from .values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    AuditHook = Callable[[dict[str, Any]], None]
    import http.client
    import socket
    import ssl

    from .config import Config

log = logging.getLogger(__name__)

USER_AGENT = "missy-providers/0.1"
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
READ_SIZE = 65536
DECISION_CACHE_SIZE = 1024
# http.client, socket and ssl are imported when the first request is made, not with the package:
# listing providers or checking a URL never pays for them.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
METHODS = ("GET", "POST", "HEAD", "DELETE")

Resolver = Callable[[str, int], list[str]]


class Timeouts(Value):
    """Seconds: ``connect`` for TCP (+TLS), ``read`` between bytes, ``total`` for the request
    (for a stream: until the caller finishes reading it)."""

    __slots__ = ("connect", "read", "total")
    connect: float
    read: float
    total: float

    def __init__(self, connect: float = 10.0, read: float = 60.0, total: float = 600.0) -> None:
        for name, value in (("connect", connect), ("read", read), ("total", total)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise UsageError(f"timeouts.{name} must be a number > 0, got {value!r}")
        self._set(connect=connect, read=read, total=total)

    @classmethod
    def of(cls, value: Timeouts | float | None) -> Timeouts:
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        return cls(connect=min(10.0, float(value)), read=float(value))


def system_resolver(host: str, port: int) -> list[str]:
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Response:
    """An HTTP response. Non-streamed bodies are already read; a streamed one is read with
    :meth:`iter_raw` and must be closed (it is a context manager)."""

    def __init__(self, client: PolicyHTTPClient, key: tuple[Any, ...],
                 conn: http.client.HTTPConnection, raw: http.client.HTTPResponse,
                 target: Target, deadline: float, timeouts: Timeouts, provider: str) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self.url = f"{target.scheme}://{target.authority}{target.log_path}"
        self._client, self._key, self._conn, self._raw = client, key, conn, raw
        self._deadline, self._timeouts, self._provider = deadline, timeouts, provider
        self._body: bytes | None = None
        self._closed = False

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def _deadline_passed(self) -> RequestTimeout:
        return RequestTimeout(f"overall deadline of {self._timeouts.total:g}s passed while "
                              f"reading {self.url}", provider=self._provider)

    def _read_chunk(self, size: int) -> bytes:
        import http.client

        # The socket timeout for each read is the read timeout, cut to the overall deadline.
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._deadline_passed()
        sock = self._conn.sock
        if sock is not None:
            sock.settimeout(min(self._timeouts.read, remaining))
        try:
            return self._raw.read1(size)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                raise self._deadline_passed() from None
            raise RequestTimeout(f"no data from {self.url} for {self._timeouts.read:g}s "
                                 "(read timeout)", provider=self._provider) from None
        except http.client.IncompleteRead:
            raise ProtocolError(f"response body from {self.url} ended before it was complete",
                                provider=self._provider) from None
        except (http.client.HTTPException, OSError) as exc:
            raise ProviderUnavailable(f"connection to {self.url} failed while reading "
                                      f"({type(exc).__name__})", provider=self._provider) from None

    def iter_raw(self, size: int = READ_SIZE) -> Iterator[bytes]:
        """Chunks as they arrive from the socket: no read-ahead beyond one network read."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        clean = False
        try:
            while chunk := self._read_chunk(size):
                yield chunk
            clean = True
        finally:
            self._finish(clean)

    def read(self, limit: int | None = None) -> bytes:
        """The whole body, refused past ``limit`` bytes (default: the client's maximum)."""
        if self._body is not None:
            return self._body
        limit = self._client.max_body_bytes if limit is None else limit
        length = self._raw.length
        if length is not None and length > limit:
            self._finish(False)
            raise ProtocolError(f"response from {self.url} declares {length} bytes, over the "
                                f"{limit}-byte limit", provider=self._provider)
        parts: list[bytes] = []
        size, clean = 0, False
        try:
            # With a Content-Length, stop at its end rather than asking for one more read.
            while self._raw.length != 0 and (chunk := self._read_chunk(READ_SIZE)):
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(f"response from {self.url} is over the {limit}-byte "
                                        "limit", provider=self._provider)
                parts.append(chunk)
            clean = True
        finally:
            self._finish(clean)
        self._body = b"".join(parts)
        return self._body

    def json(self) -> Any:
        body = self.read()
        try:
            return jsonlib.loads(body)
        except ValueError:
            raise ProtocolError(f"response from {self.url} (HTTP {self.status}) is not JSON: "
                                f"'{excerpt(body, 60)}'", provider=self._provider) from None

    def close(self) -> None:
        """Release the connection: back to the pool if the body was read to its end, else
        closed (an abandoned stream must not leave a dirty connection in the pool)."""
        if not self._closed:
            self._finish(False)

    def _finish(self, clean: bool) -> None:
        if self._closed:
            return
        self._closed = True
        # read1() reports the end of a Content-Length body without closing the response;
        # http.client reuses a connection only once its last response is closed.
        reusable = clean and not self._raw.will_close and self._raw.length in (None, 0)
        self._raw.close()
        self._client._checkin(self._key, self._conn, reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PolicyHTTPClient:
    """Thread-safe HTTP/1.1 client that enforces a :class:`NetworkPolicy` on every request."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        resolver: Resolver | None = None,
        proxy: str = "",
        ca_bundle: str = "",
        audit: AuditHook | None = None,
        audit_log: str = "",
        max_idle_per_host: int = 8,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        dns_cache_seconds: float = 30.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.policy = policy
        self._decisions: dict[str, Decision] = {}
        self._decisions_policy: NetworkPolicy | None = None
        self.max_body_bytes = max_body_bytes
        self._resolver = resolver or system_resolver
        self._ca_bundle = ca_bundle
        if ca_bundle and (problem := ca_bundle_problem(ca_bundle)):
            raise ConfigError(problem, ("network", "ca_bundle"))
        if audit_log and (problem := writable_file_problem(audit_log, "audit log")):
            raise ConfigError(problem, ("network", "audit_log"))
        self._ssl_context: ssl.SSLContext | None = None
        self._audit_hooks: list[AuditHook] = [audit] if audit else []
        if audit_log:
            self._audit_hooks.append(_JsonlAuditFile(audit_log))
        self._proxy = self._check_proxy(proxy) if proxy else None
        self._max_idle = max_idle_per_host
        self._dns_ttl = dns_cache_seconds
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._idle: dict[tuple[Any, ...], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._user_agent = user_agent

    def __repr__(self) -> str:
        proxy = f", proxy={self._proxy[0].authority!r}" if self._proxy else ""
        return (f"PolicyHTTPClient(default_deny={self.policy.default_deny}{proxy}, "
                f"idle_connections={self.idle_connections()})")

    @classmethod
    def from_config(cls, config: Config, **kw: Any) -> PolicyHTTPClient:
        from .config import network_policy

        net = config.network
        return cls(network_policy(config), proxy=net.proxy, ca_bundle=net.ca_bundle,
                   audit_log=net.audit_log, **kw)

    # --- policy ---------------------------------------------------------------------------

    def _audit(self, method: str, target: Target | None, allowed: bool, reason: str,
               rule: str, address: str = "") -> None:
        if not self._audit_hooks:
            return
        record: dict[str, Any] = {"time": time.time(), "method": method, "allowed": allowed,
                                  "reason": reason, "rule": rule}
        if target is not None:
            record.update(scheme=target.scheme, host=target.host, port=target.port,
                          path=target.log_path)
        else:  # refused before it parsed: show only that much, never a query or userinfo
            record["url"] = "<unparseable>"
        if address:
            record["address"] = address
        for hook in self._audit_hooks:
            hook(record)

    def _decide(self, method: str, url: str) -> Target:
        # A policy is a value: the same URL gets the same decision, so it is parsed once.
        # Assigning a new policy to .policy starts afresh.
        if self._decisions_policy is not self.policy:
            self._decisions, self._decisions_policy = {}, self.policy
        decision = self._decisions.get(url)
        if decision is None:
            decision = self.policy.check(url)
            if len(self._decisions) < DECISION_CACHE_SIZE:
                self._decisions[url] = decision
        self._audit(method, decision.target, decision.allowed, decision.reason, decision.rule)
        if not decision.allowed or decision.target is None:
            log.info("policy refused %s request: %s", method, decision.reason)
            raise PolicyViolation(decision.reason, decision)
        return decision.target

    def _addresses(self, method: str, target: Target, provider: str) -> list[str]:
        """The checked addresses to connect to, resolving a name at most once per TTL."""
        if target.ip is not None:
            return [str(target.ip)]
        key = (target.host, target.port)
        now = time.monotonic()
        with self._lock:
            cached = self._dns.get(key)
        if cached and cached[0] > now:
            addresses = cached[1]
        else:
            try:
                addresses = self._resolver(target.host, target.port)
            except OSError as exc:
                raise ProviderUnavailable(f"cannot resolve host '{target.host}' "
                                          f"({type(exc).__name__})", provider=provider) from None
            if not addresses:
                raise ProviderUnavailable(f"host '{target.host}' resolved to no address",
                                          provider=provider)
            with self._lock:
                self._dns[key] = (now + self._dns_ttl, addresses)
        for address, decision in self._address_decisions(target, addresses):
            if decision.rule == "resolver":  # a broken resolver, not a policy question
                raise ProviderUnavailable(decision.reason, provider=provider)
            if not decision.allowed:
                self._audit(method, target, False, decision.reason, decision.rule, address)
                raise PolicyViolation(decision.reason, decision)
        return addresses

    def _address_decisions(self, target: Target, addresses: list[str]
                           ) -> list[tuple[str, Decision]]:
        """The policy's verdict on each resolved address (zone ids dropped; a resolver answer
        that is not an address is refused)."""
        out = []
        for address in addresses:
            ip = parse_ip(address.partition("%")[0])
            decision = (self.policy.check_address(target, ip) if ip is not None else
                        Decision(False, f"resolver returned a non-address for '{target.host}'",
                                 target, "resolver"))
            out.append((address, decision))
        return out

    def explain(self, url: str, *, resolve: bool = False) -> dict[str, Any]:
        """The policy's verdict on ``url`` without connecting; with ``resolve``, the DNS step
        too (every address checked as a request would). For ``missy policy check``."""
        decision = self.policy.check(url)
        out: dict[str, Any] = {"url": shown_url(url), "allowed": decision.allowed,
                               "reason": decision.reason, "rule": decision.rule}
        target = decision.target
        if not (resolve and decision.allowed and target is not None and target.ip is None):
            return out
        try:
            addresses = self._resolver(target.host, target.port)
        except OSError as exc:
            out.update(allowed=False, reason=f"cannot resolve '{target.host}' "
                                             f"({type(exc).__name__})")
            return out
        checks = [{"address": a, "allowed": d.allowed, "reason": d.reason}
                  for a, d in self._address_decisions(target, addresses)]
        out["addresses"] = checks
        out["allowed"] = bool(checks) and all(c["allowed"] for c in checks)
        return out

    def _check_proxy(self, proxy: str) -> tuple[Target, list[str]]:
        target = self._decide("CONNECT", proxy)
        if target.scheme != "http":
            raise PolicyViolation("network.proxy must be an http:// proxy URL")
        return target, self._addresses("CONNECT", target, "")

    # --- connections ----------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl  # lazily: plain-http users (a local Ollama) never pay for it

            try:
                ctx = ssl.create_default_context(cafile=self._ca_bundle or None)
            except (OSError, ssl.SSLError) as exc:  # checked at start; changed since
                raise ConfigError(f"cannot load the CA bundle ({type(exc).__name__})",
                                  ("network", "ca_bundle")) from None
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            self._ssl_context = ctx
        return self._ssl_context

    def _new_connection(self, target: Target, address: str,
                        timeouts: Timeouts) -> http.client.HTTPConnection:
        import http.client
        import socket

        if self._proxy is not None:
            proxy_target, proxy_addresses = self._proxy
            host, port, address = proxy_target.host, proxy_target.port, proxy_addresses[0]
        else:
            host, port = target.host, target.port
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeouts.read,
                                               context=self._context())
            if self._proxy is not None:
                conn.set_tunnel(target.host, target.port)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeouts.read)
        connect_timeout = timeouts.connect

        def connect_to_checked_address(
            addr: tuple[str, int], timeout: float | None = None,
            source_address: tuple[str, int] | None = None,
        ) -> socket.socket:
            # http.client would resolve the name again; connect to the address we checked.
            sock = socket.create_connection((address, addr[1]), connect_timeout, source_address)
            sock.settimeout(timeouts.read)
            return sock

        conn._create_connection = connect_to_checked_address  # type: ignore[attr-defined]
        return conn

    def _checkout(self, key: tuple[Any, ...]) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _checkin(self, key: tuple[Any, ...], conn: http.client.HTTPConnection,
                 reusable: bool) -> None:
        if reusable:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def idle_connections(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._idle.values())

    # --- requests -------------------------------------------------------------------------

    def _headers(self, headers: Mapping[str, str] | None, has_json: bool) -> RedactedHeaders:
        """The request's headers: ours, then the caller's (checked: token names, values that
        can go on the wire, nothing that frames or routes the request)."""
        out = RedactedHeaders({"User-Agent": self._user_agent, "Accept": "application/json"})
        if has_json:
            out["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            problem = header_name_problem(name) or header_value_problem(value)
            if problem:
                shown = name if isinstance(name, str) and header_name_problem(name) is None \
                    else "?"
                raise UsageError(f"header {shown!r}: {problem}")
            lname = name.lower()
            if lname in CLIENT_OWNED:
                raise UsageError(f"the {name} header is set by the client from the checked "
                                 "URL and body, and cannot be given")
            for existing in [k for k in out if k.lower() == lname]:
                del out[existing]
            out[name] = value
        return out

    @at_boundary
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        timeout: Timeouts | float | None = None,
        stream: bool = False,
        provider: str = "",
    ) -> Response:
        """Send one request through the policy. Non-streamed bodies are read (bounded) before
        returning; with ``stream=True`` the caller reads :meth:`Response.iter_raw` and closes.
        Status codes are not errors here (providers map them); a 3xx raises RedirectRefused."""
        if method not in METHODS:
            raise UsageError(f"method {method!r}"[:60] + f" is not one of {', '.join(METHODS)}")
        timeouts = Timeouts.of(timeout)
        deadline = time.monotonic() + timeouts.total
        target = self._decide(method, url)
        if self._proxy is not None:
            addresses = self._proxy[1][:1]  # the proxy resolves the target; see docs/AUDIT.md
        else:
            addresses = self._addresses(method, target, provider)
        all_headers = self._headers(headers, json is not None)
        payload = _Payload(_encode_json(json).encode() if json is not None else body)
        path = target.path
        if self._proxy is not None and target.scheme == "http":
            path = f"http://{target.authority}{target.path}"  # absolute-form for a proxy
        started = time.monotonic()
        response = self._exchange(method, target, addresses, path, payload, all_headers,
                                  timeouts, deadline, provider)
        log.debug("%s %s -> %d in %.0f ms", method, response.url, response.status,
                  (time.monotonic() - started) * 1000)
        if response.status in _REDIRECTS:
            shown = redirect_origin(response.header("Location"), target)
            response.close()
            raise RedirectRefused(f"{method} {response.url} answered with a redirect to "
                                  f"{shown}; redirects are not followed: fix the base_url",
                                  location=shown, provider=provider, status=response.status)
        if not stream:
            response.read()
        return response

    def _exchange(self, method: str, target: Target, addresses: list[str], path: str,
                  payload: _Payload, headers: dict[str, str], timeouts: Timeouts,
                  deadline: float, provider: str) -> Response:
        import http.client

        # A reused keep-alive connection may have been closed by the server while idle; these
        # errors before any response byte mean the request never reached it: one fresh try.
        stale_connection_errors = (http.client.RemoteDisconnected, BrokenPipeError,
                                   ConnectionResetError, ConnectionAbortedError)
        last_error: ProviderError | None = None
        for address in addresses:
            key = (target.scheme, target.host, target.port, address, self._proxy is not None)
            conn = self._checkout(key)
            attempts = [conn, None] if conn is not None else [None]
            for pooled in attempts:
                conn = pooled or self._new_connection(target, address, timeouts)
                try:
                    if conn.sock is not None:
                        conn.sock.settimeout(min(timeouts.read, deadline - time.monotonic()))
                    conn.request(method, path, body=payload.data, headers=headers)
                    raw = conn.getresponse()
                except stale_connection_errors as exc:
                    conn.close()
                    if pooled is not None:
                        continue  # an idle connection the server had closed: try a fresh one
                    last_error = ProviderUnavailable(
                        f"{target.authority} closed the connection before answering "
                        f"({type(exc).__name__})", provider=provider)
                    break
                except TimeoutError:
                    conn.close()
                    raise RequestTimeout(f"{target.authority} did not answer within "
                                         f"{timeouts.read:g}s", provider=provider) from None
                except ConnectionRefusedError:
                    conn.close()
                    last_error = ProviderUnavailable(
                        f"connection to {target.authority} ({address}) refused",
                        provider=provider)
                    break
                except OSError as exc:
                    conn.close()
                    last_error = _connect_error(exc, target, address, provider)
                    break
                except http.client.HTTPException as exc:
                    conn.close()
                    raise ProtocolError(f"{target.authority} sent a malformed HTTP response "
                                        f"({type(exc).__name__})", provider=provider) from None
                return Response(self, key, conn, raw, target, deadline, timeouts, provider)
        assert last_error is not None
        raise last_error


class _Payload:
    """A request body whose repr is its size: it may carry a token (a refresh grant), and a
    traceback that captures locals must not show it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{0 if self.data is None else len(self.data)} bytes>"


def _reveal(value: object) -> str:
    if isinstance(value, Secret):
        return value.reveal()  # a credential in a body (OAuth refresh): revealed on the wire only
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode_json = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                   default=_reveal).encode


def redirect_origin(location: str, target: Target) -> str:
    """Where a refused redirect pointed, as scheme://host:port only: its path, query and
    userinfo may hold a reflected key."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(location.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return "an unparseable Location"
    if not parts.scheme and not parts.netloc:
        return f"a path on {target.scheme}://{target.authority}"
    shown_host = f"[{host}]" if host and ":" in host else host or "?"
    scheme = parts.scheme or target.scheme
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{shown_host}:{port or default}"


def shown_url(url: str) -> str:
    """``url`` safe to print: no query, no fragment, no userinfo (they can hold secrets)."""
    url = url.partition("#")[0].partition("?")[0]
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _connect_error(exc: OSError, target: Target, address: str, provider: str) -> ProviderError:
    name = type(exc).__name__
    if "SSL" in name or "Certificate" in name:
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or name
        return ProviderUnavailable(f"TLS with {target.host} failed: {reason}; the certificate "
                                   "must verify (set network.ca_bundle for a private CA)",
                                   provider=provider)
    return ProviderUnavailable(f"cannot connect to {target.authority} ({address}): {name}",
                               provider=provider)


class _JsonlAuditFile:
    """Appends one JSON line per policy decision to ``network.audit_log``."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __call__(self, record: dict[str, Any]) -> None:
        line = jsonlib.dumps(record, separators=(",", ":")) + "\n"
        try:
            append_private(self._path, line)
        except OSError as exc:  # fail closed: no request goes out unrecorded
            raise ConfigError(f"cannot write the audit log ({type(exc).__name__}); nothing "
                              "was sent", ("network", "audit_log")) from None
