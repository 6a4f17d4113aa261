"""PolicyHTTPClient: the ONLY module of the package that opens sockets.

Every byte a provider sends leaves through :meth:`PolicyHTTPClient.request`, in this order:
the URL is checked by the :class:`~missy_providers.policy.NetworkPolicy`; the host is resolved
once and every address checked again (DNS rebinding); the connection goes to that exact
address, with SNI, certificate check and ``Host`` using the checked name. Redirects are never
followed, environment proxies never used, TLS verification never off. Every decision goes to
the audit hook.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

from .env import ENVIRONMENT
from .errors import (
    ConfigError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RedirectRefused,
    RequestTimeout,
    StreamClosed,
    UsageError,
    at_boundary,
)
from .files import (
    JsonlAppender,
    ca_bundle_problem,
    ensure_private,
    private_file_problem,
    writable_file_problem,
)
from .h1 import ResponseReader
from .headers import (
    RedactedHeaders,
    bound_elsewhere,
    header_value_problem,
    rendered,
    request_headers,
)
from .policy import DEFAULT_PORTS, Decision, NetworkPolicy, Target, parse_ip
from .response import Response as Response
from .secret import Secret, get_logger
from .values import Final, Value, own_text
from .wire import (
    CANCEL_SCOPE,
    METHODS,
    CallBudget,
    CancelScope,
    DeadlinePassed,
    Payload,
    all_loopback,
    encode_body,
    frame_request,
    redirect_origin,
    shown_url,
)
from .wire import Timeouts as Timeouts
from .wire import trust_description as trust_description

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from .sigv4 import AwsSigner

    AuditHook = Callable[[dict[str, Any]], None]
    import socket
    import ssl
    from concurrent.futures import ThreadPoolExecutor


log = get_logger(__name__)

USER_AGENT = "missy-providers/0.1"
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
READ_SIZE = 65536
DECISION_CACHE_SIZE = 1024
# socket, ssl and select are imported when the first request is made, not with the package:
# listing providers or checking a URL never pays for them.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Connection:
    """One TCP (and TLS) connection to one checked address. Every read and write is bounded
    by the read timeout and by the request's overall deadline: the socket timeout is set once
    to the read timeout and re-armed only when the deadline is nearer than that, so the
    common read costs no extra system call."""

    __slots__ = ("sock", "key", "deadline", "read_timeout", "_timeout", "closed_by_caller",
                 "scope")

    def __init__(self, sock: socket.socket, key: tuple[Any, ...]) -> None:
        self.sock, self.key = sock, key
        self.deadline = 0.0
        self.read_timeout = 0.0
        self._timeout: float | None = sock.gettimeout()
        self.closed_by_caller = False
        self.scope: CancelScope | None = None  # the asyncio facade's cancel switch

    def arm(self, deadline: float, read_timeout: float) -> None:
        self.deadline, self.read_timeout = deadline, read_timeout

    def _set_timeout(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed
        timeout = self.read_timeout if remaining > self.read_timeout else remaining
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def recv(self) -> bytes:
        self._set_timeout()
        return self.sock.recv(READ_SIZE)

    def sendall(self, data: bytes) -> None:
        self._set_timeout()  # sendall's timeout bounds the whole send (CPython keeps a deadline)
        self.sock.sendall(data)

    def send_pieces(self, pieces: tuple[bytes, ...]) -> None:
        for piece in pieces:
            self.sendall(piece)

    def idle_and_clean(self) -> bool:
        """Whether a pooled connection may carry a new request: nothing unread, not closed
        by the server (either makes the socket readable, and is checked without reading)."""
        import select

        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def interrupt(self) -> None:
        """From another thread: make a blocked read return now (a cancel, a watchdog)."""
        import socket

        self.closed_by_caller = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


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
        max_idle_per_host: int | None = None,
        allow_plain_http_proxy: bool = False,
        ca_bundle_adds_to_system: bool = False,
        tls_key_log: bool = False,
        max_async_workers: int = 64,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        dns_cache_seconds: float = 30.0,
        user_agent: str = USER_AGENT,
        client_cert: ClientCert | None = None,
    ) -> None:
        # The policy and the decisions made under it, replaced together in one assignment: a
        # request reads both at once, so no decision lands in another policy's cache.
        self._policy_state: tuple[NetworkPolicy, dict[str, Decision]] = (policy, {})
        self.max_body_bytes = max_body_bytes
        self._resolver = resolver or system_resolver
        self._ca_bundle = ca_bundle
        if ca_bundle and (problem := ca_bundle_problem(ca_bundle)):
            raise ConfigError(problem, ("network", "ca_bundle"))
        if audit_log and (problem := writable_file_problem(audit_log, "audit log")):
            raise ConfigError(problem, ("network", "audit_log"))
        self._contexts: dict[ClientCert | None, ssl.SSLContext] = {}
        if client_cert is not None and type(client_cert) is not ClientCert:
            raise UsageError("client_cert must be a ClientCert")
        self._client_cert = client_cert
        if client_cert is not None:
            client_cert.check()
        self._trust_adds_system, self._tls_key_log = ca_bundle_adds_to_system, tls_key_log
        self._audit_hooks: list[AuditHook] = [audit] if audit else []
        if audit_log:
            self._audit_hooks.append(JsonlAppender(audit_log, ("network", "audit_log")))
        # As many idle connections per host as threads that may share the client (the
        # asyncio facade's pool): 16 threads on one client keep their 16 connections.
        self._max_idle = max_async_workers if max_idle_per_host is None else max_idle_per_host
        self._dns_ttl = dns_cache_seconds
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._idle: dict[tuple[Any, ...], list[Connection]] = {}
        self._lock = threading.Lock()
        # Plain text only: a Secret here would reach the wire unseen by the credential rules,
        # a str subclass could show its check one text and the wire another.
        if type(user_agent) is not str:
            raise UsageError(f"user_agent must be a str, got {type(user_agent).__name__}")
        if problem := header_value_problem(user_agent):
            raise UsageError(f"user_agent: {problem}")
        self._user_agent = user_agent
        # Our headers, before the caller's: each request copies one of them.
        self._plain_headers = {"User-Agent": user_agent, "Accept": "application/json",
                               # A body we could not read must never be what a proxy chose.
                               "Accept-Encoding": "identity"}
        self._json_headers = {**self._plain_headers, "Content-Type": "application/json"}
        self._our_names = {name.lower(): name for name in self._json_headers}
        self._executor: ThreadPoolExecutor | None = None
        self.max_async_workers = max_async_workers
        self._proxy_url = own_text(proxy) if isinstance(proxy, str) else proxy
        self.allow_plain_http_proxy = allow_plain_http_proxy
        if proxy:
            # A proxy the policy refuses fails here, not on first use.
            self._proxy_route("", Timeouts(), CallBudget(Timeouts().total, 1, "setup"))
        self._audit_policy()

    def _audit_policy(self) -> None:
        """One record of the effective policy, each entry with its origin: an auditor sees
        when egress widens (a new provider, a base_url from the environment, a proxy)."""
        if not self._audit_hooks:
            return
        record: dict[str, Any] = {
            "time": time.time(), "event": "policy", "default_deny": self.policy.default_deny,
            "allowed": self.policy.origins(),
            "proxy": shown_url(self._proxy_url) if self._proxy_url else None,
            "trust": trust_description(self._ca_bundle, self._trust_adds_system)}
        for hook in self._audit_hooks:
            hook(record)

    @property
    def policy(self) -> NetworkPolicy:
        return self._policy_state[0]

    @policy.setter
    def policy(self, policy: NetworkPolicy) -> None:
        """A new policy: every decision is made afresh, every idle connection (made under the
        old one) is closed, and the proxy is checked again before its next use."""
        with self._lock:
            self._policy_state, self._dns = (policy, {}), {}
        self.close()

    def __repr__(self) -> str:
        proxy = f", proxy={shown_url(self._proxy_url)!r}" if self._proxy_url else ""
        return (f"PolicyHTTPClient(default_deny={self.policy.default_deny}{proxy}, "
                f"idle_connections={self.idle_connections()})")

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
        # A policy is an immutable value: the same URL gets the same decision, so it is parsed
        # once. Assigning a new policy to .policy clears the cache (see the setter).
        policy, decisions = self._policy_state
        decision = decisions.get(url)
        if decision is None:
            decision = policy.check(url)
            if len(decisions) < DECISION_CACHE_SIZE:
                decisions[url] = decision
        if decision.allowed and decision.target is not None:
            decision = policy.check_rest(method, decision.target) or decision
        self._audit(method, decision.target, decision.allowed, decision.reason, decision.rule)
        if not decision.allowed or decision.target is None:
            log.info("policy refused %s request: %s", method, decision.reason)
            raise PolicyViolation(decision.reason, decision)
        return decision.target

    def _addresses(self, method: str, target: Target, provider: str, timeouts: Timeouts,
                   budget: CallBudget) -> list[str]:
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
            addresses = self._resolve(target, timeouts, budget, provider)
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

    def _resolve(self, target: Target, timeouts: Timeouts, budget: CallBudget,
                 provider: str) -> list[str]:
        """The resolver's answer within the connect timeout and the call's deadline. The
        resolver (getaddrinfo) cannot be interrupted, so it runs on a thread of its own that
        is left to finish if it stalls; the call does not wait for it."""
        import threading

        answer: list[list[str] | OSError] = []
        done = threading.Event()

        def resolve() -> None:
            try:
                answer.append(self._resolver(target.host, target.port))
            except OSError as exc:
                answer.append(exc)
            finally:
                done.set()

        within = min(timeouts.connect, budget.remaining())
        threading.Thread(target=resolve, name="missy-resolve", daemon=True).start()
        if not done.wait(max(0.0, within)) or not answer:
            if budget.remaining() <= 0:
                raise budget.expired(provider, f"resolving host '{target.host}'")
            raise RequestTimeout(f"timed out resolving host '{target.host}' (connect timeout "
                                 f"{timeouts.connect:g}s); check the DNS resolver",
                                 provider=provider)
        if isinstance(answer[0], OSError):
            raise ProviderUnavailable(f"cannot resolve host '{target.host}' "
                                      f"({type(answer[0]).__name__})", provider=provider)
        try:  # read once, into plain text: what is checked is what is connected to
            addresses = [own_text(a) for a in answer[0]]
        except TypeError:  # not a list of str
            addresses = []
        if not addresses:
            raise ProviderUnavailable(f"the resolver gave no usable addresses for host "
                                      f"'{target.host}' (a list of address strings is "
                                      "expected)", provider=provider)
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
            addresses = self._resolve(target, Timeouts(), CallBudget(10.0, 1, "the check"), "")
        except (ProviderUnavailable, RequestTimeout) as exc:
            out.update(allowed=False, reason=exc.message)
            return out
        checks = [{"address": a, "allowed": d.allowed, "reason": d.reason}
                  for a, d in self._address_decisions(target, addresses)]
        out["addresses"] = checks
        denied = [c for c in checks if not c["allowed"]]
        out["allowed"] = bool(checks) and not denied
        if denied:  # the name was allowed, an address it resolved to was not: say that
            out.update(reason=denied[0]["reason"], rule="address")
        return out

    def _proxy_route(self, provider: str, timeouts: Timeouts, budget: CallBudget
                     ) -> tuple[Target, list[str]] | None:
        """The configured proxy and its checked address, decided on every request like any
        destination (a policy change applies to it at once); None without a proxy."""
        if not self._proxy_url:
            return None
        target = self._decide("CONNECT", self._proxy_url)
        if target.scheme != "http":
            raise PolicyViolation("network.proxy must be an http:// proxy URL")
        return target, self._addresses("CONNECT", target, provider, timeouts, budget)[:1]

    # --- connections ----------------------------------------------------------------------

    def _context(self, cert: ClientCert | None = None) -> ssl.SSLContext:
        """The TLS context, built once for each client certificate (or none): certificates
        always verified against the trust the config names (see :func:`trust_description`),
        TLS 1.2 or newer. Built by hand, not by ``ssl.create_default_context``, so that no
        environment variable changes the trust (SSL_CERT_FILE, SSL_CERT_DIR) or writes
        session keys to disk (SSLKEYLOGFILE)."""
        context = self._contexts.get(cert)
        if context is None:
            import ssl  # lazily: plain-http users (a local Ollama) never pay for it

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check, CERT_REQUIRED
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                if self._ca_bundle:
                    ctx.load_verify_locations(cafile=self._ca_bundle)
                if not self._ca_bundle or self._trust_adds_system:
                    _load_system_store(ctx)
            except (OSError, ssl.SSLError) as exc:  # checked at start; changed since
                raise ConfigError(f"cannot load the CA bundle ({type(exc).__name__})",
                                  ("network", "ca_bundle")) from None
            if self._tls_key_log:
                keylog = ENVIRONMENT.get("SSLKEYLOGFILE", "")
                if keylog:
                    log.warning("network.tls_key_log is on: TLS session keys are written to "
                                "%s (debugging only; anyone who reads it can decrypt the "
                                "traffic, keys included)", keylog)
                    # Created here, 0600 and not through a symlink, before OpenSSL appends.
                    try:
                        ensure_private(keylog)
                    except OSError as exc:
                        raise ConfigError(f"cannot create the TLS key log SSLKEYLOGFILE "
                                          f"({type(exc).__name__})", ("network", "tls_key_log")
                                          ) from None
                    ctx.keylog_filename = keylog
            if cert is not None:
                cert.load(ctx)
            with self._lock:
                context = self._contexts.setdefault(cert, ctx)
        return context

    def _connect(self, target: Target, address: str, key: tuple[Any, ...],
                 timeouts: Timeouts, budget: CallBudget, provider: str) -> Connection:
        """A new connection to the checked ``address`` (or through the checked proxy), TLS
        verified for the checked name. The connect and the TLS handshake are each bounded by
        the connect timeout and the overall deadline (CPython keeps one deadline across a
        handshake's reads)."""
        import socket

        deadline = budget.deadline
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise budget.expired(provider, f"before connecting to {target.authority}")
        limit = min(timeouts.connect, remaining)
        proxy = key[4]
        port = proxy.port if proxy is not None else target.port
        sock = socket.create_connection((address, port), limit)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and target.scheme == "https":
                tunnel = Connection(sock, key)
                tunnel.arm(min(deadline, time.monotonic() + limit), timeouts.read)
                self._tunnel(tunnel, target, provider)
            if target.scheme == "https":
                sock.settimeout(max(0.001, min(limit, deadline - time.monotonic())))
                sock = self._context(key[6]).wrap_socket(sock, server_hostname=target.host)
            sock.settimeout(timeouts.read)
        except DeadlinePassed:
            sock.close()
            raise budget.expired(provider, f"while connecting to {target.authority}") from None
        except BaseException:
            sock.close()
            raise
        return Connection(sock, key)

    def _tunnel(self, conn: Connection, target: Target, provider: str) -> None:
        """CONNECT through the proxy to the target (RFC 9110 section 9.3.6): the authority is
        bracketed for IPv6, and the proxy's answer is read by the same strict reader."""
        request = (f"CONNECT {target.authority} HTTP/1.1\r\nHost: {target.authority}\r\n"
                   f"User-Agent: {self._user_agent}\r\n\r\n").encode("ascii")
        conn.sendall(request)
        reader = ResponseReader("CONNECT")
        while reader.head is None:
            data = conn.recv()
            if not data:
                reader.eof()
            reader.feed(data)
        if not 200 <= reader.head.status < 300:
            raise ProviderUnavailable(f"the proxy refused to tunnel to {target.authority} "
                                      f"(HTTP {reader.head.status})", provider=provider)
        if reader.leftover:
            raise ProtocolError("the proxy sent bytes after its CONNECT answer",
                                provider=provider)

    def _checkout(self, key: tuple[Any, ...]) -> Connection | None:
        """An idle connection for ``key`` that is still clean, or None. A connection found
        closed or holding unread bytes is dropped: it never carries a request."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or conn.idle_and_clean():
                return conn
            conn.close()

    def _checkin(self, conn: Connection, reusable: bool) -> None:
        if conn.scope is not None:
            conn.scope.detach(conn)
            conn.scope = None
        if reusable and not conn.closed_by_caller:
            with self._lock:
                if conn.key[5] == id(self.policy):  # built under the policy in force
                    idle = self._idle.setdefault(conn.key, [])
                    if len(idle) < self._max_idle:
                        idle.append(conn)
                        return
        conn.close()

    def close(self) -> None:
        """Close every idle connection, and stop the asyncio facade's worker threads."""
        with self._lock:
            idle, self._idle = self._idle, {}
            executor, self._executor = self._executor, None
        for conns in idle.values():
            for conn in conns:
                conn.close()
        if executor is not None:
            executor.shutdown(wait=True)

    def executor(self) -> ThreadPoolExecutor:
        """The bounded pool the asyncio API runs calls on (made on first use)."""
        with self._lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(self.max_async_workers,
                                                    thread_name_prefix="missy-aio")
            return self._executor

    def idle_connections(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._idle.values())

    # --- requests -------------------------------------------------------------------------

    def _headers(self, headers: Mapping[str, object] | None, has_json: bool
                 ) -> tuple[RedactedHeaders, list[Secret]]:
        """The request's headers, ours and then the caller's (checked), and the credentials
        among them (:func:`request_headers`). Values may be Secrets or Credentials: they stay
        so until the request is framed."""
        if has_json:
            return request_headers(self._json_headers, headers, self._our_names)
        return request_headers(self._plain_headers, headers, self._our_names)

    @at_boundary
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, object] | None = None,
        json: Any = None,
        body: bytes | None = None,
        timeout: Timeouts | float | None = None,
        stream: bool = False,
        provider: str = "",
        allow_plain_http: bool = False,
        budget: CallBudget | None = None,
        client_cert: ClientCert | None = None,
        signer: AwsSigner | None = None,
        credential_body: bool = False,
    ) -> Response:
        """Send one request through the policy. Non-streamed bodies are read (bounded) before
        returning; with ``stream=True`` the caller reads :meth:`Response.iter_raw` and closes.
        Status codes are not errors here (providers map them); a 3xx raises RedirectRefused.

        ``budget`` is the call this request belongs to: it is counted as one send, refused
        past the call's deadline or its number of sends, and every phase ends by the deadline
        (without one, the request is a call of its own: one send within ``timeout``'s total).

        Every credential (a Secret or Credential in a header value, a credential-like header,
        a Secret in the JSON body, a signer's keys) is checked by what it is: one bound to a
        host goes only there, and none goes over plain ``http://`` to an address that is not
        loopback unless ``allow_plain_http`` (the provider's ``allow_plain_http`` config key).
        ``signer`` signs the request's final bytes (AWS SigV4) once every check has passed;
        ``client_cert`` (else the client's own) is presented in the TLS handshake. A Secret
        goes in a JSON body only when the request says the body is a credential exchange
        (``credential_body``: an OAuth token refresh); otherwise it is refused, so no mapping
        can put a key in a field its server would echo or log."""
        if type(method) is not str and isinstance(method, str):
            method = own_text(method)  # a str subclass's == could claim to be GET
        if type(method) is not str or method not in METHODS:
            shown = repr(method) if type(method) is str else type(method).__name__
            raise UsageError(f"method {shown}"[:60] + f" is not one of {', '.join(METHODS)}")
        if type(url) is not str:  # before the decision cache, which it would key
            if not isinstance(url, str):
                raise UsageError(f"url must be a str, got {type(url).__name__}")
            url = own_text(url)
        if client_cert is not None and type(client_cert) is not ClientCert:
            raise UsageError("client_cert must be a ClientCert")  # it is handed the TLS context
        if signer is not None:
            from .sigv4 import AwsSigner as Signer  # only for the requests that sign

            if type(signer) is not Signer:  # exactly: its secrets() are what it signs with
                raise UsageError("signer must be an AwsSigner")
        if body is not None and type(body) is not bytes:
            # Its own bytes, once: Content-Length is the length of what is sent (a buffer's
            # len() counts items, a subclass's can say anything).
            try:
                body = bytes(memoryview(body))
            except TypeError:
                raise UsageError(f"body must be bytes, got {type(body).__name__}") from None
        timeouts = Timeouts.of(timeout)
        if budget is None:
            budget = CallBudget(timeouts.total, 1, "the request's total timeout")
        target = self._decide(method, url)
        all_headers, secrets = self._headers(headers, json is not None)
        data, body_secrets = encode_body(json) if json is not None else (body, [])
        if body_secrets and not credential_body:
            raise PolicyViolation(f"{provider or 'request'}: a credential "
                                  f"({body_secrets[0].origin or 'a Secret'}) in a JSON body; "
                                  "keys go in the headers the provider declares")
        payload = Payload(data)
        if body_secrets or signer is not None:
            secrets += body_secrets + (signer.secrets() if signer is not None else [])
        if problem := bound_elsewhere(secrets, target.host):
            raise PolicyViolation(f"{provider or 'request'}: {problem}")
        proxy = self._proxy_route(provider, timeouts, budget) if self._proxy_url else None
        if proxy is not None:
            proxy_target, addresses = proxy  # the proxy resolves the target; see docs/AUDIT.md
        else:
            proxy_target, addresses = None, self._addresses(method, target, provider,
                                                            timeouts, budget)
        if secrets and target.scheme == "http" and not allow_plain_http and \
                not all_loopback(target, addresses, proxy_target):
            where = f"providers.{provider}.allow_plain_http" if provider else "allow_plain_http"
            raise PolicyViolation(f"{provider or 'request'}: refusing to send a credential in "
                                  f"clear text over http:// to {target.authority}; use "
                                  f"https:// or set {where}: true")
        path = target.path
        if proxy_target is not None and target.scheme == "http":
            if not self.allow_plain_http_proxy:
                raise PolicyViolation(f"{target.authority} is plain http:// and a proxy is "
                                      "configured: the request and its credentials would reach "
                                      "the proxy in the clear; use https:// or set "
                                      "network.allow_plain_http_proxy: true")
            path = f"http://{target.authority}{target.path}"  # absolute-form for a proxy
        if signer is not None:
            all_headers.update(_signed(signer, method, target, all_headers, payload))
        budget.take_send(provider)
        started = time.monotonic()
        pieces = frame_request(method, target, path, payload, all_headers)
        cert = client_cert if client_cert is not None else self._client_cert
        response = self._exchange(method, target, addresses, proxy_target, pieces, timeouts,
                                  budget, provider, cert)
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

    def _exchange(self, method: str, target: Target, addresses: list[str],
                  proxy: Target | None, data: tuple[bytes, ...], timeouts: Timeouts,
                  budget: CallBudget, provider: str, cert: ClientCert | None = None
                  ) -> Response:
        """Send ``data`` once and read the response head. The request is sent again only
        when the server cannot have received it: a connect that failed (the next address is
        tried), or a reused connection that broke while the request was still being written
        (one fresh connection). Once it was fully written, a lost answer is an error for the
        caller's retry policy, never a silent second send."""
        last_error: ProviderError | None = None
        for address in addresses:
            # The policy by identity: a connection made under another policy is never reused
            # (and hashing the policy's value on every checkout would cost more than it says).
            key = (target.scheme, target.host, target.port, address, proxy, id(self.policy),
                   cert)
            conn = self._checkout(key)
            for reused in ((True, False) if conn is not None else (False,)):
                if not reused:
                    try:
                        conn = self._connect(target, address, key, timeouts, budget,
                                             provider)
                    except ProviderError:
                        raise
                    except ConnectionRefusedError:
                        last_error = ProviderUnavailable(
                            f"connection to {target.authority} ({address}) refused",
                            provider=provider)
                        break
                    except TimeoutError:
                        # The error names the limit that fired: the call's deadline, or the
                        # connect timeout (whichever _connect waited for).
                        last_error = budget.expired(
                            provider, f"connecting to {target.authority} ({address})"
                        ) if budget.remaining() <= 0.01 else RequestTimeout(
                            f"timed out connecting to {target.authority} ({address}) after "
                            f"the connect timeout of {timeouts.connect:g}s (`timeout` caps it)",
                            provider=provider)
                        break
                    except OSError as exc:
                        last_error = _connect_error(exc, target, address, provider)
                        break
                assert conn is not None
                scope = CANCEL_SCOPE.get()
                if scope is not None and not scope.attach(conn):
                    conn.close()
                    raise StreamClosed("the call was cancelled", provider=provider)
                conn.scope = scope
                conn.arm(budget.deadline, timeouts.read)
                try:
                    conn.send_pieces(data)
                except DeadlinePassed:
                    conn.close()
                    raise budget.expired(provider, f"sending to {target.authority}") from None
                except TimeoutError:
                    conn.close()
                    raise RequestTimeout(f"timed out sending the request to {target.authority}"
                                         f" (nothing accepted for {timeouts.read:g}s: the read "
                                         "timeout, `timeout`)", provider=provider) from None
                except OSError as exc:
                    conn.close()
                    if reused:
                        continue  # broke mid-write: the server has not got the request
                    raise ProviderUnavailable(f"{target.authority} closed the connection "
                                              f"while the request was sent "
                                              f"({type(exc).__name__})", provider=provider
                                              ) from None
                return self._read_head(conn, method, target, timeouts, budget, provider)
        assert last_error is not None
        raise last_error

    def _read_head(self, conn: Connection, method: str, target: Target, timeouts: Timeouts,
                   budget: CallBudget, provider: str) -> Response:
        reader = ResponseReader(method)
        first = b""
        try:
            while reader.head is None:
                data = conn.recv()
                if not data:
                    if conn.closed_by_caller:
                        raise StreamClosed("the call was cancelled", provider=provider)
                    if not reader.started:
                        raise ProviderUnavailable(
                            f"{target.authority} closed the connection before answering (the "
                            "request was sent and may have been received)", provider=provider)
                    reader.eof()
                first = reader.feed(data)
        except DeadlinePassed:
            conn.close()
            raise budget.expired(provider, f"waiting for {target.authority} to answer"
                                 ) from None
        except TimeoutError:
            conn.close()
            if time.monotonic() >= budget.deadline:
                raise budget.expired(provider, f"waiting for {target.authority} to answer"
                                     ) from None
            raise RequestTimeout(f"timed out: {target.authority} sent nothing for "
                                 f"{timeouts.read:g}s (the read timeout, `timeout`, between "
                                 "bytes; raise it for slow models)", provider=provider) from None
        except ProtocolError as exc:
            conn.close()
            raise ProtocolError(f"{target.authority} sent a malformed HTTP response: "
                                f"{exc.message}", provider=provider) from None
        except ProviderError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            if conn.closed_by_caller:
                raise StreamClosed("the call was cancelled", provider=provider) from None
            raise ProviderUnavailable(f"{target.authority} closed the connection before "
                                      f"answering ({type(exc).__name__})", provider=provider
                                      ) from None
        return Response(self, conn, reader, first, target, timeouts, budget, provider)


