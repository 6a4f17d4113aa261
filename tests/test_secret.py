"""secret.py as tables: which values the scrubber replaces (every live Secret, in each form a
server may echo it, and key-shaped strings it never held), the length edges, and excerpts.
Pure (mutation-tested)."""

from __future__ import annotations

import gc
import json
import pickle
import re
from urllib.parse import quote, quote_plus

import pytest

from missy_providers.core.secret import (
    EXCERPT_CHARS,
    MIN_SECRET_CHARS,
    REDACTED,
    Secret,
    excerpt,
    scrub,
)


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2-correct-horse")
    assert (repr(secret), str(secret), secret.reveal()) == (
        "Secret('***')", "Secret('***')", "hunter2-correct-horse")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


@pytest.mark.parametrize("value, kept", [("a" * (MIN_SECRET_CHARS - 1), True),
                                         ("b" * MIN_SECRET_CHARS, False)])
def test_length_edge(value: str, kept: bool) -> None:
    assert MIN_SECRET_CHARS == 8
    secret = Secret(value)
    assert (scrub(f"x {value} y") == f"x {value} y") is kept
    assert secret.reveal() == value


def test_every_form_of_a_live_secret() -> None:
    secret = Secret('pa/ss"wo\\rd+x')
    value = secret.reveal()
    for shown in (value, "pa%2Fss%22wo%5Crd%2Bx", 'pa/ss\\"wo\\\\rd+x', 'pa\\/ss"wo\\rd+x'):
        assert scrub(f"echo: {shown}!") == f"echo: {REDACTED}!", shown
    assert scrub(f"{value} and {value}") == f"{REDACTED} and {REDACTED}"


def test_a_dead_secret_is_forgotten() -> None:
    value = "short-lived-credential-1"
    Secret(value)
    gc.collect()
    assert scrub(value) == value


@pytest.mark.parametrize("text, expected", [
    ("key sk-abcdefghijkl here", f"key {REDACTED} here"),
    ("key sk-abcdefghijk here", "key sk-abcdefghijk here"),  # 11 after sk-: not key-shaped
    ("Authorization: Bearer abcdefgh", f"Authorization: {REDACTED}"),
    ("bearer abcdefg", "bearer abcdefg"),  # 7 characters
    ("BEARER tok.en_/+~-== tail", f"{REDACTED} tail"),
    ("jwt eyJhbGciOiJI.eyJzdWIiOiIx.sig-part end", f"jwt {REDACTED} end"),
    ("jwt eyJhbGciO.eyJzdWIiOiIx.sig", "jwt eyJhbGciO.eyJzdWIiOiIx.sig"),  # short header
    ("", ""),
    ("nothing to hide", "nothing to hide"),
])
def test_key_shapes(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_excerpt() -> None:
    assert EXCERPT_CHARS == 200
    assert excerpt("a" * 200) == "a" * 200
    assert excerpt("a" * 201) == "a" * 200 + "..."
    assert excerpt("x" * 10, limit=9) == "x" * 9 + "..."
    assert excerpt("bell\x07 esc\x1b[2J del\x7f nbsp\xa0 c1\x9b rlo\u202e") == \
        "bell\\x07 esc\\x1b[2J del\\x7f nbsp\xa0 c1\\x9b rlo\\u202e"
    assert excerpt(b"caf\xc3\xa9 \xff") == "café \ufffd"
    secret = Secret("straddling-the-cut-0123456789")
    text = "x" * 190 + secret.reveal()  # the secret crosses the 200th character
    assert excerpt(text) == "x" * 190 + REDACTED
    far = "y" * 5000 + secret.reveal()
    # Scrubbed over max(4096, 2 x limit) characters, so a secret inside what is shown is found.
    assert excerpt(far, limit=10000) == "y" * 5000 + REDACTED
    assert excerpt(far, limit=4000) == "y" * 4000 + "..."


def test_pickling_message() -> None:
    with pytest.raises(TypeError) as info:
        pickle.dumps(Secret("x"))
    assert str(info.value) == "a Secret cannot be pickled"


ECHO_KEY = "Ab+c/d=e-f_g.h~i:j12345678XYZ"  # a key with the characters encodings touch


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("echo", [
    ECHO_KEY,
    quote(ECHO_KEY, safe=""),
    re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(ECHO_KEY, safe="")),
    ECHO_KEY.replace("/", "%2F"), ECHO_KEY.replace("+", "%2B"),
    quote(quote(ECHO_KEY, safe=""), safe=""), quote_plus(ECHO_KEY),
    json.dumps(ECHO_KEY)[1:-1], ECHO_KEY.replace("/", "\\u002f"),
    "".join(f"\\u{ord(c):04x}" for c in ECHO_KEY), ECHO_KEY.replace("+", "&#43;"),
    _b64("user:" + ECHO_KEY), _b64("u:" + ECHO_KEY), _b64(ECHO_KEY + ":"),
    _b64("user:" + ECHO_KEY).rstrip("="), ECHO_KEY.encode().hex(),
    ECHO_KEY.encode().hex().upper(), "sig=" + ECHO_KEY.encode().hex(),
    "0x" + ECHO_KEY.encode().hex(), "auth=" + _b64(ECHO_KEY),
    quote(quote(quote(ECHO_KEY, safe=""), safe=""), safe=""),
    _b64(quote(ECHO_KEY, safe="")), quote(_b64(ECHO_KEY), safe=""),
    json.dumps(json.dumps(ECHO_KEY))[1:-1],
    # A name=value anywhere in a query string, its base64 padded or not.
    "token=" + _b64(quote(ECHO_KEY, safe="")), "t=" + _b64(ECHO_KEY) + "&state=1",
    "https://cb.example/?t=" + _b64(ECHO_KEY) + "&state=1",
    "sig=0x" + ECHO_KEY.encode().hex() + "&a=1", "a=1;k=" + quote(ECHO_KEY, safe=""),
    # Hex or base64 as part of a token: after a colon, in a path, as a host.
    "key:0x" + ECHO_KEY.encode().hex(), "key:" + ECHO_KEY.encode().hex(),
    "/v1/keys/" + ECHO_KEY.encode().hex(), "https://" + ECHO_KEY.encode().hex() + ":443",
    "auth:" + _b64(quote(ECHO_KEY, safe="")),
    # Hex digits around the hex form shift it to either alignment.
    "A" + ECHO_KEY.encode().hex() + "BBB", "AA" + ECHO_KEY.encode().hex() + "B",
    "f" + ECHO_KEY.encode().hex(),
], ids=lambda e: e[:24])
def test_every_echo_of_a_key_is_scrubbed_whole(echo: str) -> None:
    key = Secret(ECHO_KEY)
    shown = scrub(f"server said {echo} ok")
    assert shown.startswith("server said ") and shown.endswith(" ok")
    assert REDACTED in shown and echo not in shown
    # No run of 4 or more of the key's characters survives, in any form.
    assert not any(ECHO_KEY[i:i + 4] in shown for i in range(len(ECHO_KEY) - 3))
    assert key.reveal() == ECHO_KEY


