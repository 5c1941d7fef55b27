"""The nightly run: refresh the locks, rebuild what changed, verify, publish, move channels, report.

    run_nightly(night)
      for each image, parents first:
        skip_if_blocked   a parent failed or was skipped: this image is skipped, and says why
        refresh_lock      resolve its packages against the mirror now (unless the mirror's
                          Release files are those the lock was resolved from)
        build             kiln.pipeline.build_image: rebuilt only when an input changed
                          (a child's inputs include its parent's fingerprint); verified
        release           publish the immutable tag, move `candidate` (and the auto-promote
                          channel): only when the channels do not already name this image
        disk              an image with the vm target: its disk, made from that container,
                          boot-verified, published, `candidate-vm` moved (kiln.nightly_disk)
      report, and the lock commit message

Each image's steps run in a try: a KilnError fails that image only. Its descendants are
skipped; unrelated images go on; its channels are never touched (they move only after a
passing verification and a publish). A disk that fails (its boot, say) fails alone: its image
is released already, and the images built on it go on. Publishing is idempotent (the immutable
tag is a function of the image), so a run interrupted half-way and run again completes without
new tags.

State: `.kiln/nightly/<image>.json` records what a night released (image ID, tag, digest,
channels), so the no-op night asks the registry nothing; without it (a fresh CI runner) one
GET of each channel tells whether it already names the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln import aptlock, lockfile, mirror, planner
from kiln.compose import compose_all
from kiln.config import Config
from kiln.context import BuildResult, Context
from kiln.errors import KilnError
from kiln.fingerprint import digest_json
from kiln.lockchanges import commit_message, input_diff, is_security, lock_diff
from kiln.lockfile import Lock
from kiln.model import ImageBase, Plan
from kiln.nightly_disk import night_disk
from kiln.pipeline import build_image, ensure_base
from kiln.records import read_json, state_dir, write_json
from kiln.release import api as publish
from kiln.release import parents as pulled_parents
from kiln.report import DiskOutcome, ImageOutcome, NightlyReport, PackageChange
from kiln.run import run

CHANNEL = "candidate"  # every verified nightly build goes here
INDEX_TIMEOUT = 20


@dataclass(frozen=True)
class Options:
    only: tuple[str, ...] | None = None  # images to process (fan-out); None: every image
    refresh: bool = True  # refresh the package locks against the mirror first
    report_dir: Path | None = None
    commit: bool = False  # commit the refreshed locks (message: the package diff)
    pull_parents: bool = False  # parents from the registry when published (kiln.release.parents)


@dataclass
class Night:
    """Mutable state of one nightly run; the rest (project, config, engine, registry, prepared
    images) is the run's Context."""

    ctx: Context
    options: Options
    outcomes: dict[str, ImageOutcome] = field(default_factory=dict)
    disks: dict[str, DiskOutcome] = field(default_factory=dict)  # images with the vm target
    lock_changes: dict[str, tuple[PackageChange, ...]] = field(default_factory=dict)
    index_hashes: dict[str, str | None] = field(default_factory=dict)  # per run: URL -> sha

    @property
    def root(self) -> Path:
        return self.ctx.project.root

    @property
    def config(self) -> Config:
        return self.ctx.config


@dataclass(frozen=True)
class Result:
    report: NightlyReport
    commit_message: str  # empty when no lock changed
    lock_files: tuple[str, ...]
    committed: bool


