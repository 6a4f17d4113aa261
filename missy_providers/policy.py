"""NetworkPolicy: a pure allow/deny decision for a URL, with the reason. No I/O.

The URL grammar accepted here is deliberately narrower than RFC 3986: anything the stdlib's
``urllib.parse`` and ``http.client`` could read differently (userinfo, backslashes, control
characters, percent-encoded or non-ASCII hosts, IPv4 in integer/hex/octal/short forms, zone ids,
trailing dots) is refused rather than interpreted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from .errors import PolicyViolation
from .secret import scrub
from .values import Value

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


def canonical_name(text: str) -> str:
    """A host name, lower-cased and checked; raises ValueError naming what is wrong."""
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
        raise ValueError(f"IPv6 addresses must be in brackets: {hostport!r}")
    host, sep, port = hostport.partition(":")
    return host, port if sep else None


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"port {text!r} is not a plain decimal number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1-65535")
    return port


def _canonical_host(text: str) -> tuple[str, IPAddress | None]:
    ip = parse_ip(text)
    if ip is not None:
        return str(ip), ip
    if ":" in text:
        raise ValueError(f"not a valid IPv6 address: {text!r}")
    return canonical_name(text), None


def parse_url(url: str) -> Target:
    """The canonical target of an http(s) URL; raises PolicyViolation for anything ambiguous."""
    if not isinstance(url, str) or not url:
        raise _refuse("empty or not a string")
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
    if "://" in text or "/" in text or "@" in text:
        raise ValueError(f"{text!r}: give a host or host:port, not a URL")
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"
    host_text, port_text = _split_host_port(text)
    host, ip = _canonical_host(host_text)
    return HostEntry(host, None if port_text is None else _parse_port(port_text), ip)


def parse_domain_entry(text: str) -> tuple[str, bool]:
    """An ``allowed_domains`` entry -> (domain, subdomains_only). ``*.x`` is subdomains only."""
    wildcard = text.startswith("*.")
    domain = canonical_name(text[2:] if wildcard else text)
    if "*" in domain:
        raise ValueError(f"{text!r}: '*' is only allowed as a leading '*.'")
    if parse_ip(domain) is not None:
        raise ValueError(f"{text!r} is an IP address; use allowed_cidrs or allowed_hosts")
    return domain, wildcard


def parse_cidr(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a CIDR network ({exc})") from None


def _mapped(ip: IPAddress) -> IPAddress:
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


def is_special_address(ip: IPAddress) -> bool:
    """Loopback, private, link-local, CGNAT, multicast, unspecified or reserved."""
    ip = _mapped(ip)
    return not ip.is_global or ip.is_multicast or ip.is_unspecified


class NetworkPolicy:
    """Decides, for a URL and later for each address it resolves to, whether to connect."""

    def __init__(
        self,
        *,
        default_deny: bool = True,
        allowed_hosts: Iterable[str] = (),
        allowed_domains: Iterable[str] = (),
        allowed_cidrs: Iterable[str] = (),
        provider_hosts: Mapping[str, str] | None = None,
    ) -> None:
        """``provider_hosts`` maps a host entry (``host:port``) to the provider it came from."""
        self.default_deny = default_deny
        self.allowed_hosts = tuple(parse_host_entry(h) for h in allowed_hosts)
        self.domains = tuple(parse_domain_entry(d) for d in allowed_domains)
        self.cidrs = tuple(parse_cidr(c) for c in allowed_cidrs)
        self.provider_hosts = {parse_host_entry(h): who for h, who in
                               (provider_hosts or {}).items()}

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
        for entry, origin in self.provider_hosts.items():
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
            return Decision(True, "allowed because network.default_deny is false", target,
                            "default_deny")
        what = "IP address" if target.ip is not None else "host"
        fix = ("add it to network.allowed_cidrs or network.allowed_hosts" if target.ip
               else "add it to network.allowed_hosts or network.allowed_domains")
        return Decision(False, f"{what} '{target.authority}' is not allowed by the network "
                        f"policy (default_deny is true); {fix}", target, "default_deny")

    def check_address(self, target: Target, address: IPAddress) -> Decision:
        """Whether a name that passed :meth:`check_target` may connect to one resolved address.

        A public name answered with a private address is the DNS-rebinding attack; it passes
        only when the operator allowed that address explicitly, or the name is ``localhost``
        listed explicitly (a local Ollama) and the address is loopback.
        """
        address = _mapped(address)
        if not is_special_address(address):
            return Decision(True, "public address", target, "address")
        for net in self.cidrs:
            if address.version == net.version and address in net:
                return Decision(True, f"address {address} allowed by network.allowed_cidrs "
                                f"entry '{net}'", target, "allowed_cidrs")
        explicit = (*self.allowed_hosts, *self.provider_hosts)
        if any(e.ip is not None and e.ip == address for e in explicit):
            return Decision(True, f"address {address} allowed by an exact IP entry", target,
                            "allowed_hosts")
        if (target.host in LOCAL_NAMES and address.is_loopback
                and any(e.matches(target) for e in explicit)):
            return Decision(True, f"{target.host} resolves to loopback {address}", target,
                            "provider_allowed_hosts")
        return Decision(False, f"host '{target.host}' resolved to non-public address {address}; "
                        "refused (DNS rebinding protection); allow it with network.allowed_cidrs",
                        target, "address")

    def describe(self) -> dict[str, object]:
        """The effective policy, for ``missy policy show``."""
        return {
            "default_deny": self.default_deny,
            "allowed_hosts": [str(e) for e in self.allowed_hosts],
            "allowed_domains": [f"*.{d}" if w else d for d, w in self.domains],
            "allowed_cidrs": [str(c) for c in self.cidrs],
            "provider_hosts": {str(e): who for e, who in self.provider_hosts.items()},
        }
