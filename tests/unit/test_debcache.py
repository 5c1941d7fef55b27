""".debs fetched through kiln.mirror from a real HTTP server on loopback: a good answer lands
in the cache once, and every way a mirror can fail is one LockError naming the lock, with
nothing half-written left in the cache."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln import debcache
from kiln.lockfile import LockedPackage, LockError

DEB = b"!<arch>\n" + bytes(range(256)) * 4096  # ~1 MiB: more than one chunk
SHA = hashlib.sha256(DEB).hexdigest()


class Mirror(http.server.ThreadingHTTPServer):
    """/good.deb is DEB, /other.deb other bytes, /cut.deb promises more than it sends,
    /gone.deb is 404 and /broken.deb 500; `hits` counts the requests per path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        status, body, length = {
            "/good.deb": (200, DEB, len(DEB)),
            "/other.deb": (200, DEB[::-1], len(DEB)),
            "/cut.deb": (200, DEB[:1000], len(DEB)),
            "/broken.deb": (500, b"oops", 4),
        }.get(self.path, (404, b"", 0))
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def package(url: str, sha256: str = SHA) -> LockedPackage:
    return LockedPackage("tool", "1.0-1", "all", len(DEB), sha256, url)


def cache_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_a_good_deb_is_cached_once_and_read_from_the_cache(mirror: Mirror,
                                                           tmp_path: Path) -> None:
    pkg = package(f"{mirror.url}/good.deb")
    first = debcache.fetch_all("tiny", [pkg])
    again = debcache.fetch_all("tiny", [pkg])
    assert first == again == {SHA: debcache.cached_path(SHA)}
    assert first[SHA].read_bytes() == DEB
    assert first[SHA].stat().st_mode & 0o777 == 0o644
    assert mirror.hits == {"/good.deb": 1}
    assert cache_files(tmp_path) == [SHA]


@pytest.mark.parametrize(("path", "message"), [
    ("/gone.deb", r"^images/tiny\.lock: tool 1\.0-1 \(all\) is gone from the mirror "
                  r"\(http://\S+/gone\.deb answered 404\); run `invoke lock --refresh tiny`"),
    ("/broken.deb", r"^images/tiny\.lock: cannot fetch tool 1\.0-1: http://\S+/broken\.deb: "
                    r"answered 500 Internal Server Error$"),
    ("/cut.deb", r"^images/tiny\.lock: cannot fetch tool 1\.0-1: http://\S+/cut\.deb: the "
                 r"answer was cut: .* \(is the mirror reachable\?\)$"),
    ("/other.deb", r"^images/tiny\.lock: tool 1\.0-1 from http://\S+/other\.deb has sha256 "
                   r"[0-9a-f]{64}, but the lock says " + SHA),
])
def test_a_failing_mirror_is_one_line_and_leaves_nothing(mirror: Mirror, tmp_path: Path,
                                                         path: str, message: str) -> None:
    with pytest.raises(LockError, match=message):
        debcache.fetch_all("tiny", [package(mirror.url + path)])
    assert mirror.hits == {path: 1}
    assert cache_files(tmp_path) == []


def test_no_mirror_at_the_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/good.deb"
        with pytest.raises(LockError, match=r"^images/tiny\.lock: cannot fetch tool 1\.0-1: "
                                            r"\S+: no answer: .*refused.* \(is the mirror "
                                            r"reachable\?\)$"):
            debcache.fetch("tiny", package(url))
    assert cache_files(tmp_path) == []


def test_the_suite_index_digest_comes_through_the_same_door(mirror: Mirror) -> None:
    """nightly.fetch_index: InRelease, else Release (404), else unknown (any other failure)."""
    from kiln.nightly import fetch_index

    assert fetch_index(f"{mirror.url}/good.deb") == SHA
    assert fetch_index(f"{mirror.url}/dists/InRelease") is None  # 404 twice: unknown
    assert mirror.hits["/dists/Release"] == 1  # the fallback was asked
    assert fetch_index(f"{mirror.url}/broken.deb") is None
    assert fetch_index("http://127.0.0.1:1/InRelease") is None  # nothing answers
