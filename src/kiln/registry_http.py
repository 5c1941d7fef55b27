"""The registry client's transport (kiln.registry is the API; together they are the one door
to registries): requests, credentials, redirects, retries, capped reads, typed errors.

What it promises, whatever the network or the registry does:
- Credentials (Basic, or a Bearer token) go only to the registry's own origin (scheme, host,
  port): never to another origin a `Location` (a blob redirected to storage, an upload URL) or a
  `Link` names, and never to a token server over plain http, unless the registry itself is
  plain-http loopback. Redirects are followed here, one hop at a time, for that reason.
- Idempotent requests (GET, HEAD, DELETE, PUT of a manifest, a mount) are retried on 429, 5xx,
  timeouts and cut connections, RETRIES attempts in all, with exponential backoff and jitter
  (or the server's Retry-After).
- Answers are read with a cap (JSON_MAX unless the caller says), so a hostile registry cannot
  make kiln hold gigabytes; a cut answer is a transient failure, retried like a 503.
- Every failure is one of the RegistryError family, with a message saying what to do.
"""

from __future__ import annotations

import base64
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from kiln.credentials import IDENTITY_TOKEN_USER, CredentialsError, docker_credentials
from kiln.errors import KilnError

JSON_MAX = 4 << 20  # any other JSON answer: tag lists, catalog pages, tokens, errors
RETRIES = 4  # attempts of an idempotent request or of an upload, the first included
BACKOFF = 0.2  # seconds before the second attempt; doubles each time, +-50% jitter
BACKOFF_MAX = 5.0
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})
REDIRECTS = 5
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class RegistryError(KilnError):
    """The registry refused or failed an operation."""


class RegistryUnavailable(RegistryError):
    """Nothing answers at the registry's address, it went away mid-operation, or it kept
    failing (5xx, 429, timeouts) after RETRIES attempts."""


class RegistryAuthError(RegistryError):
    """401/403: the credentials are missing or refused, or may not be sent where asked."""


class RegistryProtocolError(RegistryError):
    """The registry answered something kiln will not take: too big, wrong digest, a redirect
    loop, a missing header."""


class NotFound(RegistryError):
    pass


class _Retry(Exception):
    """Internal: a transient failure of one attempt (the message is the user-facing reason)."""

    def __init__(self, reason: str, resp: requests.Response | None = None) -> None:
        super().__init__(reason)
        self.resp = resp


@dataclass
class Counters:
    """What this client sent, so callers (tests, the benchmark) can prove a no-op is a no-op."""

    requests: int = 0
    retries: int = 0
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    blobs_mounted: int = 0
    uploads_cancelled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for key, value in deltas.items():
                setattr(self, key, getattr(self, key) + value)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: what credentials are tied to."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


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


