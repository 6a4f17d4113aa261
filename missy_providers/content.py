"""Content parts: text, images and documents in a message, neutral to every provider.

A part knows nothing of any API. Each API's wire shape for each kind of part is one row of
data (``WIRE``), what each place in a conversation may hold is another (``ACCEPTS``), and the
size limits each API documents a third (``LIMITS``); :class:`WireParts` reads the tables for
one request. We never fetch a URL: an ``Image.from_url`` is sent as a URL for the provider's
server to fetch, or refused where the API cannot take one.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence

from .core.errors import UsageError
from .core.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOCUMENT_TYPES = frozenset({"application/pdf"})
DETAILS = frozenset({"auto", "low", "high"})
CACHE_TTLS = frozenset({"5m", "1h"})  # Anthropic's cache_control ttl values
MB = 1024 * 1024
# For the client-side tokens_per_minute limit only (the server's count replaces it): an image
# counts what Anthropic documents for the largest image it does not downscale (~1.15
# megapixels / 750), a PDF page the upper end of its 1,500-3,000 tokens a page.
IMAGE_TOKEN_ESTIMATE = 1600
PDF_PAGE_TOKEN_ESTIMATE = 3000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def sniff_media_type(data: bytes) -> str | None:
    """The media type from a file's first bytes (its magic number), never from its name."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _cache(value: object) -> bool | str:
    if value is True or value is False or value in CACHE_TTLS:
        return value
    raise UsageError(f"cache must be True, False or a ttl in {sorted(CACHE_TTLS)}, got "
                     f"{value!r}"[:200])


def _data(value: object, kind: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value):
        return bytes(value)
    raise UsageError(f"{kind} data must be non-empty bytes, got {type(value).__name__}")


def _read(path: object, kind: str) -> bytes:
    import os

    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"{kind}.from_file takes a path, got {type(path).__name__}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"{kind}.from_file cannot read {os.fspath(path)!r}: "
                         f"{exc.strerror or exc}") from None


class Part(Value):
    """One piece of a message's content; see Text, Image, Document."""

    __slots__ = ()
    kind = ""
    cache: bool | str

    @property
    def wire_kind(self) -> str:
        return self.kind


class Text(Part):
    """Text. ``cache=True`` (or a ttl, ``"5m"`` / ``"1h"``) ends a cached prefix here on
    Anthropic; other APIs cache on their own and ignore it."""

    __slots__ = ("text", "cache")
    kind = "text"
    text: str
    cache: bool | str

    def __init__(self, text: str, cache: bool | str = False) -> None:
        if not isinstance(text, str):
            raise UsageError(f"Text takes a str, got {type(text).__name__}")
        self._set(text=text, cache=_cache(cache))


class Image(Part):
    """An image: bytes (``data``, media type from its magic bytes when not given) or a
    ``url`` the provider's server fetches. ``detail`` (``auto``/``low``/``high``) is read by
    the OpenAI APIs."""

    __slots__ = ("data", "media_type", "url", "detail", "cache")
    kind = "image"
    data: bytes | None
    media_type: str
    url: str | None
    detail: str | None
    cache: bool | str

    def __init__(self, data: bytes | None = None, media_type: str | None = None,
                 url: str | None = None, detail: str | None = None,
                 cache: bool | str = False) -> None:
        if (data is None) == (url is None):
            raise UsageError("Image takes either data (bytes) or url, not both or neither")
        if detail is not None and detail not in DETAILS:
            raise UsageError(f"Image detail must be one of {sorted(DETAILS)}, got {detail!r}"
                             [:200])
        if url is not None:
            if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
                raise UsageError("Image url must be an http(s) URL (for image bytes, use "
                                 "Image(data=...) or Image.from_file)")
            self._set(data=None, media_type=media_type or "", url=url, detail=detail,
                      cache=_cache(cache))
            return
        raw = _data(data, "Image")
        found = media_type or sniff_media_type(raw)
        if found not in IMAGE_TYPES:
            raise UsageError(f"Image media type must be one of {sorted(IMAGE_TYPES)}, got "
                             f"{found or 'bytes of no known image format'}"[:200])
        self._set(data=raw, media_type=found, url=None, detail=detail, cache=_cache(cache))

    @classmethod
    def from_file(cls, path: Any, detail: str | None = None, cache: bool | str = False
                  ) -> Image:
        """An image file (its type from its magic bytes, not its name)."""
        return cls(_read(path, "Image"), detail=detail, cache=cache)

    @classmethod
    def from_url(cls, url: str, detail: str | None = None, cache: bool | str = False
                 ) -> Image:
        """An image the provider's server fetches (never this client)."""
        return cls(url=url, detail=detail, cache=cache)

    @property
    def wire_kind(self) -> str:
        return "image_url" if self.url is not None else "image"

    def __repr__(self) -> str:  # not the bytes
        where = f"url={self.url!r}" if self.url is not None else \
            f"{len(self.data or b'')} bytes"
        return f"Image({self.media_type or 'url'}, {where})"


