"""Local records tied to an image ID: what was verified, when, and with what result.

An image's ID is the digest of its config, so a record keyed by it can never be confused with
another image's. Records live in the project's state folder (.kiln/, not committed) or in
KILN_STATE_DIR. An image without a passing record is unverified; nothing downstream takes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kiln.errors import KilnError

Outcome = Literal["passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    layer: str  # the layer (or "image:<name>") whose tests/ the check comes from
    test: str  # pytest node id
    outcome: Outcome
    message: str = ""  # the failing assertion, for failures


@dataclass(frozen=True)
class VerifyRecord:
    image: str
    image_id: str
    fingerprint: str
    target: str  # "container" or "vm"
    suite: str  # sha256 of the test files that ran
    passed: bool
    checks: tuple[CheckResult, ...] = ()
    started: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    reason: str = ""  # why it did not pass, or why it never ran (--no-verify)
    extra: dict[str, Any] = field(default_factory=dict)
    # The runtime profile the image passed (kiln.restricted): "restricted", "default" (the
    # image's own configuration: it opted out, or restricted failed), "" (not run).
    profile: str = ""

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for check in self.checks:
            out[check.outcome] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyRecord:
        data = dict(data)
        data.pop("counts", None)
        checks = tuple(CheckResult(**c) for c in data.pop("checks", ()))
        return cls(checks=checks, **data)


def state_dir(project_root: Path) -> Path:
    return Path(os.environ.get("KILN_STATE_DIR") or project_root / ".kiln")


def path(project_root: Path, image_id: str, target: str) -> Path:
    """Where the verification record of an image ID for a target is kept."""
    return _path(project_root, image_id, target)


def _path(project_root: Path, image_id: str, target: str) -> Path:
    digest = image_id.removeprefix("sha256:")
    return state_dir(project_root) / "verified" / target / f"{digest}.json"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object kiln wrote (write_json), or None when it is missing or not one."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one, and
    concurrent writers each put a whole file in place. A failed write leaves no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        try:
            json.dump(data, f, indent=indent, sort_keys=True)
        except BaseException:
            os.unlink(f.name)
            raise
    try:
        os.replace(f.name, path)
    except BaseException:
        os.unlink(f.name)
        raise


def save(project_root: Path, record: VerifyRecord) -> Path:
    path = _path(project_root, record.image_id, record.target)
    write_json(path, record.to_json())
    return path


def load(project_root: Path, image_id: str, target: str = "container") -> VerifyRecord | None:
    path = _path(project_root, image_id, target)
    try:
        return VerifyRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise KilnError(f"{path}: unreadable verification record ({exc}); "
                        "delete it and verify again") from None


def require_verified(project_root: Path, image: str, image_id: str,
                     target: str = "container") -> VerifyRecord:
    """The gate: the record of a passing verification of exactly this image, or an error."""
    record = load(project_root, image_id, target)
    if record is None:
        raise KilnError(f"{image} ({image_id[:19]}) was never verified "
                        f"(run `invoke verify {image}` or build without --no-verify)")
    if not record.passed:
        raise KilnError(f"{image} ({image_id[:19]}) failed verification on {record.started}: "
                        f"{record.reason or 'see `invoke verify`'}")
    return record


def first_built(project_root: Path, fingerprint: str) -> str:
    """When an image of `fingerprint` was first built here (ISO 8601, UTC): the date in its
    immutable tag. Recorded on first ask (the build records it), never changed afterwards, so
    a rebuild of the same definitions keeps its tag; the image's own creation time is clamped
    for reproducibility and says nothing."""
    safe = "".join(c for c in fingerprint if c.isalnum())[:64] or "none"
    path = state_dir(project_root) / "built" / f"{safe}.json"
    try:
        return str(json.loads(path.read_text())["first_built"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump({"fingerprint": fingerprint, "first_built": stamp}, f)
    try:
        os.link(f.name, path)  # first writer wins: a racing build keeps the earlier stamp
    except FileExistsError:
        pass
    finally:
        os.unlink(f.name)
    return str(json.loads(path.read_text())["first_built"])
