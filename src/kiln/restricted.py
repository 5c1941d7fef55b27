"""The restricted runtime profile: how hardened platforms run containers, as a verified promise.

Kubernetes' "restricted" Pod Security Standard with readOnlyRootFilesystem, or any platform
that runs images the same way, gives a container: a read-only root filesystem, writable only
where the image says (its `tmpfs` paths, its `volumes`); every capability dropped except the
ones it declares (`capabilities`); no-new-privileges; and a user it can prove is not root,
which needs a numeric `uid:gid` (runAsNonRoot cannot check a name).

An image passes the profile when it starts (and becomes healthy) that way and its suite
passes in that container. An image may opt out with `unrestricted: <reason>`; the reason is
recorded. The verification record's `profile` says which profile the image passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kiln.model import Plan, RuntimeConfig

RESTRICTED = "restricted"
DEFAULT = "default"  # the image's own runtime configuration, as `docker run` gives it
NUMERIC_USER_RE = re.compile(r"^([0-9]+)(?::([0-9]+))?$")
# The size caps memory a runaway writer can take; an emptyDir has a limit too.
TMPFS_OPTIONS = "rw,nosuid,nodev,size=64m"


class RestrictedUnfit(Exception):
    """The image cannot even be started under the profile (a named user, uid 0)."""


@dataclass(frozen=True)
class Profile:
    """How the container is created: the user and the engine's host options."""

    name: str
    user: str | None = None
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    drop_all: bool = False
    no_new_privileges: bool = False

    def host_options(self) -> dict[str, Any] | None:
        """docker-py's create_host_config arguments, or None for the engine's defaults."""
        if self.name == DEFAULT:
            return None
        options: dict[str, Any] = {"read_only": self.read_only,
                                   "tmpfs": {path: TMPFS_OPTIONS for path in self.tmpfs}}
        if self.drop_all:
            options["cap_drop"] = ["ALL"]
        if self.cap_add:
            options["cap_add"] = list(self.cap_add)
        if self.no_new_privileges:
            options["security_opt"] = ["no-new-privileges"]
        return options

    def describe(self) -> str:
        """One line a reader can paste as `docker run` options."""
        if self.name == DEFAULT:
            return "the image's own configuration"
        parts = ["--read-only"] if self.read_only else []
        parts += [f"--tmpfs {p}" for p in self.tmpfs]
        parts += ["--cap-drop ALL"] if self.drop_all else []
        parts += [f"--cap-add {c}" for c in self.cap_add]
        parts += ["--security-opt no-new-privileges"] if self.no_new_privileges else []
        parts += [f"--user {self.user}"] if self.user else []
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "user": self.user, "read_only": self.read_only,
                "tmpfs": list(self.tmpfs), "cap_drop": ["ALL"] if self.drop_all else [],
                "cap_add": list(self.cap_add), "no_new_privileges": self.no_new_privileges,
                "options": self.describe()}


def expected(plan: Plan) -> str:
    """The profile the image must pass.

    Restricted for a service (an entrypoint: what platforms run) unless it opted out with a
    reason; for a toolbox image (python, a base) when it runs as a numeric non-root user, as
    the samples do: one that runs as root is a build or debug tool, not something a
    restricted platform runs.
    """
    if plan.image.unrestricted:
        return DEFAULT
    if plan.config.entrypoint is not None:
        return RESTRICTED
    try:
        numeric_user(plan.config)
    except RestrictedUnfit:
        return DEFAULT
    return RESTRICTED


def numeric_user(config: RuntimeConfig) -> str:
    """The image's `uid:gid`, or RestrictedUnfit saying why a restricted platform refuses it."""
    user = config.user or ""
    m = NUMERIC_USER_RE.match(user)
    if not user or (m and int(m.group(1)) == 0):
        raise RestrictedUnfit("the image runs as root (set `user: <uid>:<gid>` in a layer, "
                              "as layers/user does)")
    if not m:
        raise RestrictedUnfit(f"the image runs as user '{user}', a name: a restricted "
                              "platform (runAsNonRoot) cannot prove a name is not root "
                              "(write the numeric uid:gid, like `user: 10001:10001`)")
    if m.group(2) is None:
        raise RestrictedUnfit(f"the image's user '{user}' has no group: the engine would "
                              f"pick one from /etc/passwd (write `{user}:<gid>`)")
    return user


def restricted(plan: Plan) -> Profile:
    """The restricted profile for this image (RestrictedUnfit when it cannot have one)."""
    config = plan.config
    return Profile(RESTRICTED, user=numeric_user(config), read_only=True,
                   tmpfs=tuple(config.tmpfs), cap_add=tuple(config.capabilities),
                   drop_all=True, no_new_privileges=True)


def opt_out(plan: Plan) -> dict[str, Any]:
    """What the record keeps of an image held to the default profile only, and why."""
    if plan.image.unrestricted:
        return {"name": DEFAULT, "opted_out": plan.image.unrestricted,
                "where": str(plan.image.where("unrestricted"))}
    try:
        numeric_user(plan.config)
        why = "not checked"
    except RestrictedUnfit as exc:
        why = str(exc)
    return {"name": DEFAULT, "not_held": f"not a service, and {why}"}


__all__ = ["DEFAULT", "RESTRICTED", "Profile", "RestrictedUnfit", "expected", "numeric_user",
           "opt_out", "restricted"]