class Document(Part):
    """A PDF: bytes (or ``Document.from_file``); ``name`` is the file name shown to the
    model (OpenAI's ``filename``, Anthropic's ``title``)."""

    __slots__ = ("data", "media_type", "name", "cache")
    kind = "document"
    data: bytes
    media_type: str
    name: str | None
    cache: bool | str

    def __init__(self, data: bytes, media_type: str | None = None, name: str | None = None,
                 cache: bool | str = False) -> None:
        raw = _data(data, "Document")
        found = media_type or sniff_media_type(raw)
        if found not in DOCUMENT_TYPES:
            raise UsageError(f"Document media type must be one of {sorted(DOCUMENT_TYPES)}, "
                             f"got {found or 'bytes that are not a PDF'}"[:200])
        if name is not None and not isinstance(name, str):
            raise UsageError(f"Document name must be a str, got {type(name).__name__}")
        self._set(data=raw, media_type=found, name=name, cache=_cache(cache))

    @classmethod
    def from_file(cls, path: Any, name: str | None = None, cache: bool | str = False
                  ) -> Document:
        import os

        raw = _read(path, "Document")
        return cls(raw, name=name or os.path.basename(os.fspath(path)), cache=cache)

    def __repr__(self) -> str:
        return f"Document({self.media_type}, {len(self.data)} bytes, name={self.name!r})"


