"""The one place that talks to the Docker engine (through docker-py).

Engine errors are translated here into kiln's own exceptions. Streamed operations report their
errors inside the stream, so they are read to the end and raise. The Engine is one class made
of four parts: the connection (client.py: docker-py loaded on first use, the no-op build's
question answered on the unix socket), its images (images.py), its containers (containers.py)
and its Swarm services (services.py). Nothing outside kiln.engine imports docker-py.
"""

from __future__ import annotations

from kiln.engine.client import KILN_LABEL, Connection, docker
from kiln.engine.containers import Container, ContainerOps, ExecResult, RunResult
from kiln.engine.images import ImageOps
from kiln.engine.services import ServiceOps


class Engine(ImageOps, ContainerOps, ServiceOps):
    """A handle on one Docker engine: `Engine.connect()`, or `Engine(client)` for a docker-py
    client made elsewhere."""


__all__ = ["KILN_LABEL", "Connection", "Container", "Engine", "ExecResult", "RunResult", "docker"]
