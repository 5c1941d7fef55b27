"""The one place that talks to the Docker engine (through docker-py).

Engine errors are translated here into kiln's own exceptions. Streamed operations report their
errors inside the stream, so build() reads the stream and raises.

docker-py (with requests, and paramiko for ssh://) costs a third of a second to import, more
than a whole no-op build: it is imported on first use, and the one question a no-op build asks
(does this image exist, and what is its ID) goes straight to the engine's unix socket.
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

from kiln import dockersock, session
from kiln.credentials import IDENTITY_TOKEN_USER
from kiln.dockersock import unix_socket
from kiln.errors import EngineError

if TYPE_CHECKING:
    import docker
    import docker.errors
    from docker.models.containers import Container
else:
    class _Lazy:
        """`docker` and `docker.errors`, imported when an attribute is first read."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            module: ModuleType = importlib.import_module(self._name)
            value = (importlib.import_module("docker.errors") if attr == "errors"
                     else getattr(module, attr))
            # Kept: an `except docker.errors...` clause met while the interpreter shuts down
            # (a stream closed late) must not need the import system.
            setattr(self, attr, value)
            return value

    docker = _Lazy("docker")

KILN_LABEL = "dev.kiln.managed"  # on every container kiln starts, so leaks can be found


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class Engine:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> Engine:
        """A handle on a reachable engine. On a unix socket, docker-py is loaded on first use;
        that the socket accepts a connection is checked here."""
        if unix_socket():
            dockersock.reachable()
            return cls()
        return cls(cls().client)

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                client = docker.from_env(timeout=600)
                client.ping()
            except docker.errors.DockerException as exc:
                raise EngineError(
                    f"cannot reach the Docker engine: {_reason(exc)} "
                    "(start dockerd, or point DOCKER_HOST at an engine)") from None
            self._client = client
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # images ------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        found = self.image_tags(ref)
        return found[0] if found else None

    def image_tags(self, ref: str) -> tuple[str, list[str]] | None:
        """(ID, every name it has) of an image, or None: one question to the engine."""
        if self._client is None and unix_socket():
            found = dockersock.inspect_image(ref)
        else:
            try:
                found = self.api.inspect_image(ref)  # type: ignore[no-untyped-call]
            except docker.errors.ImageNotFound:
                found = None
            except docker.errors.APIError as exc:
                if exc.status_code != 404:
                    raise EngineError(f"{ref}: cannot inspect image: {_reason(exc)}") from None
                found = None
        return (str(found["Id"]), list(found.get("RepoTags") or [])) if found else None

    def images_named(self, repositories: list[str]) -> list[dict[str, Any]]:
        """Every image with a name in these repositories (their IDs and RepoTags): one call."""
        if self._client is None and unix_socket():
            return dockersock.images_named(repositories)
        try:
            return list(self.api.images(filters={"reference": repositories}))
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list images: {_reason(exc)}") from None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        try:
            return dict(self.api.inspect_image(ref))  # type: ignore[no-untyped-call]
        except docker.errors.DockerException as exc:
            raise EngineError(f"{ref}: no such image in the engine ({_reason(exc)})") from None

    def history(self, ref: str) -> list[str]:
        """What made each history entry of the image (`created_by`), oldest first."""
        try:
            entries = self.api.history(ref)  # type: ignore[no-untyped-call]
        except docker.errors.DockerException as exc:
            raise EngineError(f"{ref}: cannot read the image's history ({_reason(exc)})"
                              ) from None
        return [str(entry.get("CreatedBy") or "") for entry in reversed(entries)]

    def tag(self, image_id: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        try:
            self.api.tag(image_id, repository, tag)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot tag {image_id[:19]} as {ref}: {_reason(exc)}") from None

    def remove_image(self, ref: str) -> None:
        try:
            self.api.remove_image(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot remove {ref}: {_reason(exc)}") from None

    def images(self, label: str) -> list[dict[str, Any]]:
        return list(self.api.images(filters={"label": label}))

    # disk use (kiln prune) -----------------------------------------------------------------
    def layers_size(self) -> int:
        """Bytes the engine's image layers take, shared layers counted once."""
        try:
            return int(self.api.df().get("LayersSize") or 0)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot read the engine's disk use: {_reason(exc)}") from None

    def build_cache(self) -> list[dict[str, Any]]:
        try:
            return list(self.api.df().get("BuildCache") or [])
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list the build cache: {_reason(exc)}") from None

    def prune_build_cache(self) -> int:
        """Remove the unused BuildKit cache (the engine cannot prune one build's records alone:
        filtered prunes leave records whose children remain); the bytes reclaimed."""
        try:
            result = self.api.prune_builds()
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot prune the build cache: {_reason(exc)}") from None
        return int(result.get("SpaceReclaimed") or 0)

    def import_rootfs(self, tarball: Path, ref: str, changes: list[str]) -> str:
        repository, _, tag = ref.rpartition(":")
        try:
            self.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                            changes=changes)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot import {tarball.name} as {ref}: {_reason(exc)}") from None
        image_id = self.image_id(ref)
        if image_id is None:
            raise EngineError(f"importing {tarball.name} as {ref} produced no image")
        return image_id

    def save_stream(self, ref: str) -> Iterator[bytes]:
        """`docker save`, as a stream of chunks."""
        try:
            yield from self.api.get_image(ref, chunk_size=1 << 20)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot save {ref}: {_reason(exc)}") from None

    def load_image(self, archive: Path) -> None:
        """`docker load` from a file, streamed; errors come inside the stream."""
        try:
            with archive.open("rb") as f:
                for chunk in self.api.load_image(f):  # type: ignore[no-untyped-call]
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise EngineError(f"cannot load {archive.name}: {chunk['error']}")
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot load {archive.name}: {_reason(exc)}") from None

    def remove_unused(self, image_id: str) -> None:
        """Remove an image unless something (a tag, a child, a container) still uses it.

        The engine removes an image by ID together with its one tag, if it has exactly one:
        so a tagged image is left alone here (another build, e.g. another session's, which
        BuildKit answered with the same raw image, holds that tag)."""
        with contextlib.suppress(docker.errors.DockerException):
            if self.api.inspect_image(image_id).get("RepoTags"):  # type: ignore[no-untyped-call]
                return
            self.api.remove_image(image_id, noprune=False)

    def pull(self, ref: str) -> str:
        try:
            self.client.images.pull(ref)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot pull {ref}: {_reason(exc)} (is the registry reachable, "
                              "and are you logged in?)") from None
        image_id = self.image_id(ref)
        assert image_id is not None
        return image_id

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save` as a stream of tar bytes (read it once, never whole in memory)."""
        try:
            yield from self.api.get_image(ref, chunk_size=1 << 20)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot export {ref}: {_reason(exc)}") from None

    def pull_stream(self, repository: str, tag_or_digest: str,
                    credentials: tuple[str, str] | None = None) -> str:
        """Pull `repository:tag` or `repository@sha256:...`; errors come in the stream.
        `credentials` (user, secret; user `<token>`: an identity token) go to the engine for
        this pull only; without them docker-py looks in Docker's config as `docker pull` does."""
        auth: dict[str, str] | None = None
        if credentials is not None:
            user, secret = credentials
            auth = {"identitytoken": secret} if user == IDENTITY_TOKEN_USER else \
                {"username": user, "password": secret}
        self._read_stream(lambda: self.api.pull(repository, tag=tag_or_digest, stream=True,
                                                decode=True, auth_config=auth),
                          f"pull {repository}@{tag_or_digest}")
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        image_id = self.image_id(f"{repository}{sep}{tag_or_digest}")
        if image_id is None:
            raise EngineError(f"the engine pulled {repository}{sep}{tag_or_digest} but has no "
                              "such image")
        return image_id

    def push(self, ref: str) -> str:
        """`docker push` (used by the benchmark); returns the digest the engine reports."""
        repository, _, tag = ref.rpartition(":")
        events = self._read_stream(lambda: self.api.push(repository, tag=tag, stream=True,
                                                         decode=True), f"push {ref}")
        for event in events:
            digest = (event.get("aux") or {}).get("Digest")
            if digest:
                return str(digest)
        raise EngineError(f"push {ref}: the engine reported no digest")

    def run_output(self, image: str, argv: list[str], timeout: float = 120,
                   name: str = "") -> tuple[int, str]:
        """Run argv (as entrypoint) in a throwaway container: (exit code, stdout). The
        container is named (kiln-run-<random> unless given), so an interrupted run leaves
        nothing that cannot be found and removed by name."""
        container = self.run_container(image, entrypoint=argv, command=[], user="0",
                                       name=name or f"kiln-run-{uuid.uuid4().hex[:12]}")
        try:
            code = int(container.wait(timeout=timeout).get("StatusCode", -1))
            out: bytes = container.logs(stdout=True, stderr=False)
        except docker.errors.DockerException as exc:
            raise EngineError(f"running {argv[0]} in {image[:19]} failed: {_reason(exc)}") from None
        finally:
            with contextlib.suppress(EngineError):
                self.remove_container(container)
        return code, out.decode(errors="replace")

    def _read_stream(self, start: Any, what: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        try:
            for event in start():
                if "error" in event:
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise EngineError(f"{what} failed: {str(detail).strip()}")
                events.append(event)
        except docker.errors.DockerException as exc:
            raise EngineError(f"{what} failed: {_reason(exc)}") from None
        return events

    # containers --------------------------------------------------------------------------
    def run_container(self, image: str, *, command: list[str] | None = None,
                      entrypoint: list[str] | None = None, labels: dict[str, str] | None = None,
                      **kwargs: Any) -> Container:
        try:
            return self.client.containers.run(
                image, command=command, entrypoint=entrypoint, detach=True,
                labels={KILN_LABEL: "1", **session.labels(), **(labels or {})}, **kwargs)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot start a container of {image}: {_reason(exc)}") from None

    def remove_container(self, container: Container | str) -> None:
        """Remove a container (by object, id or name), killing it first; gone already is fine."""
        ref = container if isinstance(container, str) else str(container.id)
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

    def run_once(self, image: str, argv: list[str], user: str = "root",
                 network: str | None = None) -> tuple[int, str]:
        """Run `argv` in a throwaway container; return its exit code and output. The output is
        read while it runs, so it is kept even if the container is removed right after.
        `network` is a network mode ("host": the host's loopback is reachable)."""
        extra: dict[str, Any] = {"network_mode": network} if network else {}
        container = self.run_container(image, entrypoint=argv[:1], command=argv[1:], user=user,
                                       **extra)
        try:
            output = b"".join(container.attach(stream=True, logs=True, stdout=True,
                                               stderr=True))
            code = int(container.wait().get("StatusCode", 1))
        except docker.errors.NotFound:
            raise EngineError(f"the container of {image} disappeared while it ran (removed by "
                              "someone else?); try again") from None
        except docker.errors.DockerException as exc:
            raise EngineError(f"running in a container of {image}: {_reason(exc)}") from None
        finally:
            self.remove_container(container)
        return code, output.decode(errors="replace")

    def containers(self, label: str = KILN_LABEL) -> list[Container]:
        # ignore_removed: a container removed between the list and its inspect is just gone.
        return list(self.client.containers.list(all=True, filters={"label": label},
                                                ignore_removed=True))

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


def _reason(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    text = str(exc)
    if "Connection refused" in text or "No such file or directory" in text:
        return "no engine is listening"
    return text
