"""The nightly report: what an on-call engineer reads in the morning.

One model, three renderings: a rich table on the terminal, Markdown and JSON files for CI to
attach. Pure: no engine, no registry. An image with the vm target has its disk's outcome too
(`disks`), shown as the row right after its image's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["unchanged", "rebuilt", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("rebuilt", "failed", "skipped", "unchanged")


@dataclass(frozen=True)
class PackageChange:
    name: str
    old: str | None  # None: newly installed
    new: str | None  # None: no longer installed
    security: bool = False  # the new version came from the security suite

    def __str__(self) -> str:
        mark = " [security]" if self.security else ""
        return f"{self.name}: {self.old or '(new)'} -> {self.new or '(removed)'}{mark}"


@dataclass(frozen=True)
class ParentOutcome:
    """How a fan-out runner got a parent image: pulled (verified, by digest) or built."""

    image: str
    action: str  # pulled, built, up to date (already in the engine)
    seconds: float = 0.0
    bytes: int = 0  # pulled from the registry (compressed)
    digest: str = ""  # the pulled manifest

    def __str__(self) -> str:
        if self.action == "pulled":
            return (f"parent {self.image} pulled ({self.bytes / 1e6:.1f} MB in "
                    f"{self.seconds:.1f}s, {self.digest[:19]})")
        return f"parent {self.image} {self.action}" + (
            f" ({self.seconds:.1f}s)" if self.action == "built" else "")


@dataclass(frozen=True)
class ImageOutcome:
    image: str
    status: Status
    reason: str = ""  # why it rebuilt, failed or was skipped
    packages: tuple[PackageChange, ...] = ()
    tag: str = ""  # the new immutable tag
    digest: str = ""
    channels: tuple[str, ...] = ()  # channels moved to the new digest
    seconds: float = 0.0
    parents: tuple[ParentOutcome, ...] = ()  # with --pull-parents: how each parent was had


@dataclass(frozen=True)
class DiskOutcome:
    """What the night did to the VM disk of an image with the vm target: `rebuilt` is a new disk
    booted, verified and published; `failed` fails this disk only (its image is released)."""

    image: str
    status: Status
    reason: str = ""  # why it was made (and how it was verified), failed or skipped
    tag: str = ""  # the disk's immutable tag (<container tag>-vm)
    digest: str = ""
    channels: tuple[str, ...] = ()  # disk channel tags moved to it (candidate-vm, ...)
    seconds: float = 0.0


@dataclass(frozen=True)
class NightlyReport:
    started: str
    finished: str
    outcomes: tuple[ImageOutcome, ...] = field(default_factory=tuple)
    graph: str = ""  # Mermaid: the images coloured by status (kiln.graph)
    disks: tuple[DiskOutcome, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        return self.count("failed") + self.count("failed", disks=True) > 0

    @property
    def changed(self) -> bool:
        return any(o.status != "unchanged" for o in self.outcomes) or \
            any(d.status != "unchanged" for d in self.disks)

    def count(self, status: Status, disks: bool = False) -> int:
        return sum(o.status == status for o in (self.disks if disks else self.outcomes))

    def summary(self) -> str:
        def counts(disks: bool) -> str:
            return ", ".join(f"{self.count(s, disks)} {s}" for s in STATUSES
                             if self.count(s, disks))

        images = counts(False) or "no images"
        return f"{images}; disks: {counts(True)}" if self.disks else images

    def disk(self, image: str) -> DiskOutcome | None:
        return next((d for d in self.disks if d.image == image), None)

    def beside(self) -> list[tuple[str, ImageOutcome | DiskOutcome]]:
        """Every image, each followed by its disk: (row label, outcome)."""
        out: list[tuple[str, ImageOutcome | DiskOutcome]] = []
        for o in self.outcomes:
            out.append((o.image, o))
            disk = self.disk(o.image)
            if disk is not None:
                out.append((f"{o.image} (vm disk)", disk))
        shown = {o.image for o in self.outcomes}
        out += [(f"{d.image} (vm disk)", d) for d in self.disks if d.image not in shown]
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        data["failed"] = self.failed
        return data

    def to_markdown(self) -> str:
        lines = [f"# kiln nightly: {self.summary()}", "",
                 f"Started {self.started}, finished {self.finished}.", "",
                 "| image | status | tag | digest | channels | why |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for label, o in self.beside():
            lines.append(f"| {label} | {o.status} | {o.tag or '-'} | "
                         f"{o.digest[:19] if o.digest else '-'} | "
                         f"{', '.join(o.channels) or '-'} | {_cell(o.reason) or '-'} |")
        for o in self.outcomes:
            if not o.packages:
                continue
            lines += ["", f"## {o.image}: package changes", ""]
            lines += [f"- {'**security** ' if p.security else ''}`{p.name}`: "
                      f"{p.old or '(new)'} -> {p.new or '(removed)'}" for p in o.packages]
        parents = [f"- {o.image}: {p}" for o in self.outcomes for p in o.parents]
        if parents:
            lines += ["", "## Parent images", "", *parents]
        if self.graph:
            lines += ["", "## Images", "", "```mermaid", self.graph.rstrip("\n"), "```"]
        return "\n".join(lines) + "\n"

    def rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for label, o in self.beside():
            packages = "\n".join(str(p) for p in (*o.packages, *o.parents)) \
                if isinstance(o, ImageOutcome) else ""
            out.append((label, o.status, o.tag or "-", o.digest[7:19] if o.digest else "-",
                        ", ".join(o.channels) or "-", "\n".join(filter(None, (o.reason,
                                                                              packages)))))
        return out

    def headline(self) -> str:
        """One line for the end of the run; the no-op night says so plainly."""
        if not self.changed:
            n, d = len(self.outcomes), len(self.disks)
            return (f"nothing changed: {n} image{'s' * (n != 1)} unchanged"
                    + (f" (and {d} disk{'s' * (d != 1)})" if d else "")
                    + ", nothing built, no new tag, nothing pushed")
        return f"kiln nightly: {self.summary()}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NightlyReport:
        outcomes = tuple(
            ImageOutcome(**{**o, "packages": tuple(PackageChange(**p) for p in o["packages"]),
                            "channels": tuple(o["channels"]),
                            "parents": tuple(ParentOutcome(**p) for p in o.get("parents") or ())})
            for o in data.get("outcomes") or ())
        disks = tuple(DiskOutcome(**{**d, "channels": tuple(d["channels"])})
                      for d in data.get("disks") or ())
        return cls(str(data["started"]), str(data["finished"]), outcomes,
                   str(data.get("graph") or ""), disks)

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        md, js = folder / "nightly.md", folder / "nightly.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return md, js


def merge(reports: list[NightlyReport]) -> NightlyReport:
    """One report from the per-image reports of a fanned-out run (a CI matrix).

    An image reported by several jobs keeps its most informative outcome: failed over
    rebuilt over skipped over unchanged (a level job that only reused a parent reports the
    parent unchanged; the job that built it reports it rebuilt)."""
    rank = {"failed": 3, "rebuilt": 2, "skipped": 1, "unchanged": 0}
    best: dict[str, ImageOutcome] = {}
    disks: dict[str, DiskOutcome] = {}
    for report in reports:
        for o in report.outcomes:
            if o.image not in best or rank[o.status] > rank[best[o.image].status]:
                best[o.image] = o
        for d in report.disks:
            if d.image not in disks or rank[d.status] > rank[disks[d.image].status]:
                disks[d.image] = d
    started = min((r.started for r in reports), default="")
    finished = max((r.finished for r in reports), default="")
    return NightlyReport(started, finished, tuple(best[name] for name in sorted(best)),
                         disks=tuple(disks[name] for name in sorted(disks)))


def read(path: Path) -> NightlyReport:
    return NightlyReport.from_json(json.loads(path.read_text()))


COLUMNS = ("image", "status", "tag", "digest", "channels", "why / package changes")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")
