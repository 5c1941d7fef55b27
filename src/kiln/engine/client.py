"""The engine's connection: docker-py loaded lazily, the client made on first use, and
engine errors turned into kiln's own. Engine (kiln.engine) is this plus its image, container
and service operations (kiln.engine.images, kiln.engine.containers, kiln.engine.services).

docker-py (with requests, and paramiko for ssh://) costs a third of a second to import, more
than a whole no-op build: it is imported on first use, and the one question a no-op build asks
(does this image exist, and what is its ID) goes straight to the engine's unix socket
(kiln.dockersock).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self

from kiln import dockersock
from kiln.dockersock import unix_socket
from kiln.errors import EngineError

if TYPE_CHECKING:
    import docker as docker  # re-exported: images.py and containers.py use this name
    import docker.errors
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


class Connection:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> Self:
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

    def _read_stream(self, start: Any, what: str, hint: str = "") -> list[dict[str, Any]]:
        """The events of a streamed operation, read to the end; an error in the stream (or
        on the way) is an EngineError `<what> failed: <why><hint>`."""
        events: list[dict[str, Any]] = []
        try:
            for event in start():
                if "error" in event:
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise EngineError(f"{what} failed: {str(detail).strip()}{hint}")
                events.append(event)
        except docker.errors.DockerException as exc:
            raise EngineError(f"{what} failed: {_reason(exc)}{hint}") from None
        return events


def _reason(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    text = str(exc)
    if "Connection refused" in text or "No such file or directory" in text:
        return "no engine is listening"
    return text
