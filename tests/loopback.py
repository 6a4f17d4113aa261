"""A real HTTP/1.1 server on 127.0.0.1 for tests: one thread per connection, handlers set per
test, every request and accepted connection recorded. Never listens beyond loopback."""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
CERT, KEY = DATA / "localhost.pem", DATA / "localhost.key"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection carried it

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[["Exchange"], None]


class Exchange:
    """One request being answered: the recorded request plus ways to write the answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, req: Recorded) -> None:
        self.h, self.req = handler, req

    def send(self, status: int, body: bytes | str = b"", headers: Iterable[tuple[str, str]] = (),
             content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.h.send_response(status)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            self.h.send_header(name, value)
        if "content-type" not in names:
            self.h.send_header("Content-Type", content_type)
        if "content-length" not in names and "transfer-encoding" not in names:
            self.h.send_header("Content-Length", str(len(data)))
        self.h.end_headers()
        self.h.wfile.write(data)
        self.h.wfile.flush()

    def json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send(status, json.dumps(obj), headers)

    def start_chunked(self, status: int = 200, content_type: str = "text/event-stream",
                      headers: Iterable[tuple[str, str]] = ()) -> None:
        self.h.send_response(status)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Transfer-Encoding", "chunked")
        for name, value in headers:
            self.h.send_header(name, value)
        self.h.end_headers()
        self.h.wfile.flush()

    def chunk(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if raw:
            self.raw(b"%x\r\n%s\r\n" % (len(raw), raw))

    def end_chunked(self) -> None:
        self.raw(b"0\r\n\r\n")

    def raw(self, data: bytes) -> None:
        try:
            self.h.wfile.write(data)
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.h.close_connection = True  # the client went away: expected in these tests

    def hang_up(self) -> None:
        self.h.close_connection = True
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            # The head and the body are two writes: without NODELAY, Nagle holds the body for
            # the client's delayed ACK (40 ms a request on Linux loopback).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server.lock:
                server.connections += 1
                self.connection_no = server.connections

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Recorded(self.command, self.path, {k.lower(): v for k, v in
                                                     self.headers.items()}, body,
                           self.connection_no)
            with server.lock:
                server.requests.append(req)
            handler = server.handler
            if handler is None:
                Exchange(self, req).json(500, {"error": "no handler set"})
                return
            handler(Exchange(self, req))

        do_GET = do_POST = do_PUT = do_DELETE = do_CONNECT = _any

    return H


class RefusingPort:
    """A loopback port that refuses every connection for as long as this object lives: bound,
    never listening, so no other test's server can take it meanwhile (a stopped server's port
    can be reused at once)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a test that stops reading, a call past its deadline) is
        what many tests do on purpose; anything else is still reported."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    def __init__(self, tls: bool = False, client_ca: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.connections = 0
        self.handler: Handler | None = None
        self.httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self.httpd.daemon_threads = True
        self.tls = tls
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(CERT, KEY)
            if client_ca is not None:  # mutual TLS: a client certificate signed by it
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def reset(self, handler: Handler | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self.connections = 0
            self.handler = handler

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Counter:
    """A plain TCP listener that counts connections and says nothing (a proxy or a target
    that must never be reached)."""

    sock: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    accepted: int = 0

    def __post_init__(self) -> None:
        self.sock.settimeout(0.05)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=1)
        self.sock.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


RawHandler = Callable[["RawConnection"], None]


class RawConnection:
    """One accepted connection of a RawServer: read requests, write any bytes at all."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_request(self, timeout: float = 5.0) -> bytes:
        """One whole request (head and Content-Length body); b"" if the client went away."""
        self.sock.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    return b""
                self.buf += data
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                data = self.sock.recv(65536)
                if not data:
                    return b""
                rest += data
        except OSError:
            return b""
        self.buf = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def send(self, data: bytes) -> None:
        try:
            self.sock.settimeout(30)  # a slow reader (tracemalloc on) must get it all
            self.sock.sendall(data)
        except OSError:
            pass

    def trickle(self, data: bytes, every: float) -> None:
        """``data`` one byte at a time, ``every`` seconds apart, until the client leaves."""
        for i in range(len(data)):
            try:
                self.sock.sendall(data[i:i + 1])
            except OSError:
                return
            time.sleep(every)


class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``handler`` in its own thread:
    for framing no HTTP library would send. Counts connections and requests."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.connections = 0
        self.requests: list[bytes] = []
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._run, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        raw = RawConnection(conn)
        original = raw.read_request

        def counted(timeout: float = 5.0) -> bytes:
            request = original(timeout)
            if request:
                self.requests.append(request)
            return request

        raw.read_request = counted  # type: ignore[method-assign]
        try:
            self.handler(raw)
        finally:
            try:  # a graceful end: FIN, then wait for the client (a bare close may RST)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2)
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self._accept.join(timeout=1)
        self.sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
