"""What the release tests share: a small image built and recorded as verified (or not) against
the current suite, and a release session on a checkout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kiln import records, restricted
from kiln.context import BuildResult, Context, prepare
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.release.api import open_session
from kiln.ui import UI
from kiln.verify import find_suite


def verified_record(root: Path, built: BuildResult, passed: bool = True
                    ) -> records.VerifyRecord:
    """The record kiln.verify's gate saves for `built` when its suite (the current one)
    passed, or failed, without running it: a container and a testinfra run per build would
    add minutes to CI. test_tags_prune.py holds it to the record of a real run."""
    plan = prepare(Project(root), built.image).plan
    return records.VerifyRecord(
        image=built.image, image_id=built.image_id, fingerprint=built.fingerprint,
        target="container", suite=find_suite(root, plan).digest, passed=passed,
        started="2026-01-01T00:00:00+00:00", seconds=1.5,
        checks=(records.CheckResult("hello", "hello/test_hello.py::test_it",
                                    "passed" if passed else "failed"),),
        reason="" if passed else "1 check failed: layer 'hello': test_it",
        profile=restricted.expected(plan) if passed else "")


def record_verified(root: Path, built: BuildResult, passed: bool = True) -> None:
    records.save(root, verified_record(root, built, passed))


def build_verified(root: Path, kiln_ctx: Callable[..., object], text: str | None = None,
                   passed: bool = True) -> BuildResult:
    """Build `small` (its hello layer writing `text`, when given) and record a verification of
    it against the current suite, passed or failed, without running the suite."""
    if text is not None:
        (root / "layers/hello/layer.yaml").write_text(f"run:\n  - echo {text} > /hello\n")
    result = build_image(kiln_ctx(Project(root), verify=False), "small")  # type: ignore[attr-defined]
    record_verified(root, result, passed)
    return result


def session(root: Path, engine: object) -> Context:
    return open_session(Project(root), UI(quiet=True), engine)  # type: ignore[arg-type]
