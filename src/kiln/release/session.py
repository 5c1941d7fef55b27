"""One run against the registry: the project, its config, the client, the engine."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import sys
import time
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

    def temp_prefix(self, what: str) -> str:
        """`kiln-<what>-<host>-<pid>-`: a SIGKILLed run's leftovers are found by `sweep`."""
        return f"kiln-{what}-{_host()}-{os.getpid()}-"

    def sweep(self) -> None:
        """Remove what killed (SIGKILL) kiln runs on this host left: their temp folders and
        their named containers. A run that is still alive keeps its own."""
        pattern = re.compile(rf"^kiln-[a-z-]+-{re.escape(_host())}-(\d+)-")
        for path in self.tmp_parent().iterdir():
            found = pattern.match(path.name)
            if found and not _alive(int(found.group(1))):
                shutil.rmtree(path, ignore_errors=True)
        if self.engine is None:
            return
        for container in self.engine.containers():
            found = pattern.match(f"{container.name}-")
            if found and not _alive(int(found.group(1))):
                self.engine.remove_container(str(container.name))


def _host() -> str:
    return re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-")[:40] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def checkpoint(name: str) -> None:
    """A named point in a release operation. KILN_PAUSE_AT=<name> stops there (for the signal
    tests: they interrupt kiln at each phase and check what is left)."""
    if os.environ.get("KILN_PAUSE_AT") == name:
        print(f"kiln: paused at {name}", file=sys.stderr, flush=True)
        time.sleep(600)


def open_session(project: Project, ui: UI, engine: Engine | None = None,
                 config: Config | None = None) -> Session:
    """Resolve the registry (starting the embedded one when none is set) and check it answers."""
    config = config or load_config(project.root)
    if config.embedded:
        local = embedded(project.root)
        if not local.healthy():
            ui.info(f"starting kiln's embedded registry ({local.folder})")
        local.start()
        registry = local.client()  # with the embedded registry's own credential
    else:
        registry = Registry(config.registry)
    registry.ping()
    return Session(project, config, registry, ui, engine)
