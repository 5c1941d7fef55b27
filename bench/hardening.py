#!/usr/bin/env python3
"""Hardening goals of issue 17, measured on the samples and printed as one table.

  lynis index   `kiln audit` of the plain mmdebstrap bootstrap `base` starts from (the
                baseline, measured in the same run) and of `base` itself: goal >= 70
  restricted    each sample verified again under the restricted profile (read-only root,
                declared tmpfs only, no capabilities but the declared, no-new-privileges,
                numeric user): goal: every service sample passes
  hadolint      findings on each sample's rendered Dockerfile: goal 0
  lynis index   with --vm: `kiln audit base-vm --target vm`, lynis in the booted disk (a
  (booted VM)   throwaway copy, as `kiln verify --target vm` boots it): goal >= 85; the row
                says how long the audit took and lynis's slowest tests. Not in CI: one more
                TCG boot plus lynis costs minutes there. The row has lynis's points (the index is
                got * 100 // of) and the tests that missed the most.

Images are built (and verified) when missing. Records go to a temporary state folder, so
every sample is verified here whatever the checkout's records say.

Usage: python bench/hardening.py [--no-audit] [--vm] [--json FILE]   (from the repo; needs the
engine; --vm needs qemu)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from kiln import restricted
from kiln.audit import audit_container
from kiln.audit_vm import audit_vm
from kiln.context import Context, prepare
from kiln.engine import Engine
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.testsuite import Target
from kiln.ui import UI
from kiln.verify import verify
from kiln.vm.build import build_disk

SAMPLES = ("base", "python", "nginx")
INDEX_GOAL = 70
VM_INDEX_GOAL = 85


def target_of(ctx: Context, name: str) -> Target:
    prepared = prepare(ctx.project, name)
    image_id = ctx.engine.image_id(prepared.ref) or build_image(ctx, name).image_id
    return Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)


def bootstrap_target(ctx: Context) -> Target:
    """The plain mmdebstrap root filesystem `base` is built on, audited as if it were an image."""
    base = prepare(ctx.project, "base")
    image_id = ctx.engine.image_id(base.base_ref)
    if image_id is None:
        sys.exit(f"{base.base_ref} is missing: build base first")
    return Target(base.plan, base.base_ref, image_id, "bootstrap")


def hadolint_findings(project: Project, name: str) -> int | None:
    tool = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    if tool is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as f:
        f.write(prepare(project, name).rendered.dockerfile)
        f.flush()
        out = subprocess.run([tool, "--no-color", "--no-fail", f.name], capture_output=True,
                             text=True, check=False).stdout
    return len([line for line in out.splitlines() if line.strip()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-audit", action="store_true", help="skip lynis (minutes)")
    parser.add_argument("--vm", action="store_true",
                        help="also audit the booted base-vm (a TCG boot and lynis: minutes)")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-hardening-") as state:
        os.environ.setdefault("KILN_STATE_DIR", state)
        measure(args)


def measure(args: argparse.Namespace) -> None:
    ui = UI()
    ctx = Context(project=Project.find(), engine=Engine.connect(), ui=ui)
    rows: list[dict[str, Any]] = []
    targets = {name: target_of(ctx, name) for name in SAMPLES}
    if not args.no_audit:
        for label, target in (("mmdebstrap bootstrap (baseline)", bootstrap_target(ctx)),
                              ("base", targets["base"])):
            audit = audit_container(ctx.engine, target, ui)
            rows.append({"goal": "lynis index (container)", "subject": label,
                         "value": audit.index, "target": f">= {INDEX_GOAL}" if label == "base"
                         else "-", "met": audit.index >= INDEX_GOAL if label == "base" else None,
                         "detail": f"{len(audit.warnings)} warnings, "
                                   f"{len(audit.suggestions)} suggestions"})
    if args.vm:
        build_disk(ctx, "base-vm")
        audit = audit_vm(ctx, "base-vm")
        slowest = ", ".join(f"{t['test']} {t['seconds']}s" for t in audit.extra["slowest"][:5])
        points = audit.extra["points"]
        missed = ", ".join(f"{m['test']} {m['points']}" for m in points["missed"][:8])
        rows.append({"goal": "lynis index (booted VM)", "subject": "base-vm",
                     "value": audit.index, "target": f">= {VM_INDEX_GOAL}",
                     "met": audit.index >= VM_INDEX_GOAL,
                     "detail": f"{points['got']} of {points['of']} points, "
                               f"{len(audit.warnings)} warnings, {len(audit.suggestions)} "
                               f"suggestions; {audit.seconds:.0f}s (boot {audit.extra['boot']}, "
                               f"{audit.extra.get('accel', '?')}); slowest: {slowest}; "
                               f"points missed: {missed}"})
    for name, target in targets.items():
        run = verify(ctx.engine, ctx.project.root, target, ui)
        record = run.record
        wanted = restricted.expected(target.plan)
        rows.append({"goal": "restricted profile", "subject": name, "value": record.profile
                     or "-", "target": wanted, "met": record.passed and record.profile == wanted,
                     "detail": record.reason or record.extra.get("profile", {}).get("options",
                                                                                    "")})
    for name in (*SAMPLES, "base-vm"):
        found = hadolint_findings(ctx.project, name)
        rows.append({"goal": "hadolint findings", "subject": name,
                     "value": "not installed" if found is None else found, "target": "0",
                     "met": found == 0 if found is not None else None, "detail": ""})
    ui.table("kiln hardening goals (issue 17)", ["goal", "subject", "value", "target", "met",
                                                 "detail"],
             [[r["goal"], r["subject"], r["value"], r["target"],
               {True: "yes", False: "NO", None: "-"}[r["met"]], r["detail"]] for r in rows])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if any(r["met"] is False for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
