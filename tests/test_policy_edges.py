"""policy.py at its exact edges, with exact decisions: host and label lengths, port text, CIDR
strictness, IPv4-mapped addresses, bare IPv6 host entries, every rule of check_target and
check_address word for word, and each network config key shown to matter. Every policy is
built inside its test (mutation testing runs these against policy.py)."""

from __future__ import annotations

import ipaddress

import pytest

from missy_providers.config import config_from_dict, network_policy
from missy_providers.core.errors import PolicyViolation
from missy_providers.core.policy import (
    Decision,
    HostEntry,
    NetworkPolicy,
    Target,
    canonical_name,
    parse_cidr,
    parse_host_entry,
    parse_ip,
    parse_url,
)


def label(n: int) -> str:
    return "a" * n


@pytest.mark.parametrize("host, ok", [
    (label(63) + ".com", True), (label(64) + ".com", False),
    (".".join([label(63)] * 3) + "." + label(61), True),  # 253 characters
    (".".join([label(63)] * 3) + "." + label(62), False),  # 254
    ("a..b", False), ("a", True),
])
def test_name_lengths(host: str, ok: bool) -> None:
    if ok:
        assert canonical_name(host.upper()) == host
    else:
        with pytest.raises(ValueError, match="has an empty or over-long label"):
            canonical_name(host)


