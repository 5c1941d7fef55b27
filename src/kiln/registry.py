"""The one door to an OCI distribution registry (the /v2/ HTTP API), through `requests`.

`requests` because docker-py already depends on it (no new dependency), it streams a request
body from a file object (layers are never held in memory), and one Session keeps connections
alive across the dozens of small HEAD requests a publish makes.

Every HTTP or connection failure is translated here into a RegistryError whose message says
what to do. Credentials come from Docker's own store (DOCKER_CONFIG or ~/.docker/config.json,
`auths`), so `docker login` is how a person gives kiln access; Basic and Bearer-token registries
both work. TLS certificates for a registry can live where dockerd looks for them:
/etc/docker/certs.d/<host>/ca.crt.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from kiln.errors import KilnError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join(MANIFEST_TYPES)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 8 << 20  # read/write granularity when streaming a blob
MONOLITHIC_MAX = 64 << 20  # bigger blobs are sent as PATCH chunks of this size


class RegistryError(KilnError):
    """The registry refused or failed an operation."""


class RegistryUnavailable(RegistryError):
    """Nothing answers at the registry's address, or it went away mid-operation."""


class RegistryAuthError(RegistryError):
    """401/403: the credentials are missing or refused."""


class NotFound(RegistryError):
    pass


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Counters:
    """What this client sent, so callers (tests, the benchmark) can prove a no-op is a no-op."""

    requests: int = 0
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    blobs_mounted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for key, value in deltas.items():
                setattr(self, key, getattr(self, key) + value)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def docker_credentials(host: str) -> tuple[str, str] | None:
    """The user and password `docker login <host>` stored, or None."""
    path = docker_config_dir() / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise RegistryError(f"{path}: unreadable Docker config ({exc})") from None
    for key, entry in (data.get("auths") or {}).items():
        name = urlsplit(key if "://" in key else f"//{key}").netloc
        if name != host:
            continue
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
    helper = (data.get("credHelpers") or {}).get(host) or data.get("credsStore")
    if helper:
        raise RegistryError(f"{path}: credentials for {host} are kept by docker-credential-"
                            f"{helper}, which kiln does not call; log in with a config that "
                            "stores them (DOCKER_CONFIG=<dir> docker login ...)")
    return None


def parse_registry(value: str) -> tuple[str, str]:
    """'host:port' or a URL -> (base URL, host[:port]). Loopback hosts default to http."""
    text = value.strip().rstrip("/")
    if "://" not in text:
        host = text.split("/")[0]
        loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
        text = ("http://" if loopback else "https://") + host
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"{value!r} is not a registry address (host[:port] or "
                            "http(s)://host[:port])")
    return f"{parts.scheme}://{parts.netloc}", parts.netloc


