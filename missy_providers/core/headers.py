"""Request headers, and the one credential door.

What may be a header name or value is checked here, for configured headers when a config is
loaded and for every request before it is framed. Credentials reach a request only as
:class:`~missy_providers.core.secret.Secret` values (alone, or as a :class:`Credential` with its
scheme): providers *declare* how theirs is presented, and only the core puts the value into the
request's bytes, after :func:`request_headers` has found every one of them, whatever header
carries it, for the client to apply the same rules to each (with a JSON body's and a signer's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import UsageError
from .secret import Secret, scrub
from .values import Final, own_text

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 9110 section 5.5: a field value is visible characters, SP, HTAB and obs-text (0x80-0xFF).
# Everything else, and anything past Latin-1 (values are encoded as Latin-1), is refused.
_VALUE_CHARS = frozenset(map(chr, range(0x20, 0x7F))) | frozenset("\t") | \
    frozenset(map(chr, range(0x80, 0x100)))
# Credentials must be plain printable ASCII: a key with a stray byte (a pasted zero-width space,
# a trailing newline) is refused with its position rather than sent and rejected by the server.
_CREDENTIAL_CHARS = frozenset(map(chr, range(0x21, 0x7F)))
# The headers only the client sets: framing, hop-by-hop and routing (RFC 9110 section 7.6.1,
# RFC 9112 section 6). A caller who could set them could smuggle a second request.
CLIENT_OWNED = frozenset({"host", "content-length", "transfer-encoding", "connection", "te",
                          "trailer", "upgrade", "expect", "keep-alive", "proxy-connection",
                          "proxy-authorization", "accept-encoding"})
# Headers whose value is a credential, by name; and the words that make any other header name
# one (``X-Auth-Token``, ``X-Goog-Api-Key``, ``Ocp-Apim-Subscription-Key``).
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization",
                                "chatgpt-account-id", "api-key", "x-goog-api-key", "cookie"})
_CREDENTIAL_WORD = re.compile("auth|key|token|secret|passw|cookie|signature|credential")


def is_credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential: its value is held as a Secret and
    the credential rules apply to it."""
    lowered = (name if type(name) is str else own_text(name)).lower()
    return lowered in CREDENTIAL_HEADERS or _CREDENTIAL_WORD.search(lowered) is not None


class Credential(Final):  # final: its scheme and secret are what the checks saw
    """How a provider presents a secret in a header: ``scheme`` (``Bearer``) before it, or the
    value alone. Revealed only when the core frames the request."""

    __slots__ = ("secret", "scheme")

    def __init__(self, secret: Secret, scheme: str = "") -> None:
        if type(secret) is not Secret:
            raise UsageError(f"a Credential holds a Secret, got {type(secret).__name__}")
        if type(scheme) is not str:
            if not isinstance(scheme, str):
                raise UsageError(f"a credential's scheme is a str, got {type(scheme).__name__}")
            scheme = own_text(scheme)
        if scheme and not _is_token(scheme):
            raise UsageError("a credential's scheme must be a token such as Bearer")
        self.secret, self.scheme = secret, scheme

    def __repr__(self) -> str:
        return f"Credential({self.scheme or 'value'} ***)"


def _is_token(text: str) -> bool:
    """Whether ``text`` is made of token characters. Letters and digits are found by str's own
    methods first: the general rule builds a set of the text's characters."""
    return (text.isascii() and text.isalnum()) or TOKEN_CHARS.issuperset(text)


