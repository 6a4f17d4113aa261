"""What one HTTP exchange is, without sockets: timeouts, a call's budget, the request's bytes,
and what of a URL or a trust setting may be shown. :mod:`missy_providers.core.http` sends what
this frames, within the budget this counts."""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import CallBudgetExceeded, RequestTimeout, UsageError
from .headers import rendered
from .policy import DEFAULT_PORTS, Target, parse_ip
from .secret import Secret
from .values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

METHODS = ("GET", "POST", "HEAD", "DELETE")
MAX_SECONDS = 86400  # the longest timeout or deadline anything may set: a day


class Timeouts(Value):
    """Seconds: ``connect`` for TCP (+TLS), ``read`` between bytes, ``total`` for the request
    (for a stream: until the caller finishes reading it)."""

    __slots__ = ("connect", "read", "total")
    connect: float
    read: float
    total: float

    def __init__(self, connect: float = 10.0, read: float = 60.0, total: float = 600.0) -> None:
        for name, value in (("connect", connect), ("read", read), ("total", total)):
            # NaN and infinity fail the range (and would fail the socket's own check later).
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not 0 < value <= MAX_SECONDS:
                raise UsageError(f"timeouts.{name} must be a number > 0 and <= {MAX_SECONDS} "
                                 f"(a day), got {value!r}"[:120])
        self._set(connect=connect, read=read, total=total)

    @classmethod
    def of(cls, value: Timeouts | float | None, total: float = 600.0) -> Timeouts:
        """From a single number of seconds (a config's ``timeout``): the read timeout, and
        the connect timeout up to 10 s; ``total`` for the whole request."""
        if value is None:
            # Immutable: every request without a timeout shares the default one.
            return DEFAULT_TIMEOUTS if total == DEFAULT_TIMEOUTS.total else cls(total=total)
        if isinstance(value, Timeouts):
            return value
        return cls(connect=min(10.0, float(value)), read=float(value), total=total)


DEFAULT_TIMEOUTS = Timeouts()


class DeadlinePassed(Exception):
    """Internal: the overall deadline passed before a read or write began."""


_NO_REFRESHES: frozenset[str] = frozenset()


def _sends(plans: Iterable[tuple[int, int, bool, bool]]) -> int:
    """The formula of :meth:`CallBudget.sends_for`, summed over providers (one loop, no call
    per provider: it runs once a call)."""
    sends = 0
    for keys, max_retries, token_refresh, reread in plans:
        sends += (keys if keys > 1 else 1) + max_retries + (2 if token_refresh else 0) + \
            (1 if reread else 0)
    return sends


class CallBudget:
    """One call's bound, carried with each of its requests and enforced by the client: one
    deadline for everything the call does (rate-limit waits, backoff sleeps, every request's
    connect, TLS, send and read, a token refresh, fallbacks to other providers) and one most
    number of sends. Past either, the core sends nothing more. Thread-safe.

    ``limit`` names what set the deadline, for the error that says it passed."""

    __slots__ = ("total", "deadline", "max_sends", "sends", "refreshes", "limit", "_lock")

    def __init__(self, total: float, max_sends: int, limit: str = "total_timeout") -> None:
        # A bool is not a number here; NaN and infinity fail the range (and would overflow
        # the clocks the deadline is handed to).
        kind = total.__class__
        if (kind is not float and kind is not int) or not 0 < total <= MAX_SECONDS:
            raise UsageError(f"a call's total time must be a number of seconds > 0 and <= "
                             f"{MAX_SECONDS} (a day), got {total!r}")
        if max_sends.__class__ is not int or max_sends < 1:
            raise UsageError(f"a call's sends must be a whole number >= 1, got {max_sends!r}")
        self.total, self.max_sends, self.limit = float(total), max_sends, limit
        self.deadline = time.monotonic() + self.total
        self.sends = 0
        # The providers that renewed a credential: replaced under the lock, never changed in
        # place (renewals are rare: a call that has none allocates nothing for them).
        self.refreshes: frozenset[str] = _NO_REFRESHES
        # Its own lock: a lock shared by every budget would hang every call in a child forked
        # while another thread held it.
        self._lock = threading.Lock()

    @classmethod
    def for_call(cls, total: float, providers: Iterable[tuple[int, int, bool, bool]],
                 limit: str = "total_timeout") -> CallBudget:
        """The budget of one call to ``providers`` (one, or a fallback chain in order), each
        given as exactly (its keys, its max_retries, whether it refreshes a login token,
        whether it reads its credential again after a refusal), as ``send_plan`` gives them:
        ``total`` seconds, and the sum of :meth:`sends_for` over them (at least one)."""
        return cls(total, _sends(providers) or 1, limit)

    @staticmethod
    def sends_for(keys: int, max_retries: int, token_refresh: bool = False,
                  reread: bool = False) -> int:
        """The most requests one provider sends in one call: each of its keys once (a 401,
        403 or 429 moves to the next key; no key counts as one), then ``max_retries`` retries;
        where a login token can be refreshed, the refresh and one re-send after it; where the
        credential is read again after a refusal (a key or token file, the shared AWS
        credentials file, a host's callback), one re-send with what was read."""
        return _sends(((keys, max_retries, token_refresh, reread),))

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self, provider: str, doing: str) -> RequestTimeout:
        return RequestTimeout(f"timed out: the call's deadline passed {doing} ({self.limit} "
                              f"{self.total:g}s for the whole call; raise it to allow more)",
                              provider=provider)

    def take_send(self, provider: str) -> None:
        """Count one request about to be sent; refuse it past the deadline or the count."""
        with self._lock:
            if self.sends >= self.max_sends:
                raise CallBudgetExceeded(f"this call has sent its {self.max_sends} request(s): "
                                         "no more are allowed (docs/AUDIT.md question 9)",
                                         provider=provider)
            if self.deadline <= time.monotonic():
                raise self.expired(provider, "before the next request")
            self.sends += 1

    def take_refresh(self, provider: str = "") -> bool:
        """Whether ``provider`` may renew its credential now (a login token refresh, or a
        credential read again after a refusal): once per provider in a call."""
        with self._lock:
            if provider in self.refreshes:
                return False
            self.refreshes = self.refreshes | {provider}
            return True

    def wait(self, seconds: float, sleep: Callable[[float], None], provider: str,
             doing: str) -> None:
        """Sleep ``seconds`` unless that would pass the deadline (then a RequestTimeout now,
        rather than a sleep that ends too late)."""
        if seconds > self.remaining():
            raise self.expired(provider, f"{doing} (a wait of {seconds:.1f}s)")
        if seconds > 0:
            sleep(seconds)

    @contextmanager
    def locked(self, lock: threading.Lock, provider: str, doing: str) -> Iterator[None]:
        """Hold ``lock``, waited for no longer than the deadline (another call may hold it
        while it renews a credential): a RequestTimeout naming the limit when it passes."""
        if not lock.acquire(timeout=max(0.0, self.remaining())):
            raise self.expired(provider, doing)
        try:
            yield
        finally:
            lock.release()

    def wait_for(self, done: threading.Event, provider: str, doing: str) -> None:
        """Wait for ``done`` (work on another thread: a host's callback, a file read) no
        longer than the deadline; the work itself is not interrupted (it may be the host's
        code), but the call raises the RequestTimeout as the deadline passes."""
        if not done.wait(max(0.0, self.remaining())):
            raise self.expired(provider, doing)

    def __repr__(self) -> str:
        return (f"CallBudget({self.limit}={self.total:g}s, remaining={self.remaining():.1f}s, "
                f"sends={self.sends}/{self.max_sends})")