def as_content(value: object, where: str) -> str | tuple[Part, ...]:
    """A message's content checked: a str, or a sequence of parts (kept as a tuple). Part
    dicts in the APIs' own shapes (``{"type": "image_url", ...}``, as Missy builds them) are
    converted strictly (native.py)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Part):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(p, Part) for p in value):
        return tuple(value)
    if isinstance(value, (list, tuple)) and any(isinstance(p, dict) for p in value):
        from .native import content_from

        return content_from(value, f"{where} content")
    raise UsageError(f"{where} content must be a str or a list of Text/Image/Document parts, "
                     f"got {type(value).__name__}")


def joined_text(content: str | Sequence[Part]) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, Text))


def estimate_tokens(content: str | Sequence[Part]) -> int:
    """A rough token count before the server counts (see the estimates above)."""
    if isinstance(content, str):
        return len(content) // 4
    total = 0
    for part in content:
        if isinstance(part, Text):
            total += len(part.text) // 4
        elif isinstance(part, Image):
            total += IMAGE_TOKEN_ESTIMATE
        elif isinstance(part, Document):
            pages = len(_PDF_PAGE.findall(part.data)) or 1
            total += pages * PDF_PAGE_TOKEN_ESTIMATE
    return total


# --- the wire shapes, per API -------------------------------------------------------------

def _b64(part: Any) -> str:
    return base64.b64encode(part.data).decode("ascii")


def _data_url(part: Any) -> str:
    return f"data:{part.media_type};base64,{_b64(part)}"


def _detail(part: Any) -> dict[str, str]:
    return {"detail": part.detail} if part.detail else {}


def _title(part: Any) -> dict[str, str]:
    return {"title": part.name} if part.name else {}


def _converse_name(part: Any) -> str:
    """A document's name as Bedrock takes it (letters, digits, single spaces, hyphens,
    parentheses and square brackets; 1-200 characters): the file name without its extension,
    other characters as hyphens."""
    stem = (part.name or "").rpartition(".")[0] or part.name or ""
    name = " ".join(re.sub(r"[^A-Za-z0-9\s()\[\]-]", "-", stem).split())[:200]
    return name or "document"


WIRE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "anthropic": {
        "text": lambda p: {"type": "text", "text": p.text},
        "image": lambda p: {"type": "image", "source": {
            "type": "base64", "media_type": p.media_type, "data": _b64(p)}},
        "image_url": lambda p: {"type": "image", "source": {"type": "url", "url": p.url}},
        "document": lambda p: {"type": "document", "source": {
            "type": "base64", "media_type": p.media_type, "data": _b64(p)}, **_title(p)},
    },
    "chat": {
        "text": lambda p: {"type": "text", "text": p.text},
        "image": lambda p: {"type": "image_url", "image_url": {"url": _data_url(p),
                                                               **_detail(p)}},
        "image_url": lambda p: {"type": "image_url", "image_url": {"url": p.url,
                                                                   **_detail(p)}},
        "document": lambda p: {"type": "file", "file": {
            "filename": p.name or "document.pdf", "file_data": _data_url(p)}},
    },
    "responses": {  # `detail` is required on input_image
        "text": lambda p: {"type": "input_text", "text": p.text},
        "image": lambda p: {"type": "input_image", "image_url": _data_url(p),
                            "detail": p.detail or "auto"},
        "image_url": lambda p: {"type": "input_image", "image_url": p.url,
                                "detail": p.detail or "auto"},
        "document": lambda p: {"type": "input_file", "filename": p.name or "document.pdf",
                               "file_data": _data_url(p)},
    },
    "ollama": {  # text joins `content`; images are bare base64 in the message's `images`
        "text": lambda p: p.text,
        "image": _b64,
    },
    "converse": {  # Bedrock: blobs are base64 in JSON; no URLs (only S3 locations)
        "text": lambda p: {"text": p.text},
        "image": lambda p: {"image": {"format": p.media_type.partition("/")[2],
                                      "source": {"bytes": _b64(p)}}},
        "document": lambda p: {"document": {"format": "pdf", "name": _converse_name(p),
                                            "source": {"bytes": _b64(p)}}},
    },
}
API_NAMES = {"anthropic": "the Messages API", "chat": "Chat Completions",
             "responses": "the Responses API", "ollama": "Ollama's /api/chat",
             "converse": "Bedrock's Converse API"}
_ALL = frozenset({"text", "image", "image_url", "document"})
_TEXT = frozenset({"text"})
# What each place in a conversation may hold, per API (system and assistant turns: text only).
ACCEPTS: dict[str, dict[str, frozenset[str]]] = {
    "anthropic": {"user turn": _ALL, "tool result": _ALL},
    "chat": {"user turn": _ALL, "tool result": _TEXT},
    "responses": {"user turn": _ALL, "tool result": _ALL},
    "ollama": {"user turn": frozenset({"text", "image"}), "tool result": _TEXT},
    "converse": {"user turn": frozenset({"text", "image", "document"}),
                 "tool result": frozenset({"text", "image", "document"})},
}
# Documented limits: (one part, all parts of the kind in one request), and the number of
# images one request may carry. Anthropic's are on the base64 text (and the 32 MB request);
# OpenAI's on the file bytes (20 MB an image, 50 MB of images or of files a request).
LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "anthropic": {"image": (5 * MB, 32 * MB), "document": (32 * MB, 32 * MB)},
    "chat": {"image": (20 * MB, 50 * MB), "document": (50 * MB, 50 * MB)},
    "responses": {"image": (20 * MB, 50 * MB), "document": (50 * MB, 50 * MB)},
    "ollama": {},
    # Bedrock (API_runtime_Message): 3.75 MB an image, 4.5 MB a document (the file bytes), at
    # most 20 images and five documents a request.
    "converse": {"image": (3840 * 1024, 20 * 3840 * 1024),
                 "document": (4608 * 1024, 5 * 4608 * 1024)},
}
LIMITS_ON_BASE64 = frozenset({"anthropic"})
# The whole request's size, where the API caps it: the parts' encoded bytes together.
REQUEST_LIMITS = {"anthropic": 32 * MB}
MAX_IMAGES = {"anthropic": 100, "chat": 500, "responses": 500, "converse": 20}


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeio' else 'a'} {noun}"  # ("a user turn")


def cache_control(cache: bool | str) -> dict[str, str]:
    """Anthropic's breakpoint marker (``True`` is the API's default ttl, 5 minutes)."""
    return {"type": "ephemeral", **({"ttl": cache} if isinstance(cache, str) else {})}


def cache_point(cache: bool | str) -> dict[str, Any]:
    """Bedrock's breakpoint, a block of its own after what it caches."""
    return {"cachePoint": {"type": "default", **({"ttl": cache} if isinstance(cache, str)
                                                 else {})}}


