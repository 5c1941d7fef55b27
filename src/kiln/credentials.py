"""Registry credentials, found the way Docker finds them, so `docker login` is how a person
gives kiln access (ECR, GCR/Artifact Registry and ACR logins included).

Docker's order, from $DOCKER_CONFIG/config.json (default ~/.docker/config.json):
1. `credHelpers[<host>]`: that helper keeps this registry's credentials;
2. else `credsStore`: one helper keeps every registry's credentials;
3. else `auths[<host>]`: `auth` (base64 user:password) or `username`/`password` in the file.
A helper is the program `docker-credential-<name>`, run as `docker-credential-<name> get` with
the registry's address on stdin; it answers `{"ServerURL", "Username", "Secret"}` as JSON, or
exits non-zero saying "credentials not found" (then there are none: anonymous). A Username of
`<token>` means Secret is an identity (refresh) token for the registry's token server, as ACR
and `docker login` with OAuth registries store them.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kiln.errors import CommandError, KilnError
from kiln.run import query

IDENTITY_TOKEN_USER = "<token>"  # Docker's marker: the secret is a refresh token
HELPER_TIMEOUT = 60.0  # a helper may call its cloud (aws ecr get-login-password...)


class CredentialsError(KilnError):
    """Docker's configuration or a credential helper could not give credentials."""


def docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _host_of(key: str) -> str:
    return urlsplit(key if "://" in key else f"//{key}").netloc


def docker_credentials(host: str) -> tuple[str, str] | None:
    """(user, secret) for registry `host` ("name[:port]"), or None for anonymous access."""
    path = docker_config_dir() / "config.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise CredentialsError(f"{path}: unreadable Docker config ({exc}); fix or move it "
                               "(kiln reads Docker's credentials from it)") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: not a Docker config (a JSON object is expected)")
    helpers = data.get("credHelpers") or {}
    helper = next((str(v) for k, v in helpers.items() if _host_of(str(k)) == host), None) \
        if isinstance(helpers, dict) else None
    helper = helper or (str(data["credsStore"]) if data.get("credsStore") else None)
    if helper:
        return helper_credentials(helper, host, path)
    for key, entry in (data.get("auths") or {}).items():
        if _host_of(str(key)) != host or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return IDENTITY_TOKEN_USER, str(entry["identitytoken"])
        if entry.get("auth"):
            try:
                text = base64.b64decode(str(entry["auth"])).decode()
            except ValueError:
                raise CredentialsError(f"{path}: auths.{key}.auth is not base64 of "
                                       "user:password; run `docker login` again") from None
            user, _, password = text.partition(":")
            return user, password
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
    return None


def helper_credentials(helper: str, host: str, config: Path) -> tuple[str, str] | None:
    """Ask `docker-credential-<helper> get` for `host`, exactly as Docker does."""
    program = f"docker-credential-{helper}"
    try:
        # The helper gets our whole environment, as under Docker: it needs AWS_PROFILE,
        # GOOGLE_APPLICATION_CREDENTIALS, AZURE_* and the like, which kiln.run scrubs by default.
        code, out, err = query([program, "get"], data=host, timeout=HELPER_TIMEOUT,
                               env=os.environ)
    except CommandError as exc:
        raise CredentialsError(f"{config}: credentials for {host} are kept by {program}: "
                               f"{exc} (install it, or log in without a helper)") from None
    if code != 0:
        said = (out.strip() or err.strip()).splitlines()
        if said and "credentials not found" in said[0].lower():
            return None  # Docker's "not logged in": anonymous
        raise CredentialsError(f"{program} get {host} failed with exit code {code} "
                               f"({said[0][:200] if said else 'no output'}); "
                               f"check it with `echo {host} | {program} get`")
    try:
        answer = json.loads(out)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(f"{program} get {host} did not answer Docker's JSON "
                               '({"Username": ..., "Secret": ...})') from None
    return user, secret
