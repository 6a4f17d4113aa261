"""NetworkPolicy decisions as a table: (url, allowed?, rule or reason fragment)."""

from __future__ import annotations

import ipaddress

import pytest

from missy_providers.config import config_from_dict, network_policy
from missy_providers.core.policy import NetworkPolicy, parse_domain_entry, parse_host_entry


def table_policy() -> NetworkPolicy:
    """Built in each test, not at import: a mutant of the policy code must reach it."""
    return NetworkPolicy(
        allowed_hosts=["api.example.com", "pinned.example.com:8443", "[2001:db8::1]:443",
                       "203.0.113.7", "Mixed.Example.ORG"],
        allowed_domains=["exact.example.net", "*.wild.example.net"],
        allowed_cidrs=["10.0.0.0/8", "2001:db8:ffff::/48"],
        provider_hosts={"localhost:11434": "providers.ollama.base_url",
                        "api.anthropic.com:443": "providers.anthropic.base_url"},
    )


# (url, allowed, the rule that decided or a fragment of the refusal reason)
CASES = [
    # schemes
    ("https://api.example.com/v1", True, "allowed_hosts"),
    ("http://api.example.com/v1", True, "allowed_hosts"),
    ("HTTPS://api.example.com/v1", True, "allowed_hosts"),
    ("HtTp://api.example.com/", True, "allowed_hosts"),
    ("ftp://api.example.com/", False, "only http:// and https://"),
    ("file:///etc/passwd", False, "only http:// and https://"),
    ("gopher://api.example.com/", False, "only http:// and https://"),
    ("ws://api.example.com/", False, "only http:// and https://"),
    ("javascript:alert(1)", False, "only http:// and https://"),
    ("//api.example.com/", False, "only http:// and https://"),
    ("api.example.com/v1", False, "only http:// and https://"),
    ("https:/api.example.com/", False, "only http:// and https://"),
    ("https:api.example.com", False, "only http:// and https://"),
    ("", False, "empty"),
    # host case and trailing dots
    ("https://API.EXAMPLE.COM/", True, "allowed_hosts"),
    ("https://Api.Example.Com/", True, "allowed_hosts"),
    ("https://mixed.example.org/", True, "allowed_hosts"),
    ("https://api.example.com./", False, "ends in a dot"),
    ("https://api.example.com../", False, "ends in a dot"),
    ("https://.api.example.com/", False, "empty or over-long label"),
    ("https://api..example.com/", False, "empty or over-long label"),
    ("https://" + "a" * 64 + ".example.com/", False, "empty or over-long label"),
    # userinfo, backslashes, whitespace, control characters
    ("https://user@api.example.com/", False, "credentials in the URL"),
    ("https://user:pw@api.example.com/", False, "credentials in the URL"),
    ("https://api.example.com@evil.example/", False, "credentials in the URL"),
    ("https://evil.example#@api.example.com/", False, "fragments"),
    ("https://evil.example\\@api.example.com/", False, "backslashes"),
    ("https://api.example.com\\.evil.example/", False, "backslashes"),
    ("https:\\\\api.example.com/", False, "backslashes"),
    ("https://api.example.com /", False, "whitespace"),
    (" https://api.example.com/", False, "whitespace"),
    ("https://api.example.com/\r\nHost: evil", False, "control characters"),
    ("https://api.example.com/\n", False, "control characters"),
    ("https://api.example.com/\t", False, "control characters"),
    ("https://api.exa\x00mple.com/", False, "control characters"),
    ("https://api.example.com/\x7f", False, "control characters"),
    ("https://api.example.com/#frag", False, "fragments"),
    # percent-encoding and non-ASCII hosts
    ("https://api%2eexample.com/", False, "percent-encoded"),
    ("https://%61pi.example.com/", False, "percent-encoded"),
    ("https://api.example.com/a%20b", True, "allowed_hosts"),
    ("https://api.exаmple.com/", False, "non-ASCII"),  # Cyrillic a
    ("https://bücher.example/", False, "non-ASCII"),
    ("https://api.example.com/ü", False, "non-ASCII"),
    ("https://xn--bcher-kva.example/", False, "default_deny is true"),
    ("https://ap*i.example.com/", False, "characters not allowed"),
    ("https://api.example.com:443:80/", False, "IPv6 addresses go in brackets"),
    ("https://api.example.com;evil/", False, "characters not allowed"),
    # empty hosts and ports
    ("https:///path", False, "empty host"),
    ("https://:443/", False, "empty host"),
    ("https://api.example.com:/", False, "not a plain decimal"),
    ("https://api.example.com:0/", False, "not in 1-65535"),
    ("https://api.example.com:65536/", False, "not in 1-65535"),
    ("https://api.example.com:99999/", False, "not in 1-65535"),
    ("https://api.example.com:-1/", False, "not a plain decimal"),
    ("https://api.example.com:+443/", False, "not a plain decimal"),
    ("https://api.example.com:0443/", False, "not a plain decimal"),
    ("https://api.example.com:44 3/", False, "whitespace"),
    ("https://api.example.com:१२३/", False, "non-ASCII"),
    ("https://api.example.com:0x1bb/", False, "not a plain decimal"),
    ("https://api.example.com:65535/", True, "allowed_hosts"),
    ("https://api.example.com:1/", True, "allowed_hosts"),
    # ports pinned by host:port entries
    ("https://pinned.example.com:8443/", True, "allowed_hosts"),
    ("https://pinned.example.com/", False, "default_deny is true"),
    ("http://pinned.example.com:8443/", True, "allowed_hosts"),
    ("https://pinned.example.com:8444/", False, "default_deny is true"),
    ("https://api.anthropic.com/v1/messages", True, "provider_allowed_hosts"),
    ("https://api.anthropic.com:443/v1/messages", True, "provider_allowed_hosts"),
    ("http://api.anthropic.com/v1/messages", False, "default_deny is true"),
    ("https://api.anthropic.com:8443/", False, "default_deny is true"),
    ("http://localhost:11434/api/chat", True, "provider_allowed_hosts"),
    ("http://LOCALHOST:11434/api/chat", True, "provider_allowed_hosts"),
    ("http://localhost:11435/api/chat", False, "default_deny is true"),
    ("http://localhost/", False, "default_deny is true"),
    # domains
    ("https://exact.example.net/", True, "allowed_domains"),
    ("https://sub.exact.example.net/", False, "default_deny is true"),
    ("https://a.wild.example.net/", True, "allowed_domains"),
    ("https://a.b.c.wild.example.net/", True, "allowed_domains"),
    ("https://wild.example.net/", False, "default_deny is true"),
    ("https://evilwild.example.net/", False, "default_deny is true"),
    ("https://wild.example.net.evil.example/", False, "default_deny is true"),
    ("https://a.wild.example.net:8080/", True, "allowed_domains"),
    ("https://api.example.com.evil.example/", False, "default_deny is true"),
    ("https://evilapi.example.com/", False, "default_deny is true"),
    ("https://sub.api.example.com/", False, "default_deny is true"),
    # IPv4 literals
    ("http://10.1.2.3/", True, "allowed_cidrs"),
    ("http://10.255.255.255:8080/", True, "allowed_cidrs"),
    ("http://11.0.0.1/", False, "IP address '11.0.0.1:80' is not allowed"),
    ("http://203.0.113.7/", True, "allowed_hosts"),
    ("http://203.0.113.7:9999/", True, "allowed_hosts"),
    ("http://203.0.113.8/", False, "add it to network.allowed_cidrs"),
    ("http://127.0.0.1/", False, "default_deny is true"),
    ("http://2130706433/", False, "canonical dotted-quad"),
    ("http://0x7f.1/", False, "canonical dotted-quad"),
    ("http://0x7f000001/", False, "canonical dotted-quad"),
    ("http://010.0.0.1/", False, "canonical dotted-quad"),
    ("http://10.0.0.01/", False, "canonical dotted-quad"),
    ("http://127.1/", False, "canonical dotted-quad"),
    ("http://10.1/", False, "canonical dotted-quad"),
    ("http://10.0.1/", False, "canonical dotted-quad"),
    ("http://10.0.0.256/", False, "canonical dotted-quad"),
    ("http://10.0.0.0.1/", False, "canonical dotted-quad"),
    ("http://example.123/", False, "canonical dotted-quad"),
    ("http://example.0x1f/", False, "canonical dotted-quad"),
    ("http://0/", False, "canonical dotted-quad"),
    ("http://0.0.0.0/", False, "default_deny is true"),
    ("http://1e100.example.com/", False, "default_deny is true"),
    # IPv6 literals
    ("http://[2001:db8::1]/", False, "default_deny is true"),
    ("https://[2001:db8::1]/", True, "allowed_hosts"),
    ("https://[2001:DB8:0:0:0:0:0:1]/", True, "allowed_hosts"),
    ("https://[2001:db8::1]:443/", True, "allowed_hosts"),
    ("https://[2001:db8::1]:444/", False, "default_deny is true"),
    ("https://[2001:db8:ffff:1::5]/", True, "allowed_cidrs"),
    ("https://[2001:db8:fffe::5]/", False, "add it to network.allowed_cidrs"),
    ("https://[::1]/", False, "default_deny is true"),
    ("https://[fe80::1%25eth0]/", False, "zone ids"),
    ("https://[fe80::1%eth0]/", False, "zone ids"),
    ("https://2001:db8::1/", False, "IPv6 addresses go in brackets"),
    ("https://[2001:db8::1/", False, "unclosed"),
    ("https://[2001:db8::1]x/", False, "unexpected text after"),
    ("https://[api.example.com]/", False, "only IPv6 addresses go in brackets"),
    ("https://[10.1.2.3]/", False, "only IPv6 addresses go in brackets"),
    ("https://[::ffff:10.1.2.3]/", True, "allowed_cidrs"),
    ("https://[::ffff:11.1.2.3]/", False, "not allowed"),
    ("https://[::ffff:203.0.113.7]/", True, "allowed_hosts"),
    ("https://[gggg::1]/", False, "not a valid IPv6"),
    # paths and queries
    ("https://api.example.com", True, "allowed_hosts"),
    ("https://api.example.com?x=1", True, "allowed_hosts"),
    ("https://api.example.com/v1/messages?beta=true", True, "allowed_hosts"),
    ("https://api.example.com/../../etc/passwd", True, "allowed_hosts"),
]


