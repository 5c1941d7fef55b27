"""The engine's Swarm services: whether the engine is in a swarm, and services and their tasks
inspected, listed, created, updated and removed. Specs go in and come out as the Engine API's
own JSON (ServiceSpec, Task: https://docs.docker.com/engine/api/), which is what kiln.fleet
reads and writes; what a deploy does with them (canary, rollback) is kiln.fleet.swarm's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kiln.engine.client import Connection, _reason, docker
from kiln.errors import EngineError

T = TypeVar("T")


class ServiceOps(Connection):
    def _service_call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except docker.errors.DockerException as exc:
            raise EngineError(f"{what}: {_reason(exc)}") from None

    def swarm_active(self) -> bool:
        info = self._service_call("cannot ask the engine about its swarm", self.api.info)
        return str((info.get("Swarm") or {}).get("LocalNodeState")) == "active"

    def service(self, name: str) -> dict[str, Any] | None:
        """The service as the manager has it (ID, Version, Spec, UpdateStatus...), or None."""
        try:
            return dict(self.api.inspect_service(name))  # type: ignore[no-untyped-call]
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot inspect service {name}: {_reason(exc)}") from None

    def services(self, label: str) -> list[dict[str, Any]]:
        return list(self._service_call("cannot list services",
                                       lambda: self.api.services(  # type: ignore[no-untyped-call]
                                           filters={"label": label})))

    def tasks(self, service: str) -> list[dict[str, Any]]:
        return list(self._service_call(f"cannot list the tasks of {service}",
                                       lambda: self.api.tasks(  # type: ignore[no-untyped-call]
                                           filters={"service": service})))

    def create_service(self, name: str, spec: dict[str, Any]) -> None:
        """Create `name` from a ServiceSpec (TaskTemplate, Labels, Mode, UpdateConfig,
        RollbackConfig, EndpointSpec). docker-py adds the registry credential Docker's config
        holds for the image, as `docker service create` does."""
        self._service_call(f"cannot create service {name}", lambda: self.api.create_service(  # type: ignore[no-untyped-call]
            spec["TaskTemplate"], name=name, labels=spec.get("Labels"), mode=spec.get("Mode"),
            update_config=spec.get("UpdateConfig"), rollback_config=spec.get("RollbackConfig"),
            endpoint_spec=spec.get("EndpointSpec")))

    def update_service(self, name: str, version: int, spec: dict[str, Any]) -> None:
        """Replace the spec of `name`, as of its `version` (Version.Index: the manager refuses
        an update based on a spec someone changed since)."""
        template = spec["TaskTemplate"]
        self._service_call(f"cannot update service {name}", lambda: self.api.update_service(
            name, version, task_template=template, name=name, labels=spec.get("Labels"),
            mode=spec.get("Mode"), update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"), networks=template.get("Networks"),
            endpoint_spec=spec.get("EndpointSpec")))

    def remove_service(self, name: str) -> None:
        """Remove `name`; gone already is fine."""
        try:
            self.api.remove_service(name)  # type: ignore[no-untyped-call]
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot remove service {name}: {_reason(exc)}") from None
