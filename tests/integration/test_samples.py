"""The sample images, built for real from the Debian mirror and verified: they must pass,
under the restricted profile too, and base must reach its lynis index (kiln audit).

Slow (about a minute cold, seconds when the images exist, plus one lynis run of about a
minute). Images this test creates are removed
by the `leaves_nothing` fixture; images that existed before are left alone. Records go to a
temporary state folder, so every sample is verified here, whatever the checkout's records say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln import audit, records
from kiln.context import Context, prepare
from kiln.load import Project
from kiln.pipeline import build_all
from kiln.testsuite import Target
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

    # the second run, as a restricted platform runs them (docs/hardening.md)
    for name in SAMPLES:
        record = ctx.verified[name]
        assert record.profile == "restricted", (name, record.reason)
        options = record.extra["profile"]["options"]
        assert "--read-only" in options and "--cap-drop ALL" in options, options
        assert "--user 10001:10001" in options and "no-new-privileges" in options, options
        assert record.extra["profile"]["counts"]["failed"] == 0
    assert ctx.verified["nginx"].extra["profile"]["tmpfs"] == ["/tmp"]  # its only writes

    # kiln audit: lynis from the host, once (base: its children add services, not hardening)
    prepared = prepare(project, "base")
    target = Target(prepared.plan, prepared.ref, results["base"].image_id, prepared.fingerprint)
    report = audit.audit_container(engine, target, UI())
    audit.save(project.root, report)
    minimum = prepared.plan.image.audit_min_index
    assert minimum is not None and report.index >= minimum, (report.index, report.suggestions)
    assert report.tests_performed > 100 and report.lynis
    assert audit.audit_gate(project.root, prepared.plan, report.image_id) == report
    assert not engine.client.containers.list(all=True, filters={"label": "dev.kiln.purpose=audit"})