class ClientCert(Value, Final):  # final: load() is handed the TLS context
    """A TLS client certificate (mutual TLS, for gateways that require one): the PEM
    certificate chain and its private key, a file only its owner may read."""

    __slots__ = ("cert", "key", "where")
    cert: str
    key: str
    where: tuple[str, ...]  # the config section that names it, for errors

    def __init__(self, cert: str, key: str = "", where: tuple[str, ...] = ("network",)
                 ) -> None:
        paths = []
        for value in (cert, key or cert):
            try:  # a path's own text: it keys the TLS contexts and the pool
                paths.append(own_text(os.fspath(value)))
            except TypeError:
                raise UsageError(f"a client certificate and key are file paths, got "
                                 f"{type(value).__name__}") from None
        self._set(cert=paths[0], key=paths[1], where=tuple(map(str, where)))

    def check(self, path: tuple[str, ...] | None = None) -> None:
        """ConfigError (at ``path``, else where it was configured) unless both files can be
        used; the key's mode first."""
        path = self.where if path is None else path
        if problem := private_file_problem(self.key, "client key"):
            raise ConfigError(problem, (*path, "client_key"))
        if not os.path.isfile(self.cert):
            raise ConfigError("the client certificate does not exist", (*path, "client_cert"))

    def load(self, ctx: ssl.SSLContext) -> None:
        import ssl

        self.check()  # the key's mode may have changed since the config loaded
        try:
            ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client certificate and key "
                              f"({type(exc).__name__}: they must be PEM and match)",
                              (*self.where, "client_cert")) from None


