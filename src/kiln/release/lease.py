"""A lease recorded in the registry, serializing the writers of one tag.

A registry has no compare-and-swap, so a writer of `<tag>` first puts `<tag>.lease` naming
itself, waits SETTLE seconds (longer than any contender takes between reading "free" and writing
its own claim), and reads it back: whoever is still named holds it. The claim is written inside
the cleanup that deletes it, so an interrupt between the two never leaves it behind; a lease
whose holder died expires after LEASE_TTL, and one left by a dead process of this very user and
host is taken over at once.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kiln.context import Context
from kiln.registry import OCI_MANIFEST, RegistryError, sha256_digest
from kiln.release.errors import PublishError
from kiln.release.oci import EMPTY, EMPTY_TYPE
from kiln.release.session import checkpoint
from kiln.signing import canonical_json

LEASE_TYPE = "application/vnd.dev.kiln.lease.v1+json"
SETTLE = 1.0  # seconds a lease claim must survive before it counts
LEASE_TTL = 120.0  # a holder that died frees its lease after this long
LEASE_WAIT = 180.0  # how long a writer waits for a busy lease before giving up


@dataclass(frozen=True)
class Holder:
    owner: str
    expires: float
    who: str  # user@host
    pid: int

    def stale(self, who: str) -> bool:
        """Expired, or held by a process of ours (same user and host) that is gone."""
        if self.expires < time.time():
            return True
        if self.who != who or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


@dataclass
class Lease:
    s: Context
    repo: str
    tag: str
    owner: str
    expires: float

    def check(self) -> None:
        """Still ours, with time to spare: otherwise stop before writing anything."""
        holder = holder_of(self.s, self.repo, self.tag)
        if holder is None or holder.owner != self.owner or time.time() > self.expires - SETTLE:
            raise PublishError(f"lost the lease on {self.repo}:{self.tag.removesuffix('.lease')}"
                               " (took too long); nothing was changed, re-run")


def holder_of(s: Context, repo: str, tag: str) -> Holder | None:
    found = s.registry.manifest(repo, tag)
    if found is None:
        return None
    try:
        notes = found.json.get("annotations") or {}
        return Holder(str(notes["dev.kiln.lease.owner"]), float(notes["dev.kiln.lease.expires"]),
                      str(notes.get("dev.kiln.lease.who", "?")),
                      int(notes.get("dev.kiln.lease.pid", "0")))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _claim(s: Context, owner: str, expires: float) -> bytes:
    return canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": LEASE_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY), "size": len(EMPTY)},
        "layers": [],
        "annotations": {"dev.kiln.lease.owner": owner, "dev.kiln.lease.expires": f"{expires:.3f}",
                        "dev.kiln.lease.who": s.who, "dev.kiln.lease.pid": str(os.getpid())}})


@contextmanager
def lease(s: Context, repo: str, name: str,
          precheck: Callable[[], None] | None = None) -> Iterator[Lease]:
    """Exclusive right to write tag `name` of `repo`, recorded in the registry as <name>.lease.

    While another writer holds it, `precheck` runs before each new try: it raises as soon as
    the outcome is known (the tag now names other content), so losers fail fast."""
    tag = f"{name}.lease"
    owner = uuid.uuid4().hex
    waited_for = ""
    deadline = time.monotonic() + LEASE_WAIT
    s.registry.upload_blob(repo, sha256_digest(EMPTY), EMPTY)
    claims: list[str] = []  # digests of every claim this writer put: all deleted on the way out
    try:
        while True:
            holder = holder_of(s, repo, tag)
            if holder is None or holder.stale(s.who):
                expires = time.time() + LEASE_TTL
                body = _claim(s, owner, expires)
                claims.append(sha256_digest(body))  # before the PUT: an interrupt mid-PUT
                s.registry.put_manifest(repo, tag, body, OCI_MANIFEST)  # still cleans it up
                checkpoint("lease-claimed")
                time.sleep(SETTLE)
                holder = holder_of(s, repo, tag)
                if holder is not None and holder.owner == owner:
                    break
            else:
                waited_for = f"{holder.who} pid {holder.pid}"
            if precheck is not None:
                precheck()
            if time.monotonic() > deadline:
                raise PublishError(f"{repo}:{name} is being written by {waited_for or 'another'} "
                                   f"kiln (lease {tag}); waited {LEASE_WAIT:.0f}s, try again "
                                   "later")
            time.sleep(random.uniform(0.1, 0.5))
        yield Lease(s, repo, tag, owner, expires)
    finally:
        # A second Ctrl-C or a SIGTERM lands after the cleanup, not in the middle of it.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for digest in claims:  # each claim is a unique manifest (random owner): ours only
                with contextlib.suppress(RegistryError):  # else it expires on its own
                    s.registry.delete_manifest(repo, digest)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
