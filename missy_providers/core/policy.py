"""NetworkPolicy: a pure allow/deny decision for a URL, with the reason. No I/O.

The URL grammar accepted here is deliberately narrower than RFC 3986: anything the stdlib's
``urllib.parse`` and ``http.client`` could read differently (userinfo, backslashes, control
characters, percent-encoded or non-ASCII hosts, IPv4 in integer/hex/octal/short forms, zone ids,
trailing dots) is refused rather than interpreted.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping

from .errors import PolicyViolation
from .secret import scrub
from .values import Value, own_text

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Union

    IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX_DIGITS = frozenset("0123456789abcdef")
# Any of these anywhere in a URL makes it ambiguous between parsers, or not a URL at all.
_FORBIDDEN_URL_CHARS = frozenset("\\ \t\r\n\x0b\x0c\x7f") | frozenset(map(chr, range(32)))
LOCAL_NAMES = frozenset({"localhost"})


class Target(Value):
    """The canonical parts of a URL that passed the grammar."""

    __slots__ = ("scheme", "host", "port", "path", "ip")
    scheme: str
    host: str  # lower-case name, dotted-quad IPv4, or compressed IPv6 without brackets
    port: int
    path: str  # path and query, as sent on the request line (never logged with the query)
    ip: IPAddress | None

    def __init__(self, scheme: str, host: str, port: int, path: str,
                 ip: IPAddress | None = None) -> None:
        self._set(scheme=scheme, host=host, port=port, path=path, ip=ip)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def log_path(self) -> str:
        return self.path.partition("?")[0]

    def __repr__(self) -> str:
        # Never the query (it can carry a key), and the path scrubbed like any error text.
        return (f"Target(scheme={self.scheme!r}, host={self.host!r}, port={self.port}, "
                f"path={scrub(self.log_path)!r})")


class Decision(Value):
    """Allowed or not, why (for people), and which config key decided (for tools)."""

    __slots__ = ("allowed", "reason", "target", "rule")
    allowed: bool
    reason: str
    target: Target | None
    rule: str  # "allowed_hosts", "allowed_domains", "default_deny", "address", "url", ...

    def __init__(self, allowed: bool, reason: str, target: Target | None = None,
                 rule: str = "") -> None:
        self._set(allowed=allowed, reason=reason, target=target, rule=rule)

    def raise_if_denied(self) -> None:
        if not self.allowed:
            raise PolicyViolation(self.reason, self)


def _refuse(reason: str) -> PolicyViolation:
    return PolicyViolation(f"URL refused: {reason}")


def parse_ip(text: str) -> IPAddress | None:
    """A canonical IP literal, or None if ``text`` is a name. IPv4-mapped IPv6 becomes IPv4.

    Raises ValueError for IPv4 lookalikes that some resolvers accept (``2130706433``,
    ``0x7f.1``, ``010.0.0.1``, ``127.1``): the parsers disagree on what they mean.
    """
    if ":" in text:
        if "%" in text:
            raise ValueError(f"IPv6 zone ids are not allowed: {text!r}")
        try:
            ip6 = ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"not a valid IPv6 address: {text!r}") from None
        return ip6.ipv4_mapped or ip6
    labels = text.split(".")
    last = labels[-1]
    numeric_tail = bool(last) and (last.isdigit() or (last[:2] == "0x" and
                                                      set(last[2:]) <= _HEX_DIGITS))
    if not numeric_tail:
        return None
    if len(labels) == 4 and all(p.isdigit() and (p == "0" or p[0] != "0") and int(p) <= 255
                                for p in labels):
        return ipaddress.IPv4Address(text)
    raise ValueError(f"{text!r} looks like an IPv4 address but is not in canonical dotted-quad "
                     "form (a.b.c.d, decimal, no leading zeros)")


def _plain(text: object) -> str:
    """A policy entry's own text (:func:`own_text`: a str subclass's ``lower`` or ``==`` could
    make an entry that shows one host allow another); ValueError if it is not text."""
    if not isinstance(text, str):
        raise ValueError(f"a policy entry must be a string, got {type(text).__name__}")
    return own_text(text)


def canonical_name(text: str) -> str:
    """A host name, lower-cased and checked; raises ValueError naming what is wrong."""
    text = _plain(text)
    host = text.lower()
    if not host:
        raise ValueError("empty host")
    if host.endswith("."):
        raise ValueError(f"host {text!r} ends in a dot; write it without the trailing dot")
    if not host.isascii():
        raise ValueError(f"host {text!r} is not ASCII; give IDNA names in their xn-- form")
    if "%" in host:
        raise ValueError(f"host {text!r} is percent-encoded")
    if not set(host) <= _NAME_CHARS:
        raise ValueError(f"host {text!r} has characters not allowed in a host name")
    if len(host) > 253 or any(not label or len(label) > 63 for label in host.split(".")):
        raise ValueError(f"host {text!r} has an empty or over-long label")
    return host


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` -> (host, port text or None)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {hostport!r}")
        host, rest = hostport[1:end], hostport[end + 1:]
        if ":" not in host:
            raise ValueError(f"only IPv6 addresses go in brackets: {hostport!r}")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"unexpected text after ']' in {hostport!r}")
        return host, rest[1:]
    if hostport.count(":") > 1:
        # Not quoted: user:pass text ends up here when the password holds a ':' or a '/'.
        raise ValueError("more than one ':' in the host and port: IPv6 addresses go in "
                         "brackets, and user:password does not go in a URL")
    host, sep, port = hostport.partition(":")
    return host, port if sep else None


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        # Not quoted: a password in a URL with a '/' in it ends up here as the port.
        raise ValueError("port is not a plain decimal number (1-65535)")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1-65535")
    return port


def _canonical_host(text: str) -> tuple[str, IPAddress | None]:
    ip = parse_ip(text)  # any text with a ':' is an IPv6 address here, or refused
    if ip is not None:
        return str(ip), ip
    return canonical_name(text), None


def parse_url(url: str) -> Target:
    """The canonical target of an http(s) URL; raises PolicyViolation for anything ambiguous."""
    if not isinstance(url, str) or not url:
        raise _refuse("empty or not a string")
    url = own_text(url)
    if not url.isascii():
        raise _refuse("non-ASCII characters (percent-encode the path; use xn-- host names)")
    if not _FORBIDDEN_URL_CHARS.isdisjoint(url):
        raise _refuse("whitespace, control characters or backslashes are not allowed")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise _refuse("only http:// and https:// URLs are allowed")
    if "#" in rest:
        raise _refuse("fragments ('#') are not allowed in a request URL")
    end = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if 0 <= i < end:
            end = i
    authority, path = rest[:end], rest[end:]
    if "@" in authority:
        raise _refuse("credentials in the URL (user@host) are not allowed")
    if not path.startswith("/"):
        path = "/" + path
    try:
        host_text, port_text = _split_host_port(authority)
        host, ip = _canonical_host(host_text)
        port = DEFAULT_PORTS[scheme] if port_text is None else _parse_port(port_text)
    except ValueError as exc:
        raise _refuse(str(exc)) from None
    return Target(scheme, host, port, path, ip)


class HostEntry(Value):
    """One ``allowed_hosts`` entry: a host, a port or any (None), and its IP if it is one."""

    __slots__ = ("host", "port", "ip")
    host: str
    port: int | None
    ip: IPAddress | None

    def __init__(self, host: str, port: int | None, ip: IPAddress | None) -> None:
        self._set(host=host, port=port, ip=ip)

    def matches(self, target: Target) -> bool:
        return self.host == target.host and self.port in (None, target.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_host_entry(text: str) -> HostEntry:
    """An ``allowed_hosts`` entry: ``host``, ``host:port``, ``[v6]``, ``[v6]:port``, ``v6``."""
    if not isinstance(text, str) or not text:
        raise ValueError("a host entry must be a non-empty string")
    text = own_text(text)
    if "://" in text or "/" in text or "@" in text:
        raise ValueError(f"{text!r}: give a host or host:port, not a URL")
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"
    host_text, port_text = _split_host_port(text)
    host, ip = _canonical_host(host_text)
    return HostEntry(host, None if port_text is None else _parse_port(port_text), ip)


def parse_domain_entry(text: str) -> tuple[str, bool]:
    """An ``allowed_domains`` entry -> (domain, subdomains_only). ``*.x`` is subdomains only."""
    text = _plain(text)
    wildcard = text.startswith("*.")
    domain = canonical_name(text[2:] if wildcard else text)  # refuses any other '*'
    if parse_ip(domain) is not None:
        raise ValueError(f"{text!r} is an IP address; use allowed_cidrs or allowed_hosts")
    return domain, wildcard


def parse_cidr(text: str) -> IPNetwork:
    text = _plain(text)
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a CIDR network ({exc})") from None


def _mapped(ip: IPAddress) -> IPAddress:
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


# The IANA special-purpose address registries (RFC 6890 and its updates), as (range, what).
# An address in one of these is never reached through a name or in open mode without an
# explicit allowed_cidrs entry or exact-IP host entry. Most specific ranges first.
SPECIAL_V4_RANGES = (
    ("0.0.0.0/8", "this network"), ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"), ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"), ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112"), ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast"), ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112"), ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
)
SPECIAL_V6_RANGES = (
    ("::/128", "unspecified"), ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"), ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local-use NAT64"), ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
    ("2001:db8::/32", "documentation"), ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"), ("fc00::/7", "unique-local"), ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"), ("ff00::/8", "multicast"),
)
_NAT64_PREFIX = 0x0064FF9B << 96  # 64:ff9b::/96
_SIX_TO_FOUR_PREFIX = 0x2002  # 2002::/16


@functools.cache
def special_ranges() -> tuple[tuple[tuple[IPNetwork, str], ...], ...]:
    """The registries as networks, built once on first use (not at import: start-up stays
    fast); the same constant tables every time."""
    return (tuple((ipaddress.IPv4Network(n), w) for n, w in SPECIAL_V4_RANGES),
            tuple((ipaddress.IPv6Network(n), w) for n, w in SPECIAL_V6_RANGES))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address stands for; these
    are checked as that IPv4 address (a DNS64 network answers 64:ff9b:: for public hosts)."""
    value = int(ip)
    if value >> 32 == _NAT64_PREFIX >> 32:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 112 == _SIX_TO_FOUR_PREFIX:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


