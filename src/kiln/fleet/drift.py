"""What changed in a running instance against its image's signed file manifest.

A container: `docker diff` names the candidates (the engine knows what its copy-on-write layer
holds, so nothing unchanged is read); the candidates still present are stat'ed and hashed
inside the container, three execs per 2,000 paths. A VM (over SSH, kiln.fleet.remote): every file is
listed and hashed, since a disk has no diff. Either way, the mutable paths the manifest declares
are ignored, and packages are compared through dpkg's status file.

Nothing is judged unless its image is signed by the project key (attest.trusted).
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kiln.context import Context
from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.fleet.attest import signed_manifest, trusted
from kiln.fleet.manifest import DPKG_STATUS, Entry, FileManifest, dpkg_packages
from kiln.release.errors import TrustError

BATCH = 2000  # paths per exec inside the container: well under ARG_MAX
# Three execs per batch whatever its size (a fork per file would dominate): one `stat` of every
# path (raw mode in hex, uid, gid, size, path; absent paths print nothing), one `sha256sum` of
# the regular files, one `readlink` loop over the symlinks. Paths come from `docker diff`, so
# they start with '/' and are never taken for options.
STAT = 'stat -c "%f %u %g %s %n" "$@" 2>/dev/null; exit 0'
HASH = 'sha256sum "$@" 2>/dev/null; exit 0'
READLINK = 'for p do readlink "$p" || echo; done'


class DriftError(KilnError):
    """The instance cannot be judged (unsigned image, no manifest, unreachable)."""


@dataclass
class Drift:
    """An instance against its image: what was added, changed, deleted, (un)installed."""

    instance: str
    repository: str
    digest: str
    added: list[str] = field(default_factory=list)
    changed: list[tuple[str, list[str]]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)  # packages, name=version
    removed: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)  # name: old -> new
    ignored: int = 0  # changes under mutable paths
    checked: int = 0  # paths stat'ed and hashed
    seconds: float = 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.added or self.changed or self.deleted or self.installed
                    or self.removed or self.upgraded)

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "repository": self.repository, "digest": self.digest,
                "drifted": self.drifted, "added": self.added,
                "changed": [{"path": p, "differences": d} for p, d in self.changed],
                "deleted": self.deleted,
                "packages": {"installed": self.installed, "removed": self.removed,
                             "changed": self.upgraded},
                "ignored": self.ignored, "checked": self.checked,
                "seconds": round(self.seconds, 3)}

    def to_prom(self) -> str:
        """Prometheus text exposition (for node_exporter's textfile collector)."""
        base = f'instance="{_esc(self.instance)}",repository="{_esc(self.repository)}"'
        lines = [
            "# HELP kiln_drift 1 when the instance differs from its signed image, else 0.",
            "# TYPE kiln_drift gauge",
            f'kiln_drift{{{base},digest="{self.digest}"}} {int(self.drifted)}',
            "# HELP kiln_drift_paths Paths that differ from the image, by kind.",
            "# TYPE kiln_drift_paths gauge",
            *(f'kiln_drift_paths{{{base},kind="{k}"}} {n}' for k, n in
              (("added", len(self.added)), ("changed", len(self.changed)),
               ("deleted", len(self.deleted)))),
            "# HELP kiln_drift_packages Packages that differ from the image, by kind.",
            "# TYPE kiln_drift_packages gauge",
            *(f'kiln_drift_packages{{{base},kind="{k}"}} {n}' for k, n in
              (("installed", len(self.installed)), ("removed", len(self.removed)),
               ("changed", len(self.upgraded)))),
            "# HELP kiln_drift_check_seconds How long the check took.",
            "# TYPE kiln_drift_check_seconds gauge",
            f"kiln_drift_check_seconds{{{base}}} {self.seconds:.3f}",
            "# HELP kiln_drift_check_timestamp_seconds When the check ran.",
            "# TYPE kiln_drift_check_timestamp_seconds gauge",
            f"kiln_drift_check_timestamp_seconds{{{base}}} {time.time():.0f}",
        ]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# comparing -----------------------------------------------------------------------------------
def compare(manifest: FileManifest, observed: Mapping[str, Entry | None], drift: Drift, *,
            complete: bool = False) -> None:
    """Fill `drift` from what was observed (path -> entry, None when gone). `complete`: the
    observation lists every path, so anything of the manifest not in it was deleted."""
    for path in sorted(observed):
        if manifest.is_mutable(path):
            drift.ignored += 1
            continue
        expected, found = manifest.entries.get(path), observed[path]
        if found is None:
            if expected is not None:
                drift.deleted.append(path)
        elif expected is None:
            drift.added.append(path)
        elif differences := expected.differences(found):
            drift.changed.append((path, differences))
    if complete:
        drift.deleted += sorted(p for p in manifest.entries
                                if p not in observed and not manifest.is_mutable(p))


def compare_packages(manifest: FileManifest, now: Mapping[str, str], drift: Drift) -> None:
    before = manifest.packages
    drift.installed = sorted(f"{n}={v}" for n, v in now.items() if n not in before)
    drift.removed = sorted(f"{n}={v}" for n, v in before.items() if n not in now)
    drift.upgraded = sorted(f"{n}: {before[n]} -> {v}" for n, v in now.items()
                            if n in before and before[n] != v)


def entry_from_stat(line: str) -> Entry:
    """An Entry (without its hash or link target) from one line of STAT's output."""
    parts = line.split(" ", 4)
    try:
        raw, uid, gid, size, path = (int(parts[0], 16), int(parts[1]), int(parts[2]),
                                     int(parts[3]), parts[4])
    except (IndexError, ValueError):
        raise DriftError(f"unexpected stat output {line!r}") from None
    kind = ("file" if stat.S_ISREG(raw) else "dir" if stat.S_ISDIR(raw) else
            "symlink" if stat.S_ISLNK(raw) else "char" if stat.S_ISCHR(raw) else
            "block" if stat.S_ISBLK(raw) else "fifo" if stat.S_ISFIFO(raw) else "other")
    return Entry(path, kind, stat.S_IMODE(raw), uid, gid, size if kind == "file" else 0)


# containers ----------------------------------------------------------------------------------
def signed_reference(s: Context, engine: Engine, container: Mapping[str, Any]) -> tuple[str, str]:
    """(repository, manifest digest) of the container's image in the project's registry."""
    name = str(container.get("Name", "")).lstrip("/") or str(container.get("Id", ""))[:12]
    image_id = str(container["Image"])
    info = engine.inspect_image(image_id)
    refs = list(info.get("RepoDigests") or [])
    configured = str((container.get("Config") or {}).get("Image", ""))
    if "@sha256:" in configured:
        refs.insert(0, configured)
    for ref in refs:
        where, _, digest = ref.partition("@")
        host, _, repo = where.partition("/")
        repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
        if host == s.registry.host and repo.startswith(s.config.namespace + "/"):
            return repo, digest
    raise DriftError(f"{name}: its image {image_id[:19]} was not pulled by digest from "
                     f"{s.registry.host}; kiln judges only images this project published and "
                     "signed (deploy it with `kiln deploy` or `kiln pull`)")


def judge_container(s: Context, ref: str) -> Drift:
    """Drift of one container against its signed image; DriftError when it cannot judge."""
    started = time.monotonic()
    engine = s.engine
    info = engine.inspect_container(ref)
    repo, digest = signed_reference(s, engine, info)
    try:
        trust = trusted(s, repo, digest)
        manifest = signed_manifest(s, repo, digest)
    except TrustError as exc:
        raise DriftError(f"refusing to judge {ref}: {exc}") from None
    if trust.image_id != info["Image"]:
        raise DriftError(f"refusing to judge {ref}: it runs {str(info['Image'])[:19]}, but "
                         f"the signed image {digest[:19]} is {trust.image_id[:19]}")
    drift = Drift(str(info.get("Name", ref)).lstrip("/"), repo, digest)
    observed: dict[str, Entry | None] = {}
    look: list[str] = []
    for kind, path in engine.diff(ref):
        if manifest.is_mutable(path):
            drift.ignored += 1
        elif kind == "D":
            observed[path] = None
        else:
            look.append(path)
    observed |= stat_paths(engine, ref, look)
    drift.checked = len(look)
    compare(manifest, observed, drift)
    if DPKG_STATUS in observed:  # dpkg's database changed: which packages did?
        compare_packages(manifest, container_packages(engine, ref), drift)
    drift.seconds = time.monotonic() - started
    return drift


def stat_paths(engine: Engine, ref: str, paths: Iterable[str]) -> dict[str, Entry | None]:
    """Type, mode, owner, size and sha256 of paths inside a running container, as root."""
    todo = list(paths)
    out: dict[str, Entry | None] = {}
    for i in range(0, len(todo), BATCH):
        batch = todo[i:i + BATCH]
        found = {e.path: e for e in map(entry_from_stat, _sh(engine, ref, STAT, batch))}
        files = [p for p, e in found.items() if e.type == "file"]
        sums = {}
        for line in _sh(engine, ref, HASH, files) if files else []:
            digest, _, path = line.partition("  ")
            sums[path] = digest
        links = [p for p, e in found.items() if e.type == "symlink"]
        read = _sh(engine, ref, READLINK, links) if links else []
        if len(read) != len(links):  # a target with a newline in it: say so, do not guess
            raise DriftError(f"cannot read the symlinks inside {ref}: {len(links)} links, "
                             f"{len(read)} targets (a target with a newline?)")
        targets = dict(zip(links, read, strict=True))
        for path in batch:
            e = found.get(path)
            out[path] = None if e is None else replace(
                e, sha256=sums.get(path, "?") if e.type == "file" else "",
                link=targets.get(path, ""))
    return out


def _sh(engine: Engine, ref: str, script: str, args: list[str]) -> list[str]:
    result = engine.exec(ref, ["/bin/sh", "-c", script, "sh", *args], user="0")
    if result.exit_code != 0:
        raise DriftError(f"cannot stat or hash files inside {ref} (exit {result.exit_code}): "
                         f"{result.stderr.decode(errors='replace').strip()[:200]} (the image "
                         "needs /bin/sh, stat, sha256sum and readlink)")
    return result.stdout.decode(errors="surrogateescape").splitlines()


def container_packages(engine: Engine, ref: str) -> dict[str, str]:
    result = engine.exec(ref, ["/bin/cat", DPKG_STATUS], user="0")
    return dpkg_packages(result.stdout.decode(errors="replace")) if result.exit_code == 0 else {}
