"""The one door to an OCI distribution registry (the /v2/ HTTP API): this module's Registry
is the API kiln uses (manifests, blobs, uploads, tags), over kiln.registry_http's Transport
(credentials only to the registry's origin, bounded retries with backoff, capped reads, typed
errors; see there).

`requests` because docker-py already depends on it (no new dependency), it streams a request
body from a file object (layers are never held in memory), and one Session keeps connections
alive across the dozens of small HEAD requests a publish makes. Uploads that fail midway are
cancelled (DELETE of the upload URL) and started again in a new session, RETRIES attempts in
all; manifests and indexes are capped at MANIFEST_MAX, distribution's own limit. Credentials
come from Docker's configuration (kiln.credentials: auths, credsStore, credHelpers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from kiln.registry_http import (
    RETRIES,
    Counters,
    NotFound,
    RegistryAuthError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailable,
    Transport,
    _pause,
    _short,
    origin,
    parse_registry,
)

__all__ = ["Counters", "Manifest", "NotFound", "Registry", "RegistryAuthError", "RegistryError",
           "RegistryProtocolError", "RegistryUnavailable", "origin", "parse_registry",
           "sha256_digest", "wait_until_up"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join(MANIFEST_TYPES)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 8 << 20  # read/write granularity when streaming a blob
MONOLITHIC_MAX = 64 << 20  # bigger blobs are sent as PATCH chunks of this size
MANIFEST_MAX = 4 << 20  # manifests and indexes: distribution refuses bigger ones


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry(Transport):
    # API ---------------------------------------------------------------------------------
    def ping(self, retry: bool = True) -> None:
        """GET /v2/: the registry is up and the credentials (if any) work."""
        self._request("GET", "/v2/", what="the API check (GET /v2/)", retry=retry)

    def resolve(self, repo: str, ref: str) -> Manifest | None:
        """HEAD a manifest by tag or digest -> its digest and type (body empty), or None."""
        try:
            resp = self._request("HEAD", f"/v2/{repo}/manifests/{ref}", scope=_pull(repo),
                                 headers={"Accept": ACCEPT}, what=f"HEAD {repo}:{ref}")
        except NotFound:
            return None
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not DIGEST_RE.match(digest):  # HEAD without a digest header: ask for the body
            return self.manifest(repo, ref)
        return Manifest(digest, resp.headers.get("Content-Type", ""), b"")

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        """GET a manifest (at most MANIFEST_MAX bytes); a digest reference is checked against
        the bytes received."""
        try:
            resp = self._request("GET", f"/v2/{repo}/manifests/{ref}", scope=_pull(repo),
                                 headers={"Accept": ACCEPT}, limit=MANIFEST_MAX,
                                 what=f"GET {repo}:{ref}")
        except NotFound:
            return None
        body = resp.content
        digest = sha256_digest(body)
        if DIGEST_RE.match(ref) and digest != ref:
            raise RegistryProtocolError(f"{self.host}: {repo}@{ref} served a manifest whose "
                                        f"digest is {digest}: the registry returned other content")
        try:
            media = resp.headers.get("Content-Type", "").split(";")[0] or \
                str(json.loads(body).get("mediaType", ""))
        except (ValueError, AttributeError):
            raise RegistryProtocolError(f"{self.host}: {repo}:{ref} is not a JSON "
                                        "manifest") from None
        return Manifest(digest, media, body)

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        if len(body) > MANIFEST_MAX:
            raise RegistryProtocolError(f"{repo}:{ref}: the manifest is {len(body)} bytes, over "
                                        f"the {MANIFEST_MAX >> 20} MiB registries accept")
        # Idempotent: the same bytes under the same reference, so a lost answer is retried.
        resp = self._request("PUT", f"/v2/{repo}/manifests/{ref}", scope=_push(repo),
                             ok=(200, 201), data=body, headers={"Content-Type": media_type},
                             what=f"PUT {repo}:{ref}", retry=True)
        got = resp.headers.get("Docker-Content-Digest", digest)
        if got != digest:
            raise RegistryProtocolError(f"{self.host}: stored {repo}:{ref} as {got}, expected "
                                        f"{digest}")
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
        """A small blob (JSON), at most `limit` bytes, checked against its digest."""
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", scope=_pull(repo),
                             what=f"GET blob {digest[:19]}", limit=limit)
        if sha256_digest(resp.content) != digest:
            raise RegistryProtocolError(f"{self.host}: blob {digest} does not match its digest")
        return resp.content

    def download_blob(self, repo: str, digest: str, dest: Path) -> int:
        """Stream a blob of any size to `dest`, checked against its digest; returns its size.
        Written to `<dest>.part` and renamed, so `dest` never holds a partial or wrong blob; a
        cut download starts again (RETRIES attempts)."""
        part = dest.with_name(dest.name + ".part")
        for attempt in range(1, RETRIES + 1):
            resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", scope=_pull(repo),
                                 what=f"GET blob {digest[:19]}", stream=True)
            h, size = hashlib.sha256(), 0
            try:
                with part.open("wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                break
            except requests.exceptions.RequestException as exc:
                part.unlink(missing_ok=True)
                if attempt == RETRIES:
                    raise RegistryUnavailable(
                        f"{self.host}: download of {digest[:19]} was cut after {size} bytes "
                        f"({_short(exc)}, {RETRIES} attempts); re-run") from None
                self.counters.add(retries=1)
                _pause(attempt, None)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        if "sha256:" + h.hexdigest() != digest:
            part.unlink()
            raise RegistryProtocolError(
                f"{self.host}: blob {digest} does not match its digest (got "
                f"sha256:{h.hexdigest()[:12]}..., {size} bytes): the registry served other "
                "content; nothing was kept")
        os.replace(part, dest)
        return size

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Cross-repository mount: the blob appears in `repo` without being uploaded."""
        query = urlencode({"mount": digest, "from": source})
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/?{query}", retry=True,
                             scope=_push(repo) + f" repository:{source}:pull", ok=(201, 202),
                             what=f"mount {digest[:19]} from {source}")
        if resp.status_code == 201:
            self.counters.add(blobs_mounted=1)
            return True
        self._cancel(self._location(resp))  # the registry opened an upload instead
        return False

    def upload_blob(self, repo: str, digest: str, source: Path | bytes) -> int:
        """Upload a blob unless present; returns the bytes sent. Streams files from disk:
        one PUT up to MONOLITHIC_MAX, PATCH chunks above it. A failed attempt's upload session
        is cancelled and a new one started (RETRIES attempts in all)."""
        if self.blob_size(repo, digest) is not None:
            return 0
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        for attempt in range(1, RETRIES + 1):
            location = ""
            try:
                resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", scope=_push(repo),
                                     ok=(202,), what=f"start upload of {digest[:19]}",
                                     retry=False)
                location = self._location(resp)
                self._send_blob(repo, location, digest, source, size)
                break
            except RegistryUnavailable:
                if location:
                    self._cancel(location)
                if attempt == RETRIES:
                    raise
                self.counters.add(retries=1)
                _pause(attempt, None)
                if self.blob_size(repo, digest) is not None:
                    return 0  # the cut came after the registry stored it
            except BaseException:
                if location:  # refused, or interrupted: do not leave the session open
                    self._cancel(location)
                raise
        self.counters.add(blobs_uploaded=1)
        return size

    def _send_blob(self, repo: str, location: str, digest: str, source: Path | bytes,
                   size: int) -> None:
        if isinstance(source, bytes):
            self._put_final(location, digest, source, size)
            return
        with source.open("rb") as f:
            if size <= MONOLITHIC_MAX:
                self._put_final(location, digest, f, size)
                return
            offset = 0
            while offset < size:
                length = min(MONOLITHIC_MAX, size - offset)
                resp = self._request(
                    "PATCH", location, scope=_push(repo), ok=(202,), retry=False,
                    data=_Window(f, offset, length),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Length": str(length),
                             "Content-Range": f"{offset}-{offset + length - 1}"},
                    what=f"upload of {digest[:19]} ({offset}/{size} bytes)")
                location = self._location(resp)
                offset += length
                self.counters.add(bytes_uploaded=length)
        self._put_final(location, digest, b"", 0)

    def _put_final(self, location: str, digest: str, data: bytes | IO[bytes], size: int) -> None:
        sep = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{sep}digest={digest}", scope=self._scope_of(location),
                      ok=(201, 204), data=data, retry=False,
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(size)},
                      what=f"upload of {digest[:19]} ({size} bytes)")
        self.counters.add(bytes_uploaded=size)

    def _cancel(self, location: str) -> None:
        """DELETE an upload session kiln gives up on (best effort, one short try: a session
        nobody cancels expires on the registry's side anyway)."""
        saved, self.timeout = self.timeout, min(self.timeout, 5.0)
        try:
            with contextlib.suppress(RegistryError):
                self._request("DELETE", location, ok=(200, 202, 204, 404), retry=False,
                              scope=self._scope_of(location), what="cancel upload")
                self.counters.add(uploads_cancelled=1)
        finally:
            self.timeout = saved

    def _location(self, resp: requests.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryProtocolError(f"{self.host}: upload answer without a Location header")
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
            found += _json_list(resp, "tags", self.host)
            path = _next_link(resp)
        return sorted(found)

    def repositories(self) -> list[str]:
        found: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            resp = self._request("GET", path, scope="registry:catalog:*",
                                 what="the repository list (GET /v2/_catalog)")
            found += _json_list(resp, "repositories", self.host)
            path = _next_link(resp)
        return sorted(found)

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers of a manifest, or None when the registry has no such API
        (distribution 2.8 has none: kiln then finds artifacts by their sidecar tag)."""
        try:
            resp = self._request("GET", f"/v2/{repo}/referrers/{digest}", scope=_pull(repo),
                                 headers={"Accept": OCI_INDEX}, what="referrers",
                                 limit=MANIFEST_MAX)
        except NotFound:
            return None
        if resp.headers.get("Content-Type", "").split(";")[0] != OCI_INDEX:
            return None
        return [m for m in _json_list(resp, "manifests", self.host) if isinstance(m, dict)]


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


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _json_list(resp: requests.Response, key: str, host: str) -> list[Any]:
    try:
        items = resp.json().get(key) or []
    except (ValueError, AttributeError):
        raise RegistryProtocolError(f"{host}: {urlsplit(resp.url).path} is not the JSON the "
                                    "distribution API specifies") from None
    if not isinstance(items, list):
        raise RegistryProtocolError(f"{host}: {urlsplit(resp.url).path}: '{key}' is not a list")
    return items


def _next_link(resp: requests.Response) -> str | None:
    link = resp.headers.get("Link", "")
    m = re.match(r'<([^>]+)>;\s*rel="next"', link)
    return m.group(1) if m else None


def wait_until_up(registry: Registry, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            registry.ping(retry=False)  # this loop is the retry
            return
        except RegistryAuthError:
            return  # it answers; credentials are another matter
        except RegistryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