def _signed(signer: AwsSigner, method: str, target: Target, headers: Mapping[str, object],
            payload: Payload) -> Mapping[str, str]:
    """The SigV4 headers for exactly the bytes about to be sent: the Host and path as framed,
    every header (secrets rendered), the body."""
    from datetime import datetime, timezone

    from .sigv4 import sign

    host = target.authority if target.port != DEFAULT_PORTS[target.scheme] else \
        target.authority.rpartition(":")[0]
    signed = [("Host", host), *((n, rendered(v)) for n, v in headers.items())]
    return sign(method, f"{target.scheme}://{host}{target.path}", signed, payload.data or b"",
                region=signer.region, service=signer.service,
                credentials=signer.credentials, now=datetime.now(timezone.utc))


def _load_system_store(ctx: ssl.SSLContext) -> None:
    """The platform's CA store at OpenSSL's built-in locations, not wherever SSL_CERT_FILE or
    SSL_CERT_DIR point; where those locations do not exist (some platforms keep their store
    elsewhere), the platform default (``load_default_certs``)."""
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile, capath=capath)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def _connect_error(exc: OSError, target: Target, address: str, provider: str) -> ProviderError:
    name = type(exc).__name__
    if "SSL" in name or "Certificate" in name:
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or name
        return ProviderUnavailable(f"TLS with {target.host} failed: {reason}; the certificate "
                                   "must verify (set network.ca_bundle for a private CA)",
                                   provider=provider)
    return ProviderUnavailable(f"cannot connect to {target.authority} ({address}): {name}",
                               provider=provider)