class Registry:
    def __init__(self, address: str, *, timeout: float = 30.0,
                 credentials: tuple[str, str] | None = None) -> None:
        self.url, self.host = parse_registry(address)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "kiln"
        certs = Path("/etc/docker/certs.d") / self.host / "ca.crt"
        if certs.is_file():
            self.session.verify = str(certs)
        self.credentials = credentials if credentials is not None else \
            docker_credentials(self.host)
        self.counters = Counters()
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False  # the registry asked for Basic auth: send it with every request

    def __repr__(self) -> str:
        return f"Registry({self.url})"

    # transport ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, scope: str = "", ok: tuple[int, ...] = (200,),
                 what: str = "", **kwargs: Any) -> requests.Response:
        """One request, with the auth dance; non-`ok` statuses raise (404 -> NotFound)."""
        url = path if path.startswith("http") else urljoin(self.url, path)
        what = what or f"{method} {urlsplit(url).path}"
        headers = dict(kwargs.pop("headers", {}))
        for attempt in range(2):
            if self._basic and self.credentials:
                headers["Authorization"] = _basic(self.credentials)
            elif scope in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            try:
                self.counters.add(requests=1)
                resp = self.session.request(method, url, headers=headers, timeout=self.timeout,
                                            allow_redirects=method in ("GET", "HEAD"), **kwargs)
            except requests.exceptions.SSLError as exc:
                raise RegistryUnavailable(
                    f"{self.host}: TLS failed ({_short(exc)}); put the registry's CA in "
                    f"/etc/docker/certs.d/{self.host}/ca.crt or use http:// for a local "
                    "registry") from None
            except requests.exceptions.ConnectionError as exc:
                raise RegistryUnavailable(
                    f"registry {self.url} is not reachable ({_short(exc)}) during {what}; "
                    "is it running? (`invoke registry status`; nothing was tagged, re-run "
                    "to resume: blobs already sent are kept)") from None
            except requests.exceptions.Timeout:
                raise RegistryUnavailable(f"registry {self.url} did not answer {what} within "
                                          f"{self.timeout:.0f}s; re-run to resume") from None
            if resp.status_code == 401 and attempt == 0:
                scope = self._authenticate(resp, scope)
                if "data" in kwargs and hasattr(kwargs["data"], "seek"):
                    kwargs["data"].seek(0)
                continue
            break
        if resp.status_code in ok:
            return resp
        raise self._error(resp, what)

    def _authenticate(self, resp: requests.Response, scope: str) -> str:
        challenge = resp.headers.get("WWW-Authenticate", "")
        if not self.credentials:
            raise RegistryAuthError(
                f"{self.host} wants credentials and none are stored for it "
                f"(run `docker login {self.host}`, or set DOCKER_CONFIG)")
        if challenge.lower().startswith("basic"):
            self._basic = True
            return scope
        if challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params.pop("realm", "")
            try:
                token = self.session.get(realm, params=params, timeout=self.timeout,
                                         headers={"Authorization": _basic(self.credentials)})
            except requests.exceptions.RequestException as exc:
                raise RegistryUnavailable(f"token server {realm} for {self.host} is not "
                                          f"reachable ({_short(exc)})") from None
            if token.status_code != 200:
                raise RegistryAuthError(f"{self.host}: the token server refused the stored "
                                        f"credentials ({token.status_code}); run "
                                        f"`docker login {self.host}` again")
            body = token.json()
            key = str(params.get("scope", "bearer"))
            self._tokens[key] = str(body.get("token") or body.get("access_token"))
            return key
        raise RegistryAuthError(f"{self.host}: unsupported auth challenge {challenge!r}")

    def _error(self, resp: requests.Response, what: str) -> RegistryError:
        status = resp.status_code
        detail = _detail(resp)
        if status == 401:
            return RegistryAuthError(f"{self.host} refused the credentials for {what} "
                                     f"({detail}); run `docker login {self.host}` (kiln reads "
                                     "Docker's credentials)")
        if status == 403:
            return RegistryAuthError(f"{self.host} denied {what} ({detail}): the account lacks "
                                     "permission for this repository")
        if status == 404:
            return NotFound(f"{self.host}: {what}: not found ({detail})")
        if status == 405:
            return RegistryError(f"{self.host}: {what} is not allowed ({detail}); is the "
                                 "registry read-only, or is delete disabled?")
        if status >= 500:
            return RegistryUnavailable(f"{self.host}: server error {status} during {what} "
                                       f"({detail}); nothing was tagged, re-run to resume")
        return RegistryError(f"{self.host}: {what} failed with {status} ({detail})")

    # API ---------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: the registry is up and the credentials (if any) work."""
        self._request("GET", "/v2/", what="the API check (GET /v2/)")

    def resolve(self, repo: str, ref: str) -> Manifest | None:
        """HEAD a manifest by tag or digest -> its digest and type (body empty), or None."""
        try:
            resp = self._request("HEAD", f"/v2/{repo}/manifests/{ref}", scope=_pull(repo),
                                 headers={"Accept": ACCEPT}, what=f"HEAD {repo}:{ref}")
        except NotFound:
            return None
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not DIGEST_RE.match(digest):  # HEAD without a digest header: ask for the body
            got = self.manifest(repo, ref)
            return got
        return Manifest(digest, resp.headers.get("Content-Type", ""), b"")

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        """GET a manifest; a digest reference is checked against the bytes received."""
        try:
            resp = self._request("GET", f"/v2/{repo}/manifests/{ref}", scope=_pull(repo),
                                 headers={"Accept": ACCEPT}, what=f"GET {repo}:{ref}")
        except NotFound:
            return None
        body = resp.content
        digest = sha256_digest(body)
        if DIGEST_RE.match(ref) and digest != ref:
            raise RegistryError(f"{self.host}: {repo}@{ref} served a manifest whose digest is "
                                f"{digest}: the registry returned other content")
        media = resp.headers.get("Content-Type", "").split(";")[0] or \
            str(json.loads(body).get("mediaType", ""))
        return Manifest(digest, media, body)

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        resp = self._request("PUT", f"/v2/{repo}/manifests/{ref}", scope=_push(repo),
                             ok=(200, 201), data=body, headers={"Content-Type": media_type},
                             what=f"PUT {repo}:{ref}")
        got = resp.headers.get("Docker-Content-Digest", digest)
        if got != digest:
            raise RegistryError(f"{self.host}: stored {repo}:{ref} as {got}, expected {digest}")
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete by digest (removes every tag naming it). Missing is fine."""
        with contextlib.suppress(NotFound):
            self._request("DELETE", f"/v2/{repo}/manifests/{digest}", scope=_push(repo),
                          ok=(200, 202), what=f"DELETE {repo}@{digest[:19]}")

    def blob_size(self, repo: str, digest: str) -> int | None:
        try:
            resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=_pull(repo),
                                 what=f"HEAD blob {digest[:19]}")
        except NotFound:
            return None
        return int(resp.headers.get("Content-Length", "0"))

    def blob(self, repo: str, digest: str, limit: int = 16 << 20) -> bytes:
        """A small blob (JSON), checked against its digest."""
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", scope=_pull(repo),
                             what=f"GET blob {digest[:19]}", stream=True)
        data = b""
        for chunk in resp.iter_content(CHUNK):
            data += chunk
            if len(data) > limit:
                raise RegistryError(f"{self.host}: blob {digest} is larger than {limit} bytes")
        if sha256_digest(data) != digest:
            raise RegistryError(f"{self.host}: blob {digest} does not match its digest")
        return data

    def download_blob(self, repo: str, digest: str, dest: Path) -> int:
        """Stream a blob of any size to `dest`, checked against its digest; returns its size.
        Written to `<dest>.part` and renamed, so `dest` never holds a partial or wrong blob."""
        part = dest.with_name(dest.name + ".part")
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", scope=_pull(repo),
                             what=f"GET blob {digest[:19]}", stream=True)
        h, size = hashlib.sha256(), 0
        try:
            with part.open("wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except requests.exceptions.RequestException as exc:
            part.unlink(missing_ok=True)
            raise RegistryUnavailable(f"{self.host}: download of {digest[:19]} was cut after "
                                      f"{size} bytes ({_short(exc)}); re-run") from None
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if "sha256:" + h.hexdigest() != digest:
            part.unlink()
            raise RegistryError(f"{self.host}: blob {digest} does not match its digest (got "
                                f"sha256:{h.hexdigest()[:12]}..., {size} bytes): the registry "
                                "served other content; nothing was kept")
        os.replace(part, dest)
        return size

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Cross-repository mount: the blob appears in `repo` without being uploaded."""
        query = urlencode({"mount": digest, "from": source})
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/?{query}",
                             scope=_push(repo) + f" repository:{source}:pull", ok=(201, 202),
                             what=f"mount {digest[:19]} from {source}")
        if resp.status_code == 201:
            self.counters.add(blobs_mounted=1)
            return True
        self._cancel(resp)
        return False

    def upload_blob(self, repo: str, digest: str, source: Path | bytes) -> int:
        """Upload a blob unless present; returns the bytes sent. Streams files from disk:
        one PUT up to MONOLITHIC_MAX, PATCH chunks above it."""
        if self.blob_size(repo, digest) is not None:
            return 0
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", scope=_push(repo),
                             ok=(202,), what=f"start upload of {digest[:19]}")
        location = self._location(resp)
        if isinstance(source, bytes):
            self._put_final(location, digest, source, size)
        elif size <= MONOLITHIC_MAX:
            with source.open("rb") as f:
                self._put_final(location, digest, f, size)
        else:
            with source.open("rb") as f:
                offset = 0
                while offset < size:
                    length = min(MONOLITHIC_MAX, size - offset)
                    resp = self._request(
                        "PATCH", location, scope=_push(repo), ok=(202,),
                        data=_Window(f, offset, length),
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-Length": str(length),
                                 "Content-Range": f"{offset}-{offset + length - 1}"},
                        what=f"upload of {digest[:19]} ({offset}/{size} bytes)")
                    location = self._location(resp)
                    offset += length
                    self.counters.add(bytes_uploaded=length)
            self._put_final(location, digest, b"", 0)
        self.counters.add(blobs_uploaded=1)
        return size

    def _put_final(self, location: str, digest: str, data: bytes | IO[bytes], size: int) -> None:
        sep = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{sep}digest={digest}", scope=self._scope_of(location),
                      ok=(201, 204), data=data,
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(size)},
                      what=f"upload of {digest[:19]} ({size} bytes)")
        self.counters.add(bytes_uploaded=size)

    def _cancel(self, resp: requests.Response) -> None:
        with contextlib.suppress(RegistryError):  # else the session expires on its own
            self._request("DELETE", self._location(resp), ok=(200, 204, 404),
                          scope=self._scope_of(self._location(resp)), what="cancel upload")

    def _location(self, resp: requests.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.host}: upload answer without a Location header")
        return urljoin(self.url, location)

    def _scope_of(self, location: str) -> str:
        m = re.search(r"/v2/(.+)/blobs/uploads/", urlsplit(location).path)
        return _push(m.group(1)) if m else ""

    def tags(self, repo: str) -> list[str]:
        found: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list?n=1000"
        while path:
            try:
                resp = self._request("GET", path, scope=_pull(repo), what=f"tags of {repo}")
            except NotFound:
                return []
            found += resp.json().get("tags") or []
            path = _next_link(resp)
        return sorted(found)

    def repositories(self) -> list[str]:
        found: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            resp = self._request("GET", path, scope="registry:catalog:*",
                                 what="the repository list (GET /v2/_catalog)")
            found += resp.json().get("repositories") or []
            path = _next_link(resp)
        return sorted(found)

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers of a manifest, or None when the registry has no such API
        (distribution 2.8 has none: kiln then finds artifacts by their sidecar tag)."""
        try:
            resp = self._request("GET", f"/v2/{repo}/referrers/{digest}", scope=_pull(repo),
                                 headers={"Accept": OCI_INDEX}, what="referrers")
        except NotFound:
            return None
        if resp.headers.get("Content-Type", "").split(";")[0] != OCI_INDEX:
            return None
        return list(resp.json().get("manifests") or [])


class _Window:
    """A file-like view of `length` bytes of `f` from `offset`, read in CHUNK pieces."""

    def __init__(self, f: IO[bytes], offset: int, length: int) -> None:
        self.f, self.offset, self.length, self.pos = f, offset, length, 0

    def __iter__(self) -> Iterator[bytes]:
        self.f.seek(self.offset + self.pos)
        while self.pos < self.length:
            data = self.f.read(min(CHUNK, self.length - self.pos))
            if not data:
                raise RegistryError("the file being uploaded shrank mid-upload")
            self.pos += len(data)
            yield data

    def __len__(self) -> int:
        return self.length

    def seek(self, pos: int) -> None:
        self.pos = pos


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _next_link(resp: requests.Response) -> str | None:
    link = resp.headers.get("Link", "")
    m = re.match(r'<([^>]+)>;\s*rel="next"', link)
    return m.group(1) if m else None


def _detail(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except ValueError:
        text = resp.text.strip()[:200]
    return text or resp.reason or str(resp.status_code)


def _short(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or \
            "Connection reset" in text or "BrokenPipe" in text:
        return "the connection was cut"
    return text[:200]


def wait_until_up(registry: Registry, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            registry.ping()
            return
        except RegistryAuthError:
            return  # it answers; credentials are another matter
        except RegistryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
