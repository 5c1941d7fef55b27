"""What the release tests share: a small image built and recorded as verified (or not) against
the current suite, and a release session on a checkout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kiln import records
from kiln.context import BuildResult, prepare
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.release.api import Session, open_session
from kiln.ui import UI
from kiln.verify import find_suite


def build_verified(root: Path, kiln_ctx: Callable[..., object], text: str | None = None,
                   passed: bool = True) -> BuildResult:
    """Build `small` (its hello layer writing `text`, when given) and record a verification of
    it against the current suite, passed or failed, without running the suite."""
    if text is not None:
        (root / "layers/hello/layer.yaml").write_text(f"run:\n  - echo {text} > /hello\n")
    result = build_image(kiln_ctx(Project(root), verify=False), "small")  # type: ignore[arg-type]
    suite = find_suite(root, prepare(Project(root), "small").plan).digest  # the current suite
    records.save(root, records.VerifyRecord(
        image="small", image_id=result.image_id, fingerprint=result.fingerprint,
        target="container", suite=suite, passed=passed, started="2026-01-01T00:00:00Z",
        checks=(records.CheckResult("hello", "test_hello.py::test_it", "passed"),),
        reason="" if passed else "test_hello failed"))
    return result


def session(root: Path, engine: object) -> Session:
    return open_session(Project(root), UI(quiet=True), engine)  # type: ignore[arg-type]
