"""SSE decoding throughput: our SSEDecoder vs a minimal ``bytes.split`` loop (the floor) and,
when it is importable, the openai SDK's own decoder.

    python bench/sse_decode.py            # prints a table and JSON

Each stream is 10 MB, fed in 16 KiB network-sized reads, and again one event per read (how
a streaming server's answer often arrives); best of 15 interleaved runs.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from missy_providers.streams import SSEDecoder

SIZE = 10 * 1024 * 1024
READ = 16 * 1024
WORDS = ["Hello", " world", ",", " the", " pelican", " é", " 🦅", " 42", "\\n", " quick"]


def openai_stream() -> bytes:
    out, i = [], 0
    while sum(map(len, out)) < SIZE:
        chunk = {"id": "chatcmpl-B9", "object": "chat.completion.chunk", "created": 1747148049,
                 "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_dbaca60df0",
                 "choices": [{"index": 0, "delta": {"content": WORDS[i % len(WORDS)]},
                              "logprobs": None, "finish_reason": None}], "usage": None}
        out.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        i += 1
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def anthropic_stream() -> bytes:
    out, i = [], 0
    while sum(map(len, out)) < SIZE:
        delta = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)]}}
        out.append(f"event: content_block_delta\ndata: {json.dumps(delta)}        \n\n".encode())
        i += 1
    return b"".join(out)


def reads(raw: bytes) -> list[bytes]:
    return [raw[i:i + READ] for i in range(0, len(raw), READ)]


def one_event_per_read(raw: bytes) -> list[bytes]:
    return [event + b"\n\n" for event in raw.split(b"\n\n") if event]


def ours(chunks: list[bytes]) -> int:
    decoder, n = SSEDecoder(), 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    return n + len(decoder.close())


def split_floor(chunks: list[bytes]) -> int:
    """The least any decoder must do: split lines on LF, decode `event:` and `data:` values and
    hand out one (event, data) pair per blank line. No CR, comments, ids or bounds."""
    buf, out = b"", []
    event, data = "message", None
    for chunk in chunks:
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            if not line:
                if data is not None:
                    out.append((event, data))
                event, data = "message", None
            elif line.startswith(b"data:"):
                data = line[6:].decode()
            elif line.startswith(b"event:"):
                event = line[7:].decode()
    return len(out)


def openai_sdk(chunks: list[bytes]) -> int:
    from openai._streaming import SSEDecoder as SDKDecoder  # type: ignore[import-not-found]

    return sum(1 for _ in SDKDecoder().iter_bytes(iter(chunks)))


def interleaved_best(fns: dict[str, Callable[[list[bytes]], int]], chunks: list[bytes],
                     runs: int = 15) -> dict[str, float]:
    """Best time of each, the decoders taking turns (A B C A B C ...) so that a noisy
    neighbour slows all of them alike; gc off while timing."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    gc.disable()
    try:
        for _ in range(runs):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(chunks)
                times[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    decoders: dict[str, Callable[[list[bytes]], int]] = {"missy": ours,
                                                         "bytes.split floor": split_floor}
    try:
        import openai._streaming  # type: ignore[import-not-found]  # noqa: F401

        decoders["openai SDK"] = openai_sdk
    except ImportError:
        pass
    results: dict[str, dict[str, float]] = {}
    for style, make, split in (
            ("openai-style", openai_stream, reads),
            ("anthropic-style", anthropic_stream, reads),
            ("openai-style, one event per read", openai_stream, one_event_per_read),
            ("anthropic-style, one event per read", anthropic_stream, one_event_per_read)):
        raw = make()
        chunks = split(raw)
        events = ours(chunks)
        for name, fn in decoders.items():
            assert fn(chunks) == events, name
        for name, seconds in interleaved_best(decoders, chunks).items():
            results.setdefault(style, {})[name] = len(raw) / seconds / 1e6
    print(f"{'stream':18} " + " ".join(f"{n:>18}" for n in decoders) + "   (MB/s)")
    for style, row in results.items():
        print(f"{style:18} " + " ".join(f"{row[n]:18.1f}" for n in decoders))
        floor_ratio = row["bytes.split floor"] / row["missy"]
        print(f"{'':18} missy is {floor_ratio:.2f}x slower than the floor"
              + (f", {row['missy'] / row['openai SDK']:.1f}x the openai SDK"
                 if "openai SDK" in row else ""))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
