"""The frozen specs: what the definitions say, resolved. Build state lives elsewhere (pipeline)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ParamValue = str | int | bool
ParamType = Literal["string", "integer", "boolean"]
Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Where:
    """A place in a definition file, for error messages."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    default: ParamValue
    description: str = ""


@dataclass(frozen=True)
class FileSpec:
    src: str  # relative to the layer's files/ folder
    dest: str  # absolute path in the image; a trailing '/' means "into this folder"
    mode: int = 0o644
    owner: str = "root:root"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    gid: int | None = None
    system: bool = False


@dataclass(frozen=True)
class UserSpec:
    name: str
    uid: int | None = None
    group: str | None = None  # primary group; created with the user's name when omitted
    groups: tuple[str, ...] = ()
    home: str | None = None
    shell: str = "/usr/sbin/nologin"
    system: bool = False


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # exec form, run without a shell
    interval: str = "30s"
    timeout: str = "5s"
    retries: int = 3
    start_period: str = "5s"


@dataclass(frozen=True)
class CheckOverride:
    """A test of a layer below that an image (or layer) skips or replaces, and why."""

    test: str  # <layer>::<test function>
    reason: str
    replaced_by: str | None = None  # a test of the declaring layer or image


@dataclass(frozen=True)
class Layer:
    name: str
    path: str  # the layer's folder, relative to the project root
    description: str = ""
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    packages: tuple[str, ...] = ()
    groups: tuple[GroupSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    env: Pairs = ()
    run: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    expose: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    stopsignal: str | None = None
    healthcheck: Healthcheck | None = None
    labels: Pairs = ()
    secrets: tuple[str, ...] = ()  # ids of build secrets mounted into the layer's run steps
    # Tests of layers below that this one skips or replaces: verification, not the image,
    # so not part of the fingerprint (compare=False).
    tests: tuple[CheckOverride, ...] = field(default=(), compare=False)
    tmpfs: tuple[str, ...] = ()  # paths that stay writable (tmpfs) under a read-only root
    capabilities: tuple[str, ...] = ()  # Linux capabilities the container needs (no CAP_)
    mutable: tuple[str, ...] = ()  # paths that may change at run time (kiln drift ignores)
    # dotted key path ("files[1].mode") -> line, for errors found after loading
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def file(self) -> str:
        return f"{self.path}/layer.yaml"

    def where(self, key: str) -> Where:
        return Where(self.file, _line_of(self.lines, key))


@dataclass(frozen=True)
class BootstrapBase:
    """A Debian root filesystem made from the mirror with mmdebstrap."""

    suite: str
    variant: str = "minbase"
    mirror: str = "http://deb.debian.org/debian"
    components: tuple[str, ...] = ("main",)
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageBase:
    """Another kiln image of this project, built first when missing."""

    image: str


@dataclass(frozen=True)
class RefBase:
    """An external image, pinned by digest: name@sha256:..."""

    ref: str


@dataclass(frozen=True)
class RootfsBase:
    """A root filesystem tarball inside the project, pinned by its sha256."""

    path: str
    sha256: str


Base = BootstrapBase | ImageBase | RefBase | RootfsBase
TargetKind = Literal["container", "vm"]


@dataclass(frozen=True)
class Image:
    name: str
    path: str  # images/<name>.yaml, relative to the project root
    base: Base
    layers: tuple[str, ...]
    description: str = ""
    version: str = "0"
    params: tuple[tuple[str, ParamValue], ...] = ()
    targets: tuple[TargetKind, ...] = ("container",)
    tags: tuple[str, ...] = ()
    labels: Pairs = ()
    tests: tuple[CheckOverride, ...] = field(default=(), compare=False)  # see Layer.tests
    unrestricted: str | None = None  # why the image cannot run under the restricted profile
    audit_min_index: int | None = None  # the lynis hardening index publishing requires
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def where(self, key: str) -> Where:
        return Where(self.path, _line_of(self.lines, key))


@dataclass(frozen=True)
class Section:
    """What one layer adds to an image, in the order it is rendered."""

    layer: str
    env: Pairs
    groups: tuple[GroupSpec, ...]
    users: tuple[UserSpec, ...]
    packages: tuple[str, ...]  # only those no earlier layer installed
    files: tuple[FileSpec, ...]
    run: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeConfig:
    """The image's runtime configuration, merged over every layer (parent image's included)."""

    env: Pairs = ()
    workdir: str | None = None
    user: str | None = None
    expose: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    stopsignal: str | None = None
    healthcheck: Healthcheck | None = None
    labels: Pairs = ()
    tmpfs: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """An image composed: its base, the ordered layers it adds, and the merged result."""

    image: Image
    parent: Plan | None
    layers: tuple[Layer, ...]  # the layers this image adds, resolved (params substituted)
    params: tuple[tuple[str, ParamValue], ...]  # every param visible to the image, resolved
    sections: tuple[Section, ...]
    config: RuntimeConfig

    @property
    def all_layers(self) -> tuple[Layer, ...]:
        inherited = self.parent.all_layers if self.parent else ()
        return inherited + self.layers

    @property
    def packages(self) -> tuple[str, ...]:
        inherited = self.parent.packages if self.parent else ()
        return inherited + tuple(p for s in self.sections for p in s.packages)

    @property
    def root_base(self) -> Base:
        return self.parent.root_base if self.parent else self.image.base


def _line_of(lines: Mapping[str, int], key: str) -> int:
    """The line of `key`, or of its nearest enclosing key that has one."""
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return lines.get("", 1)