# the run -------------------------------------------------------------------------------------
def run_nightly(ctx: Context, options: Options) -> Result:
    started = _now()
    config = ctx.config
    config.check_channel(CHANNEL)
    night = Night(ctx, options)
    if options.pull_parents:  # the fan-out: published parents are pulled, not built
        ctx.parents = pulled_parents.source(ctx, (*night_channels(config), *config.channels))
    plans = compose_all(ctx.project)  # every definition valid, parents first
    parents = {p.image.name: _parent(p) for p in plans}
    names = dependency_order(parents)
    if options.only is not None:
        for name in options.only:
            ctx.project.image(name)  # "no such image", with the known ones
        names = [n for n in names if n in options.only]
    for name in names:
        outcome = night_image(night, name, parents)
        night.outcomes[name] = dataclasses.replace(outcome, parents=pulled_parents.outcomes(
            ctx, name, parents)) if options.pull_parents else outcome
        if "vm" in ctx.project.image(name).targets:
            night.disks[name] = night_disk(night, name, night.outcomes[name],
                                           night_channels(config))
    report = NightlyReport(started, _now(), tuple(night.outcomes[n] for n in names),
                           graph=status_graph(plans, night.outcomes.values()),
                           disks=tuple(night.disks[n] for n in names if n in night.disks))
    # A lock whose image failed stays in the working tree but out of the commit: the commit
    # records what reached the registry; the report says why the rest did not.
    failed = {n for n, o in night.outcomes.items() if o.status == "failed"}
    released = {n: c for n, c in night.lock_changes.items() if n not in failed}
    message = commit_message(released, left_out=sorted(set(night.lock_changes) & failed))
    files = tuple(lockfile.shown(n) for n in released if released[n])
    if options.report_dir is not None:
        report.write(options.report_dir)
        if message:
            (options.report_dir / "commit-message.txt").write_text(message)
    committed = bool(options.commit and message) and commit_locks(ctx.project.root, files,
                                                                  message)
    return Result(report, message, files, committed)


def night_image(night: Night, name: str, parents: Mapping[str, str | None]) -> ImageOutcome:
    started = time.monotonic()
    blocker = blocked_by(name, parents, {n: o.status for n, o in night.outcomes.items()})
    if blocker is not None:
        status = night.outcomes[blocker].status
        return ImageOutcome(name, "skipped", f"its base image '{blocker}' "
                            f"{'failed' if status == 'failed' else 'was skipped'}")
    try:
        previous = planner.last_record(night.root, name)
        if night.options.refresh:
            refresh_lock(night, name)
        built = build_image(night.ctx, name)  # verifies; raises VerifyError on a failure
        return release(night, name, built, previous, time.monotonic() - started)
    except KilnError as exc:
        night.ctx.ui.warn(f"{name}: {exc}")
        return ImageOutcome(name, "failed", first_line(str(exc)),
                            seconds=round(time.monotonic() - started, 2))
    except Exception as exc:  # a bug must not cost the other images their night either
        if os.environ.get("KILN_DEBUG"):
            raise
        night.ctx.ui.warn(f"{name}: unexpected {type(exc).__name__}: {exc} (KILN_DEBUG=1 "
                          "shows the traceback)")
        return ImageOutcome(name, "failed", first_line(f"unexpected {type(exc).__name__}: "
                                                       f"{exc}"),
                            seconds=round(time.monotonic() - started, 2))


# steps ---------------------------------------------------------------------------------------
def refresh_lock(night: Night, name: str) -> None:
    """Resolve the image's packages against the mirror as it is now; remember the diff.

    Resolving costs an `apt-get update` in a container (seconds). It is skipped when the lock
    on disk is the one resolved last time, for the same requests and base, and every Release
    file apt read then is unchanged on the mirror: apt would resolve the same .debs."""
    ctx = night.ctx
    prepared = ctx.prepared(name)
    plan = prepared.plan
    if not lockfile.requests_of(plan):
        return
    memo_path = state_dir(night.root) / "nightly" / "locks" / f"{name}.json"
    old = lockfile.read(night.root, name)
    key = _lock_key(plan, prepared.base_ref, old)
    memo = read_json(memo_path)
    if memo and memo.get("key") == key and memo.get("indexes") and all(
            night_index(night, url) == sha for url, sha in memo["indexes"].items()):
        ctx.ui.info(f"[bold]{name}[/]: lock up to date (the mirror's Release files are "
                    "unchanged since it was resolved)")
        return

    def base() -> str:
        ensure_base(ctx, prepared)  # the parent, at its current definition, built first
        return prepared.base_ref

    indexes: dict[str, str] = {}
    with ctx.ui.task(f"refresh the lock of {name} against the mirror"):
        update = aptlock.update(ctx.engine, plan, base, night.root, refresh=True,
                                indexes=indexes)
    if update.changed:
        ctx.forget(name)  # its lock is new: prepared again by the build that follows
    new = lockfile.read(night.root, name)
    if update.changed and new is not None:
        night.lock_changes[name] = lock_diff(old, new)
        for line in update.diff:
            ctx.ui.info(f"  {update.path}: {line}")
    write_json(memo_path, {"key": _lock_key(plan, prepared.base_ref, new),
                            "indexes": indexes})