class WireParts:
    """Parts -> one API's wire shapes for one request, checking what each place may hold
    and the API's size limits (every refusal a UsageError before any I/O)."""

    def __init__(self, api: str, provider: str) -> None:
        self.api = api
        self.provider = provider
        self.build = WIRE[api]
        self.sizes: dict[str, int] = {}
        self.images = 0
        self.request_bytes = 0

    def refuse(self, part: Part, place: str, why: str = "") -> UsageError:
        kind = "image URL" if part.wire_kind == "image_url" else part.kind
        return UsageError(f"{self.provider}: {API_NAMES[self.api]} cannot take {_a(kind)} "
                          f"part in {_a(place)}{why}")

    def wire(self, part: Part, place: str) -> Any:
        kind = part.wire_kind
        accepted = ACCEPTS[self.api].get(place, _TEXT)
        if kind not in accepted:
            why = "; send images as bytes (Image.from_file) or use a provider that takes " \
                  "URLs" if kind == "image_url" and "image" in accepted else ""
            raise self.refuse(part, place, why)
        self._count(part)
        return self.build[kind](part)

    def blocks(self, content: str | Sequence[Part], place: str) -> list[Any]:
        if isinstance(content, str):
            return [self.build["text"](Text(content))]
        out = [self.wire(part, place) for part in content]
        if self.api == "anthropic":  # prompt caching: a breakpoint ends at a marked part
            for part, block in zip(content, out, strict=True):
                if part.cache:
                    block["cache_control"] = cache_control(part.cache)
        if self.api == "converse":  # Bedrock: a cachePoint block after the marked part
            marked: list[Any] = []
            for part, block in zip(content, out, strict=True):
                marked += [block, cache_point(part.cache)] if part.cache else [block]
            return marked
        return out

    def text_only(self, content: str | Sequence[Part], place: str) -> str:
        """The text of a place that holds only text (system prompts, assistant turns)."""
        if not isinstance(content, str):
            for part in content:
                if not isinstance(part, Text):
                    raise self.refuse(part, place)
        return joined_text(content)

    def _count(self, part: Part) -> None:
        if part.kind == "image":  # by bytes or by URL, an image counts
            self.images += 1
            cap = MAX_IMAGES.get(self.api)
            if cap is not None and self.images > cap:
                raise UsageError(f"{self.provider}: {API_NAMES[self.api]} takes at most {cap} "
                                 f"images in one request")
        data = getattr(part, "data", None)
        if data is None:
            return
        limit = LIMITS[self.api].get(part.kind)
        if limit is None:
            self._within_request(len(data))
            return
        encoded = self.api in LIMITS_ON_BASE64
        size = (len(data) + 2) // 3 * 4 if encoded else len(data)
        total = self.sizes[part.kind] = self.sizes.get(part.kind, 0) + size
        one, every = limit
        if size > one or total > every:
            single = size > one
            which = f"one {part.kind}" if single else f"the {part.kind}s of one request"
            raise UsageError(f"{self.provider}: {API_NAMES[self.api]} takes at most "
                             f"{(one if single else every) // MB} MB "
                             f"({'base64' if encoded else 'file bytes'}) for {which}; "
                             f"this is {(size if single else total) / MB:.1f} MB: send a "
                             f"smaller file")
        self._within_request(len(data))

    def _within_request(self, size: int) -> None:
        """Every part's bytes against the API's cap on a whole request (images and documents
        together: Anthropic's 32 MB)."""
        cap = REQUEST_LIMITS.get(self.api)
        if cap is None:
            return
        encoded = self.api in LIMITS_ON_BASE64
        self.request_bytes += (size + 2) // 3 * 4 if encoded else size
        if self.request_bytes > cap:
            raise UsageError(f"{self.provider}: {API_NAMES[self.api]} takes at most "
                             f"{cap // MB} MB in one request; its images and documents are "
                             f"{self.request_bytes / MB:.1f} MB (base64): send fewer or "
                             f"smaller files")
