"""The one place that talks to the Docker engine (through docker-py).

Engine errors are translated here into kiln's own exceptions. Streamed operations report their
errors inside the stream, so build() reads the stream and raises.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from docker.models.containers import Container

from kiln.errors import BuildError, EngineError

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$", re.S)
KILN_LABEL = "dev.kiln.managed"  # on every container kiln starts, so leaks can be found


@dataclass(frozen=True)
class Step:
    number: int
    total: int
    text: str


@dataclass(frozen=True)
class Output:
    line: str


BuildEvent = Step | Output


class Engine:
    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.api = client.api

    @classmethod
    def connect(cls) -> Engine:
        try:
            client = docker.from_env(timeout=600)
            client.ping()
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"cannot reach the Docker engine: {_reason(exc)} "
                "(start dockerd, or point DOCKER_HOST at an engine)") from None
        return cls(client)

    # images ------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        try:
            return str(self.api.inspect_image(ref)["Id"])  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
            raise EngineError(f"{ref}: cannot inspect image: {_reason(exc)}") from None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        try:
            return dict(self.api.inspect_image(ref))  # type: ignore[no-untyped-call]
        except docker.errors.DockerException as exc:
            raise EngineError(f"{ref}: no such image in the engine ({_reason(exc)})") from None

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

    def pull(self, ref: str) -> str:
        try:
            self.client.images.pull(ref)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot pull {ref}: {_reason(exc)} (is the registry reachable, "
                              "and are you logged in?)") from None
        image_id = self.image_id(ref)
        assert image_id is not None
        return image_id

    def build(self, context: IO[bytes], tag: str, *, nocache: bool = False,
              tail: deque[str] | None = None) -> Iterator[BuildEvent]:
        """Build from an uncompressed context tar; yields steps and output, returns via tag.

        The classic builder is used because docker-py speaks its API; every instruction kiln
        renders is supported by it (file modes are set in the context tar, not by --chmod).
        """
        tail = tail if tail is not None else deque(maxlen=40)
        try:
            stream = self.api.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                    forcerm=True, pull=False, nocache=nocache, decode=True)
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise BuildError(str(detail).strip())
                text = chunk.get("stream")
                if not text:
                    continue
                if m := STEP_RE.match(text.strip()):
                    tail.clear()
                    yield Step(int(m.group(1)), int(m.group(2)), m.group(3))
                    continue
                for line in text.rstrip("\n").split("\n"):
                    if line.strip() and not line.startswith(" ---> "):
                        tail.append(line)
                        yield Output(line)
        except docker.errors.DockerException as exc:
            raise EngineError(f"the engine failed the build: {_reason(exc)}") from None

    # containers --------------------------------------------------------------------------
    def run_container(self, image: str, *, command: list[str] | None = None,
                      entrypoint: list[str] | None = None, labels: dict[str, str] | None = None,
                      **kwargs: Any) -> Container:
        try:
            return self.client.containers.run(
                image, command=command, entrypoint=entrypoint, detach=True,
                labels={KILN_LABEL: "1", **(labels or {})}, **kwargs)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot start a container of {image}: {_reason(exc)}") from None

    def remove_container(self, container: Container) -> None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot remove container {container.short_id}: "
                              f"{_reason(exc)}") from None

    def containers(self, label: str = KILN_LABEL) -> list[Container]:
        return list(self.client.containers.list(all=True, filters={"label": label}))

    def export_filesystem(self, image: str, out: IO[bytes]) -> int:
        """Write the image's whole filesystem as a tar into `out` (a VM disk is made from it).

        A container is created (never started) and removed again, pass or fail. Returns the
        number of bytes written.
        """
        try:
            created = self.api.create_container(image, command=["/bin/true"],
                                                labels={KILN_LABEL: "1"})
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
