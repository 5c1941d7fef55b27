"""Tasks about the running fleet: drift, deploy, replace (docs/fleet.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln.commands.common import debug_enabled, kiln_task
from kiln.context import Context
from kiln.errors import KilnError
from kiln.ui import UI

if TYPE_CHECKING:  # the fleet's libraries (docker, requests, cryptography) load in its tasks
    from kiln.fleet.deploy import Deployed
    from kiln.fleet.drift import Drift

TASKS = ("drift", "deploy", "replace")
SWARM_SERVICE = "com.docker.swarm.service.name"


@task(positional=["containers"], help={
    "containers": "container names or ids, comma-separated (Swarm tasks' too); with --ssh, "
                  "the VM as user@host[:port]",
    "ssh": "judge a VM over SSH (the positional names it; its disk's image: --image)",
    "image": "with --ssh: the image the VM was built from, image:channel|:tag|@digest",
    "key": "with --ssh: private key file (default: the SSH agent and ~/.ssh)",
    "accept_new_host": "with --ssh: accept an unknown host key (default: refuse it)",
    "json": "print the findings as JSON", "prom": "print Prometheus text (textfile collector)",
    "replace": "recreate the Swarm service of each drifted container from its pinned image"})
@kiln_task  # help and SIGTERM; its own refusals exit 2 (below), not kiln_task's 1
def drift(c: InvokeContext, containers: str, json: bool = False, prom: bool = False,
          replace: bool = False, ssh: bool = False, image: str = "", key: str = "",
          accept_new_host: bool = False) -> None:
    """Compare running containers with their signed images: exit 0 clean, 1 drifted, 2 refused.

    Examples:
      kiln drift web.1.abc123 --json
      kiln drift admin@10.0.0.5 --ssh --image base-vm:stable
    """
    from kiln.fleet.deploy import replace as replace_service
    from kiln.fleet.drift import judge_container

    container = [ref for ref in containers.split(",") if ref]
    try:
        if not container or (ssh and (len(container) != 1 or not image or replace)):
            raise KilnError("kiln drift: name containers, or one VM as `--ssh user@host "
                            "--image <image>:<channel>` (--replace is for Swarm services only)")
        s = Context.for_command(quiet=json or prom)
        if ssh:
            from kiln.fleet.remote import judge_vm  # paramiko only when asked
            reports = [judge_vm(s, container[0], image, key_file=key or None,
                                accept_new_host=accept_new_host)]
        else:
            reports = [judge_container(s, ref) for ref in container]
        if json:
            s.ui.json([r.to_json() for r in reports])
        elif prom:
            print("".join(r.to_prom() for r in reports), end="")
        else:
            for r in reports:
                _show(s.ui, r)
        drifted = [ref for ref, r in zip(container, reports, strict=True) if r.drifted]
        if replace:
            engine = s.engine
            services = {str((engine.inspect_container(ref).get("Config") or {}).get(
                "Labels", {}).get(SWARM_SERVICE, "")) for ref in drifted}
            if "" in services:
                raise KilnError("a drifted container is not a Swarm task: recreate it from its "
                                "image by hand (kiln replaces only Swarm services)")
            for service in sorted(services):
                done = replace_service(s, service)
                s.ui.info(f"replaced every task of {done.service} from {done.digest[:19]}")
    except KilnError as exc:
        if debug_enabled():
            raise
        raise Exit(f"error: {exc}", code=2) from None
    if drifted:
        raise Exit(code=1)


def _show(ui: UI, r: Drift) -> None:
    rows = [("added", p, "") for p in r.added]
    rows += [("changed", p, "; ".join(d)) for p, d in r.changed]
    rows += [("deleted", p, "") for p in r.deleted]
    rows += [("package installed", p, "") for p in r.installed]
    rows += [("package removed", p, "") for p in r.removed]
    rows += [("package changed", p, "") for p in r.upgraded]
    what = f"{r.instance} ({r.repository}@{r.digest[7:19]})"
    if rows:
        ui.table(f"{what}: drifted", ["kind", "path", "difference"], rows)
    ui.result(f"{what}: {'DRIFTED' if r.drifted else 'clean'} ({len(rows)} differences, "
              f"{r.ignored} changes under mutable paths ignored, {r.checked} paths hashed, "
              f"{r.seconds:.2f}s)")


@task(positional=["service", "image"], help={
    "service": "Swarm service name (created when missing)",
    "image": "image:channel (or image:tag, image@sha256:...)",
    "replicas": "tasks of a new service (default 1)",
    "network": "overlay network of a new service (repeatable)",
    "publish": "host-mode port of a new service, published:target (repeatable)",
    "json": "print the result as JSON"}, iterable=["network", "publish"])
@kiln_task
def deploy(c: InvokeContext, service: str, image: str, replicas: int = 1,
           network: list[str] | None = None, publish: list[str] | None = None,
           json: bool = False) -> None:
    """Roll a Swarm service to the verified digest of a channel; non-zero when it rolled back.

    Examples:
      kiln deploy web nginx:stable --replicas 3 --publish 8080:80
    """
    from kiln.fleet.deploy import deploy as deploy_service

    s = Context.for_command(quiet=json)
    ports: dict[int, int] = {}
    for p in publish or []:
        published, _, target = p.partition(":")
        if not (published.isdigit() and target.isdigit()):
            raise KilnError(f"--publish {p}: expected published:target, like 8080:8080")
        ports[int(published)] = int(target)
    done = deploy_service(s, service, image, replicas=replicas, networks=tuple(network or ()),
                          ports=ports)
    _done(s, done, json)


@task(positional=["service"], help={"service": "Swarm service name", "json": "as JSON"})
@kiln_task
def replace(c: InvokeContext, service: str, json: bool = False) -> None:
    """Destroy and recreate every task of a service from its pinned, still-trusted image.

    Examples:
      kiln replace web
    """
    from kiln.fleet.deploy import replace as replace_service

    s = Context.for_command(quiet=json)
    _done(s, replace_service(s, service), json)


def _done(s: Context, done: Deployed, json: bool) -> None:
    if json:
        s.ui.json(done.to_json())
        return
    canary = (f"; canary task {done.canary.task[:12]} (slot {done.canary.slot}) healthy "
              f"after {done.canary.seconds:.1f}s, then the rest" if done.canary else "")
    s.ui.result(f"{done.service}: {done.action} at {done.follows} ({done.digest}) in "
                f"{done.seconds:.1f}s{canary}")
