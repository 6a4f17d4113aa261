"""A loopback HTTP/1.1 keep-alive server (TCP_NODELAY) that answers like Anthropic's Messages
API and OpenAI's Chat Completions, streamed or not, for benchmarks.

The request's ``max_tokens`` is the number of stream events; its ``model`` ends in the size of
each text delta in characters (``bench-8``, ``bench-400``). The first delta starts with
``T<ns>;`` — the server's ``time.time_ns()`` when it sent it — so a client can measure the
first-token delay.

By default each response is rendered once (per path, stream flag, event count and delta size)
and written in one ``sendall``, so the client, not this Python server on the same cores, is
what a benchmark measures. ``--live`` renders every response as it goes, one write per event,
with the first delta's time stamp fresh (the first-token case needs it).

Run alone: ``python bench/fake_server.py [--live]`` prints its port.
"""

from __future__ import annotations

import functools
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = "the pelican é 🦅 flew over 42 quick brown foxes and "
LIVE = "--live" in sys.argv


def delta_text(i: int, size: int) -> str:
    if i == 0 and LIVE:
        stamp = f"T{time.time_ns()};"
        return stamp + WORDS[: max(0, size - len(stamp))]
    return (WORDS * (size // len(WORDS) + 1))[i % len(WORDS):][:size]


def openai_events(n: int, size: int) -> Any:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
            "model": "bench"}
    for i in range(n):
        yield {**head, "choices": [{"index": 0, "delta": {"content": delta_text(i, size)},
                                    "finish_reason": None}]}
    yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                            "total_tokens": 5 + n}}


def anthropic_events(n: int, size: int) -> Any:
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench",
        "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    for i in range(n):
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta",
                                                "text": delta_text(i, size)}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                            "usage": {"output_tokens": n}}
    yield "message_stop", {"type": "message_stop"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "bench"}], "models": [{"name": "bench"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1)
        size = int(str(body.get("model", "bench-8")).rpartition("-")[2] or 8)
        anthropic = self.path.endswith("/messages")
        if not LIVE:
            self.wfile.write(prerendered(anthropic, bool(body.get("stream")), n, size))
            return
        if not body.get("stream"):
            text = "".join(delta_text(i, size) for i in range(n))
            if anthropic:
                self._send(200, {"id": "msg_bench", "type": "message", "role": "assistant",
                                 "model": "bench", "content": [{"type": "text", "text": text}],
                                 "stop_reason": "end_turn",
                                 "usage": {"input_tokens": 5, "output_tokens": n}})
            else:
                self._send(200, {"id": "chatcmpl-bench", "object": "chat.completion",
                                 "model": "bench", "choices": [{
                                     "index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                           "total_tokens": 5 + n}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if anthropic:
            events = (f"event: {name}\ndata: {json.dumps(data)}\n\n"
                      for name, data in anthropic_events(n, size))
        else:
            events = (f"data: {json.dumps(data)}\n\n" for data in openai_events(n, size))
        first = True
        for event in events:
            raw = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            if first:  # the first token goes out on its own, at once
                self.wfile.flush()
                first = False
        if not anthropic:
            self.wfile.write(b"e\r\ndata: [DONE]\n\n\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, status: int, obj: Any) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@functools.lru_cache(maxsize=64)
def prerendered(anthropic: bool, stream: bool, n: int, size: int) -> bytes:
    """The whole response, status line to last chunk, rendered once."""
    if not stream:
        text = "".join(delta_text(i, size) for i in range(n))
        if anthropic:
            obj: Any = {"id": "msg_bench", "type": "message", "role": "assistant",
                        "model": "bench", "content": [{"type": "text", "text": text}],
                        "stop_reason": "end_turn",
                        "usage": {"input_tokens": 5, "output_tokens": n}}
        else:
            obj = {"id": "chatcmpl-bench", "object": "chat.completion", "model": "bench",
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text}}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}}
        raw = json.dumps(obj).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                b"%d\r\n\r\n%s" % (len(raw), raw))
    if anthropic:
        events = [f"event: {name}\ndata: {json.dumps(data)}\n\n"
                  for name, data in anthropic_events(n, size)]
    else:
        events = [f"data: {json.dumps(data)}\n\n" for data in openai_events(n, size)]
        events.append("data: [DONE]\n\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(raw), raw) for raw in map(str.encode, events))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a benchmark ends, a stream is abandoned) is
        normal here; anything else is still reported."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def start() -> tuple[ThreadingHTTPServer, int]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


if __name__ == "__main__":
    srv, port = start()
    print(port, flush=True)
    try:
        sys.stdin.read()  # serve until stdin closes
    finally:
        srv.shutdown()
