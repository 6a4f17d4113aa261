"""The dialect test data (tests/data/dialects/, sources and licences in its README) and a way to
serve it from a loopback server: a recorded stream byte for byte, one event (or NDJSON line)
per network write; a JSON body as the server's JSON (pydantic-ai cassettes keep bodies parsed,
so those are re-serialised: the values are the server's, the key order is not)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loopback import Exchange

DIALECTS = Path(__file__).resolve().parent / "data" / "dialects"
REAL_TRAFFIC = Path(__file__).resolve().parent / "data" / "real-traffic"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIALECTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def real_traffic(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REAL_TRAFFIC / f"{name}.json").read_text(
        encoding="utf-8"))
    return data


def stream_pieces(text: str, ndjson: bool = False) -> list[bytes]:
    """A stream's bytes cut after each event (SSE) or line (NDJSON)."""
    sep = b"\n" if ndjson else b"\n\n"
    raw = text.encode()
    pieces = raw.split(sep)
    return [p + (sep if i < len(pieces) - 1 else b"") for i, p in enumerate(pieces) if
            p or i < len(pieces) - 1]


def send_stream(ex: Exchange, text: str, ndjson: bool = False, status: int = 200) -> None:
    ex.start_chunked(status, "application/x-ndjson" if ndjson else "text/event-stream")
    for piece in stream_pieces(text, ndjson):
        ex.chunk(piece)
    ex.end_chunked()


def send_answer(ex: Exchange, response: dict[str, Any], ndjson: bool = False) -> None:
    """One recorded or documented answer: ``{"status", "body"}`` or ``{"status", "stream"}``."""
    if "stream" in response:
        send_stream(ex, response["stream"], ndjson, response.get("status", 200))
    else:
        body = response["body"]
        ex.send(response.get("status", 200), body if isinstance(body, str) else json.dumps(body))


def sequence(answers: Iterable[Callable[[Exchange], None]]) -> Callable[[Exchange], None]:
    """A handler giving each request the next answer in turn."""
    pending = list(answers)

    def handler(ex: Exchange) -> None:
        pending.pop(0)(ex)

    return handler
