"""Resolving an image's packages into its lock, with apt itself, in a throwaway container.

apt resolves (alternatives, virtual packages, versions, what the base already has) exactly as
the build would, so the lock is what apt would install. One container of the image's base
runs `apt-get update` once, then `apt-get install --print-uris` per layer with that layer's
packages added to those of the layers before it: each layer locks the .debs that its packages
add. `Acquire::ForceHash=SHA256` makes apt print each .deb's sha256 (by default it prints MD5).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from kiln import lockfile
from kiln.engine import Engine
from kiln.errors import DefinitionError, KilnError, Problem
from kiln.lockfile import Lock, LockedPackage, LockError, LockSection
from kiln.model import BootstrapBase, Plan, Where

INDEX_RE = re.compile(r"^'(?P<url>[^']+/InRelease)' (?P<file>\S+) \d+\s*$")
SUM_RE = re.compile(r"^(?P<sha>[0-9a-f]{64})  (?P<file>\S+)$")
URI_RE = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})$")
MARK = "### kiln section "
CANDIDATES = "### kiln candidates for "
UNKNOWN_RE = re.compile(r"^E: (?:Unable to locate package |Package '?)([a-z0-9][a-z0-9+.-]+)'?"
                        r"(?: has no installation candidate)?\s*$", re.M)
ATTEMPTS, KILLED = 3, 137


@dataclass(frozen=True)
class LockUpdate:
    image: str
    path: str
    changed: bool
    diff: tuple[str, ...]


def resolve_script(requests: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    # The Release files apt reads, with their sha256: what the resolution depended on, so that
    # a later refresh can tell from the mirror alone whether resolving again could change it.
    lines = ["set -eu", "export DEBIAN_FRONTEND=noninteractive",
             "apt-get update --print-uris 2>/dev/null | grep \"/InRelease' \" || true",
             "apt-get update -qq -o Acquire::Retries=3 >/dev/null",
             "(cd /var/lib/apt/lists && sha256sum -- *Release 2>/dev/null) || true"]
    asked: list[str] = []
    for i, (_, packages) in enumerate(requests):
        asked += [p for p in packages if p not in asked]
        lines.append(f"echo '{MARK}{i}'")
        lines.append("apt-get install -qq -y --print-uris --no-install-recommends "
                     "-o Acquire::ForceHash=SHA256 -- " + " ".join(map(shlex.quote, asked)))
    return "\n".join(lines) + "\n"


def parse_uris(output: str, requests: tuple[tuple[str, tuple[str, ...]], ...],
               image: str) -> Lock:
    """Each section's .debs: those its cumulative install adds to the sections before it."""
    per_section: list[dict[str, LockedPackage]] = [{} for _ in requests]
    current = -1
    for line in output.splitlines():
        if line.startswith(MARK):
            current = int(line[len(MARK):])
            continue
        if m := URI_RE.match(line.strip()):
            if current < 0:
                continue
            name, version, arch = m["file"].removesuffix(".deb").split("_")
            per_section[current][m["sha"]] = LockedPackage(
                name, unquote(version), arch, int(m["size"]), m["sha"], m["url"])
    seen: set[str] = set()
    sections = []
    for (layer, packages), found in zip(requests, per_section, strict=True):
        new = tuple(p for sha, p in sorted(found.items(), key=lambda kv: kv[1].name)
                    if sha not in seen)
        seen.update(found)
        sections.append(LockSection(layer, packages, new))
    return Lock(image, tuple(sections))


def index_state(output: str) -> dict[str, str]:
    """InRelease URL -> sha256 of the Release file apt read for it (InRelease, or Release when
    the repository has no InRelease), from the output of resolve_script."""
    files: dict[str, str] = {}
    sums: dict[str, str] = {}
    for line in output.splitlines():
        if m := INDEX_RE.match(line.strip()):
            files[m["url"]] = m["file"]
        elif m := SUM_RE.match(line.strip()):
            sums[m["file"]] = m["sha"]
    out = {}
    for url, name in files.items():
        sha = sums.get(name) or sums.get(name.removesuffix("InRelease") + "Release")
        if sha:
            out[url] = sha
    return out


