"""Deploys to Docker Swarm services (through the engine door, kiln.engine.services).

Every service kiln creates is pinned to an image digest and labelled with what it follows, so
`kiln rollback --deploy` finds its followers. Updates are start-first, one task at a time; a task
counts as started only once the image's healthcheck passes, and any failure rolls the whole
service back to its previous spec (the previous digest).

Swarm has no canary step of its own, so kiln makes one (kiln.fleet.deploy): the update's delay
after the first task is set to HOLD, which parks Swarm's updater once that one task is replaced
(a failure in the monitor window still rolls back, and only that task was ever touched); kiln
watches the canary (`watch_canary`), then updates the spec again with the real delay, which
restarts the updater on the tasks still old.

The Docker CLI can exit 0 after such an automatic rollback (docker/cli#6752), so kiln reads the
service's UpdateStatus itself and reports the outcome (`wait`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from kiln import session
from kiln.engine import KILN_LABEL, Engine
from kiln.errors import EngineError

FOLLOWS = "dev.kiln.follows"  # <image>:<channel> the service follows
REPOSITORY = "dev.kiln.repository"  # <registry host>/<repository> it was deployed from
DIGEST = "dev.kiln.digest"  # the digest kiln last deployed and saw healthy
TERMINAL = {"completed", "paused", "rollback_completed", "rollback_paused"}
HOLD = 3600.0  # seconds Swarm waits after the canary task: kiln ends the wait well before


@dataclass(frozen=True)
class Rollout:
    """How an update ended, as the manager recorded it."""

    state: str  # completed, rollback_completed, paused, rollback_paused, created
    message: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state in ("completed", "created")


@dataclass(frozen=True)
class Canary:
    """The first task of an update, seen running (so healthy) for the monitor window."""

    task: str
    slot: int
    seconds: float  # from the update to the end of its watch

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "slot": self.slot, "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class Policy:
    """Rolling update knobs; the defaults suit services with a healthcheck of a few seconds."""

    monitor: float = 5.0  # seconds each new task is watched after it is healthy
    delay: float = 0.0  # seconds between tasks
    stop_grace: float = 10.0


class Swarm:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def active(self) -> bool:
        return self.engine.swarm_active()

    def require(self) -> None:
        if not self.active():
            raise EngineError("this engine is not in a swarm (run `docker swarm init` or join "
                              "one; kiln deploys to Swarm services)")

    def service(self, name: str) -> dict[str, Any] | None:
        return self.engine.service(name)

    def services(self, label: str) -> list[dict[str, Any]]:
        return self.engine.services(label)

    def tasks(self, name: str) -> list[dict[str, Any]]:
        return self.engine.tasks(name)

    def create(self, name: str, image: str, labels: dict[str, str], *, replicas: int,
               networks: list[str], ports: dict[int, int], policy: Policy) -> None:
        monitor = int(policy.monitor * 1e9)  # the engine's durations are in nanoseconds
        template: dict[str, Any] = {
            "ContainerSpec": {"Image": image, "Labels": {KILN_LABEL: "1", **session.labels()},
                              "StopGracePeriod": int(policy.stop_grace * 1e9)},
            "RestartPolicy": {"Condition": "any", "Delay": int(1e9)}}
        if networks:
            template["Networks"] = [{"Target": network} for network in networks]
        endpoint: dict[str, Any] = {"Mode": "dnsrr"}
        if ports:
            endpoint["Ports"] = [{"Protocol": "tcp", "PublishedPort": p, "TargetPort": t,
                                  "PublishMode": "host"} for p, t in ports.items()]
        self.engine.create_service(name, {
            "TaskTemplate": template, "Labels": {KILN_LABEL: "1", **labels},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "UpdateConfig": {"Parallelism": 1, "Delay": int(policy.delay * 1e9),
                             "FailureAction": "rollback", "Monitor": monitor,
                             "MaxFailureRatio": 0, "Order": "start-first"},
            "RollbackConfig": {"Parallelism": 0, "FailureAction": "pause", "Monitor": monitor,
                               "Order": "start-first"},
            "EndpointSpec": endpoint})

    def update(self, name: str, *, image: str | None = None, labels: dict[str, str] | None = None,
               force: bool = False, config: dict[str, Any] | None = None,
               spec: dict[str, Any] | None = None) -> str:
        """Change the image (and labels), the UpdateConfig (`config`, merged), or force every
        task to be recreated; or put back a whole earlier `spec`. Returns the
        UpdateStatus.StartedAt the update replaces (so `wait` knows when its own one ends)."""
        current = self.service(name)
        if current is None:
            raise EngineError(f"no service {name} in this swarm")
        base = copy.deepcopy(spec or current["Spec"])
        template = base["TaskTemplate"]
        if image is not None:
            template["ContainerSpec"]["Image"] = image
        if force:
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
        before = str((current.get("UpdateStatus") or {}).get("StartedAt", ""))
        base["Labels"] = {**base.get("Labels", {}), **(labels or {})}
        base["UpdateConfig"] = {**(base.get("UpdateConfig") or {}), **(config or {})}
        self.engine.update_service(name, int(current["Version"]["Index"]), base)
        return before

    def _update_state(self, name: str, before: str, started: float
                      ) -> tuple[str, Rollout | None]:
        """The state of the update after `before`, and how it ended once it has."""
        current = self.service(name)
        if current is None:
            raise EngineError(f"service {name} disappeared during its update")
        status = current.get("UpdateStatus") or {}
        state = str(status.get("State", ""))
        if str(status.get("StartedAt", "")) != before and state in TERMINAL:
            return state, Rollout(state, str(status.get("Message", "")),
                                  time.monotonic() - started)
        return state, None

    def watch_canary(self, name: str, image: str, before: str, monitor: float,
                     timeout: float) -> Canary | Rollout:
        """After an update held after its first task: that task (the canary) once it has run
        for `monitor` seconds, or how the update ended (Swarm rolled it back)."""
        started = time.monotonic()
        since: dict[str, float] = {}
        while time.monotonic() - started < timeout:
            state, ended = self._update_state(name, before, started)
            if ended is not None:
                return ended
            running = [] if state.startswith("rollback") else [
                t for t in self.tasks(name) if _image(t) == image
                and t.get("DesiredState") == "running"
                and (t.get("Status") or {}).get("State") == "running"]
            now = time.monotonic()
            since = {str(t["ID"]): since.get(str(t["ID"]), now) for t in running}
            for task in running:
                if now - since[str(task["ID"])] >= monitor:
                    return Canary(str(task["ID"]), int(task.get("Slot") or 0), now - started)
            time.sleep(0.5)
        raise EngineError(f"service {name}: its canary did not run healthy within "
                          f"{timeout:.0f}s (see `docker service ps`); kiln left it running")

    def replaced_slots(self, name: str, image: str, known: frozenset[str] = frozenset()
                       ) -> list[int]:
        """The slots that got a task of `image` (Swarm keeps a few tasks of history), tasks
        in `known` (those before an update) left out."""
        return sorted({int(t.get("Slot") or 0) for t in self.tasks(name)
                       if _image(t) == image and str(t["ID"]) not in known})

    def wait(self, name: str, before: str, timeout: float) -> Rollout:
        """Until the update after `before` ends: its final state, as the manager says."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            _, ended = self._update_state(name, before, started)
            if ended is not None:
                return ended
            time.sleep(0.5)
        raise EngineError(f"service {name}: the update did not end within {timeout:.0f}s "
                          "(see `docker service ps`); kiln left it running")

    def wait_running(self, name: str, replicas: int, timeout: float) -> Rollout:
        """After create: until `replicas` tasks run (healthy, when the image has a check)."""
        started = time.monotonic()
        failures: list[str] = []
        while time.monotonic() - started < timeout:
            tasks = [t for t in self.tasks(name) if t.get("DesiredState") == "running"]
            running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running"]
            failures = [str((t.get("Status") or {}).get("Err", "")) for t in self.tasks(name)
                        if (t.get("Status") or {}).get("State") in ("failed", "rejected")]
            if len(running) >= replicas:
                return Rollout("created", "", time.monotonic() - started)
            time.sleep(0.5)
        raise EngineError(f"service {name}: {replicas} tasks did not start within "
                          f"{timeout:.0f}s ({'; '.join(sorted(set(failures)))[:300] or 'pending'})")

    def failures(self, name: str, image: str) -> list[str]:
        """Why tasks of `image` failed, newest first (for the report of a rolled back update)."""
        out = []
        for task in sorted(self.tasks(name), key=lambda t: str(t.get("UpdatedAt", "")),
                           reverse=True):
            status = task.get("Status") or {}
            if _image(task) == image and status.get("Err"):
                out.append(str(status["Err"]))
        return list(dict.fromkeys(out))

    def running_image(self, name: str) -> str:
        current = self.service(name)
        if current is None:
            raise EngineError(f"no service {name} in this swarm")
        return str(current["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])

    def replicas(self, name: str) -> int:
        current = self.service(name)
        if current is None:
            raise EngineError(f"no service {name} in this swarm")
        return int(((current["Spec"].get("Mode") or {}).get("Replicated") or {}).get(
            "Replicas", 1))

    def remove(self, name: str) -> None:
        self.engine.remove_service(name)


def _image(task: dict[str, Any]) -> str:
    return str(((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", ""))