@pytest.mark.parametrize("bad, message", [
    ("", "empty host"), ("a.com.", "ends in a dot"), ("é.com", "is not ASCII"),
    ("a%2e.com", "percent-encoded"), ("a b", "characters not allowed"),
    ("a*b", "characters not allowed"),
])
def test_name_refusals(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        canonical_name(bad)


@pytest.mark.parametrize("port, expected", [
    ("1", 1), ("8", 8), ("80", 80), ("65535", 65535), ("0", None), ("65536", None),
    ("08", None), ("00", None), ("+8", None), ("8a", None), ("", None),
])
def test_port_text(port: str, expected: int | None) -> None:
    url = f"https://h.example:{port}/"
    if expected is None:
        with pytest.raises(PolicyViolation, match="URL refused: port"):
            parse_url(url)
    else:
        assert parse_url(url).port == expected
        assert parse_host_entry(f"h.example:{port}").port == expected


def test_url_target_fields() -> None:
    target = parse_url("HTTPS://API.Example.COM/v1?q=1")
    assert target == Target("https", "api.example.com", 443, "/v1?q=1", None)
    assert (target.authority, target.log_path) == ("api.example.com:443", "/v1")
    assert parse_url("http://h.example").port == 80
    assert parse_url("http://h.example?x").path == "/?x"
    v6 = parse_url("http://[::1]:8080/")
    assert (v6.host, v6.port, v6.ip, v6.authority) == ("::1", 8080, ipaddress.ip_address("::1"),
                                                       "[::1]:8080")


def test_cidrs_are_strict() -> None:
    assert parse_cidr("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1/8' is not a CIDR network"):
        parse_cidr("10.0.0.1/8")  # host bits set: never silently widened to the /8
    with pytest.raises(ValueError, match="is not a CIDR network"):
        NetworkPolicy(allowed_cidrs=["10.0.0.1/8"])


def test_ipv4_mapped_addresses_are_unmapped() -> None:
    assert parse_ip("::ffff:10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ip("::ffff:a00:1") == ipaddress.IPv4Address("10.0.0.1")
    policy = NetworkPolicy(allowed_hosts=["public.example"])
    target = parse_url("https://public.example/")
    mapped = ipaddress.ip_address("::ffff:169.254.169.254")
    decision = policy.check_address(target, mapped)
    assert (decision.allowed, decision.rule) == (False, "address")
    assert "169.254.169.254" in decision.reason
    opened = NetworkPolicy(allowed_hosts=["public.example"], allowed_cidrs=["169.254.0.0/16"])
    assert opened.check_address(target, mapped).rule == "allowed_cidrs"  # a v4 entry applies
    assert NetworkPolicy(allowed_hosts=["::ffff:10.0.0.1"]).check(
        "http://10.0.0.1/").rule == "allowed_hosts"


@pytest.mark.parametrize("text, host, port, shown", [
    ("::1", "::1", None, "[::1]"), ("[::1]", "::1", None, "[::1]"),
    ("[::1]:8080", "::1", 8080, "[::1]:8080"), ("fd00::1", "fd00::1", None, "[fd00::1]"),
    ("Host.Example:81", "host.example", 81, "host.example:81"),
    ("10.0.0.1", "10.0.0.1", None, "10.0.0.1"),
])
def test_host_entries(text: str, host: str, port: int | None, shown: str) -> None:
    entry = parse_host_entry(text)
    assert (entry.host, entry.port, str(entry)) == (host, port, shown)
    assert (entry.ip is None) == (host == "host.example")


@pytest.mark.parametrize("text", ["", "http://h", "h/x", "u@h", "[::1", "[h]", "[::1]x",
                                  "h:0", "h:08"])
def test_bad_host_entries(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_entry(text)


def test_raise_if_denied() -> None:
    Decision(True, "fine").raise_if_denied()
    denied = Decision(False, "no: because", None, "default_deny")
    with pytest.raises(PolicyViolation, match=r"^no: because$") as info:
        denied.raise_if_denied()
    assert info.value.decision is denied


# --- every rule, word for word --------------------------------------------------------------

def decision(policy: NetworkPolicy, url: str) -> tuple[bool, str, str]:
    d = policy.check(url)
    return d.allowed, d.rule, d.reason


def test_check_target_rules() -> None:
    policy = NetworkPolicy(allowed_hosts=["h.example:8443", "any.example"],
                           allowed_domains=["exact.example", "*.wild.example"],
                           allowed_cidrs=["203.0.113.0/24"],
                           provider_hosts={"api.example:443": "providers.p.base_url"})
    assert decision(policy, "https://h.example:8443/") == (
        True, "allowed_hosts", "allowed by network.allowed_hosts entry 'h.example:8443'")
    assert decision(policy, "https://any.example:9/") == (
        True, "allowed_hosts", "allowed by network.allowed_hosts entry 'any.example'")
    assert decision(policy, "https://api.example/") == (
        True, "provider_allowed_hosts",
        "allowed as provider host 'api.example:443' (from providers.p.base_url)")
    assert decision(policy, "https://203.0.113.9/") == (
        True, "allowed_cidrs", "allowed by network.allowed_cidrs entry '203.0.113.0/24'")
    assert decision(policy, "https://exact.example/") == (
        True, "allowed_domains", "allowed by network.allowed_domains entry 'exact.example'")
    assert decision(policy, "https://a.b.wild.example/") == (
        True, "allowed_domains", "allowed by network.allowed_domains entry '*.wild.example'")
    assert decision(policy, "https://wild.example/") == (
        False, "default_deny", "host 'wild.example:443' is not allowed by the network policy "
        "(default_deny is true); add it to network.allowed_hosts or network.allowed_domains")
    assert decision(policy, "https://sub.exact.example/") == (
        False, "default_deny", "host 'sub.exact.example:443' is not allowed by the network "
        "policy (default_deny is true); add it to network.allowed_hosts or "
        "network.allowed_domains")
    assert decision(policy, "https://h.example/") == (  # the entry names another port
        False, "default_deny", "host 'h.example:443' is not allowed by the network policy "
        "(default_deny is true); add it to network.allowed_hosts or network.allowed_domains")
    assert decision(policy, "https://198.51.100.1/") == (
        False, "default_deny", "IP address '198.51.100.1:443' is not allowed by the network "
        "policy (default_deny is true); add it to network.allowed_cidrs or "
        "network.allowed_hosts")
    assert decision(policy, "ftp://x/") == (
        False, "url", "URL refused: only http:// and https:// URLs are allowed")
    assert decision(policy, "https://[2001:db8::1]/")[:2] == (False, "default_deny")


def test_open_mode() -> None:
    policy = NetworkPolicy(default_deny=False)
    assert decision(policy, "https://anything.example/") == (
        True, "default_deny", "allowed because network.default_deny is false")
    assert decision(policy, "http://169.254.169.254/") == (
        False, "address", "IP address '169.254.169.254:80' is link-local (cloud metadata) "
        "(169.254.0.0/16): special addresses need an explicit network.allowed_cidrs or "
        "allowed_hosts entry, even with default_deny false")
    assert decision(policy, "https://8.8.8.8/")[:2] == (True, "default_deny")


def test_check_address_rules() -> None:
    policy = NetworkPolicy(allowed_hosts=["localhost:11434", "pinned.example", "10.1.1.1:443"],
                           allowed_cidrs=["10.9.0.0/16"])
    ip = ipaddress.ip_address

    def at(url: str, address: str) -> tuple[bool, str, str]:
        d = policy.check_address(parse_url(url), ip(address))
        return d.allowed, d.rule, d.reason

    assert at("https://pinned.example/", "93.184.216.34") == (True, "address",
                                                               "public address")
    assert at("https://pinned.example/", "10.9.3.4") == (
        True, "allowed_cidrs", "address 10.9.3.4 allowed by network.allowed_cidrs entry "
        "'10.9.0.0/16'")
    assert at("https://pinned.example/", "10.1.1.1") == (
        True, "allowed_hosts", "address 10.1.1.1 allowed by the exact IP entry '10.1.1.1:443'")
    assert at("http://pinned.example/", "10.1.1.1") == (  # that entry is for port 443 only
        False, "address", "host 'pinned.example' resolved to 10.1.1.1, private (10.0.0.0/8); "
        "refused (DNS rebinding protection); allow it with network.allowed_cidrs")
    assert at("http://localhost:11434/", "127.0.0.1") == (
        True, "provider_allowed_hosts", "localhost resolves to loopback 127.0.0.1")
    assert at("http://localhost:11434/", "10.0.0.5")[0] is False  # not loopback
    assert at("http://localhost:8080/", "127.0.0.1")[0] is False  # not the listed port


def test_origins_and_description() -> None:
    policy = NetworkPolicy(allowed_hosts=["h.example"], allowed_domains=["*.d.example"],
                           allowed_cidrs=["10.0.0.0/8"],
                           provider_hosts={"h.example": "providers.p", "p.example:443": "x"})
    assert policy.origins() == {"h.example": "network.allowed_hosts",
                                "*.d.example": "network.allowed_domains",
                                "10.0.0.0/8": "network.allowed_cidrs", "p.example:443": "x"}
    assert policy.describe() == {
        "default_deny": True, "allowed_hosts": ["h.example"],
        "allowed_domains": ["*.d.example"], "allowed_cidrs": ["10.0.0.0/8"],
        "provider_hosts": {"h.example": "providers.p", "p.example:443": "x"},
        "rest_policies": []}
    assert HostEntry("h", None, None).matches(parse_url("https://h:1/"))


# --- each network key matters when the enforced policy is built from config ---------------

@pytest.mark.parametrize("network, url", [
    ({"default_deny": False}, "https://open.example/"),
    ({"allowed_hosts": ["h.example"]}, "https://h.example/"),
    ({"allowed_domains": ["*.d.example"]}, "https://x.d.example/"),
    ({"allowed_cidrs": ["198.51.100.0/24"]}, "https://198.51.100.7/"),
    ({"provider_allowed_hosts": ["p.example"]}, "https://p.example/"),
])
def test_each_network_key_matters(network: dict[str, object], url: str) -> None:
    base = {"providers": {"o": {"name": "ollama", "model": "m"}}}
    assert not network_policy(config_from_dict(base, env={})).check(url).allowed
    assert network_policy(config_from_dict({**base, "network": network},
                                           env={})).check(url).allowed


# --- exact refusals, and the target every decision carries ----------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "a host entry must be a non-empty string"),
    ("u@h", "'u@h': give a host or host:port, not a URL"),
    ("h/p", "'h/p': give a host or host:port, not a URL"),
    ("http://h", "'http://h': give a host or host:port, not a URL"),
    ("[::1]]", "unexpected text after ']' in '[::1]]'"),
    ("[::1", "unclosed '[' in '[::1'"),
    ("[h]", "only IPv6 addresses go in brackets: '[h]'"),
    ("1::2::3", "not a valid IPv6 address: '1::2::3'"),
])
def test_host_entry_messages(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_host_entry(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text, message", [
    ("a*.example", "host 'a*.example' has characters not allowed in a host name"),
    ("*.*.example", "host '*.example' has characters not allowed in a host name"),
    ("10.0.0.1", "'10.0.0.1' is an IP address; use allowed_cidrs or allowed_hosts"),
    ("", "empty host"),
])
def test_domain_entry_messages(text: str, message: str) -> None:
    from missy_providers.core.policy import parse_domain_entry

    with pytest.raises(ValueError) as info:
        parse_domain_entry(text)
    assert str(info.value) == message


def test_every_name_character_at_once() -> None:
    every = "abcdefghijklmnopqrstuvwxyz0123456789-_.x"
    assert canonical_name(every) == every


@pytest.mark.parametrize("url, host", [
    ("http://a.0xg/", "a.0xg"),  # "0xg" is not hex: a name
    ("http://0x0123456789abcdefg/", "0x0123456789abcdefg"),
])
def test_hex_lookalikes_that_are_names(url: str, host: str) -> None:
    assert parse_url(url).host == host


@pytest.mark.parametrize("url", ["http://0x0123456789abcdef/", "http://a.0x1/", "http://1.2.3/"])
def test_ipv4_lookalikes_are_refused(url: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        parse_url(url)
    assert str(info.value).endswith("looks like an IPv4 address but is not in canonical "
                                    "dotted-quad form (a.b.c.d, decimal, no leading zeros)")


def test_not_global_unicast_reason() -> None:
    from missy_providers.core.policy import special_reason

    assert special_reason(ipaddress.ip_address("4000::1")) == \
        "not global unicast (outside 2000::/3)"
    assert special_reason(ipaddress.ip_address("2606:4700::1")) is None


def test_every_decision_carries_its_target() -> None:
    policy = NetworkPolicy(allowed_hosts=["localhost:11434", "h.example"],
                           allowed_domains=["d.example"], allowed_cidrs=["203.0.113.0/24"])
    for url in ("https://203.0.113.1/", "https://d.example/", "https://nope.example/"):
        assert policy.check(url).target == parse_url(url)
    assert NetworkPolicy(default_deny=False).check("http://10.0.0.1/").target == \
        parse_url("http://10.0.0.1/")
    ip = ipaddress.ip_address
    for url, address in (("https://h.example/", "93.184.216.34"),
                         ("https://h.example/", "203.0.113.5"),
                         ("http://localhost:11434/", "127.0.0.1"),
                         ("https://h.example/", "10.0.0.1")):
        target = parse_url(url)
        assert policy.check_address(target, ip(address)).target == target


def test_plain_domains_are_shown_without_a_wildcard() -> None:
    policy = NetworkPolicy(allowed_domains=["d.example", "*.w.example"])
    assert list(policy.origins()) == ["d.example", "*.w.example"]
    assert policy.describe()["allowed_domains"] == ["d.example", "*.w.example"]


def test_target_repr_scrubs_its_path() -> None:
    from missy_providers.core.secret import Secret

    key = Secret("sk-path-secret-000111222333")
    target = parse_url(f"https://h.example/v1/{key.reveal()}?k=v")
    assert key.reveal() not in repr(target) and "[REDACTED]" in repr(target)
