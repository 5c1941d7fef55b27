"""A loopback HTTP proxy (threads) in front of a real registry, for tests of what kiln's
registry client does when the network and the registry misbehave.

`Forwarder` passes requests on to an upstream registry and records every request's headers.
`faults` is a script: each Fault matches requests by method and path, fires `times` times
(or forever with times=-1) and does one of:
  status      answer that status (500, 503, 429...) without asking upstream
  timeout     read the request, then say nothing for `hold` seconds and close
  drop        read the request and close at once (a connection cut before the answer)
  cut         forward, then send the answer's headers and only half its body, and close
  redirect    answer 307 to the same path on `foreign` (another origin)
  location    forward, then point the answer's Location at `foreign` (an upload URL)
  link        forward, then add a Link rel="next" on `foreign`
A Forwarder with `auth` adds its own Authorization upstream: the foreign origin uses it to
serve what it is sent to, like blob storage that kiln was redirected to.
Everything is bounded: a fault's hold is capped, servers stop on close().
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOLD_MAX = 5.0


@dataclass
class Fault:
    method: str
    path: Callable[[str], bool]
    action: str
    times: int = 1
    status: int = 500
    hold: float = 2.0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.times < 0 or self.fired < self.times) and method == self.method \
            and self.path(path)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    fault: str = ""


@dataclass
class Forwarder:
    upstream: str  # host:port of the real registry
    auth: str | None = None  # Authorization this forwarder adds upstream itself
    foreign: str = ""  # host:port of the other origin that redirect/location/link name
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                forwarder.handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        return self.address

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def count(self, method: str, path: Callable[[str], bool]) -> int:
        with self.lock:
            return sum(s.method == method and path(s.path) for s in self.seen)

    # one request ---------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        with self.lock:
            fault = next((f for f in self.faults if f.matches(h.command, h.path)), None)
            if fault is not None:
                fault.fired += 1
            self.seen.append(Seen(h.command, h.path, dict(h.headers.items()),
                                  fault.action if fault else ""))
        action = fault.action if fault else ""
        if action == "status":
            assert fault is not None
            _answer(h, fault.status, b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}',
                    {"Content-Type": "application/json"})
            return
        if action in ("timeout", "drop"):
            if action == "timeout":
                assert fault is not None
                time.sleep(min(fault.hold, HOLD_MAX))
            h.close_connection = True
            return
        if action == "redirect":
            _answer(h, 307, b"", {"Location": f"http://{self.foreign}{h.path}"})
            return
        status, headers, data = self.forward(h, body)
        if action == "location" and "Location" in headers:
            loc = urlsplit(headers["Location"])
            headers["Location"] = f"http://{self.foreign}{loc.path}" + \
                (f"?{loc.query}" if loc.query else "")
        if action == "link":
            repo_path = urlsplit(h.path).path
            headers["Link"] = f'<http://{self.foreign}{repo_path}?n=1000&last=~>; rel="next"'
        if action == "cut":
            h.send_response(status)
            for key, value in headers.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        _answer(h, status, data, headers, head=h.command == "HEAD")

    def forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        host, port = self.upstream.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        # Host is kept: the registry builds upload URLs from it, and they must name this proxy
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("connection", "transfer-encoding")}
        if self.auth:
            headers["Authorization"] = self.auth
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(h.command, h.path, body=body if body or h.command in
                         ("PUT", "POST", "PATCH") else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders()
                   if k.lower() not in ("content-length", "connection", "transfer-encoding")}
            if h.command == "HEAD" and resp.getheader("Content-Length"):
                out["Content-Length"] = str(resp.getheader("Content-Length"))
            return resp.status, out, data
        finally:
            conn.close()


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        data = b""
        while True:
            size = int(h.rfile.readline().strip() or b"0", 16)
            if size == 0:
                h.rfile.readline()
                return data
            data += h.rfile.read(size)
            h.rfile.readline()
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(length) if length else b""


def _answer(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str],
            head: bool = False) -> None:
    h.send_response(status)
    for key, value in headers.items():
        h.send_header(key, value)
    if not (head and "Content-Length" in headers):
        h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if not head and data:
        h.wfile.write(data)
