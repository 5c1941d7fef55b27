"""YAML definitions -> frozen model: strict keys, no aliases, errors as path:line: message."""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln import guard
from kiln.errors import DefinitionError, KilnError, Problem
from kiln.model import (
    Base,
    BootstrapBase,
    Image,
    ImageBase,
    Layer,
    RefBase,
    RootfsBase,
)
from kiln.schema import (
    BOOTSTRAP_VARIANTS,
    DIGEST_REF_RE,
    IMAGE_FIELDS,
    LAYER_FIELDS,
    NAME_RE,
    SHA256_RE,
    TAG_RE,
    Field,
    Reader,
)
from kiln.yamlnodes import Map, Node, parse

TARGETS = ("container", "vm")


@dataclass
class Project:
    """A checkout holding images/ and layers/. Loads lazily and caches what it loaded."""

    root: Path
    _layers: dict[str, Layer] = field(default_factory=dict, repr=False)
    _images: dict[str, Image] = field(default_factory=dict, repr=False)

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """KILN_PROJECT, or the nearest folder at or above `start` that has images/."""
        if env := os.environ.get("KILN_PROJECT"):
            return cls(Path(env).resolve())
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "images").is_dir() and (folder / "layers").is_dir():
                return cls(folder)
        raise KilnError(f"{here}: no kiln project here or above "
                        "(a project has images/ and layers/; or set KILN_PROJECT)")

    def image_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "images").glob("*.yaml"))

    def layer_names(self) -> list[str]:
        return sorted(p.parent.name for p in (self.root / "layers").glob("*/layer.yaml"))

    def layer(self, name: str) -> Layer:
        if name not in self._layers:
            with _located(f"layers/{name}/layer.yaml"):
                self._layers[name] = load_layer(self.root, name)
        return self._layers[name]

    def has_layer(self, name: str) -> bool:
        try:
            return (self.root / "layers" / name / "layer.yaml").is_file()
        except (OSError, ValueError):  # a name too long for the file system, or with a NUL
            return False

    def image(self, name: str) -> Image:
        if name == "all":
            raise KilnError("images/all.yaml: 'all' is reserved (it means every image); "
                            "rename the image")
        if name not in self._images:
            if not NAME_RE.match(name) or not (self.root / "images" / f"{name}.yaml").is_file():
                known = ", ".join(self.image_names()) or "none"
                raise KilnError(f"images/{name}.yaml: no such image (known images: {known})")
            with _located(f"images/{name}.yaml"):
                self._images[name] = load_image(self.root, name)
        return self._images[name]

    def check_all(self) -> None:
        """Load every definition, reporting every problem in every file at once."""
        problems: list[Problem] = []
        for loader, names in ((self.layer, self.layer_names()), (self.image, self.image_names())):
            for name in names:
                try:
                    loader(name)
                except DefinitionError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise DefinitionError(problems)


