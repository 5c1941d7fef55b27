"""The registry client's pure parts (origins, what credentials are tied to; backoff) and its
retry policy against a loopback server."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests

from kiln import registry_http
from kiln.registry import OCI_MANIFEST, Registry, sha256_digest
from kiln.registry_http import (
    BACKOFF,
    BACKOFF_MAX,
    RETRIES,
    RegistryUnavailable,
    origin,
    parse_registry,
)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://r.example/v2/", "https://r.example:443/v2/x", True),
    ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/a/blobs/uploads/1", True),
    ("https://R.example/v2/", "https://r.example/v2/", True),
    ("https://r.example/v2/", "http://r.example/v2/", False),  # scheme
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5001/", False),  # port
    ("https://r.example/", "https://storage.r.example/blob", False),  # host
    ("https://r.example/", "https://r.example.evil/", False),
])
def test_origin(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


def test_parse_registry() -> None:
    assert parse_registry("127.0.0.1:5000") == ("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert parse_registry("r.example/ns") == ("https://r.example", "r.example")


def test_backoff_grows_with_jitter_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(registry_http.time, "sleep", slept.append)
    for attempt in range(1, RETRIES):
        registry_http._pause(attempt, None)
    for attempt, delay in enumerate(slept, 1):
        base = BACKOFF * 2 ** (attempt - 1)
        assert 0.5 * base <= delay <= min(1.5 * base, BACKOFF_MAX)
    resp = requests.Response()
    resp.headers["Retry-After"] = "2"
    registry_http._pause(1, resp)
    resp.headers["Retry-After"] = "3600"  # a server cannot park kiln for an hour
    registry_http._pause(1, resp)
    assert slept[-2:] == [2.0, BACKOFF_MAX]


class Flaky(http.server.ThreadingHTTPServer):
    """A loopback registry that answers 500 to the first `failures` requests of each method,
    then a manifest; it counts what it was sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: list[str] = []
        body = b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, with_body: bool) -> None:
                server.seen.append(self.command)
                if server.seen.count(self.command) <= server.failures:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", OCI_MANIFEST)
                self.send_header("Docker-Content-Digest", sha256_digest(body))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self.answer(True)

            def do_HEAD(self) -> None:
                self.answer(False)

            def do_POST(self) -> None:
                self.answer(True)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(registry_http.time, "sleep", slept.append)
    return slept


def test_a_500_to_a_get_or_head_is_retried(no_backoff: list[float]) -> None:
    """A registry under load answers 500 to one read (a lease GET mid-race): the read is
    retried, once, after a backoff, and the caller sees the manifest."""
    server = Flaky(failures=1)
    try:
        registry = Registry(server.address, credentials=None)
        found = registry.manifest("kiln/small", "latest.lease")
        assert found is not None and found.media_type == OCI_MANIFEST
        assert registry.resolve("kiln/small", "latest") is not None
        assert server.seen == ["GET", "GET", "HEAD", "HEAD"]
        assert registry.counters.retries == 2 and len(no_backoff) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_that_keeps_failing_is_given_up_on_after_retries(
        no_backoff: list[float]) -> None:
    server = Flaky(failures=RETRIES)
    try:
        registry = Registry(server.address, credentials=None)
        with pytest.raises(RegistryUnavailable, match=f"server error 500 .*{RETRIES} attempts"):
            registry.manifest("kiln/small", "latest")
        assert server.seen == ["GET"] * RETRIES
        # a request that is not idempotent (a blob upload's PATCH/PUT) is sent once: a 500
        # might have come after the registry took it
        with pytest.raises(RegistryUnavailable, match="server error 500"):
            registry._request("POST", "/v2/kiln/small/x", retry=False)
        assert server.seen.count("POST") == 1
    finally:
        server.shutdown()
        server.server_close()