class Transport:
    """Sends requests to one registry; kiln.registry.Registry adds the API."""

    def __init__(self, address: str, *, timeout: float = 30.0,
                 credentials: tuple[str, str] | None = None) -> None:
        self.url, self.host = parse_registry(address)
        self.origin = origin(self.url)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "kiln"
        certs = Path("/etc/docker/certs.d") / self.host / "ca.crt"
        if certs.is_file():
            self.session.verify = str(certs)
        try:
            self.credentials = credentials if credentials is not None else \
                docker_credentials(self.host)
        except CredentialsError as exc:  # one family of errors for everything registry
            raise RegistryAuthError(str(exc)) from None
        self.counters = Counters()
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False  # the registry asked for Basic auth: send it with every request

    def __repr__(self) -> str:
        return f"Registry({self.url})"

    @property
    def plain_loopback(self) -> bool:
        return self.origin[0] == "http" and self.origin[1] in LOOPBACK

    def _request(self, method: str, path: str, *, scope: str = "", ok: tuple[int, ...] = (200,),
                 what: str = "", retry: bool | None = None, limit: int = JSON_MAX,
                 stream: bool = False, data: Any = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        """One request: auth dance, redirects, retries of idempotent ones, the answer read (up
        to `limit` bytes) unless `stream`; non-`ok` statuses raise (404 -> NotFound)."""
        url = urljoin(self.url, path)
        what = what or f"{method} {urlsplit(url).path}"
        attempts = RETRIES if (method in IDEMPOTENT if retry is None else retry) else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self._send(method, url, scope, data, dict(headers or {}), what)
                if resp.status_code in RETRY_STATUS:
                    _read(resp, JSON_MAX, what, self.host)
                    raise _Retry(f"it answered {resp.status_code} ({_detail(resp)})", resp)
                if not stream or resp.status_code not in ok:
                    _read(resp, limit if resp.status_code in ok else JSON_MAX, what, self.host)
                break
            except _Retry as exc:
                if attempt == attempts:
                    if exc.resp is not None:
                        raise self._error(exc.resp, what, attempts) from None
                    tried = f", {attempts} attempts" if attempts > 1 else ""
                    raise RegistryUnavailable(
                        f"registry {self.url} is not reachable ({exc}{tried}) during {what}; "
                        "is it running? (`kiln registry status`; nothing was tagged, re-run to "
                        "resume: blobs already sent are kept)") from None
                self.counters.add(retries=1)
                _pause(attempt, exc.resp)
                if hasattr(data, "seek"):
                    data.seek(0)
        if resp.status_code in ok:
            return resp
        raise self._error(resp, what)

    def _send(self, method: str, url: str, scope: str, data: Any, headers: dict[str, str],
              what: str) -> requests.Response:
        """Send, answering one 401 with credentials, and follow GET/HEAD redirects hop by hop
        so that credentials are added only where the registry's origin is the target."""
        for _hop in range(REDIRECTS + 1):
            resp = self._once(method, url, scope, data, headers)
            if resp.status_code == 401 and self._same_origin(url):
                resp.close()
                scope = self._authenticate(resp, scope)
                if hasattr(data, "seek"):
                    data.seek(0)
                resp = self._once(method, url, scope, data, headers)
            if resp.status_code not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return resp
            target = resp.headers.get("Location")
            resp.close()
            if not target:
                raise RegistryProtocolError(f"{self.host}: {what} was redirected nowhere "
                                            "(no Location header)")
            url = urljoin(url, target)
            if self.origin[0] == "https" and urlsplit(url).scheme != "https":
                raise RegistryProtocolError(f"{self.host}: {what} was redirected to plain "
                                            f"http ({origin(url)[1]}); refused")
        raise RegistryProtocolError(f"{self.host}: {what} was redirected more than "
                                    f"{REDIRECTS} times; refused")

    def _once(self, method: str, url: str, scope: str, data: Any,
              headers: dict[str, str]) -> requests.Response:
        headers = {k: v for k, v in headers.items() if k != "Authorization"}
        if self._same_origin(url):  # credentials never leave the registry's origin
            if self._basic and self.credentials:
                headers["Authorization"] = _basic(self.credentials)
            elif scope in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        try:
            self.counters.add(requests=1)
            return self.session.request(method, url, headers=headers, timeout=self.timeout,
                                        data=data, allow_redirects=False, stream=True)
        except requests.exceptions.SSLError as exc:
            raise RegistryUnavailable(
                f"{self.host}: TLS failed ({_short(exc)}); put the registry's CA in "
                f"/etc/docker/certs.d/{self.host}/ca.crt or use http:// for a local "
                "registry") from None
        except requests.exceptions.Timeout:
            raise _Retry(f"no answer within {self.timeout:.0f}s") from None
        except requests.exceptions.RequestException as exc:
            raise _Retry(_short(exc)) from None

    def _same_origin(self, url: str) -> bool:
        return origin(url) == self.origin

    def _authenticate(self, resp: requests.Response, scope: str) -> str:
        challenge = resp.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            if not self.credentials:
                raise RegistryAuthError(
                    f"{self.host} wants credentials and none are stored for it "
                    f"(run `docker login {self.host}`, or set DOCKER_CONFIG)")
            self._basic = True
            return scope
        if not challenge.lower().startswith("bearer"):
            raise RegistryAuthError(f"{self.host}: unsupported auth challenge {challenge!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        realm_origin = origin(realm)
        if realm_origin[0] != "https" and not (
                realm_origin[0] == "http" and self.plain_loopback
                and realm_origin[1] in LOOPBACK):
            raise RegistryAuthError(
                f"{self.host}: its token server {realm!r} is not https; kiln sends "
                "credentials only over https (or to a plain-http registry on loopback)")
        token = self._token(realm, params)
        key = str(params.get("scope", "bearer"))
        self._tokens[key] = self._tokens[scope] = token
        return scope

    def _token(self, realm: str, params: dict[str, str]) -> str:
        """A bearer token from the token server: with an identity token (POST, OAuth2 refresh
        grant, as Docker does), Basic credentials, or anonymously."""
        try:
            if self.credentials and self.credentials[0] == IDENTITY_TOKEN_USER:
                form = {"grant_type": "refresh_token", "refresh_token": self.credentials[1],
                        "client_id": "kiln", **params}
                resp = self.session.post(realm, data=form, timeout=self.timeout,
                                         allow_redirects=False)
            else:
                auth = {"Authorization": _basic(self.credentials)} if self.credentials else {}
                resp = self.session.get(realm, params=params, headers=auth,
                                        timeout=self.timeout, allow_redirects=False, stream=True)
            _read(resp, JSON_MAX, "the token request", self.host)
        except requests.exceptions.RequestException as exc:
            raise RegistryUnavailable(f"token server {origin(realm)[1]} for {self.host} is not "
                                      f"reachable ({_short(exc)})") from None
        if resp.status_code != 200:
            if not self.credentials:
                raise RegistryAuthError(
                    f"{self.host} wants credentials and none are stored for it "
                    f"(run `docker login {self.host}`, or set DOCKER_CONFIG)")
            raise RegistryAuthError(f"{self.host}: the token server refused the stored "
                                    f"credentials ({resp.status_code}); run "
                                    f"`docker login {self.host}` again")
        try:
            body = resp.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise RegistryProtocolError(f"{self.host}: the token server's answer holds no "
                                        "token") from None

    def _error(self, resp: requests.Response, what: str, attempts: int = 1) -> RegistryError:
        status = resp.status_code
        detail = _detail(resp)
        tried = f", {attempts} attempts" if attempts > 1 else ""
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
        if status == 429:
            return RegistryUnavailable(f"{self.host}: rate limited during {what}{tried}; "
                                       "nothing was tagged, re-run later to resume")
        if status >= 500:
            return RegistryUnavailable(f"{self.host}: server error {status} during {what} "
                                       f"({detail}{tried}); nothing was tagged, re-run to resume")
        return RegistryError(f"{self.host}: {what} failed with {status} ({detail})")


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


def _pause(attempt: int, resp: requests.Response | None) -> None:
    """Sleep before attempt `attempt + 1`: exponential backoff with jitter, or the server's
    Retry-After (seconds) when it says, both capped at BACKOFF_MAX."""
    delay = BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
    after = resp.headers.get("Retry-After", "") if resp is not None else ""
    if after.strip().isdigit():
        delay = float(after)
    time.sleep(min(delay, BACKOFF_MAX))


def _read(resp: requests.Response, limit: int, what: str, host: str) -> None:
    """Read a (streamed) answer into resp.content, refusing more than `limit` bytes; a cut
    body is a transient failure (_Retry)."""
    if resp.request is not None and resp.request.method == "HEAD":
        resp._content = b""  # no body: its Content-Length is the size of what was asked about
        return
    length = resp.headers.get("Content-Length", "")
    too_big = RegistryProtocolError(f"{host}: the answer to {what} is over {limit >> 10} KiB; "
                                    "refused (a registry's manifests and lists are far smaller)")
    if length.isdigit() and int(length) > limit:
        resp.close()
        raise too_big
    data = bytearray()
    try:
        for chunk in resp.iter_content(1 << 16):
            data += chunk
            if len(data) > limit:
                resp.close()
                raise too_big
    except requests.exceptions.RequestException as exc:
        resp.close()
        raise _Retry(f"the answer was cut after {len(data)} bytes ({_short(exc)})") from None
    resp._content = bytes(data)


def _detail(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError):
        text = resp.text.strip()[:200]
    return text or resp.reason or str(resp.status_code)


def _short(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or \
            "Connection reset" in text or "BrokenPipe" in text or "IncompleteRead" in text:
        return "the connection was cut"
    return text[:200]