@contextmanager
def _located(shown: str) -> Iterator[None]:
    """No file-system or recursion failure while loading a definition is a traceback."""
    try:
        yield
    except (OSError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DefinitionError([Problem(shown, 0, f"cannot load: {reason}",
                                       "check the file and the paths it names")]) from None


def read_fields(reader: Reader, root: Node, fields: tuple[Field, ...]) -> dict[str, Any]:
    known = {f.key: f for f in fields}
    out: dict[str, Any] = {}
    reader.lines[""] = root.line
    for key, line, value in reader.mapping(root, ""):
        if key not in known:
            reader.unknown(line, "", key, list(known))
            continue
        out[key] = known[key].read(reader, value, key)
    return out


def load_layer(root: Path, name: str) -> Layer:
    shown = f"layers/{name}/layer.yaml"
    node = parse(root / shown, shown)
    reader = Reader(shown)
    values = read_fields(reader, node, LAYER_FIELDS)
    layer_dir = root / "layers" / name
    for i, spec in enumerate(values.get("files", ())):
        _check_source(reader, layer_dir, spec.src, f"files[{i}].src")
    if reader.problems:
        raise DefinitionError(reader.problems)
    values = {k: v for k, v in values.items() if v is not None}
    # "./conf/" and "conf" name one source: one context entry, one hash.
    values["files"] = tuple(dataclasses.replace(spec, src=posixpath.normpath(spec.src))
                            for spec in values.get("files", ()))
    return Layer(name=name, path=f"layers/{name}", lines=reader.lines, **values)


def _check_source(reader: Reader, layer_dir: Path, src: str, key: str) -> None:
    """A file a layer copies must be inside its files/ folder, links included."""
    line = reader.lines.get(key, 0)
    if rule := guard.source_path(src):
        reader.problem(line, f"{key}: {rule[0]}", rule[1])
        return
    try:
        _check_source_file(reader, layer_dir, src, key, line)
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop, a folder we may
        # not read (Python 3.11's resolve() raises RuntimeError for a loop)
        reason = getattr(exc, "strerror", None) or exc
        reader.problem(line, f"{key}: cannot read 'files/{guard.shown(src)}': {reason}",
                       "name a readable file inside the layer")


def _check_source_file(reader: Reader, layer_dir: Path, src: str, key: str, line: int) -> None:
    files_dir = (layer_dir / "files").resolve()
    path = layer_dir / "files" / src
    if not path.exists() and not path.is_symlink():
        reader.problem(line, f"{key}: 'files/{src}' does not exist in {layer_dir.name}",
                       f"create layers/{layer_dir.name}/files/{src}")
        return
    real = path.resolve()
    if real != files_dir and files_dir not in real.parents:
        reader.problem(line, f"{key}: 'files/{src}' leads outside the layer (to {real})",
                       "copy the file into the layer instead of linking to it")
        return
    if path.is_dir():
        for inner in sorted(path.rglob("*")):
            real_inner = inner.resolve()
            rel = inner.relative_to(layer_dir)
            if files_dir not in real_inner.parents:
                reader.problem(line, f"{key}: '{rel}' leads outside the layer (to {real_inner})",
                               "copy the file into the layer instead of linking to it")
            elif inner.is_symlink() and inner.is_dir():
                # the context walk does not follow it: its files would silently be left out
                reader.problem(line, f"{key}: '{rel}' is a link to a folder",
                               "copy the folder, or link each file")


def load_image(root: Path, name: str) -> Image:
    shown = f"images/{name}.yaml"
    node = parse(root / shown, shown)
    reader = Reader(shown)
    values = read_fields(reader, node, IMAGE_FIELDS)
    for required in ("base", "layers"):
        if required not in values:
            reader.problem(node.line, f"missing required key '{required}'",
                           "see docs/definitions.md")
    base = _read_base(reader, values["base"], root) if "base" in values else None
    for i, target in enumerate(values.get("targets", ())):
        if target not in TARGETS:
            reader.problem(reader.lines[f"targets[{i}]"], f"targets[{i}]: unknown target "
                           f"'{target}'", "use " + " or ".join(TARGETS))
    for i, tag in enumerate(values.get("tags", ())):
        if not TAG_RE.match(tag):
            reader.problem(reader.lines[f"tags[{i}]"], f"tags[{i}]: invalid tag '{tag}'",
                           "letters, digits, '_', '.', '-'; at most 128")
    _check_image_values(reader, values)
    if reader.problems or base is None:
        raise DefinitionError(reader.problems)
    values["base"] = base
    values = {k: v for k, v in values.items() if v is not None}
    return Image(name=name, path=shown, lines=reader.lines, **values)


def _check_image_values(reader: Reader, values: dict[str, Any]) -> None:
    """The image's own values that reach the Dockerfile (labels) or a tag (version)."""
    def report(key: str, rule: tuple[str, str] | None) -> None:
        if rule:
            reader.problem(reader.lines.get(key, 0), f"{key}: {rule[0]}", rule[1])

    for name, value in values.get("labels", ()):
        if rule := guard.label_key(name):
            reader.problem(reader.lines.get(f"labels.{name}", 0), f"labels: {rule[0]}", rule[1])
        report(f"labels.{name}", guard.instruction_value(value))
    if (description := values.get("description")) is not None:
        report("description", guard.instruction_value(description))
    if (version := values.get("version")) is not None and not TAG_RE.match(version):
        report("version", (f"invalid version '{guard.shown(version)}'",
                           "it becomes a tag: letters, digits, '_', '.', '-'; at most 128"))


def _read_base(reader: Reader, node: Node, root: Path) -> Base | None:
    kinds = ("bootstrap", "image", "ref", "rootfs")
    entries = reader.mapping(node, "base")
    if not isinstance(node, Map):
        return None
    if len(entries) != 1 or entries[0][0] not in kinds:
        for k, line, _ in entries:
            if k not in kinds:
                reader.unknown(line, "base", k, list(kinds))
        if len(entries) != 1:
            reader.problem(node.line, "base: expected exactly one of " + ", ".join(kinds))
        return None
    kind, line, value = entries[0]
    if kind == "image":
        name = reader.name(value, "base.image")
        return ImageBase(name) if name else None
    if kind == "ref":
        ref = reader.string(value, "base.ref")
        if ref is None:
            return None
        if not DIGEST_REF_RE.match(ref):
            reader.problem(value.line, f"base.ref: '{ref}' is not pinned by digest",
                           "write name@sha256:<64 hex digits>; a tag can move under you")
            return None
        return RefBase(ref)
    if kind == "rootfs":
        rec = reader.record(value, "base.rootfs", {"path": reader.string, "sha256": reader.string},
                            required=("path", "sha256"))
        if rec is None:
            return None
        path, sha = rec["path"], rec["sha256"]
        if rule := guard.instruction_value(path):
            reader.problem(value.line, f"base.rootfs.path: {rule[0]}", rule[1])
            return None
        if not SHA256_RE.match(sha):
            reader.problem(value.line, "base.rootfs.sha256: expected 64 lowercase hex digits")
        real = (root / path).resolve()
        if path.startswith("/") or root.resolve() not in real.parents:
            reader.problem(value.line, f"base.rootfs.path: '{path}' must be inside the project")
            return None
        return RootfsBase(path, sha)
    rec = reader.record(value, "base.bootstrap", {
        "suite": reader.name, "variant": reader.string, "mirror": reader.string,
        "components": reader.names, "packages": reader.strings,
    }, required=("suite",))
    if rec is None:
        return None
    if rec.get("variant", "minbase") not in BOOTSTRAP_VARIANTS:
        reader.problem(reader.lines["base.bootstrap.variant"],
                       f"base.bootstrap.variant: unknown variant '{rec['variant']}'",
                       "use one of " + ", ".join(BOOTSTRAP_VARIANTS))
        return None
    return BootstrapBase(**rec)
