#!/usr/bin/env python3
"""Benchmark `kiln verify` against plain `docker exec`, on the sample images, in one run.

For each image (built first when missing, without verifying):
  kiln       the whole `verify`: container start (+ health wait), pytest subprocess, suite
  baseline   a container started the same way, then every command the kiln run sent to the
             container, replayed one by one with `docker exec <c> /bin/sh -c <cmd>`: what the
             checks cost when run with nothing but the docker CLI (no pytest at all)
  testinfra  the same suite through testinfra's own docker backend (one `docker exec` per
             command), for reference
Prints seconds, the cost per check and per command, and kiln / baseline (goal: <= 1.5).

Usage: python bench/verify.py [image ...] [--rounds N]   (run from the repo; needs the engine)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from kiln.context import Context, prepare
from kiln.engine import Engine
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.testsuite import Target
from kiln.ui import UI
from kiln.verify import throwaway, verify

SAMPLES = ("base", "python", "nginx")


def target_of(ctx: Context, name: str) -> Target:
    prepared = prepare(ctx.project, name)
    image_id = ctx.engine.image_id(prepared.ref) or build_image(ctx, name).image_id
    return Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)


def baseline(engine: Engine, target: Target, ui: UI, commands: list[dict[str, str]],
             docker: str) -> tuple[float, float]:
    """(whole run, commands only) with the docker CLI, in a container started like kiln's."""
    began = time.perf_counter()
    with throwaway(engine, target, ui, purpose="bench") as container:
        started = time.perf_counter()
        for command in commands:
            user = ["-u", command["user"]] if command["user"] else []
            subprocess.run([docker, "exec", *user, container, "/bin/sh", "-c",
                            command["command"]], capture_output=True, check=False)
        done = time.perf_counter()
    return time.perf_counter() - began, done - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", default=list(SAMPLES))
    parser.add_argument("--rounds", type=int, default=3, help="runs per image (median shown)")
    parser.add_argument("--no-testinfra", action="store_true",
                        help="skip the run through testinfra's docker backend")
    args = parser.parse_args()
    docker = shutil.which("docker") or sys.exit("bench: the docker CLI is not on PATH")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as state:
        os.environ["KILN_STATE_DIR"] = state  # the bench's records are not the checkout's
        engine = Engine.connect()
        ui = UI(quiet=True)
        ctx = Context(project=Project.find(), engine=engine, ui=ui, verify=False)
        version = subprocess.run([docker, "version", "--format", "{{.Client.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"docker CLI: {docker} ({version}); median of {args.rounds} rounds\n")
        header = (f"{'image':8} {'checks':>6} {'cmds':>5} {'kiln s':>7} {'base s':>7} "
                  f"{'ratio':>6} {'suite s':>8} {'cmds s':>7} {'ratio':>6} {'kiln/cmd':>9} "
                  f"{'exec/cmd':>9} {'kiln/check':>10} {'testinfra s':>11}")
        print(header)
        print("-" * len(header))
        for name in args.images:
            target = target_of(ctx, name)
            kiln_t, suite_t, base_t, cmds_t, per_cmd, ti_t = [], [], [], [], [], []
            checks = commands = 0
            for _ in range(args.rounds):
                began = time.perf_counter()
                run = verify(engine, ctx.project.root, target, ui)
                kiln_t.append(time.perf_counter() - began)
                suite_t.append(run.suite_seconds)
                if not run.record.passed:
                    sys.exit(f"bench: {name} failed verification: {run.record.reason}")
                checks, commands = len(run.record.checks), len(run.commands)
                per_cmd.append(statistics.mean(float(c["seconds"]) for c in run.commands))
                whole, only = baseline(engine, target, ui, run.commands, docker)
                base_t.append(whole)
                cmds_t.append(only)
                if not args.no_testinfra:
                    began = time.perf_counter()
                    verify(engine, ctx.project.root, target, ui, connection="docker")
                    ti_t.append(time.perf_counter() - began)
            k, b = statistics.median(kiln_t), statistics.median(base_t)
            s, c = statistics.median(suite_t), statistics.median(cmds_t)
            ti = f"{statistics.median(ti_t):11.2f}" if ti_t else f"{'-':>11}"
            print(f"{name:8} {checks:6d} {commands:5d} {k:7.2f} {b:7.2f} {k / b:6.2f} "
                  f"{s:8.2f} {c:7.2f} {s / c:6.2f} {statistics.median(per_cmd) * 1000:7.1f}ms "
                  f"{c / commands * 1000:7.1f}ms {k / checks * 1000:8.0f}ms {ti}")
    print("\nkiln s / base s: whole verify vs the same container start + the same commands "
          "through `docker exec`.\nsuite s / cmds s: kiln's pytest run alone vs the commands "
          "alone through `docker exec`.\nkiln/cmd: a command through kiln's backend; exec/cmd: "
          "one `docker exec`; kiln/check: whole verify per check.")


if __name__ == "__main__":
    main()