def special_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (the registry entry it falls in), or None.

    IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they embed; the other
    IPv6 forms that embed one (IPv4-compatible, IPv4-translated, Teredo) are special outright,
    as is every IPv6 address outside global unicast (2000::/3)."""
    ip = _mapped(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = special_reason(inner)
            return None if why is None else f"an address that embeds {inner}, {why}"
        for net, what in special_ranges()[1]:
            if ip in net:
                return f"{what} ({net})"
        # Global unicast is 2000::/3: the top three bits 001.
        return None if int(ip) >> 125 == 1 else "not global unicast (outside 2000::/3)"
    for net, what in special_ranges()[0]:
        if ip in net:
            return f"{what} ({net})"
    return None


REST_ACTIONS = frozenset({"allow", "deny"})


class RestRule(Value):
    """One ``network.rest_policies`` rule (Missy's format): requests to ``host`` (exact name,
    any port) whose method is ``method`` (or any, ``*``) and whose path matches the glob
    ``path`` (``*`` matches ``/`` too, so ``/repos/*`` is ``/repos/**``) get ``action``.
    Rules are read top to bottom and the first that matches decides; ``allow`` only means
    "not denied by these rules": the host must still be allowed by the policy."""

    __slots__ = ("host", "method", "path", "action")
    host: str
    method: str
    path: str
    action: str

    def __init__(self, host: str, method: str = "*", path: str = "/**",
                 action: str = "deny") -> None:
        host, method, path, action = (_plain(part) for part in (host, method, path, action))
        if action not in REST_ACTIONS:
            raise ValueError(f"action must be allow or deny, got {action!r}"[:80])
        self._set(host=_canonical_host(host)[0], method=method.upper(), path=path,
                  action=action)

    def matches(self, host: str, method: str, path: str) -> bool:
        """A deny rule matches a path in any letter case (a server may not care); an allow
        rule only as written (so it never lets through what a deny rule below it names)."""
        from fnmatch import fnmatchcase  # only when rules are configured

        if host != self.host or self.method not in ("*", method):
            return False
        return fnmatchcase(path, self.path) or (
            self.action == "deny" and fnmatchcase(path.lower(), self.path.lower()))

    def __str__(self) -> str:
        return f"{self.action} {self.method} {self.host}{self.path}"


def rest_paths(path: str) -> tuple[str, ...]:
    """The forms of a request path the rules are matched against: as sent and
    percent-decoded, each with ``.``/``..`` segments resolved (a trailing ``/`` kept). A rule
    that denies either form denies the request: a server may decode or resolve what we send."""
    import posixpath
    from urllib.parse import unquote

    forms = []
    for form in (path, unquote(path)):
        # Runs of slashes are one to most servers (normpath folds them, but keeps "//" at the
        # start, as POSIX says).
        form = "/" + form.lstrip("/") if form.startswith("//") else form
        resolved = posixpath.normpath(form) if form else "/"
        if form.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        if resolved not in forms:
            forms.append(resolved)
    return tuple(forms)


def rest_verdict(rules: tuple[RestRule, ...], method: str, target: Target) -> RestRule | None:
    """The rule that denies ``method`` on ``target``, or None (no rule matched, or the first
    match allows it) -- for every form of the path."""
    for path in rest_paths(target.log_path):
        for rule in rules:
            if rule.matches(target.host, method.upper(), path):
                if rule.action == "deny":
                    return rule
                break
    return None


class NetworkPolicy(Value):
    """Decides, for a URL and later for each address it resolves to, whether to connect.
    Immutable: a different policy is a new object (the client's decision cache and pool are
    keyed to the one in force)."""

    __slots__ = ("default_deny", "allowed_hosts", "domains", "cidrs", "provider_hosts",
                 "rest_rules")
    default_deny: bool
    allowed_hosts: tuple[HostEntry, ...]
    domains: tuple[tuple[str, bool], ...]
    cidrs: tuple[IPNetwork, ...]
    provider_hosts: tuple[tuple[HostEntry, str], ...]  # (entry, where it came from)
    rest_rules: tuple[RestRule, ...]  # method + path rules that can only deny

    def __init__(
        self,
        *,
        default_deny: bool = True,
        allowed_hosts: Iterable[str] = (),
        allowed_domains: Iterable[str] = (),
        allowed_cidrs: Iterable[str] = (),
        provider_hosts: Mapping[str, str] | None = None,
        rest_rules: Iterable[RestRule] = (),
    ) -> None:
        """``provider_hosts`` maps a host entry (``host:port``) to the provider it came from;
        ``rest_rules`` narrow what an allowed host may be sent (:meth:`check_rest`)."""
        self._set(default_deny=bool(default_deny),
                  allowed_hosts=tuple(parse_host_entry(h) for h in allowed_hosts),
                  domains=tuple(parse_domain_entry(d) for d in allowed_domains),
                  cidrs=tuple(parse_cidr(c) for c in allowed_cidrs),
                  provider_hosts=tuple((parse_host_entry(h), who) for h, who in
                                       (provider_hosts or {}).items()),
                  rest_rules=tuple(rest_rules))

    def _explicit_address(self, address: IPAddress, port: int) -> tuple[str, str] | None:
        """(reason, rule) of an allowed_cidrs entry, or an exact-IP host entry on this port
        (or on any port when it names none), that allows ``address``."""
        for net in self.cidrs:
            if address.version == net.version and address in net:
                return (f"address {address} allowed by network.allowed_cidrs entry '{net}'",
                        "allowed_cidrs")
        for entry in (*self.allowed_hosts, *(e for e, _ in self.provider_hosts)):
            if entry.ip is not None and _mapped(entry.ip) == address and \
                    entry.port in (None, port):
                return f"address {address} allowed by the exact IP entry '{entry}'", \
                    "allowed_hosts"
        return None

    def check(self, url: str) -> Decision:
        """The decision for ``url`` before any DNS lookup."""
        try:
            target = parse_url(url)
        except PolicyViolation as exc:
            return Decision(False, str(exc), None, "url")
        return self.check_target(target)

    def check_target(self, target: Target) -> Decision:
        for entry in self.allowed_hosts:
            if entry.matches(target):
                return Decision(True, f"allowed by network.allowed_hosts entry '{entry}'",
                                target, "allowed_hosts")
        for entry, origin in self.provider_hosts:
            if entry.matches(target):
                return Decision(True, f"allowed as provider host '{entry}' (from {origin})",
                                target, "provider_allowed_hosts")
        if target.ip is not None:
            for net in self.cidrs:
                if target.ip.version == net.version and target.ip in net:
                    return Decision(True, f"allowed by network.allowed_cidrs entry '{net}'",
                                    target, "allowed_cidrs")
        else:
            for domain, subdomains_only in self.domains:
                if (target.host.endswith("." + domain) if subdomains_only
                        else target.host == domain):
                    shown = f"*.{domain}" if subdomains_only else domain
                    return Decision(True, f"allowed by network.allowed_domains entry '{shown}'",
                                    target, "allowed_domains")
        if not self.default_deny:
            why = special_reason(target.ip) if target.ip is not None else None
            if why is not None:  # open mode means "any public host", not the metadata service
                return Decision(False, f"IP address '{target.authority}' is {why}: special "
                                "addresses need an explicit network.allowed_cidrs or "
                                "allowed_hosts entry, even with default_deny false", target,
                                "address")
            return Decision(True, "allowed because network.default_deny is false", target,
                            "default_deny")
        what = "IP address" if target.ip is not None else "host"
        fix = ("add it to network.allowed_cidrs or network.allowed_hosts" if target.ip
               else "add it to network.allowed_hosts or network.allowed_domains")
        return Decision(False, f"{what} '{target.authority}' is not allowed by the network "
                        f"policy (default_deny is true); {fix}", target, "default_deny")

    def check_rest(self, method: str, target: Target) -> Decision | None:
        """A denial by ``network.rest_policies`` of ``method`` on an allowed ``target``, or
        None. The rules only narrow: nothing they say allows a host the policy refused."""
        if not self.rest_rules:
            return None
        rule = rest_verdict(self.rest_rules, method, target)
        if rule is None:
            return None
        return Decision(False, f"{method.upper()} {target.host}{target.log_path} is denied by "
                        f"network.rest_policies rule '{rule}'", target, "rest_policies")

    def check_address(self, target: Target, address: IPAddress) -> Decision:
        """Whether a name that passed :meth:`check_target` may connect to one resolved address
        (``target.port`` is the port it connects to).

        A public name answered with a special address is the DNS-rebinding attack; it passes
        only when the operator allowed that address explicitly (a CIDR, or an exact-IP entry
        for this port), or the name is ``localhost`` listed explicitly (a local Ollama) and the
        address is loopback.
        """
        address = _mapped(address)
        why = special_reason(address)
        if why is None:
            return Decision(True, "public address", target, "address")
        explicit = self._explicit_address(address, target.port)
        if explicit is not None:
            return Decision(True, explicit[0], target, explicit[1])
        entries = (*self.allowed_hosts, *(e for e, _ in self.provider_hosts))
        if (target.host in LOCAL_NAMES and address.is_loopback
                and any(e.matches(target) for e in entries)):
            return Decision(True, f"{target.host} resolves to loopback {address}", target,
                            "provider_allowed_hosts")
        return Decision(False, f"host '{target.host}' resolved to {address}, {why}; refused "
                        "(DNS rebinding protection); allow it with network.allowed_cidrs",
                        target, "address")

    def origins(self) -> dict[str, str]:
        """Every entry that allows something, with where it came from (for the audit record
        of the effective policy)."""
        out = {str(e): "network.allowed_hosts" for e in self.allowed_hosts}
        out.update({f"*.{d}" if w else d: "network.allowed_domains" for d, w in self.domains})
        out.update({str(c): "network.allowed_cidrs" for c in self.cidrs})
        for entry, origin in self.provider_hosts:
            out.setdefault(str(entry), origin)
        return out

    def describe(self) -> dict[str, object]:
        """The effective policy, for ``missy policy show``."""
        return {
            "default_deny": self.default_deny,
            "allowed_hosts": [str(e) for e in self.allowed_hosts],
            "allowed_domains": [f"*.{d}" if w else d for d, w in self.domains],
            "allowed_cidrs": [str(c) for c in self.cidrs],
            "provider_hosts": {str(e): who for e, who in self.provider_hosts},
            "rest_policies": [str(r) for r in self.rest_rules],
        }
