"""Helpers for layer tests that work on minimal images: no ss, netstat, curl or procps needed.

    from kiln.testkit import http_get, listening, service_logs

    def test_serves(host, params, image):
        assert params["port"] in listening(host)
        assert http_get(host, params["port"], "/healthz").status == 200
        assert "ready" in service_logs(image)

`listening` reads /proc/net/tcp and /proc/net/tcp6 (the kernel's own tables, in every image);
`http_get` uses whichever client the image has: python3, busybox or GNU wget, or bash's
/dev/tcp; `service_logs` reads the container's output through the engine, as `docker logs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from kiln.engine import Engine

LISTEN = "0A"  # TCP_LISTEN in the kernel's tcp_states.h

# One GET, printed as "STATUS\nheader: value...\n\nbody", by the first client the image has.
_PYTHON = """
import json, sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status, "headers": dict(r.headers), "body": r.read().decode()}))
"""
_BASH = ('exec 3<>"/dev/tcp/$0/$1" && '
         'printf "GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" "$2" >&3 && cat <&3')


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str


def listening(host: Any, proto: str = "tcp") -> set[int]:
    """The ports something listens on (any address), from /proc/net/<proto>{,6}."""
    ports: set[int] = set()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        result = host.run("cat %s", table)
        if result.rc != 0:
            continue  # no IPv6 in this kernel or namespace
        ports |= parse_proc_net(result.stdout, udp=proto == "udp")
    return ports


def parse_proc_net(table: str, udp: bool = False) -> set[int]:
    """Ports in LISTEN state (for udp: every bound port) in a /proc/net/tcp-style table."""
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if udp or fields[3] == LISTEN:
            ports.add(port)
    return ports


def http_get(host: Any, port: int, path: str = "/", address: str = "127.0.0.1") -> HttpResponse:
    """GET http://address:port/path from inside the container, with whatever client it has."""
    url = f"http://{address}:{port}{path}"
    if host.run("command -v python3").rc == 0:
        result = host.run("python3 -c %s %s", _PYTHON, url)
        if result.rc == 0:
            data = json.loads(result.stdout)
            return HttpResponse(int(data["status"]),
                                {k.lower(): v for k, v in data["headers"].items()}, data["body"])
        pytest.fail(f"GET {url} from inside the container failed: {result.stderr.strip()}")
    for wget in ("busybox wget", "wget"):
        if host.run(f"command -v {wget.split()[0]}").rc == 0:
            # -S prints the response headers on stderr; -O - the body on stdout
            result = host.run(f"{wget} -q -S -O - %s", url)
            return _from_wget(url, result.rc, result.stdout, result.stderr)
    result = host.run("bash -c %s %s %s %s", _BASH, address, str(port), path)
    if result.rc != 0:
        pytest.fail(f"GET {url} from inside the container failed (exit {result.rc}; the image "
                    f"has no python3, wget or bash): {result.stderr.strip()}")
    return parse_http(result.stdout)


def _from_wget(url: str, rc: int, out: str, err: str) -> HttpResponse:
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    status_lines = [i for i, line in enumerate(lines) if line.startswith("HTTP/")]
    if not status_lines:
        pytest.fail(f"GET {url} from inside the container failed (wget exit {rc}): {err.strip()}")
    first = status_lines[-1]  # the last response, after any redirect
    headers = {}
    for line in lines[first + 1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return HttpResponse(int(lines[first].split()[1]), headers, out)


def parse_http(raw: str) -> HttpResponse:
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.split("\n")
    headers = {}
    for header in header_lines:
        key, _, value = header.partition(":")
        headers[key.strip().lower()] = value.strip()
    return HttpResponse(int(status_line.split()[1]), headers, body)


def service_logs(image: Any, tail: int = 200) -> str:
    """What the container under test wrote to stdout and stderr (its service's log)."""
    if not image.container:  # a booted VM: its services log to the journal
        pytest.fail(f"service_logs reads a container's output; {image.name} runs as a "
                    f"{image.target} here (read the journal: host.run('journalctl -u <unit>'))")
    return engine().container_logs(image.container, tail=tail)


_engine: Engine | None = None


def engine() -> Engine:
    """The engine of the container under test, connected once per suite: here, below the
    kiln.testing backend that shares it, so that the two modules do not import each other."""
    global _engine
    if _engine is None:
        _engine = Engine.connect()
    return _engine