@pytest.mark.parametrize(("url", "allowed", "why"), CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_decision(url: str, allowed: bool, why: str) -> None:
    decision = table_policy().check(url)
    assert decision.allowed is allowed, decision.reason
    assert why in (decision.rule if allowed else decision.reason)


def test_table_is_large() -> None:
    assert len(CASES) >= 100


def test_default_deny_false_allows_any_public_well_formed_url() -> None:
    open_policy = NetworkPolicy(default_deny=False)
    for url in ("https://anything.example/", "http://8.8.8.8:8080/", "http://[2606:4700::1]/x"):
        assert open_policy.check(url).allowed
        assert open_policy.check(url).rule == "default_deny"
    for url in ("ftp://anything.example/", "https://u@anything.example/", "http://127.1/",
                "https://a.example./", "http://[fe80::1%25lo]/"):
        assert not open_policy.check(url).allowed
        assert open_policy.check(url).rule == "url"
    # Special literals need an explicit entry even in open mode, like names resolving there.
    for url in ("http://169.254.169.254/", "http://0.0.0.0/", "http://10.0.0.1:8080/",
                "http://[::1]/x", "http://[64:ff9b::a9fe:a9fe]/"):
        decision = open_policy.check(url)
        assert (decision.allowed, decision.rule) == (False, "address"), url
    opened = NetworkPolicy(default_deny=False, allowed_cidrs=["169.254.169.254/32"])
    assert opened.check("http://169.254.169.254/").rule == "allowed_cidrs"
    exact = NetworkPolicy(default_deny=False, allowed_hosts=["0.0.0.0:8080"])
    assert exact.check("http://0.0.0.0:8080/").rule == "allowed_hosts"
    assert not exact.check("http://0.0.0.0:8081/").allowed


def test_decision_carries_canonical_target() -> None:
    decision = table_policy().check("HTTPS://API.Example.COM/v1/x?key=secret")
    assert decision.target is not None
    t = decision.target
    assert (t.scheme, t.host, t.port, t.path, t.log_path) == (
        "https", "api.example.com", 443, "/v1/x?key=secret", "/v1/x")
    six = table_policy().check("https://[2001:DB8::1]:443/").target
    assert six is not None and six.authority == "[2001:db8::1]:443"


ADDRESS_CASES = [
    # (host in URL, resolved address, allowed)
    ("api.example.com", "93.184.216.34", True),
    ("api.example.com", "127.0.0.1", False),
    ("api.example.com", "10.1.1.1", True),  # allowed_cidrs covers it
    ("api.example.com", "192.168.1.1", False),
    ("api.example.com", "172.16.0.1", False),
    ("api.example.com", "169.254.169.254", False),  # cloud metadata
    ("api.example.com", "100.64.0.1", False),  # CGNAT
    ("api.example.com", "224.0.0.1", False),  # multicast
    ("api.example.com", "0.0.0.0", False),
    ("api.example.com", "::1", False),
    ("api.example.com", "fe80::1", False),
    ("api.example.com", "fc00::1", False),
    ("api.example.com", "::ffff:127.0.0.1", False),  # mapped loopback
    ("api.example.com", "::ffff:93.184.216.34", True),
    ("api.example.com", "2606:4700::1111", True),
    ("api.example.com", "203.0.113.7", True),  # documentation range, exact IP entry
    ("localhost", "127.0.0.1", True),  # explicitly listed provider host
    ("localhost", "::1", True),
    ("localhost", "10.9.9.9", True),  # covered by allowed_cidrs
    ("localhost", "192.168.0.10", False),
]


@pytest.mark.parametrize(("host", "address", "allowed"), ADDRESS_CASES)
def test_resolved_address(host: str, address: str, allowed: bool) -> None:
    port = 11434 if host == "localhost" else 443
    target = table_policy().check(f"https://{host}:{port}/").target
    assert target is not None
    decision = table_policy().check_address(target, ipaddress.ip_address(address))
    assert decision.allowed is allowed, decision.reason


def test_unlisted_localhost_is_not_special() -> None:
    policy = NetworkPolicy(default_deny=False)
    target = policy.check("http://localhost:8080/").target
    assert target is not None
    assert not policy.check_address(target, ipaddress.ip_address("127.0.0.1")).allowed


@pytest.mark.parametrize("entry", ["", "http://x.example", "x.example/path", "u@x.example",
                                   "x.example:0", "x.example:http", "127.1", "[x.example]:1",
                                   "x.example."])
def test_bad_host_entries(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_host_entry(entry)


@pytest.mark.parametrize("entry", ["*", "*.", "a.*.example.com", "10.0.0.1", "x.example."])
def test_bad_domain_entries(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_domain_entry(entry)


def test_policy_from_config_adds_provider_hosts_and_reports_them() -> None:
    config = config_from_dict({
        "providers": {
            "anthropic": {"model": "m"},
            "local": {"name": "ollama", "model": "m", "base_url": "http://127.0.0.1:11434"},
            "off": {"name": "openai", "model": "m", "base_url": "https://off.example/v1",
                    "enabled": False},
            "codex": {"name": "openai-codex", "model": "m"},
        },
        "network": {"provider_allowed_hosts": ["extra.example"]},
    }, env={})
    policy = network_policy(config)
    shown = policy.describe()["provider_hosts"]
    assert shown == {
        "extra.example": "network.provider_allowed_hosts",
        "api.anthropic.com:443": "providers.anthropic.base_url",
        "127.0.0.1:11434": "providers.local.base_url",
        "chatgpt.com:443": "providers.codex.base_url",
        "auth.openai.com:443": "providers.codex.token_url",
    }
    assert policy.check("http://127.0.0.1:11434/api/chat").allowed
    assert not policy.check("http://127.0.0.1:11435/api/chat").allowed
    assert not policy.check("https://off.example/v1/chat/completions").allowed
    assert policy.check("https://extra.example:1234/").allowed
