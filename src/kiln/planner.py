"""What a build would do, and why: per image build or skip, the inputs that changed, and the
images below that must rebuild because of it.

Every build records the named inputs of the image it produced (kiln.fingerprint.inputs) in the
state folder: .kiln/inputs/<fingerprint>.json, and .kiln/inputs/last/<image>.json for the last
one built or reused. `plan` compares today's inputs with that record, input by input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiln.compose import compose_all
from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.fingerprint import digest_json, image_ref, inputs
from kiln.load import Project
from kiln.model import ImageBase, Plan
from kiln.records import state_dir, write_json

Action = Literal["build", "skip"]


@dataclass(frozen=True)
class Change:
    kind: str  # layer file, lock entry, base, definition key, param, kiln
    input: str  # the input's name (kiln.fingerprint.inputs)
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class ImagePlan:
    image: str
    fingerprint: str
    ref: str
    level: int  # 0 for images on an outside base, parent's level + 1 otherwise
    parent: str | None
    action: Action = "skip"
    reason: str = ""
    changes: list[Change] = field(default_factory=list)
    rebuilds_below: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "action": self.action, "reason": self.reason,
                "fingerprint": self.fingerprint, "ref": self.ref, "level": self.level,
                "parent": self.parent, "rebuilds_below": self.rebuilds_below,
                "changes": [{"kind": c.kind, "input": c.input, "detail": c.detail}
                            for c in self.changes]}


# records -------------------------------------------------------------------------------------
def _inputs_dir(root: Path) -> Path:
    return state_dir(root) / "inputs"


def record(root: Path, image: str, fp: str, named: dict[str, str], image_id: str) -> None:
    """Remember the inputs of a built (or reused) image, atomically."""
    data = {"image": image, "fingerprint": fp, "image_id": image_id, "inputs": named}
    for path in (_inputs_dir(root) / f"{fp}.json", _inputs_dir(root) / "last" / f"{image}.json"):
        write_json(path, data, indent=1)


def last_record(root: Path, image: str) -> dict[str, Any] | None:
    path = _inputs_dir(root) / "last" / f"{image}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise KilnError(f"{path}: unreadable build record ({exc}); delete it") from None
    return data if isinstance(data, dict) else None


# comparing inputs ----------------------------------------------------------------------------
def changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """Why `new` differs from `old`, one Change per input that was added, removed or changed."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b or name.startswith("composed."):
            continue  # composed.* follow from the inputs that are listed
        out.append(_explain(name, a, b))
    if not out and old != new:
        out.append(Change("definition key", "composed", "the composed plan changed"))
    return out


def _explain(name: str, a: str | None, b: str | None) -> Change:
    kind, _, rest = name.partition(".")
    state = "added" if a is None else "removed" if b is None else "changed"
    if kind == "file":
        what = "content" if a and b and a.split()[1] != b.split()[1] else "mode"
        detail = f"{rest} {state}" if state != "changed" else f"{rest}: {what} changed"
        if what == "mode" and a and b and state == "changed":
            detail += f" ({a.split()[0]} -> {b.split()[0]})"
        return Change("layer file", name, detail)
    if kind == "lock":
        layer, _, pkg = rest.partition(".")
        old_v, new_v = (a or "").split(" ")[0], (b or "").split(" ")[0]
        if state == "changed":
            detail = f"{pkg} {old_v} -> {new_v}" + (" (same version, other .deb)"
                                                   if old_v == new_v else "")
        else:
            detail = f"{pkg} {state} ({old_v or new_v}, layer {layer})"
        return Change("lock entry", name, detail)
    if kind == "base":
        return Change("base", name, f"{_short(a)} -> {_short(b)}")
    if kind == "param":
        return Change("param", name, f"{rest}: {a} -> {b}")
    if kind == "layer":
        layer, _, key = rest.partition(".")
        return Change("definition key", name, f"layers/{layer}/layer.yaml: {key} {state}")
    if kind == "image":
        return Change("definition key", name, f"image {rest} {state}"
                      + (f": {a} -> {b}" if state == "changed" and len(f"{a}{b}") < 60 else ""))
    return Change("kiln", name, f"{name}: {a} -> {b}")


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    kind, _, rest = value.partition(" ")
    return f"{kind} {rest.split('@')[0]}@{rest.split('@')[-1][:16]}" if "@" in rest else \
        f"{kind} {rest[:16]}"


# planning ------------------------------------------------------------------------------------
def plan(project: Project, names: Iterable[str] | None = None,
         engine: Engine | None = None) -> list[ImagePlan]:
    """Build or skip for each image (parents first), and why. Pure but for the engine check."""
    plans = compose_all(project)
    wanted = set(names) if names is not None else {p.image.name for p in plans}
    by_name = {p.image.name: p for p in plans}
    for name in wanted:
        if name not in by_name:
            project.image(name)  # raises "no such image" with the known ones
    rows: dict[str, ImagePlan] = {}
    for p in plans:
        rows[p.image.name] = _decide(project, p, rows, engine)
    for row in rows.values():
        row.rebuilds_below = [r.image for r in rows.values()
                              if r.action == "build" and row.action == "build"
                              and _descends(by_name[r.image], row.image)]
    return [rows[p.image.name] for p in plans if _in(p, wanted)]


def _in(plan_: Plan, wanted: set[str]) -> bool:
    return plan_.image.name in wanted


def _descends(plan_: Plan, ancestor: str) -> bool:
    parent = plan_.parent
    while parent:
        if parent.image.name == ancestor:
            return True
        parent = parent.parent
    return False


def _decide(project: Project, p: Plan, rows: dict[str, ImagePlan],
            engine: Engine | None) -> ImagePlan:
    name = p.image.name
    named = inputs(project.root, p)
    fp = digest_json(named)
    parent = p.image.base.image if isinstance(p.image.base, ImageBase) else None
    row = ImagePlan(name, fp, image_ref(name, fp), rows[parent].level + 1 if parent else 0,
                    parent)
    previous = last_record(project.root, name)
    exists = engine.image_id(row.ref) is not None if engine else (
        previous is not None and previous.get("fingerprint") == fp)
    if exists:
        row.reason = f"fingerprint unchanged: {row.ref} exists"
        return row
    row.action = "build"
    if previous is None:
        row.reason = "never built here (no record of its inputs in .kiln/inputs)"
        return row
    row.changes = changes(previous.get("inputs", {}), named)
    if previous.get("fingerprint") == fp:
        row.reason = f"inputs unchanged, but {row.ref} is no longer in the engine"
    elif parent and rows[parent].action == "build" and all(c.kind == "base"
                                                           for c in row.changes):
        row.reason = f"its base image '{parent}' is rebuilt"
    else:
        row.reason = "; ".join(str(c) for c in row.changes[:3]) + (
            f" (+{len(row.changes) - 3} more)" if len(row.changes) > 3 else "")
    return row


def matrix(rows: list[ImagePlan]) -> dict[str, Any]:
    """A CI matrix: the images to build, grouped by dependency level (level n needs n-1)."""
    levels: dict[int, list[str]] = {}
    for row in rows:
        if row.action == "build":
            levels.setdefault(row.level, []).append(row.image)
    return {"levels": [{"level": lv, "include": [{"image": i} for i in sorted(images)]}
                       for lv, images in sorted(levels.items())]}
