"""The sample images, built for real from the Debian mirror and verified: they must pass.

Slow (about a minute cold, seconds when the images exist). Images this test creates are removed
by the `leaves_nothing` fixture; images that existed before are left alone. Records go to a
temporary state folder, so every sample is verified here, whatever the checkout's records say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln import records
from kiln.load import Project
from kiln.pipeline import Context, build_all
from kiln.ui import UI

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# redis and webapp: services on the samples, with no edit to any sample layer (issue 14);
# webapp is the one docs/tutorial.md writes.
SAMPLES = ("base", "nginx", "python", "redis", "webapp")


def test_samples_build_and_pass_verification(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    project = Project(REPO)
    ctx = Context(project=project, engine=engine, ui=UI())
    results = {r.image: r for r in build_all(ctx)}
    assert set(SAMPLES) <= set(results)
    for name in SAMPLES:
        record = records.require_verified(project.root, name, results[name].image_id)
        assert record == ctx.verified[name]
        assert record.counts["failed"] == record.counts["error"] == 0
        layers = {c.layer for c in record.checks}
        assert {"minimal", "core", "hardening", "user"} <= layers, name
    assert {c.layer for c in ctx.verified["nginx"].checks} >= {"nginx"}
    assert {c.layer for c in ctx.verified["python"].checks} >= {"python"}
    for service, layer in (("redis", "redis"), ("webapp", "webapp")):
        record = ctx.verified[service]
        assert {c.layer for c in record.checks if c.outcome == "passed"} >= {layer, "user"}
        assert record.counts["skipped"] == 0 and "overrides" not in record.extra