def resolve(engine: Engine, plan: Plan, base_ref: str,
            indexes: dict[str, str] | None = None) -> Lock:
    """Run apt in a container of the image's base and read the lock from its answer.

    The container has the host's network, so a repository on the host's loopback (a local
    mirror, the tests' repository) is reachable as it is from the host, which fetches the
    .debs. `indexes`, when given, receives index_state() of the run."""
    requests = lockfile.requests_of(plan)
    if not requests:
        return Lock(plan.image.name, ())
    argv = ["/bin/sh", "-c", resolve_script(requests)]
    for _ in range(ATTEMPTS):
        # 137 is SIGKILL from outside (a shared engine's cleanup, the OOM killer): try again.
        ran = engine.run_once(base_ref, argv, network="host")
        code, output = ran.exit_code, ran.output
        if code != KILLED:
            break
    if code != 0 and (unknown := UNKNOWN_RE.findall(output)):
        raise unknown_packages(engine, plan, base_ref, unknown)
    if code != 0:
        tail = "\n".join(f"  | {line}" for line in output.splitlines()[-15:])
        raise LockError(f"images/{plan.image.name}.yaml: apt could not resolve the image's "
                        f"packages in a container of {base_ref} (exit {code}); is every "
                        f"package name right, and is the mirror reachable?\n{tail}")
    if indexes is not None:
        indexes.update(index_state(output))
    return parse_uris(output, requests, plan.image.name)


def unknown_packages(engine: Engine, plan: Plan, base_ref: str,
                     names: list[str]) -> DefinitionError:
    """One line per package apt does not know: where it is declared, and the closest name the
    base's apt sources have (asked of apt in a second container: this is the error path)."""
    names = list(dict.fromkeys(names))
    script = ["apt-get update -qq >/dev/null 2>&1 || true"]
    for name in names:
        script.append(f"echo {shlex.quote(CANDIDATES + name)}; "
                      f"apt-cache pkgnames {shlex.quote(name[:3])} || true")
    output = engine.run_once(base_ref, ["/bin/sh", "-c", "\n".join(script)],
                             network="host").output
    known: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(CANDIDATES):
            current = line[len(CANDIDATES):]
            known[current] = []
        elif current is not None and line.strip():
            known[current].append(line.strip())
    suite = _suite(plan)
    problems = []
    for name in names:
        close = difflib.get_close_matches(name, known.get(name, []), n=1, cutoff=0.6)
        where = _declared(plan, name)
        problems.append(Problem(where.path if where else plan.image.path,
                                where.line if where else 0,
                                f"package '{name}' not in {suite}",
                                f"did you mean {close[0]}?" if close else
                                "check the name: `apt-cache search` in a container of the base"))
    return DefinitionError(problems)


def _declared(plan: Plan, name: str) -> Where | None:
    for layer in plan.layers:
        for i, package in enumerate(layer.packages):
            if re.split(r"[=:]", package, maxsplit=1)[0] == name:
                return layer.where(f"packages[{i}]")
    return None


def _suite(plan: Plan) -> str:
    current: Plan | None = plan
    while current is not None:
        if isinstance(current.image.base, BootstrapBase):
            return current.image.base.suite
        current = current.parent
    return "the base's apt sources"


def update(engine: Engine, plan: Plan, base_ref: Callable[[], str], root: Path, *,
           refresh: bool, indexes: dict[str, str] | None = None) -> LockUpdate:
    """Write the image's lock when it is missing, stale, or a refresh is asked for."""
    image = plan.image.name
    old = lockfile.read(root, image)
    if not refresh:
        try:
            lockfile.check(plan, old)
            if old is not None or not lockfile.requests_of(plan):
                return LockUpdate(image, lockfile.shown(image), False, ())
        except LockError:
            pass
    if not lockfile.requests_of(plan):
        if old is not None:
            lockfile.lock_path(root, image).unlink()
            return LockUpdate(image, lockfile.shown(image), True, tuple(
                lockfile.diff(old, Lock(image, ()))))
        return LockUpdate(image, lockfile.shown(image), False, ())
    new = resolve(engine, plan, base_ref(), indexes)
    changed = old is None or lockfile.dumps(old) != lockfile.dumps(new)
    if changed:
        lockfile.write(root, new)
    return LockUpdate(image, lockfile.shown(image), changed, tuple(lockfile.diff(old, new)))


__all__ = ["KilnError", "LockUpdate", "parse_uris", "resolve", "resolve_script", "update"]
