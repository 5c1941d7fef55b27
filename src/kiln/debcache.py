"""Fetching locked .debs outside the build: verified against the lock, cached by checksum.

The cache is content-addressed (<cache>/debs/sha256/<hex>), shared by every checkout of every
project of the user: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln. A file
is only ever put in place (atomically) after its sha256 matched the lock, so whatever is in
the cache is trusted without hashing it again. Downloads go through kiln.mirror, the door to
package mirrors.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kiln import mirror
from kiln.lockfile import LockedPackage, LockError

PARALLEL = 4


def cache_dir() -> Path:
    if env := os.environ.get("KILN_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kiln"


def cached_path(sha256: str) -> Path:
    return cache_dir() / "debs" / "sha256" / sha256


def fetch_all(image: str, packages: Iterable[LockedPackage]) -> dict[str, Path]:
    """sha256 -> verified file, for every package; downloads the missing ones in parallel."""
    wanted = {p.sha256: p for p in packages}
    missing = [p for sha, p in wanted.items() if not cached_path(sha).is_file()]
    if missing:
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda p: fetch(image, p), missing))
    return {sha: cached_path(sha) for sha in wanted}


def fetch(image: str, pkg: LockedPackage) -> Path:
    target = cached_path(pkg.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    where = f"images/{image}.lock"
    digest = hashlib.sha256()
    try:
        with mirror.download(pkg.url) as chunks, tempfile.NamedTemporaryFile(
                dir=target.parent, delete=False, prefix=".part-") as out:
            try:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
            except BaseException:
                os.unlink(out.name)
                raise
    except mirror.MirrorError as exc:
        if exc.status in (404, 410):
            raise LockError(f"{where}: {pkg.name} {pkg.version} ({pkg.arch}) is gone from the "
                            f"mirror ({pkg.url} answered {exc.status}); run `invoke lock "
                            f"--refresh {image}` to lock a version the mirror has") from None
        hint = "" if exc.status else " (is the mirror reachable?)"
        raise LockError(f"{where}: cannot fetch {pkg.name} {pkg.version}: {exc}{hint}") from None
    if digest.hexdigest() != pkg.sha256:
        os.unlink(out.name)
        raise LockError(f"{where}: {pkg.name} {pkg.version} from {pkg.url} has sha256 "
                        f"{digest.hexdigest()}, but the lock says {pkg.sha256} (the mirror "
                        "serves other bytes under that name; refresh the lock and review it)")
    os.chmod(out.name, 0o644)
    os.replace(out.name, target)
    return target
