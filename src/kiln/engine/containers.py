"""The engine's containers: run, create, start, exec, inspect, diff, export and remove them.
Every container kiln makes carries KILN_LABEL and the session's labels, so that a leak can be
found and removed (kiln.session)."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from kiln import session
from kiln.engine.client import KILN_LABEL, Connection, _reason, docker
from kiln.errors import EngineError


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class RunResult:
    """How a throwaway container's command ended, and what it wrote."""

    exit_code: int
    stdout: str
    stderr: str
    output: str  # both, in the order they came (what a terminal would have shown)


@dataclass(frozen=True)
class Container:
    """A container as kiln sees it: what the engine's list or inspect says of it."""

    id: str
    name: str
    labels: Mapping[str, str]
    image: str  # the image's ID


class ContainerOps(Connection):
    def run_once(self, image: str, argv: list[str], *, user: str = "root",
                 network: str | None = None, name: str = "",
                 timeout: float | None = None) -> RunResult:
        """Run `argv` (as the entrypoint) in a throwaway container, removed again, pass or
        fail. The container is named (kiln-run-<random> unless given), so an interrupted run
        leaves nothing that cannot be found and removed by name. `network` is a network mode
        ("host": the host's loopback is reachable); after `timeout` seconds the container is
        killed and the run is an EngineError.

        Its output is read while it runs, so it is kept even if the container is removed right
        after; the stream is attached before the container starts, as `docker run` does: an
        attach to a container that has already exited never ends (engine 20.10)."""
        ref = self.create_container(image, name or f"kiln-run-{uuid.uuid4().hex[:12]}",
                                    entrypoint=argv, user=user,
                                    host={"network_mode": network} if network else None)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(docker.errors.DockerException):
                self.api.kill(ref)

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        streams: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
        try:
            frames = self.api.attach(ref, stream=True, logs=True, demux=True)
            self.api.start(ref)
            if timer is not None:
                timer.start()
            for out, err in frames:
                streams[0 if out is not None else 1].append(out or err or b"")
                streams[2].append(out or err or b"")
            code = int(self.api.wait(ref).get("StatusCode", 1))
        except docker.errors.NotFound:
            raise EngineError(f"the container of {image[:19]} disappeared while {argv[0]} ran "
                              "(removed by someone else?); try again") from None
        except docker.errors.DockerException as exc:
            raise EngineError(f"running {argv[0]} in a container of {image[:19]} failed: "
                              f"{_reason(exc)}") from None
        finally:
            if timer is not None:
                timer.cancel()
            self.remove_container(ref)
        if timed_out.is_set():
            raise EngineError(f"{argv[0]} in a container of {image[:19]} did not end within "
                              f"{timeout:.0f}s (killed)")
        stdout, stderr, output = (b"".join(s).decode(errors="replace") for s in streams)
        return RunResult(code, stdout, stderr, output)

    def run_container(self, image: str, *, command: list[str] | None = None,
                      entrypoint: list[str] | None = None, labels: dict[str, str] | None = None,
                      **kwargs: Any) -> Container:
        """Start a labelled container, detached. `kwargs`: docker-py's containers.run options
        (name, user, network_mode, ports, volumes...)."""
        try:
            started = self.client.containers.run(
                image, command=command, entrypoint=entrypoint, detach=True,
                labels={KILN_LABEL: "1", **session.labels(), **(labels or {})}, **kwargs)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot start a container of {image}: {_reason(exc)}") from None
        attrs = started.attrs
        return Container(str(attrs["Id"]), str(attrs.get("Name", "")).lstrip("/"),
                         dict((attrs.get("Config") or {}).get("Labels") or {}),
                         str(attrs.get("Image", "")))

    def remove_container(self, container: Container | str) -> None:
        """Remove a container (by Container, id or name), killing it first; gone already is
        fine."""
        ref = container if isinstance(container, str) else container.id
        try:
            self.api.remove_container(ref, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or "already in progress" not in str(exc.explanation):
                raise EngineError(f"cannot remove container {ref[:12]}: "
                                  f"{_reason(exc)}") from None
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot remove container {ref[:12]}: {_reason(exc)}") from None

    def containers(self, label: str = KILN_LABEL) -> list[Container]:
        """Every container (running or not) with `label` (`key` or `key=value`)."""
        try:
            found = self.api.containers(all=True, filters={"label": label})
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list containers: {_reason(exc)}") from None
        return [Container(str(c["Id"]), str((c.get("Names") or [""])[0]).lstrip("/"),
                          dict(c.get("Labels") or {}), str(c.get("ImageID", "")))
                for c in found]

    def create_container(self, image: str, name: str, *, entrypoint: list[str] | None = None,
                         labels: dict[str, str] | None = None,
                         healthcheck: dict[str, Any] | None = None, user: str | None = None,
                         host: dict[str, Any] | None = None) -> str:
        """Create (not start) a labelled container; its id. Unset options come from the image.

        `host`: docker-py create_host_config options (read_only, tmpfs, cap_drop, binds...).
        """
        try:
            host_config = self.api.create_host_config(**host) if host else None
            created = self.api.create_container(
                image, name=name, entrypoint=entrypoint, healthcheck=healthcheck,
                labels={KILN_LABEL: "1", **session.labels(), **(labels or {})}, user=user,
                host_config=host_config)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot create a container of {image}: {_reason(exc)}") from None
        return str(created["Id"])

    def start_container(self, ref: str) -> None:
        try:
            self.api.start(ref)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot start container {ref}: {_reason(exc)}") from None

    def inspect_container(self, ref: str) -> dict[str, Any]:
        try:
            return dict(self.api.inspect_container(ref))
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot inspect container {ref}: {_reason(exc)}") from None

    def container_logs(self, ref: str, tail: int = 30) -> str:
        try:
            data: bytes = self.api.logs(ref, stdout=True, stderr=True, tail=tail)
        except docker.errors.DockerException as exc:
            return f"(no logs: {_reason(exc)})"
        return data.decode(errors="replace")

    def stat_path(self, ref: str, path: str) -> dict[str, Any] | None:
        """What the engine knows of a path inside a (created or running) container, or None."""
        try:
            stream, stat = self.api.get_archive(ref, path)
            for _ in stream:  # read to the end, so the connection goes back to the pool
                pass
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot look for {path} in container {ref}: "
                              f"{_reason(exc)}") from None
        return dict(stat or {})

    def exec(self, ref: str, argv: list[str], user: str | None = None) -> ExecResult:
        """Run a command in a running container, as `docker exec` does, without the CLI."""
        try:
            exec_id = self.api.exec_create(ref, argv, user=user or "")["Id"]
            stdout, stderr = self.api.exec_start(exec_id, demux=True)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot run {argv[0]} in container {ref}: {_reason(exc)}") from None
        return ExecResult(int(code if code is not None else -1), stdout or b"", stderr or b"")

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """`docker diff`: (kind, path) with kind C(hanged), A(dded) or D(eleted)."""
        try:
            changes = self.api.diff(ref) or []
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list the changes of container {ref}: "
                              f"{_reason(exc)}") from None
        kinds = {0: "C", 1: "A", 2: "D"}
        return [(kinds.get(int(c["Kind"]), "C"), str(c["Path"])) for c in changes]

    def exec_attached(self, ref: str, argv: list[str], user: str | None = None) -> Any:
        """Start a command with its stdin attached; its socket (multiplexed stream frames).

        docker-py hands out the read-only SocketIO of the HTTP response; the socket under it
        is what can be written to (sendall) and read from (recv).
        """
        try:
            exec_id = self.api.exec_create(ref, argv, stdin=True, user=user or "")["Id"]
            raw = self.api.exec_start(exec_id, socket=True)
            return getattr(raw, "_sock", raw)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot run {argv[0]} in container {ref}: {_reason(exc)}") from None

    def export_filesystem(self, image: str, out: IO[bytes]) -> int:
        """Write the image's whole filesystem as a tar into `out` (a VM disk is made from it).

        A container is created (never started) and removed again, pass or fail. Returns the
        number of bytes written.
        """
        try:
            created = self.api.create_container(image, command=["/bin/true"],
                                                labels={KILN_LABEL: "1", **session.labels()})
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot create a container of {image} to export: "
                              f"{_reason(exc)}") from None
        written = 0
        try:
            for chunk in self.api.export(created["Id"]):
                out.write(chunk)
                written += len(chunk)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot export the filesystem of {image}: {_reason(exc)}") from None
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(created["Id"], force=True, v=True)
        return written