def trust_description(ca_bundle: str, adds_to_system: bool) -> str:
    """What TLS certificates are checked against, in words (audit record, policy show)."""
    if not ca_bundle:
        return "system store"
    return f"bundle {ca_bundle}" + (" and the system store" if adds_to_system else " only")


def all_loopback(target: Target, addresses: list[str], proxy: Target | None) -> bool:
    """Whether every byte stays on this machine: the target (and any proxy) is loopback."""
    if proxy is not None:
        return False
    if target.ip is not None:  # a literal: the one address connected to
        return target.ip.is_loopback
    ips = [parse_ip(a.partition("%")[0]) for a in addresses]
    return bool(ips) and all(ip is not None and ip.is_loopback for ip in ips)


# A body this large goes in a send of its own, not copied behind the head (a long history
# is hundreds of KB: the copy, and the allocator's page faults for it, cost more than a send).
SEPARATE_BODY_BYTES = 64 * 1024


def frame_request(method: str, target: Target, path: str, payload: Payload,
                  headers: Mapping[str, object]) -> tuple[bytes, ...]:
    """The request's bytes, in the pieces to send (the head and body together, or a large
    body after its head). Method, path, Host and Content-Length come only from here; the
    path passed the policy's URL grammar and the headers were checked (no CR, LF or NUL)."""
    host = target.authority if target.port != DEFAULT_PORTS[target.scheme] else \
        target.authority.rpartition(":")[0]
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    # The one place a header's secret is revealed: into the bytes about to be sent.
    lines += [f"{name}: {value if value.__class__ is str else rendered(value)}"
              for name, value in headers.items()]
    body = payload.data
    if body is not None or method == "POST":
        lines.append(f"Content-Length: {0 if body is None else len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if not body:
        return (head,)
    return (head, body) if len(body) >= SEPARATE_BODY_BYTES else (head + body,)


class Payload:
    """A request body whose repr is its size: it may carry a token (a refresh grant), and a
    traceback that captures locals must not show it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{0 if self.data is None else len(self.data)} bytes>"


class _SecretInBody(Exception):
    """Internal: the body holds a Secret; it is encoded again, revealing and recording it."""


def _plain(value: object) -> str:
    if type(value) is Secret:  # exactly: an object can claim the class to isinstance()
        raise _SecretInBody
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode_plain = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                    default=_plain).encode


def encode_body(value: object) -> tuple[bytes, list[Secret]]:
    """A JSON body's bytes, and every Secret in it (an OAuth refresh token): revealed here,
    into the bytes about to be sent, and returned so the credential rules apply to them."""
    try:
        return _encode_plain(value).encode(), []
    except _SecretInBody:
        pass
    found: list[Secret] = []

    def reveal(item: object) -> str:
        if type(item) is Secret:
            found.append(item)
            return item.reveal()
        raise TypeError(f"{type(item).__name__} is not JSON serializable")

    text = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=reveal
                               ).encode(value)
    return text.encode(), found


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


class CancelScope:
    """One call's cancel switch, for the asyncio facade: the connections the call is using
    register here, and :meth:`cancel` (from any thread) interrupts their blocked reads. The
    call finds its scope in the ``CANCEL_SCOPE`` context variable of the thread running it."""

    __slots__ = ("cancelled", "_connections", "_lock")

    def __init__(self) -> None:
        import threading

        self.cancelled = False
        self._connections: set[Any] = set()
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> bool:
        """Register ``connection``; False (and nothing registered) if already cancelled."""
        with self._lock:
            if self.cancelled:
                return False
            self._connections.add(connection)
            return True

    def detach(self, connection: Any) -> None:
        with self._lock:
            self._connections.discard(connection)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            live = list(self._connections)
        for connection in live:
            connection.interrupt()


CANCEL_SCOPE: ContextVar[CancelScope | None] = ContextVar("missy_cancel_scope", default=None)
