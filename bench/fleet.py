#!/usr/bin/env python3
"""Benchmark patch to fleet for the sample images: a package update to running nginx tasks.

    DOCKER_HOST=unix:///var/run/docker.sock .venv/bin/python bench/fleet.py [--replicas 3]
        [--json FILE]                      (from the project root; the engine must allow a swarm)

Works on a copy of the project's images and layers, with a Debian repository on loopback
(tests/integration/aptrepo.py): `bench-repo` (base plus a sources.list.d entry) becomes nginx's
base, and nginx installs kiln-hello too, so a kiln-hello update touches nginx. The nights run
with --only bench-repo,base,nginx, as one CI runner of a fan-out would. Publishes to a fresh
docker-registry on loopback; the swarm is initialised on loopback if the engine is not in one
(and left after).

(setup) a night builds, verifies and publishes bench-repo, base and nginx; nginx:candidate is
        promoted to stable; services: one canary task following nginx:candidate, --replicas
        tasks following nginx:stable;
(a)     kiln-hello 1.1 is published into the repository; `kiln nightly --deploy` runs as a
        whole CLI process, as cron would run it: patch-to-fleet latency, from the package's
        arrival to the last task replaced, split into the night and the fleet;
(b)     baseline for the fleet part: `docker service update --image <the same digest>
        --force` of the stable service, the Docker CLI's own health-gated rolling update of the
        same tasks, without kiln's canary, trust checks or channels.

Prints seconds and the ratio fleet part / (b). The goal (issue 15): (a) under 5 minutes.
Measured 2026-12-02 (2 cores, shared): (a) 76 s, the night 16 s and the fleet 60 s; (b) 37 s,
1.6x (the canary's watch and the promotion between the canary and the stable tasks).
Everything it creates is removed: services, swarm (if it made it), registry, image references.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from aptrepo import AptRepo  # noqa: E402

from kiln.config import load_config  # noqa: E402
from kiln.context import Context  # noqa: E402
from kiln.embedded import LocalRegistry  # noqa: E402
from kiln.engine import Engine  # noqa: E402
from kiln.fleet.deploy import deploy  # noqa: E402
from kiln.fleet.swarm import Policy, Swarm  # noqa: E402
from kiln.load import Project  # noqa: E402
from kiln.nightly import Options, run_nightly  # noqa: E402
from kiln.release.api import open_session, promote  # noqa: E402
from kiln.signing import keygen  # noqa: E402
from kiln.ui import UI  # noqa: E402

SOURCES = "/etc/apt/sources.list.d/kiln-bench.list"
SESSION = f"kiln-bench-fleet-{os.getpid()}"
ONLY = ("bench-repo", "base", "nginx")


def project_copy(target: Path, repo: AptRepo) -> Path:
    for folder in ("images", "layers"):
        shutil.copytree(ROOT / folder, target / folder)
    (target / "rootfs").mkdir(exist_ok=True)
    layers, images = target / "layers", target / "images"
    (layers / "bench-repo" / "tests").mkdir(parents=True)
    (layers / "bench-repo" / "layer.yaml").write_text(
        f"run:\n  - echo '{repo.sources_line}' > {SOURCES}\n")
    (layers / "bench-repo" / "tests" / "test_bench_repo.py").write_text(
        f"def test_sources(host):\n    assert host.file('{SOURCES}').is_file\n")
    (layers / "bench-hello" / "tests").mkdir(parents=True)
    (layers / "bench-hello" / "layer.yaml").write_text("packages: [kiln-hello]\n")
    (layers / "bench-hello" / "tests" / "test_bench_hello.py").write_text(
        "def test_hello(host):\n    assert host.package('kiln-hello').is_installed\n")
    # base + sources under nginx; nginx installs kiln-hello
    (images / "bench-repo.yaml").write_text(
        'base:\n  image: base\nversion: "1"\nlayers: [bench-repo]\n')
    nginx = (images / "nginx.yaml").read_text()
    (images / "nginx.yaml").write_text(
        nginx.replace("  image: base\n", "  image: bench-repo\n")
        .replace("  - nginx\n", "  - nginx\n  - bench-hello\n"))
    return target


def main() -> None:
    out_json = Path(sys.argv[sys.argv.index("--json") + 1]) if "--json" in sys.argv else None
    replicas = int(sys.argv[sys.argv.index("--replicas") + 1]) if "--replicas" in sys.argv \
        else 3
    os.environ["KILN_SESSION"] = SESSION  # every reference under SESSION/, removed at the end
    engine = Engine.connect()
    swarm = Swarm(engine)
    made_swarm = not swarm.active()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally below
    services: list[str] = []
    figures: dict[str, object] = {"replicas": replicas}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-fleet-") as tmp_:
        tmp = Path(tmp_)
        registry = LocalRegistry(tmp / "registry")
        registry.start()
        repo = AptRepo(tmp / "apt").start()
        repo.add("kiln-hello", "1.0")
        root = project_copy(tmp / "project", repo)
        os.environ.update({"KILN_REGISTRY": str(registry.address),
                           "KILN_STATE_DIR": str(root / ".kiln"),
                           "KILN_CACHE_DIR": str(tmp / "cache")})
        config = load_config(root)
        keygen(config.signing_key, config.public_key)
        if made_swarm:
            engine.client.swarm.init(advertise_addr="127.0.0.1")
        try:
            ctx = Context(project=Project(root), engine=engine, ui=UI(quiet=True))
            start = time.perf_counter()
            first = run_nightly(ctx, Options(only=ONLY))
            if first.report.failed:
                raise SystemExit(first.report.to_markdown())
            print(f"(setup) first night: {time.perf_counter() - start:.0f} s, "
                  f"{first.report.summary()}")
            s = open_session(Project(root), UI(quiet=True), engine)
            promote(s, "nginx:candidate", "stable")
            policy = Policy()  # the defaults a team gets: 5 s watch per task
            canary, main = f"{SESSION}-canary", f"{SESSION}-nginx"
            services += [canary, main]
            deploy(s, canary, "nginx:candidate", policy=policy)
            deploy(s, main, "nginx:stable", replicas=replicas, policy=policy)

            arrived = time.time()
            repo.add("kiln-hello", "1.1")  # Release files change: the night re-resolves
            # `kiln nightly --deploy` itself, a whole CLI process, as cron would run it
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            done = subprocess.run([sys.executable, "-c", "from kiln.cli import main; main()",
                                   "nightly", "--only", ",".join(ONLY), "--deploy", "--json"],
                                  cwd=root, env=env, capture_output=True, text=True)
            report = json.loads(done.stdout or "{}")
            for o in report.get("outcomes", []):
                print(f"    {o['image']}: {o['status']} ({o['reason']})")
            fleet = report.get("fleet") or []
            rebuilt = [o["image"] for o in report.get("outcomes", []) if o["status"] == "rebuilt"]
            problems = [f["problem"] for f in fleet if f["problem"]]
            if done.returncode or problems or not fleet:
                raise SystemExit(f"the loop did not reach the fleet: {problems or rebuilt}\n"
                                 f"{done.stderr[-2000:]}")
            last = max(d["finished"] for f in fleet for d in (*f["canaries"], *f["rolled"]))
            fleet_start = min(d["finished"] - d["seconds"] for f in fleet
                              for d in (*f["canaries"], *f["rolled"]))
            latency, night_s, fleet_s = last - arrived, fleet_start - arrived, last - fleet_start
            print(f"(a) patch to fleet: {latency:.0f} s (goal < 300 s): the night "
                  f"{night_s:.0f} s (rebuilt {', '.join(rebuilt)}), the fleet {fleet_s:.0f} s "
                  f"(1 canary task, promote, {replicas} stable tasks): {fleet[0]['fix']}")

            image = swarm.running_image(main)
            start = time.perf_counter()
            subprocess.run(["docker", "service", "update", "--quiet", "--force", "--image",
                            image, main], check=True, stdout=subprocess.DEVNULL)
            base_s = time.perf_counter() - start
            print(f"(b) docker service update --force of the {replicas} stable tasks: "
                  f"{base_s:.0f} s; kiln's fleet part / (b): {fleet_s / base_s:.1f}x")
            figures.update({"latency_s": round(latency, 1), "night_s": round(night_s, 1),
                            "fleet_s": round(fleet_s, 1), "rebuilt": rebuilt,
                            "docker_update_s": round(base_s, 1),
                            "fleet_over_docker": round(fleet_s / base_s, 2)})
        finally:
            for name in services:
                swarm.remove(name)
            for _ in range(120):  # Swarm removes the task containers on its own time
                if not any(c.labels.get("com.docker.swarm.service.name", "").startswith(SESSION)
                           for c in engine.client.containers.list(all=True,
                                                                  ignore_removed=True)):
                    break
                time.sleep(0.5)
            if made_swarm:
                engine.client.swarm.leave(force=True)
            repo.stop()
            registry.stop()
            remove_references(engine, str(registry.address))
    if out_json:
        out_json.write_text(json.dumps(figures, indent=2) + "\n")


def remove_references(engine: Engine, registry: str) -> None:
    """This run's image references: under SESSION/, or named after its registry."""
    mine = {ref for img in engine.api.images(all=True) for ref in img.get("RepoTags") or ()
            if ref.startswith(f"{SESSION}/") or ref.startswith(f"{registry}/")}
    mine |= {d for img in engine.api.images(all=True) for d in img.get("RepoDigests") or ()
             if d.startswith(f"{registry}/")}
    for _ in range(5):
        for ref in sorted(mine):
            try:
                engine.api.remove_image(ref)
                mine.discard(ref)
            except Exception:  # a child first; the next pass gets it
                pass
        if not mine:
            return


if __name__ == "__main__":
    main()
