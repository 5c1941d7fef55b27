"""One run against the registry: the project, its config, the client, the engine."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from pathlib import Path

from kiln.config import Config, load_config
from kiln.embedded import embedded
from kiln.engine import Engine
from kiln.load import Project
from kiln.records import state_dir
from kiln.registry import Registry
from kiln.ui import UI


@dataclass
class Session:
    project: Project
    config: Config
    registry: Registry
    ui: UI
    engine: Engine | None = None
    who: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")

    @property
    def root(self) -> Path:
        return self.project.root

    def need_engine(self) -> Engine:
        if self.engine is None:
            self.engine = Engine.connect()
        return self.engine

    def tmp_parent(self) -> Path:
        """Where temporary files of a push live: the state folder, removed on every exit."""
        path = state_dir(self.root) / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path


def open_session(project: Project, ui: UI, engine: Engine | None = None,
                 config: Config | None = None) -> Session:
    """Resolve the registry (starting the embedded one when none is set) and check it answers."""
    config = config or load_config(project.root)
    if config.embedded:
        local = embedded(project.root)
        if not local.healthy():
            ui.info(f"starting kiln's embedded registry ({local.folder})")
        address = local.start()
    else:
        address = config.registry
    registry = Registry(address)
    registry.ping()
    return Session(project, config, registry, ui, engine)