def release(night: Night, name: str, built: BuildResult, previous: dict[str, Any] | None,
            seconds: float) -> ImageOutcome:
    """Publish and move the channels, unless they already name this very image."""
    channels = night_channels(night.config)
    journal_path = state_dir(night.root) / "nightly" / f"{name}.json"
    where = night.config.registry or "(embedded)"
    journal = read_json(journal_path)
    if journal and journal.get("image_id") == built.image_id and \
            journal.get("registry") == where and journal.get("channels") == list(channels):
        return ImageOutcome(name, "unchanged", "fingerprint unchanged; released by an earlier "
                            "night", tag=str(journal.get("tag", "")),
                            digest=str(journal.get("digest", "")), seconds=round(seconds, 2))
    s = night.ctx  # its registry is opened by the first request below
    repo = s.config.repository(name)
    at = {c: _image_at(s, repo, c) for c in channels}
    why = rebuild_reason(night, name, built, previous)
    if built.action == "up to date" and all(v and v[0] == built.image_id for v in at.values()):
        tag = publish.local_tag(s, name) or ""
        digest = next(v[1] for v in at.values() if v)
        write_json(journal_path, {"image_id": built.image_id, "tag": tag, "digest": digest,
                                   "registry": where, "channels": list(channels)})
        return ImageOutcome(name, "unchanged", f"fingerprint unchanged; {CHANNEL} names it",
                            tag=tag, digest=digest, seconds=round(seconds, 2))
    done = publish.publish(s, name)  # idempotent: an existing tag of this image is kept
    moved = []
    for channel in channels:
        current = s.registry.resolve(repo, channel)
        if current is not None and current.digest == done.digest:
            if (at[channel] or ("",))[0] != built.image_id:
                moved.append(channel)  # publish's auto-promote moved it just now
            continue
        move = publish.promote(s, f"{name}:{done.tag}", channel)
        if move.action != "unchanged":
            moved.append(channel)
    write_json(journal_path, {"image_id": built.image_id, "tag": done.tag,
                               "digest": done.digest, "registry": where,
                               "channels": list(channels)})
    new_inputs = night.ctx.prepared(name).inputs
    packages = input_diff((previous or {}).get("inputs", {}), new_inputs,
                          lockfile.read(night.root, name)) if previous else ()
    return ImageOutcome(name, "rebuilt", why, packages, done.tag, done.digest, tuple(moved),
                        round(seconds + done.seconds, 2))


def rebuild_reason(night: Night, name: str, built: BuildResult,
                   previous: dict[str, Any] | None) -> str:
    if built.action == "up to date":
        return ("built by an earlier run (or by hand), not yet released: published now"
                if previous is None or previous.get("fingerprint") == built.fingerprint
                else "its inputs changed")
    if previous is None:
        return "never built here"
    prepared = night.ctx.prepared(name)
    plan = prepared.plan
    found = planner.changes(previous.get("inputs", {}), dict(prepared.inputs))
    if found and all(c.kind == "base" for c in found):
        return f"its base image '{_parent(plan)}' was rebuilt"
    packages = [c for c in found if c.kind == "lock entry"]
    other = [str(c) for c in found if c.kind not in ("lock entry", "base")]
    parts = ([f"{len(packages)} package{'s' * (len(packages) != 1)} changed"] if packages
             else []) + other[:3] + ([f"+{len(other) - 3} more"] if len(other) > 3 else [])
    if any(c.kind == "base" for c in found) and _parent(plan):
        parts.append(f"base image '{_parent(plan)}' rebuilt")
    return "; ".join(parts) or "inputs changed"


def night_channels(config: Config) -> tuple[str, ...]:
    """`candidate`, and the channel verified images auto-promote to, if one is configured."""
    return tuple(dict.fromkeys(c for c in (CHANNEL, config.auto_promote) if c))