def test_a_key_among_many_parameters_is_still_found() -> None:
    """Each name=value of a token is decoded on its own budget: padding the token with a
    hundred and more parameters cannot push the key's value past the decoding cap."""
    import base64

    held = Secret(ECHO_KEY)  # live while the text is scrubbed
    key = base64.b64encode(quote(ECHO_KEY, safe="").encode()).decode()
    filler = "&".join(f"p{i}={base64.b64encode(b'filler-%d' % i).decode()}"
                      for i in range(200))
    nested = base64.b64encode(f"{filler}&t={key}".encode()).decode()  # inside base64
    for token in (f"t={key}&{filler}", f"{filler}&t={key}", f"q={nested}"):
        shown = scrub(f"see {token} end")
        assert key not in shown and REDACTED in shown
    assert held.reveal() == ECHO_KEY


@pytest.mark.parametrize("size", [1, 2, 5, 9, 64])
def test_a_stream_scrubber_finds_a_key_split_across_pieces(size: int) -> None:
    from missy_providers.core.secret import StreamScrubber

    held = Secret(ECHO_KEY)
    text = f"one {ECHO_KEY} two {quote(ECHO_KEY, safe='')} three sk-ant-api03-{'x' * 30} end"
    scrubber = StreamScrubber()
    shown = "".join(scrubber.feed(text[i:i + size]) for i in range(0, len(text), size))
    shown += scrubber.flush()
    assert shown == f"one {REDACTED} two {REDACTED} three {REDACTED} end"
    assert held.reveal() == ECHO_KEY


def test_a_stream_scrubber_holds_back_no_more_than_it_must() -> None:
    from missy_providers.core.secret import StreamScrubber

    held = Secret(ECHO_KEY)
    scrubber = StreamScrubber()
    # Whole words far from the end come out at once; the tail a key could still grow from
    # waits for the next piece or the flush.
    out = scrubber.feed("word " * 20)
    assert out == "word " * 20  # it ends where a token ends: nothing to hold
    assert scrubber.feed("partial") == "" and scrubber.feed(" x") == "partial "
    assert scrubber.flush() == "x"
    assert held.reveal() == ECHO_KEY


@pytest.mark.parametrize("after", [0, 10, 39, 200])
def test_a_key_inside_a_very_long_streamed_token_is_found(after: int) -> None:
    """A token is held until it ends, however long: a key near any cut is never split."""
    from missy_providers.core.secret import StreamScrubber

    held = Secret(ECHO_KEY)
    text = "A" * 70000 + ECHO_KEY + "B" * after + " end"
    scrubber = StreamScrubber()
    shown = "".join(scrubber.feed(text[i:i + 4]) for i in range(0, len(text), 4))
    shown += scrubber.flush()
    assert ECHO_KEY not in shown and ECHO_KEY[:8] not in shown and shown.endswith(" end")
    assert held.reveal() == ECHO_KEY


def test_a_bearer_token_streamed_apart_is_still_redacted() -> None:
    from missy_providers.core.secret import StreamScrubber

    for gap in (" ", " " * 300, "\n" * 300):
        scrubber = StreamScrubber()
        pieces = ("Authorization: Bearer", gap, "abcdefghijklmnopqrstuvwx", "\n", "ok ")
        shown = "".join(scrubber.feed(p) for p in pieces) + scrubber.flush()
        assert shown == f"Authorization: {REDACTED}\nok ", len(gap)


def test_overlapping_secrets_go_whole_whatever_their_order() -> None:
    first, second = Secret("abcdefgh12345678"), Secret("12345678zzzzzzzz")
    assert scrub("abcdefgh12345678zzzzzzzz end") == f"{REDACTED} end"
    assert scrub("12345678zzzzzzzz abcdefgh12345678") == f"{REDACTED} {REDACTED}"
    assert first.reveal() and second.reveal()


def test_text_around_a_secret_is_kept() -> None:
    key = Secret("straddling-the-cut-0123456789")
    assert scrub(f"x{key.reveal()}!") == f"x{REDACTED}!"
    assert scrub(f"url?a=1%20b&key={quote(key.reveal())}") == f"url?a=1%20b&key={REDACTED}"
