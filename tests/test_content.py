"""Images and documents in messages: the parts, their exact wire shape on every API, the
typed refusals where an API cannot take one, and Anthropic prompt caching."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from conftest import loopback_provider, sent_body
from loopback import LoopbackServer

from missy_providers.content import (
    IMAGE_TOKEN_ESTIMATE,
    MB,
    PDF_PAGE_TOKEN_ESTIMATE,
    Document,
    Image,
    Text,
    WireParts,
    estimate_tokens,
    sniff_media_type,
)
from missy_providers.core.errors import UsageError
from missy_providers.types import Message, Tool, ToolResult

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 10
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8
PDF = b"%PDF-1.4\n1 0 obj <</Type /Pages /Count 2>>\n2 0 obj <</Type /Page>>\n" \
      b"3 0 obj <</Type/Page>>\n%%EOF\n"
B64_PNG = base64.b64encode(PNG).decode()
B64_PDF = base64.b64encode(PDF).decode()
URL = "https://example.com/cat.png"
ASK = "What is this?"  # parts are built inside each test: a mutant of content.py must reach them


# --- the parts ------------------------------------------------------------------------------

@pytest.mark.parametrize("data, media_type", [
    (PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (b"GIF87a\x00", "image/gif"),
    (WEBP, "image/webp"), (PDF, "application/pdf"), (b"RIFF\x00\x00\x00\x00WAVE", None),
    (b"hello", None), (b"", None),
])
def test_media_type_comes_from_the_magic_bytes(data: bytes, media_type: str | None) -> None:
    assert sniff_media_type(data) == media_type


def test_from_file_ignores_the_name(tmp_path: Path) -> None:
    liar = tmp_path / "photo.jpg"
    liar.write_bytes(PNG)
    image = Image.from_file(liar, detail="low")
    assert (image.media_type, image.data, image.detail) == ("image/png", PNG, "low")
    (tmp_path / "report.pdf").write_bytes(PDF)
    doc = Document.from_file(tmp_path / "report.pdf")
    assert (doc.media_type, doc.name) == ("application/pdf", "report.pdf")
    (tmp_path / "fake.pdf").write_bytes(PNG)
    with pytest.raises(UsageError, match="Document media type must be one of"):
        Document.from_file(tmp_path / "fake.pdf")
    with pytest.raises(UsageError, match=r"cannot read .*missing\.png"):
        Image.from_file(tmp_path / "missing.png")


@pytest.mark.parametrize("build, message", [
    (lambda: Image(b"not an image"), "bytes of no known image format"),
    (lambda: Image(PDF), "got application/pdf"),
    (lambda: Image(PNG, media_type="image/bmp"), "got image/bmp"),
    (lambda: Image(), "either data .* or url"),
    (lambda: Image(PNG, url=URL), "either data .* or url"),
    (lambda: Image(b""), "non-empty bytes"),
    (lambda: Image("iVBOR..."), "non-empty bytes, got str"),
    (lambda: Image(PNG, detail="ultra"), "detail must be one of"),
    (lambda: Image.from_url("file:///etc/passwd"), "http\\(s\\) URL"),
    (lambda: Image.from_url("data:image/png;base64,AAAA"), "http\\(s\\) URL"),
    (lambda: Document(PNG), "not a PDF|got image/png"),
    (lambda: Document(PDF, name=3), "name must be a str"),
    (lambda: Text(b"bytes"), "Text takes a str"),
    (lambda: Text("x", cache="2h"), "cache must be True, False or a ttl"),
    (lambda: Message("user", [Text(ASK), "loose string"]), "list of Text/Image/Document parts"),
])
def test_bad_parts_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build()


def test_reprs_show_sizes_not_bytes() -> None:
    assert repr(Image(PNG)) == f"Image(image/png, {len(PNG)} bytes)"
    assert repr(Image.from_url(URL)) == f"Image(url, url={URL!r})"
    assert repr(Document(PDF, name="r.pdf")) == \
        f"Document(application/pdf, {len(PDF)} bytes, name='r.pdf')"


def test_text_of_any_message() -> None:
    message = Message("user", [Text("a"), Image(PNG), Text("b")])
    assert message.text == "ab" and isinstance(message.content, tuple)
    assert Message("user", "plain").text == "plain"
    assert ToolResult("c", "t", [Text("12:00"), Image(PNG)]).text == "12:00"
    assert Message("user", Image(PNG)).content == (Image(PNG),)  # one part alone


def test_token_estimate_counts_images_and_pages() -> None:
    assert estimate_tokens([Text("x" * 400), Image(PNG), Image.from_url(URL)]) == \
        100 + 2 * IMAGE_TOKEN_ESTIMATE
    assert estimate_tokens([Document(PDF)]) == 2 * PDF_PAGE_TOKEN_ESTIMATE  # /Pages not one
    assert estimate_tokens([Document(b"%PDF-1.7 compressed")]) == PDF_PAGE_TOKEN_ESTIMATE


# --- on the wire: every provider, every part type -------------------------------------------

def every_part() -> list[Any]:
    return [Text(ASK), Image(PNG, detail="high"), Image.from_url(URL),
            Document(PDF, name="r.pdf")]
USER_WIRE = {
    "anthropic": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": B64_PNG}},
        {"type": "image", "source": {"type": "url", "url": URL}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": B64_PDF}, "title": "r.pdf"},
    ],
    "openai": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_PNG}",
                                            "detail": "high"}},
        {"type": "image_url", "image_url": {"url": URL}},
        {"type": "file", "file": {"filename": "r.pdf",
                                  "file_data": f"data:application/pdf;base64,{B64_PDF}"}},
    ],
    "openai-codex": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{B64_PNG}",
         "detail": "high"},
        {"type": "input_image", "image_url": URL, "detail": "auto"},
        {"type": "input_file", "filename": "r.pdf",
         "file_data": f"data:application/pdf;base64,{B64_PDF}"},
    ],
}


def user_content(body: dict[str, Any], ptype: str) -> Any:
    if ptype == "openai-codex":
        return body["input"][0]["content"]
    return body["messages"][-1]["content"]


@pytest.mark.parametrize("ptype", sorted(USER_WIRE))
def test_every_part_on_the_wire(server: LoopbackServer, ptype: str) -> None:
    body = sent_body(server, ptype, [Message("user", every_part())])
    assert user_content(body, ptype) == USER_WIRE[ptype]


def test_ollama_images_are_bare_base64(server: LoopbackServer) -> None:
    body = sent_body(server, "ollama", [Message("user", [Text("What "), Image(PNG),
                                                         Text("is this?"), Image(JPEG)])])
    assert body["messages"] == [{"role": "user", "content": "What is this?",
                                 "images": [B64_PNG, base64.b64encode(JPEG).decode()]}]


@pytest.mark.parametrize("ptype, part, message", [
    ("ollama", lambda: Image.from_url(URL),
     "Ollama's /api/chat cannot take an image URL part in a user turn; send images as bytes"),
    ("ollama", lambda: Document(PDF),
     "Ollama's /api/chat cannot take a document part in a user turn"),
])
def test_what_an_api_cannot_take_is_refused_before_io(server: LoopbackServer, ptype: str,
                                                      part: Any, message: str) -> None:
    provider = loopback_provider(server, ptype)
    with pytest.raises(UsageError, match=f"^p: {message}"):
        provider.complete([Message("user", [Text(ASK), part()])])
    assert server.requests == []


@pytest.mark.parametrize("ptype", ["anthropic", "openai", "openai-codex", "ollama"])
@pytest.mark.parametrize("role", ["system", "assistant"])
def test_system_and_assistant_turns_hold_only_text(server: LoopbackServer, ptype: str,
                                                   role: str) -> None:
    provider = loopback_provider(server, ptype)
    history = [Message(role, [Text("fine"), Image(PNG)]), Message("user", "hi")]
    with pytest.raises(UsageError, match="image part"):
        provider.complete(history)
    assert server.requests == []




def test_tool_results_with_images(server: LoopbackServer) -> None:
    from missy_providers.types import ToolCall

    history = [Message("user", "look"),
               Message("assistant", "", tool_calls=[ToolCall("c1", "shot", {})]),
               Message.tool(ToolResult("c1", "shot", [Text("the screen:"), Image(PNG)]))]
    body = sent_body(server, "anthropic", history)
    assert body["messages"][2]["content"] == [{
        "type": "tool_result", "tool_use_id": "c1",
        "content": [{"type": "text", "text": "the screen:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": B64_PNG}}]}]
    body = sent_body(server, "openai-codex", history)
    assert body["input"][-1] == {"type": "function_call_output", "call_id": "c1", "output": [
        {"type": "input_text", "text": "the screen:"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{B64_PNG}",
         "detail": "auto"}]}
    body = sent_body(server, "openai", [*history[:2], Message.tool(
        ToolResult("c1", "shot", [Text("a"), Text("b")]))])
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "a"},
                                               {"type": "text", "text": "b"}]
    for ptype in ("openai", "ollama"):  # Chat tool messages and Ollama take text only
        provider = loopback_provider(server, ptype)
        server.reset()
        with pytest.raises(UsageError, match="cannot take an image part in a tool result"):
            provider.complete(history)
        assert server.requests == []


def test_one_history_goes_to_every_provider(server: LoopbackServer) -> None:
    """A conversation with an image, built once, is sent unchanged to each provider in turn
    (a fallback mid-conversation), each mapping the same parts its own way."""
    history = [Message("user", [Text("What is this?"), Image(PNG)]),
               Message("assistant", "A cat."), Message("user", "And its colour?")]
    shapes = {ptype: sent_body(server, ptype, history) for ptype in
              ("anthropic", "openai", "openai-codex", "ollama")}
    assert shapes["anthropic"]["messages"][0]["content"][1]["source"]["data"] == B64_PNG
    assert shapes["openai"]["messages"][0]["content"][1]["image_url"]["url"].endswith(B64_PNG)
    assert shapes["openai-codex"]["input"][0]["content"][1]["image_url"].endswith(B64_PNG)
    assert shapes["ollama"]["messages"][0]["images"] == [B64_PNG]
    assert history[0].content == (Text("What is this?"), Image(PNG))  # unchanged


# --- the documented limits ------------------------------------------------------------------

def big_png(base64_bytes: int) -> Image:
    raw = base64_bytes // 4 * 3
    return Image(PNG + b"\x00" * (raw - len(PNG)))


@pytest.mark.parametrize("b64_size, refused", [(5 * MB - 4, False), (5 * MB, False),
                                               (5 * MB + 4, True)])
def test_anthropic_image_size_limit_at_the_edge(b64_size: int, refused: bool) -> None:
    parts = WireParts("anthropic", "p")
    if refused:
        with pytest.raises(UsageError, match="at most 5 MB \\(base64\\) for one image"):
            parts.blocks([big_png(b64_size)], "user turn")
    else:
        assert len(parts.blocks([big_png(b64_size)], "user turn")[0]["source"]["data"]) == \
            b64_size


def test_request_totals_and_image_counts() -> None:
    parts = WireParts("anthropic", "p")
    parts.blocks([big_png(5 * MB)] * 6, "user turn")  # 30 MB: within 32
    with pytest.raises(UsageError, match=r"at most 32 MB \(base64\) for the images of one "
                                         r"request; this is 35\.0 MB"):
        parts.blocks([big_png(5 * MB)], "user turn")
    many = WireParts("anthropic", "p")
    many.blocks([Image(PNG)] * 100, "user turn")
    with pytest.raises(UsageError, match="at most 100 images in one request"):
        many.blocks([Image(PNG)], "user turn")
    WireParts("ollama", "p").blocks([big_png(60 * MB)], "user turn")  # no documented limit
    # Anthropic's 32 MB is the request's: images and documents together.
    mixed = WireParts("anthropic", "p")
    mixed.blocks([big_png(5 * MB)] * 4, "user turn")  # 20 MB of images
    with pytest.raises(UsageError, match=r"at most 32 MB in one request; its images and "
                                         r"documents are 3\d\.\d MB"):
        mixed.blocks([Document(b"%PDF-1.4\n" + b"x" * (10 * MB))], "user turn")
    by_url = WireParts("anthropic", "p")
    by_url.blocks([Image.from_url("https://example.com/a.png")] * 100, "user turn")
    with pytest.raises(UsageError, match="at most 100 images in one request"):
        by_url.blocks([Image.from_url("https://example.com/b.png")], "user turn")


# --- prompt caching (Anthropic) -------------------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}


def test_cache_true_marks_system_tools_and_the_last_user_turn(server: LoopbackServer) -> None:
    history = [Message("user", "first"), Message("assistant", "ok"), Message("user", "second")]
    body = sent_body(server, "anthropic", history, [Tool("a"), Tool("b")], system="rules",
                     cache=True)
    assert body["system"] == [{"type": "text", "text": "rules", "cache_control": EPHEMERAL}]
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == EPHEMERAL
    assert body["messages"][0]["content"] == "first"
    assert body["messages"][2]["content"] == [{"type": "text", "text": "second",
                                               "cache_control": EPHEMERAL}]
    body = sent_body(server, "anthropic", history, system="rules", cache="1h")
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_marked_parts_and_system_blocks(server: LoopbackServer) -> None:
    history = [Message("system", [Text("long rules", cache="1h")]),
               Message("user", [Document(PDF, cache=True), Text("summarise")])]
    body = sent_body(server, "anthropic", history)
    assert body["system"] == [{"type": "text", "text": "long rules",
                               "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert body["messages"][0]["content"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["messages"][0]["content"][1]
    plain = sent_body(server, "anthropic", [Message("system", "a"), Message("user", "hi")],
                      system="b")
    assert plain["system"] == "b\n\na"  # no marks: one string, as always


@pytest.mark.parametrize("marked, refused", [(3, False), (4, False), (5, True)])
def test_at_most_four_breakpoints(server: LoopbackServer, marked: int, refused: bool) -> None:
    history = [Message("user", [Text(f"part {i}", cache=True) for i in range(marked)])]
    provider = loopback_provider(server, "anthropic")
    server.reset(lambda ex: ex.json(400, {"error": {"message": "captured"}}))
    if refused:
        with pytest.raises(UsageError, match=r"at most 4 cache breakpoints in one request .*"
                                             r"this one has 5"):
            provider.complete(history)
        assert server.requests == []
    else:
        with pytest.raises(Exception, match="captured"):
            provider.complete(history)


@pytest.mark.parametrize("ptype", ["openai", "openai-codex", "ollama"])
def test_cache_marks_are_ignored_where_caching_is_automatic(server: LoopbackServer,
                                                           ptype: str) -> None:
    body = sent_body(server, ptype, [Message("user", [Text("hi", cache=True)])], cache=True)
    assert "cache_control" not in str(body)


@pytest.mark.parametrize("ptype", ["openai", "openai-codex"])
def test_prompt_cache_key(server: LoopbackServer, ptype: str) -> None:
    body = sent_body(server, ptype, "hi", prompt_cache_key="tenant-42")
    assert body["prompt_cache_key"] == "tenant-42"
    provider = loopback_provider(server, "anthropic")
    with pytest.raises(UsageError, match=r"unknown option.*prompt_cache_key"):
        provider.complete("hi", prompt_cache_key="x")
    with pytest.raises(UsageError, match="prompt_cache_key must be a non-empty string"):
        loopback_provider(server, ptype).complete("hi", prompt_cache_key="")


# --- exact messages and the rest of each part's fields (mutation-tested) --------------------

@pytest.mark.parametrize("build, message", [
    (lambda: Image(), "Image takes either data (bytes) or url, not both or neither"),
    (lambda: Image(b"x"), "Image media type must be one of ['image/gif', 'image/jpeg', "
                          "'image/png', 'image/webp'], got bytes of no known image format"),
    (lambda: Image(b""), "Image data must be non-empty bytes, got bytes"),
    (lambda: Image.from_url("ftp://x"), "Image url must be an http(s) URL (for image bytes, "
                                        "use Image(data=...) or Image.from_file)"),
    (lambda: Document(b"x"), "Document media type must be one of ['application/pdf'], got "
                             "bytes that are not a PDF"),
    (lambda: Document(None), "Document data must be non-empty bytes, got NoneType"),
    (lambda: Document(PDF, name=1), "Document name must be a str, got int"),
    (lambda: Text(1), "Text takes a str, got int"),
    (lambda: Image.from_file(3), "Image.from_file takes a path, got int"),
    (lambda: Document.from_file(3), "Document.from_file takes a path, got int"),
    (lambda: Image(PNG, detail="x" * 300), ("Image detail must be one of ['auto', 'high', "
                                            "'low'], got '" + "x" * 300)[:200]),
    (lambda: Text("t", cache="z" * 300), ("cache must be True, False or a ttl in ['1h', '5m'], "
                                          "got '" + "z" * 300)[:200]),
])
def test_exact_part_messages(build: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        build()
    assert str(info.value) == message


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        Document.from_file(tmp_path / "gone.pdf")
    assert str(info.value) == \
        f"Document.from_file cannot read {str(tmp_path / 'gone.pdf')!r}: No such file or directory"


def test_every_field_is_kept(tmp_path: Path) -> None:
    url = Image.from_url("HTTP://e.com/a.png", detail="low", cache="1h")
    assert (url.data, url.media_type, url.url, url.detail, url.cache) == (
        None, "", "HTTP://e.com/a.png", "low", "1h")
    assert Image(url="https://e.com/a", media_type="image/png").media_type == "image/png"
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "a.pdf").write_bytes(PDF)
    assert Image.from_file(tmp_path / "a.png", cache=True).cache is True
    doc = Document.from_file(tmp_path / "a.pdf", name="shown.pdf", cache="5m")
    assert (doc.name, doc.cache) == ("shown.pdf", "5m")
    assert Document(PDF).cache is False and Image(PNG).cache is False
    assert Image(PNG, cache=True).cache is True and Text("t", cache=True).cache is True
    assert Image(PNG, media_type="image/webp").media_type == "image/webp"  # the caller's word


def test_plain_strings_and_places() -> None:
    parts = WireParts("anthropic", "p")
    assert parts.blocks("hi", "user turn") == [{"type": "text", "text": "hi"}]
    assert parts.blocks([Text("a", cache=True), Text("b")], "user turn") == [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b"}]
    with pytest.raises(UsageError) as info:  # a place the table does not list: text only
        parts.blocks([Image(PNG)], "system prompt")
    assert str(info.value) == \
        "p: the Messages API cannot take an image part in a system prompt"
    with pytest.raises(UsageError) as info:
        WireParts("ollama", "p").blocks([Image.from_url(URL)], "user turn")
    assert str(info.value) == ("p: Ollama's /api/chat cannot take an image URL part in a user "
                                  "turn; send images as bytes (Image.from_file) or use a "
                                  "provider that takes URLs")
    with pytest.raises(UsageError) as info:
        WireParts("chat", "p").blocks([Image.from_url(URL)], "tool result")
    assert str(info.value) == "p: Chat Completions cannot take an image URL part in a tool " \
                                 "result"


def test_token_estimates_exactly() -> None:
    assert estimate_tokens("x" * 9) == 2
    assert estimate_tokens([Text("x" * 9), Text("y" * 9)]) == 4
    assert estimate_tokens([Image(PNG), Image(PNG)]) == 2 * IMAGE_TOKEN_ESTIMATE
    assert estimate_tokens([Document(PDF), Document(PDF)]) == 4 * PDF_PAGE_TOKEN_ESTIMATE
    assert (IMAGE_TOKEN_ESTIMATE, PDF_PAGE_TOKEN_ESTIMATE) == (1600, 3000)


def test_request_total_at_the_edge() -> None:
    parts = WireParts("anthropic", "p")
    parts.blocks([big_png(4 * MB)] * 8, "user turn")  # exactly 32 MB: allowed
    assert parts.sizes == {"image": 32 * MB} and parts.images == 8
    with pytest.raises(UsageError):
        parts.blocks([Image(PNG)], "user turn")
    docs = WireParts("chat", "p")
    docs.blocks([Document(PDF)], "user turn")
    assert docs.sizes == {"document": len(PDF)}  # OpenAI's limits are on the file bytes
    images = WireParts("chat", "p")
    images.blocks([Image(PNG + b"\0" * (20 * MB - len(PNG)))], "user turn")  # 20 MB: allowed
    with pytest.raises(UsageError) as info:
        images.blocks([Image(PNG + b"\0" * (20 * MB + 1 - len(PNG)))], "user turn")
    assert str(info.value) == ("p: Chat Completions takes at most 20 MB (file bytes) for one "
                               "image; this is 20.0 MB: send a smaller file")


def test_defaults_and_remaining_messages(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "a.pdf").write_bytes(PDF)
    assert Image.from_file(tmp_path / "a.png").cache is False
    assert Image.from_url(URL).cache is False
    assert Document.from_file(tmp_path / "a.pdf").cache is False
    with pytest.raises(UsageError) as info:
        Image(PNG, media_type="x" * 300)
    assert str(info.value) == ("Image media type must be one of ['image/gif', 'image/jpeg', "
                               "'image/png', 'image/webp'], got " + "x" * 300)[:200]
    with pytest.raises(UsageError) as info:
        Document(PDF, media_type="y" * 300)
    assert len(str(info.value)) == 200
    with pytest.raises(UsageError) as info:
        Message("user", 5)  # type: ignore[arg-type]
    assert str(info.value) == "Message content must be a str or a list of Text/Image/Document " \
                              "parts, got int"
    parts = WireParts("anthropic", "p")
    with pytest.raises(UsageError) as info:
        parts.text_only([Text("a"), Document(PDF)], "assistant turn")
    assert str(info.value) == "p: the Messages API cannot take a document part in an " \
                              "assistant turn"
    assert parts.blocks([Document(PDF)], "user turn")[0] == {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": B64_PDF}}  # no title
    assert parts.blocks([Text("t", cache="1h")], "user turn")[0]["cache_control"] == \
        {"type": "ephemeral", "ttl": "1h"}


def test_the_message_says_the_size_of_the_part_that_is_too_big() -> None:
    parts = WireParts("anthropic", "p")
    parts.blocks([big_png(MB)], "user turn")
    with pytest.raises(UsageError) as info:
        parts.blocks([big_png(6 * MB)], "user turn")
    assert str(info.value) == ("p: the Messages API takes at most 5 MB (base64) for one image; "
                               "this is 6.0 MB: send a smaller file")