def night_index(night: Night, url: str) -> str | None:
    """sha256 of the Release file behind an InRelease URL now (InRelease, else Release)."""
    if url not in night.index_hashes:
        night.index_hashes[url] = fetch_index(url)
    return night.index_hashes[url]


def fetch_index(url: str) -> str | None:
    """The sha256 of the suite's InRelease (or Release) through the mirror door, or None when
    unknown (the lock is resolved again then, which says what is wrong)."""
    for candidate in (url, url.removesuffix("InRelease") + "Release"):
        digest = hashlib.sha256()
        try:
            with mirror.download(candidate, timeout=INDEX_TIMEOUT) as chunks:
                for chunk in chunks:
                    digest.update(chunk)
            return digest.hexdigest()
        except mirror.MirrorError as exc:
            if exc.status != 404:
                return None
    return None


def commit_locks(root: Path, files: Iterable[str], message: str) -> bool:
    """`git commit` of the refreshed lock files, through kiln.run."""
    paths = [f for f in files if (root / f).exists() or _tracked(root, f)]
    if not paths:
        return False
    run(["git", "add", "--", *paths], cwd=root)
    identity: list[str] = []
    try:
        run(["git", "config", "user.email"], cwd=root)
    except KilnError:
        identity = ["-c", "user.name=kiln nightly", "-c", "user.email=kiln-nightly@localhost"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(message)
    try:
        run(["git", *identity, "commit", "-q", "-F", f.name, "--", *paths], cwd=root)
    finally:
        os.unlink(f.name)
    return True


# pure parts ----------------------------------------------------------------------------------
def dependency_order(parents: Mapping[str, str | None]) -> list[str]:
    """By dependency level (as `plan --matrix` groups them), then by name: parents first.
    Parents outside the mapping are ignored."""
    levels: dict[str, int] = {}

    def level(name: str, path: tuple[str, ...]) -> int:
        if name in path:
            raise KilnError(f"images/{name}.yaml: its base images form a cycle: "
                            f"{' -> '.join((*path, name))}")
        if name not in levels:
            parent = parents.get(name)
            levels[name] = level(parent, (*path, name)) + 1 if parent in parents and \
                parent is not None else 0
        return levels[name]

    return sorted(parents, key=lambda name: (level(name, ()), name))


def blocked_by(name: str, parents: Mapping[str, str | None],
               statuses: Mapping[str, str]) -> str | None:
    """The nearest ancestor that failed or was skipped this night, or None."""
    parent = parents.get(name)
    while parent is not None:
        if statuses.get(parent) in ("failed", "skipped"):
            return parent
        parent = parents.get(parent)
    return None


def status_graph(plans: list[Plan], outcomes: Iterable[ImageOutcome]) -> str:
    """The images as Mermaid, coloured by what the night did to each."""
    from kiln.graph import mermaid

    return mermaid(plans, {o.image: o.status for o in outcomes})


def first_line(text: str) -> str:
    line = text.strip().split("\n")[0]
    return line if len(line) <= 300 else line[:297] + "..."


# helpers -------------------------------------------------------------------------------------
def _parent(plan: Plan) -> str | None:
    return plan.image.base.image if isinstance(plan.image.base, ImageBase) else None


def _lock_key(plan: Plan, base: str, lock: Lock | None) -> str:
    return digest_json({"requests": lockfile.requests_of(plan), "base": base,
                        "lock": lockfile.dumps(lock) if lock else None,
                        "script": aptlock.resolve_script(lockfile.requests_of(plan))})


def _image_at(s: Context, repo: str, channel: str) -> tuple[str, str] | None:
    """(image ID, manifest digest) a channel names, or None. One GET."""
    found = s.registry.manifest(repo, channel)
    if found is None:
        return None
    config = found.json.get("config") or {}
    return (str(config["digest"]), found.digest) if config.get("digest") else None


def _tracked(root: Path, path: str) -> bool:
    try:
        run(["git", "ls-files", "--error-unmatch", "--", path], cwd=root)
    except KilnError:
        return False
    return True


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["CHANNEL", "Night", "Options", "Result", "blocked_by", "commit_message",
           "dependency_order", "input_diff", "is_security", "lock_diff", "run_nightly"]