def header_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a header name, or None."""
    if not isinstance(name, str) or not name:
        return "a header name must be a non-empty string"
    if type(name) is not str:
        name = own_text(name)
    if not _is_token(name):
        col = next(i for i, ch in enumerate(name) if ch not in TOKEN_CHARS)
        return f"header name has a character that is not allowed at index {col}"
    return None


def header_value_problem(value: object, *, credential: bool = False) -> str | None:
    """Why ``value`` cannot be sent as a header value, or None. The value is never quoted:
    it may be a key. A Secret or a Credential is checked as a credential."""
    # By exact type: the classes are final, and isinstance() would believe an object that
    # claims their __class__.
    if type(value) is Credential:
        value, credential = value.secret, True
    if type(value) is Secret:
        value, credential = value.reveal(), True
    if not isinstance(value, str):
        return f"a header value must be a string, got {type(value).__name__}"
    if type(value) is not str:
        value = own_text(value)
    # Printable ASCII, the common case, by str's own methods: the general rule below builds a
    # set of the value's characters (a long key costs thousands of instructions that way).
    if value.isascii() and value.isprintable() and not (credential and " " in value):
        return None
    allowed = _CREDENTIAL_CHARS if credential else _VALUE_CHARS
    if allowed.issuperset(value):
        return None
    col = next(i for i, ch in enumerate(value) if ch not in allowed)
    what = "a credential" if credential else "a header value"
    return (f"{what} has a character that cannot be sent in an HTTP header at index {col} "
            f"(U+{ord(value[col]):04X}; value not shown)")


def header_problems(headers: Mapping[str, Any], reserved: frozenset[str] = frozenset()
                    ) -> list[tuple[str, str]]:
    """(header, why) for each header a caller may not send: a bad name or value, one the
    client frames itself, or one in ``reserved`` (what the provider itself sends)."""
    owned = CLIENT_OWNED | reserved
    problems = []
    for name, value in headers.items():
        if type(name) is not str and isinstance(name, str):
            name = own_text(name)  # its own lower() could hide a reserved name
        why = header_name_problem(name)
        if why is None and name.lower() in owned:
            why = "set by the client itself, it cannot be overridden"
        if why is None:
            why = header_value_problem(value)
        if why is not None:
            problems.append((str(name)[:60], why))
    return problems


def held(name: str, value: str | Secret, origin: str) -> str | Secret:
    """A configured or per-call header value as it is kept: a credential-like header's
    literal value becomes a Secret (scrubbed from every error, hidden in every repr)."""
    if isinstance(value, str) and is_credential_header(name):
        return Secret(value, origin=origin)
    return value


class RedactedHeaders(dict[str, str]):
    """Request headers whose repr hides every credential value: a traceback that captures
    locals (as error trackers do) shows the header names, never a key."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = {k: ("[REDACTED]" if is_credential_header(k) else v) for k, v in self.items()}
        return scrub(f"RedactedHeaders({shown!r})")

    __str__ = __repr__


def request_headers(ours: Mapping[str, str], given: Mapping[str, object] | None,
                    our_names: Mapping[str, str] | None = None
                    ) -> tuple[RedactedHeaders, list[Secret]]:
    """A request's headers, ``ours`` and then the caller's ``given`` over them (a name in
    another case replaces the earlier one), and every credential among the caller's: a
    Secret, a Credential, or the literal value of a header whose name says it carries one
    (held as a Secret from here on). Each of the caller's is checked: a token name, a value
    that can go on the wire, none that frames or routes the request. One pass over them: it
    runs for every request. ``our_names`` maps each of ours in lower case to its name (a
    client keeps it, rather than lower-casing its own names for every request)."""
    out = RedactedHeaders(ours)
    found: list[Secret] = []
    if not given:
        return out, found
    names = dict(our_names) if our_names is not None else {name.lower(): name for name in ours}
    for name, value in given.items():
        if type(name) is not str and isinstance(name, str):
            name = own_text(name)
        if type(value) is not str and isinstance(value, str):
            value = own_text(value)
        problem = header_name_problem(name) or header_value_problem(value)
        if problem:
            shown = name if header_name_problem(name) is None else "?"
            raise UsageError(f"header {shown!r}: {problem}")
        lname = name.lower()
        if lname in CLIENT_OWNED:
            raise UsageError(f"the {name} header is set by the client from the checked URL "
                             "and body, and cannot be given")
        if type(value) is Credential:
            found.append(value.secret)
        elif type(value) is Secret:
            found.append(value)
        elif is_credential_header(lname):
            found.append(Secret(str(value), origin=f"header {name}"))
        replaced = names.get(lname)
        if replaced is not None:
            out.pop(replaced, None)  # the earlier one (ours has Content-Type only with JSON)
        names[lname] = name
        out[name] = value  # type: ignore[assignment]
    return out, found


def rendered(value: Any) -> str:
    """A header value as it goes on the wire (the one place a header secret is revealed)."""
    if type(value) is Credential:
        revealed = value.secret.reveal()
        return f"{value.scheme} {revealed}" if value.scheme else revealed
    if type(value) is Secret:
        return value.reveal()
    return str(value)


def bound_elsewhere(secrets: list[Secret], host: str) -> str | None:
    """Why one of these credentials may not go to ``host``, or None: a Secret bound to one
    host (``$OPENAI_API_KEY``: api.openai.com) goes only there, whatever carries it."""
    for secret in secrets:
        if secret.only_host is not None and host != secret.only_host:
            return (f"{secret.origin or 'a credential'} is sent only to {secret.only_host}, "
                    f"not to {host}; reference another variable for this provider")
    return None
