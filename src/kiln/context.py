"""One run's context, made once per command and handed to every task (as mkosi's Context is).

    Context.for_command(...)       the commands' one constructor
      .project  .ui                the definitions (kiln.load) and the output of this run
      .settings                    frozen: project root, build options, publishing config
      .engine   .registry          the doors, opened on first use: a run that needs neither
                                   connects to neither (a no-op night asks the registry nothing)
      .prepared(name)              `prepare` memoized per image: compose, fingerprint, lock,
                                   render and context list, once per image per process;
                                   `forget(name)` after rewriting its lock
      .results .verified ...       what the run did so far (kiln.pipeline fills them)

The build, the verification, the release and the nightly take this one object: the release
modules call it `s` (it replaced their `release.session.Session`).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kiln import lockfile
from kiln.compose import compose
from kiln.config import Config, load_config
from kiln.engine import Engine
from kiln.fingerprint import base_ref, digest_json, image_ref, inputs
from kiln.load import Project
from kiln.model import ImageBase, Plan
from kiln.records import VerifyRecord, state_dir
from kiln.render import ContextEntry, Rendered, context_entries, render_dockerfile
from kiln.ui import UI

if TYPE_CHECKING:  # requests, loaded by the first command that talks to a registry
    from kiln.registry import Registry

Action = Literal["built", "up to date", "pulled"]  # pulled: a parent taken from the registry


# specs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """Everything about an image that can be known without an engine."""

    plan: Plan
    fingerprint: str
    base_ref: str
    rendered: Rendered
    entries: tuple[ContextEntry, ...]
    inputs: Mapping[str, str]  # every input by name (kiln.fingerprint.inputs): fingerprinted

    @property
    def ref(self) -> str:
        return image_ref(self.plan.image.name, self.fingerprint)


def prepare(project: Project, name: str) -> Prepared:
    """Compose, fingerprint (hashing every context file), read the lock, render. Callers with
    a Context use `ctx.prepared(name)`, which does this once per image."""
    plan = compose(project, name)
    named = inputs(project.root, plan)
    fp = digest_json(named)
    ref = base_ref(project.root, plan)
    lock = lockfile.read(project.root, name)
    return Prepared(plan, fp, ref, render_dockerfile(plan, ref, fp, lock),
                    tuple(context_entries(project.root, plan)), MappingProxyType(named))


@dataclass(frozen=True)
class BuildOptions:
    nocache: bool = False
    force: bool = False
    verify: bool = True  # False: --no-verify, the image is left unverified
    keep: bool = False  # keep the verification container for debugging
    secrets: Mapping[str, Path] = field(default_factory=dict)  # id -> file, for `secrets:`
    network: str = "none"  # of every build step; "default" only to prove it changes nothing


@dataclass(frozen=True)
class Settings:
    """What a run was asked to do, fixed when it starts."""

    root: Path
    options: BuildOptions = BuildOptions()
    given: Config | None = None  # a config made by the caller (tests, benches), else kiln.toml's

    @cached_property
    def config(self) -> Config:
        """The publishing settings, read on first use: a build never reads kiln.toml."""
        return self.given if self.given is not None else load_config(self.root)


# the run's results, which kiln.pipeline fills --------------------------------------------------
@dataclass(frozen=True)
class BuildResult:
    image: str
    ref: str
    image_id: str
    fingerprint: str
    action: Action
    seconds: float
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "ref": self.ref, "id": self.image_id,
                "fingerprint": self.fingerprint, "action": self.action,
                "seconds": round(self.seconds, 2), "tags": list(self.tags)}


@dataclass(frozen=True)
class PulledParent:
    """A parent image taken from the registry instead of built (kiln.release.parents)."""

    image: str
    reference: str  # <registry>/<repository>@<digest>
    digest: str
    image_id: str
    bytes: int  # the manifest's layers and config, as the registry serves them
    seconds: float
    channel: str  # the channel that named it


class ParentSource(Protocol):
    def __call__(self, prepared: Prepared) -> PulledParent | None:
        """The published image of these definitions, pulled into the engine and checked; None
        when it is not published (build it); a TrustError when it is but may not be used."""


# the context ---------------------------------------------------------------------------------
class Context:
    """One run: frozen settings, lazy doors, the prepared-image memo and what was done."""

    def __init__(self, project: Project, engine: Engine | None = None, ui: UI | None = None,
                 *, nocache: bool = False, force: bool = False, verify: bool = True,
                 keep: bool = False, secrets: Mapping[str, Path] | None = None,
                 network: str = "none", config: Config | None = None,
                 registry: Registry | None = None, parents: ParentSource | None = None) -> None:
        self.project = project
        self.ui = ui or UI()
        self.settings = Settings(project.root, BuildOptions(nocache, force, verify, keep,
                                                            dict(secrets or {}), network), config)
        self._engine = engine
        self._registry = registry
        self._prepared: dict[str, Prepared] = {}
        self.who = f"{getpass.getuser()}@{socket.gethostname()}"  # signs channel moves
        self.results: dict[str, BuildResult] = {}
        self.verified: dict[str, VerifyRecord] = {}
        self.chains: dict[str, list[dict[str, Any]]] = {}  # for kiln.noop
        # The fan-out: parent images come from the registry when published (kiln nightly
        # --pull-parents), instead of being built again on every runner.
        self.parents = parents
        self.pulled: dict[str, PulledParent] = {}

    @classmethod
    def for_command(cls, *, verbose: bool = False, quiet: bool = False,
                    **options: Any) -> Context:
        """The context of one command: the project found from the working directory."""
        return cls(Project.find(), ui=UI(verbose=verbose, quiet=quiet), **options)

    # what was fixed at the start
    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def options(self) -> BuildOptions:
        return self.settings.options

    @property
    def config(self) -> Config:
        return self.settings.config

    # the doors, opened on first use
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.connect()
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def registry(self) -> Registry:
        """The registry client: kiln's embedded registry started when none is configured,
        and checked to answer, on first use."""
        if self._registry is None:
            self._registry = open_registry(self.config, self.ui)
        return self._registry

    # the memo
    def prepared(self, name: str) -> Prepared:
        """`prepare(project, name)`, once per image for this run."""
        if name not in self._prepared:
            self._prepared[name] = prepare(self.project, name)
        return self._prepared[name]

    def forget(self, name: str) -> None:
        """An input of `name` changed during the run (the nightly rewrote its lock): prepare it
        again when next asked. Its children's fingerprints include its own: forget them too."""
        self._prepared.pop(name, None)
        for other, done in list(self._prepared.items()):
            base = done.plan.image.base
            if isinstance(base, ImageBase) and base.image == name:
                self.forget(other)

    # temporary files of this process
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
        their named containers (the engine is connected for it). A run that is still alive
        keeps its own."""
        pattern = re.compile(rf"^kiln-[a-z-]+-{re.escape(_host())}-(\d+)-")
        for path in self.tmp_parent().iterdir():
            found = pattern.match(path.name)
            if found and not _alive(int(found.group(1))):
                shutil.rmtree(path, ignore_errors=True)
        for container in self.engine.containers():
            found = pattern.match(f"{container.name}-")
            if found and not _alive(int(found.group(1))):
                self.engine.remove_container(str(container.name))


def open_registry(config: Config, ui: UI) -> Registry:
    """Resolve the registry (starting the embedded one when none is set) and check it answers."""
    from kiln.embedded import embedded
    from kiln.registry import Registry

    if config.embedded:
        local = embedded(config.root)
        if not local.healthy():
            ui.info(f"starting kiln's embedded registry ({local.folder})")
        local.start()
        registry = local.client()  # with the embedded registry's own credential
    else:
        registry = Registry(config.registry)
    registry.ping()
    return registry


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


__all__ = ["Action", "BuildOptions", "BuildResult", "Context", "ParentSource", "Prepared",
           "PulledParent", "Settings", "open_registry", "prepare"]
