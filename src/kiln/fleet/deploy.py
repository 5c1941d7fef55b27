"""Channels to Swarm services: deploy a verified digest, roll back, replace every task.

A service is always pinned to `<registry>/<repository>@<digest>`, the digest a channel named
when kiln checked its signature, verification and revocation; a channel moving later changes
nothing until kiln deploys again. Channels are never moved here: a failed rollout leaves both
the channel and the previous digest in place.

An update of a service with more than one task is a canary, then the rest:

    1. the new digest, with Swarm's delay after a task set to HOLD: Swarm replaces one task
       (start-first, healthy before the old one stops) and parks; a failure in its monitor
       window makes Swarm roll back, with only that task ever replaced;
    2. kiln watches the canary run (healthy) for the monitor window, reading the service's
       tasks and UpdateStatus itself (the CLI can exit 0 after a rollback, docker/cli#6752);
    3. the spec again with the real delay and failure action `pause`: Swarm's previous spec is
       now the canary's, so a failure here is rolled back by kiln, to the spec it found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kiln.context import Context
from kiln.errors import KilnError
from kiln.fleet.attest import signed_manifest, trusted
from kiln.fleet.swarm import DIGEST, FOLLOWS, HOLD, REPOSITORY, Canary, Policy, Rollout, Swarm
from kiln.registry import DIGEST_RE
from kiln.release.channels import promote
from kiln.release.channels import rollback as rollback_channel
from kiln.release.errors import TrustError
from kiln.release.names import parse_spec

TIMEOUT = 600.0


class DeployError(KilnError):
    """A rollout failed (and was rolled back), or was refused before it started."""


@dataclass(frozen=True)
class Deployed:
    service: str
    follows: str
    digest: str
    previous: str | None
    action: str  # created, updated, unchanged, replaced
    seconds: float
    canary: Canary | None = None  # the task updated first (services of 2+ tasks)
    finished: float = 0.0  # wall clock (epoch seconds) when the last task was replaced

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["canary"] = self.canary.to_json() if self.canary else None
        return out


def pinned(s: Context, spec: str) -> tuple[str, str, str]:
    """`image[:channel|:tag|@digest]` -> (repository, digest, follows), trusted or refused."""
    name, ref = parse_spec(spec)
    ref = ref or s.config.channels[0]
    repo = s.config.repository(name)
    found = s.registry.resolve(repo, ref)
    if found is None:
        raise DeployError(f"{s.registry.host}/{repo}:{ref} does not exist (see `kiln catalog`)")
    try:
        trusted(s, repo, found.digest)
        signed_manifest(s, repo, found.digest)  # so `kiln drift` can judge what runs
    except TrustError as exc:
        raise DeployError(f"refusing to deploy {spec}: {exc}") from None
    return repo, found.digest, f"{name}:{ref}" if not DIGEST_RE.match(ref) else f"{name}@{ref}"


def deploy(s: Context, service: str, spec: str, *, replicas: int = 1,
           networks: tuple[str, ...] = (), ports: dict[int, int] | None = None,
           policy: Policy | None = None, timeout: float = TIMEOUT) -> Deployed:
    """Create or update `service` to the digest `spec` names; DeployError when it rolled back."""
    started = time.monotonic()
    repo, digest, follows = pinned(s, spec)
    image = f"{s.registry.host}/{repo}@{digest}"
    swarm = Swarm(s.engine)
    swarm.require()
    labels = {FOLLOWS: follows, REPOSITORY: f"{s.registry.host}/{repo}", DIGEST: digest}
    current = swarm.service(service)
    if current is None:
        with s.ui.task(f"create {service} ({replicas} x {image})"):
            swarm.create(service, image, labels, replicas=replicas, networks=list(networks),
                         ports=ports or {}, policy=policy or Policy())
            swarm.wait_running(service, replicas, timeout)
        return Deployed(service, follows, digest, None, "created", time.monotonic() - started,
                        finished=time.time())
    previous = _digest_of(swarm.running_image(service))
    if previous == digest:
        return Deployed(service, follows, digest, previous, "unchanged",
                        time.monotonic() - started)
    with s.ui.task(f"roll {service}: {str(previous)[:19]} -> {digest[:19]} (canary first)"):
        canary = roll(s, swarm, service, image, labels, current, follows, timeout)
    return Deployed(service, follows, digest, previous, "updated", time.monotonic() - started,
                    canary, time.time())


def roll(s: Context, swarm: Swarm, service: str, image: str, labels: dict[str, str],
         current: dict[str, Any], follows: str, timeout: float) -> Canary | None:
    """Update `service` to `image`: one task (the canary), then the rest (module docstring).
    DeployError, the service back on the spec it had, when either phase fails."""
    config = dict(current["Spec"].get("UpdateConfig") or {})
    delay = int(config.get("Delay") or 0)
    delay = 0 if delay >= HOLD * 1e9 else delay  # left by a kiln interrupted mid-canary
    monitor = int(config.get("Monitor") or 5e9) / 1e9
    replicas = swarm.replicas(service)
    digest = image.rpartition("@")[2]
    if replicas < 2:  # the only task is the canary: Swarm's own rollback covers it
        before = swarm.update(service, image=image, labels=labels,
                              config={"Delay": delay, "FailureAction": "rollback"})
        rollout = swarm.wait(service, before, timeout)
        if not rollout.ok:
            raise _failed(swarm, service, image, follows, rollout)
        return None
    known = frozenset(str(task["ID"]) for task in swarm.tasks(service))
    before = swarm.update(service, image=image, labels=labels,
                          config={"Delay": int(HOLD * 1e9), "FailureAction": "rollback"})
    seen = swarm.watch_canary(service, image, before, monitor, timeout)
    if isinstance(seen, Rollout):
        slots = len(swarm.replaced_slots(service, image, known))
        raise _failed(swarm, service, image, follows, seen,
                      f": its canary failed ({slots} of {replicas} tasks ever replaced)")
    s.ui.info(f"{service}: canary task {seen.task[:12]} (slot {seen.slot}) healthy for "
              f"{monitor:g}s; rolling the other {replicas - 1}")
    before = swarm.update(service, config={"Delay": delay, "FailureAction": "pause"})
    rollout = swarm.wait(service, before, timeout)
    if not rollout.ok:
        why = "; ".join(swarm.failures(service, image)[:2]) or rollout.message
        # Pause, never roll back, a failing restore: its previous spec is the new digest.
        back = swarm.update(service, spec=current["Spec"], config={"FailureAction": "pause"})
        undone = swarm.wait(service, back, timeout)
        now = _digest_of(swarm.running_image(service))
        raise DeployError(f"{service}: the canary of {follows} ({digest[:19]}) was healthy "
                          f"but the rest failed ({why}); kiln rolled it back ({undone.state}): "
                          f"the service runs {str(now)[:19]}, {follows} was not changed "
                          "(fix the image, or revoke it: `kiln revoke`)")
    return seen


def _failed(swarm: Swarm, service: str, image: str, follows: str, rollout: Rollout,
            what: str = "") -> DeployError:
    now = _digest_of(swarm.running_image(service))
    why = "; ".join(swarm.failures(service, image)[:2]) or rollout.message
    digest = image.rpartition("@")[2]
    return DeployError(f"{service}: rolling to {follows} ({digest[:19]}) failed{what} and "
                      f"Swarm {rollout.state.replace('_', ' ')}: {why}; the service runs "
                      f"{str(now)[:19]}, {follows} was not changed (fix the image, or "
                      "revoke it: `kiln revoke`)")


def replace(s: Context, service: str, timeout: float = TIMEOUT) -> Deployed:
    """Recreate every task from the pinned image (rolling, health-gated): never patch."""
    started = time.monotonic()
    swarm = Swarm(s.engine)
    swarm.require()
    image = swarm.running_image(service)
    digest = _digest_of(image)
    repo = image.partition("@")[0].partition("/")[2]
    if digest is None or not repo:
        raise DeployError(f"{service} runs {image}, not an image pinned by digest; deploy it "
                          "with `kiln deploy` first")
    try:
        trusted(s, repo, digest)
    except TrustError as exc:
        raise DeployError(f"refusing to recreate {service} from {image}: {exc} (deploy a good "
                          "image instead)") from None
    with s.ui.task(f"replace every task of {service} from {digest[:19]}"):
        before = swarm.update(service, force=True, config={"FailureAction": "rollback"})
        rollout = swarm.wait(service, before, timeout)
    if not rollout.ok:
        raise DeployError(f"{service}: replacing its tasks failed and Swarm "
                          f"{rollout.state.replace('_', ' ')}: {rollout.message}")
    follows = str(((swarm.service(service) or {}).get("Spec") or {}).get("Labels", {}).get(
        FOLLOWS, ""))
    return Deployed(service, follows, digest, digest, "replaced", time.monotonic() - started,
                    finished=time.time())


def followers(s: Context, name: str, channel: str) -> list[str]:
    """Services that follow `<name>:<channel>` of this registry (a swarm may run services of
    the same image name from another registry: a channel move here must not roll them)."""
    swarm = Swarm(s.engine)
    ours = f"{s.registry.host}/{s.config.repository(name)}"
    return sorted(str(svc["Spec"]["Name"]) for svc in swarm.services(f"{FOLLOWS}={name}:{channel}")
                  if (svc["Spec"].get("Labels") or {}).get(REPOSITORY) == ours)


def rollback_and_deploy(s: Context, name: str, channel: str) -> tuple[Any, list[Deployed]]:
    """Return the channel to its previous known-good digest, then roll its followers to it."""
    move = rollback_channel(s, name, channel)
    return move, [deploy(s, svc, f"{name}:{channel}") for svc in followers(s, name, channel)]


def _digest_of(image: str) -> str | None:
    digest = image.rpartition("@")[2]
    return digest if DIGEST_RE.match(digest) else None


@dataclass(frozen=True)
class ChannelRoll:
    """One image's way from `candidate` to the fleet: canaries, promotion, stable services."""

    image: str
    canaries: tuple[Deployed, ...]
    promoted: bool
    rolled: tuple[Deployed, ...]
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "canaries": [d.to_json() for d in self.canaries],
                "promoted": self.promoted, "rolled": [d.to_json() for d in self.rolled],
                "problem": self.problem}


def roll_channels(s: Context, name: str, candidate: str = "candidate",
                  stable: str = "stable") -> ChannelRoll:
    """Deploy `candidate` to the services that follow it (the canaries); when every one is
    healthy, promote it to `stable` and roll the services that follow `stable`. With no canary
    nothing has proved the candidate on a fleet, so `stable` is left alone."""
    canaries: list[Deployed] = []
    try:
        for service in followers(s, name, candidate):
            canaries.append(deploy(s, service, f"{name}:{candidate}"))
    except DeployError as exc:
        return ChannelRoll(name, tuple(canaries), False, (), str(exc))
    if not canaries:
        return ChannelRoll(name, (), False, (), f"no service follows {name}:{candidate}, so "
                           f"nothing proved it; {stable} was not promoted")
    promote(s, f"{name}:{candidate}", stable)
    rolled: list[Deployed] = []
    try:
        for service in followers(s, name, stable):
            rolled.append(deploy(s, service, f"{name}:{stable}"))
    except DeployError as exc:
        return ChannelRoll(name, tuple(canaries), True, tuple(rolled), str(exc))
    return ChannelRoll(name, tuple(canaries), True, tuple(rolled))
