"""The engine's unix socket, spoken to directly: the part of the engine door (kiln.engine)
that answers before docker-py is loaded.

A no-op build asks the engine one question; docker-py (with requests) takes longer to import
than the whole answer. So the few read-only questions the fast paths ask go to the socket as
plain HTTP/1.0 requests, with only the standard library's socket and json loaded. Anything
else, and any engine not on a unix socket, goes through docker-py in kiln.engine.
"""

from __future__ import annotations

import json
import os
import socket

TYPE_CHECKING = False  # typing costs ~6 ms to import: the no-op answer does without it
if TYPE_CHECKING:
    from typing import Any

# kiln.errors is imported where an error is raised: its dataclasses cost more than the answer.

UNREACHABLE = "(start dockerd, or point DOCKER_HOST at an engine)"


def quote(text: str) -> str:
    """Percent-encode everything but unreserved characters (urllib.parse costs an import)."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
    return "".join(chr(b) if chr(b) in safe else f"%{b:02X}" for b in text.encode())


def unix_socket() -> str | None:
    """The engine's unix socket path, when DOCKER_HOST names one (or is unset)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def reachable() -> None:
    """Raise EngineError unless the engine's socket accepts a connection."""
    path = unix_socket()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(path or "")
    except OSError:
        from kiln.errors import EngineError

        raise EngineError(f"cannot reach the Docker engine: no engine is listening "
                          f"{UNREACHABLE}") from None


def inspect_image(ref: str) -> dict[str, Any] | None:
    """`docker image inspect ref`, or None when there is no such image."""
    found = get(f"/images/{quote(ref)}/json")
    return dict(found) if found is not None else None


def images_named(repositories: list[str]) -> list[dict[str, Any]]:
    """Every image with a name in these repositories (IDs and RepoTags), in one request."""
    filters = quote(json.dumps({"reference": repositories}))
    return list(get(f"/images/json?filters={filters}") or [])


def get(url: str) -> Any:
    """GET `url` of the engine API: its JSON answer, or None on a 404.

    HTTP/1.0 without keep-alive: the engine closes the connection after the answer, so
    reading to the end is the whole protocol (no chunked encoding, no http.client).
    """
    path = unix_socket() or ""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(path)
            sock.sendall(f"GET {url} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(1 << 16):
                data += chunk
    except OSError as exc:
        from kiln.errors import EngineError

        raise EngineError(f"cannot reach the Docker engine at {path}: {exc.strerror or exc} "
                          f"{UNREACHABLE}") from None
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status == [b"404"]:
        return None
    if status != [b"200"]:
        from kiln.errors import EngineError

        first = head.split(b"\r\n", 1)[0].decode(errors="replace")
        raise EngineError(f"the engine answered GET {url} with {first}: "
                          f"{body[:200].decode(errors='replace').strip()}")
    return json.loads(body)
