"""What a night changed in the locks: package diffs (old -> new, security marked) and the ready
commit message for the refreshed lock files. Pure: no engine, no registry, no mirror."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kiln import lockfile
from kiln.lockfile import Lock, LockedPackage
from kiln.report import PackageChange

SECURITY_MARKS = ("debian-security", "security.debian.org", "-security/")


def is_security(pkg: LockedPackage) -> bool:
    """The .deb comes from a security archive (Debian's pool is `debian-security`)."""
    return any(mark in pkg.url for mark in SECURITY_MARKS)


def lock_diff(old: Lock | None, new: Lock) -> tuple[PackageChange, ...]:
    """Package by package, old version -> new version; security updates marked."""
    before = {(p.name, p.arch): p for p in (old.packages if old else ())}
    after = {(p.name, p.arch): p for p in new.packages}
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a and b and (a.version, a.sha256) == (b.version, b.sha256):
            continue
        out.append(PackageChange(_label(*key), a.version if a else None,
                                 b.version if b else None, bool(b and is_security(b))))
    return tuple(out)


def input_diff(old: Mapping[str, str], new: Mapping[str, str],
               lock: Lock | None) -> tuple[PackageChange, ...]:
    """The package changes between two builds' recorded inputs (`lock.<layer>.<pkg>:<arch>`).
    Robust to a lock refreshed by an earlier, interrupted night."""
    def packages(named: Mapping[str, str]) -> dict[tuple[str, str], str]:
        out = {}
        for key, value in named.items():
            if key.startswith("lock."):
                pkg, _, arch = key.split(".", 2)[2].rpartition(":")
                out[(pkg, arch)] = value  # "<version> <sha256>"
        return out

    def version(value: str | None) -> str | None:
        return value.split(" ")[0] if value else None

    before, after = packages(old), packages(new)
    security = {(p.name, p.arch) for p in (lock.packages if lock else ()) if is_security(p)}
    return tuple(PackageChange(_label(*key), version(before.get(key)), version(after.get(key)),
                               key in security and key in after)
                 for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key))


def commit_message(changes: Mapping[str, tuple[PackageChange, ...]],
                   left_out: Iterable[str] = ()) -> str:
    """A ready commit message for the refreshed locks: a subject, then the package diff.
    `left_out`: images whose refreshed lock is not committed because the image failed."""
    changed = {image: c for image, c in changes.items() if c}
    if not changed:
        return ""
    count = sum(len(c) for c in changed.values())
    security = sum(p.security for c in changed.values() for p in c)
    subject = (f"locks: {count} package update{'s' * (count != 1)} for "
               f"{', '.join(sorted(changed))}" + (f" ({security} security)" if security else ""))
    body = ["Refreshed by `kiln nightly` against the mirror; every package change below is",
            "what the rebuilt images now install.", ""]
    for image in sorted(changed):
        body.append(f"{lockfile.shown(image)}:")
        body += [f"  {p}" for p in changed[image]]
        body.append("")
    left = [lockfile.shown(image) for image in left_out]
    if left:
        body.append(f"Not in this commit (their images failed tonight): {', '.join(left)}")
    return subject + "\n\n" + "\n".join(body).rstrip() + "\n"


def _label(name: str, arch: str) -> str:
    return name if arch in ("all", "amd64", "arm64") else f"{name}:{arch}"
