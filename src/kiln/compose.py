"""Layers -> an ordered, merged Plan. Missing layers, cycles, conflicts and bad params reported."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from kiln import guard
from kiln.durations import DURATION_RE
from kiln.errors import DefinitionError, KilnError, Problem
from kiln.load import Project
from kiln.model import (
    Image,
    ImageBase,
    Layer,
    Plan,
    RuntimeConfig,
    Section,
    Where,
)
from kiln.params import resolve_params, substitute
from kiln.schema import LAYER_FIELDS, NAME_RE, PORT_RE

ABSPATH_RE = re.compile(r"^(?!.*(^|/)\.\.(/|$))/[^\s\x00-\x1f\x7f]*$")
DEST_RE = re.compile(r"^(?!.*(^|/)\.\.(/|$))/[^\x00-\x1f\x7f]*$")
OWNER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
SIGNAL_RE = re.compile(r"^(SIG[A-Z0-9+]+|[0-9]+)$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+~:-]+)?$")
MERGE = {f.key: f.merge for f in LAYER_FIELDS}
KEYED_BY = {"files": "dest", "users": "name", "groups": "name"}


def compose(project: Project, name: str) -> Plan:
    return _compose(project, name, ())


def _compose(project: Project, name: str, chain: tuple[str, ...]) -> Plan:
    image = project.image(name)
    if name in chain:
        cycle = " -> ".join((*chain, name))
        raise DefinitionError([_at(image.where("base"), f"base images form a cycle: {cycle}",
                                   "an image cannot be built on itself")])
    parent = None
    if isinstance(image.base, ImageBase):
        if image.base.image not in project.image_names():
            raise DefinitionError([_at(image.where("base.image"),
                                       f"base image '{image.base.image}' does not exist",
                                       f"create images/{image.base.image}.yaml")])
        parent = _compose(project, image.base.image, (*chain, name))
    problems: list[Problem] = []
    inherited = parent.all_layers if parent else ()
    layers = _order(project, image, {layer.name for layer in inherited}, problems)
    if problems:
        raise DefinitionError(problems)
    _check_conflicts(image, (*inherited, *layers), problems)
    params = resolve_params(image, parent, layers, problems)
    if problems:
        raise DefinitionError(problems)
    values = dict(params)
    substituted: list[Layer] = []
    for layer in layers:
        before = len(problems)
        done = substitute(layer, values, problems)
        # a value left with an unknown {{ param }} in it is reported once, not also as invalid
        substituted.append(_check_resolved(done, problems) if len(problems) == before else done)
    resolved = tuple(substituted)
    if problems:
        raise DefinitionError(problems)
    config = _merge(image, parent, (*inherited, *resolved), problems)
    if problems:
        raise DefinitionError(problems)
    return Plan(image=image, parent=parent, layers=resolved, params=params,
                sections=_sections(parent, resolved), config=config)


def _check_resolved(layer: Layer, problems: list[Problem]) -> Layer:
    """Checks that could only wait until params were substituted; ports get their /tcp.

    Every string that lands in a Dockerfile instruction is checked here, after substitution,
    so a param cannot smuggle a newline, a space or a '..' into one.
    """
    before = len(problems)

    def bad(key: str, value: str, hint: str) -> None:
        problems.append(_at(layer.where(key), f"{key}: invalid value '{value}'", hint))

    def check(key: str, value: str | None, pattern: re.Pattern[str], hint: str) -> None:
        if value is not None and not pattern.match(value):
            bad(key, value, hint)

    for i, pkg in enumerate(layer.packages):
        if not PACKAGE_RE.match(pkg):
            problems.append(_at(layer.where(f"packages[{i}]"), f"invalid package '{pkg}'",
                                "a Debian package name, optionally name=version"))
    for i, port in enumerate(layer.expose):
        number = port.split("/")[0]
        if not PORT_RE.match(port) or not 0 < int(number) < 65536:
            problems.append(_at(layer.where(f"expose[{i}]"), f"invalid port '{port}'",
                                "write a port from 1 to 65535, like 8080 or 53/udp"))
    for key in ("users", "groups"):
        for i, account in enumerate(getattr(layer, key)):
            for attr in ("name", "group"):
                value = getattr(account, attr, None)
                if value is not None and not NAME_RE.match(value):
                    problems.append(_at(layer.where(f"{key}[{i}].{attr}"),
                                        f"{key}[{i}].{attr}: invalid name '{value}'",
                                        "use lowercase letters, digits, '.', '_' and '-'"))
            for attr in ("home", "shell"):
                check(f"{key}[{i}].{attr}", getattr(account, attr, None), ABSPATH_RE,
                      "an absolute path without '..', spaces or control characters")
    check("user", layer.user, OWNER_RE, "a user name or uid, optionally :group")
    check("stopsignal", layer.stopsignal, SIGNAL_RE, "a signal like SIGQUIT or 3")
    check("workdir", layer.workdir, ABSPATH_RE,
          "an absolute path without '..', spaces or control characters")
    for i, volume in enumerate(layer.volumes):
        check(f"volumes[{i}]", volume, ABSPATH_RE, "an absolute path without '..'")
    for i, path in enumerate(layer.tmpfs):
        check(f"tmpfs[{i}]", path, ABSPATH_RE, "an absolute path without '..'")
    for i, spec in enumerate(layer.files):
        check(f"files[{i}].owner", spec.owner, OWNER_RE, "user:group, names or ids")
        check(f"files[{i}].dest", spec.dest, DEST_RE,
              "an absolute path without '..' or control characters")
    if hc := layer.healthcheck:
        for attr in ("interval", "timeout", "start_period"):
            check(f"healthcheck.{attr}", getattr(hc, attr), DURATION_RE, "a duration like 30s")
    _check_values(layer, problems, len(problems) - before)
    expose = tuple(dict.fromkeys(p if "/" in p else f"{p}/tcp" for p in layer.expose))
    return dataclasses.replace(layer, expose=expose)


def _check_values(layer: Layer, problems: list[Problem], found: int) -> None:
    """Every string that reaches the build, literal or substituted, against kiln.guard's rules:
    none may end or join a Dockerfile instruction, forge a label or leave the layer. A line
    the checks above (the last `found` problems) already reported is not reported twice."""
    reported = {(p.path, p.line) for p in problems[len(problems) - found:]}
    found_here = list(guard.layer_values(layer))
    # Names that land inside kiln's own shell lines or mount options: `useradd --groups`,
    # `--mount=type=secret,id=`; a ',' or ';' there would add options or commands.
    names = [(f"secrets[{i}]", s) for i, s in enumerate(layer.secrets)] + [
        (f"users[{i}].groups[{j}]", g) for i, u in enumerate(layer.users)
        for j, g in enumerate(u.groups)]
    found_here += [(key, f"{key}: invalid name '{guard.shown(value)}'",
                    "use lowercase letters, digits, '.', '_' and '-'")
                   for key, value in names if not NAME_RE.match(value)]
    for key, message, hint in found_here:
        where = layer.where(key)
        if (where.path, where.line) not in reported:
            reported.add((where.path, where.line))
            problems.append(_at(where, message, hint))


def _at(where: Where, message: str, hint: str = "") -> Problem:
    return Problem(where.path, where.line, message, hint)


def _order(project: Project, image: Image, done: set[str], problems: list[Problem]
           ) -> tuple[Layer, ...]:
    """Image layers in order, each preceded by what it requires (depth first)."""
    ordered: list[Layer] = []
    placed = set(done)

    def visit(name: str, path: tuple[str, ...], where: Where) -> None:
        if name in placed:
            return
        if name in path:
            cycle = " -> ".join((*path[path.index(name):], name))
            problems.append(_at(where, f"layers require each other in a cycle: {cycle}",
                                "remove one of these requires"))
            return
        if not project.has_layer(name):
            known = ", ".join(project.layer_names())
            problems.append(_at(where, f"layer '{name}' does not exist",
                                f"create layers/{name}/layer.yaml; known layers: {known}"))
            return
        try:
            layer = project.layer(name)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            return
        for i, req in enumerate(layer.requires):
            visit(req, (*path, name), layer.where(f"requires[{i}]"))
        if name not in placed:
            placed.add(name)
            ordered.append(layer)

    seen: set[str] = set()
    for i, name in enumerate(image.layers):
        if name in seen:
            problems.append(_at(image.where(f"layers[{i}]"), f"layer '{name}' is listed twice"))
        seen.add(name)
        visit(name, (), image.where(f"layers[{i}]"))
    return tuple(ordered)


def _check_conflicts(image: Image, layers: Iterable[Layer], problems: list[Problem]) -> None:
    present = {layer.name for layer in layers}
    for layer in layers:
        for i, other in enumerate(layer.conflicts):
            if other in present:
                problems.append(_at(layer.where(f"conflicts[{i}]"),
                                    f"layer '{layer.name}' conflicts with layer '{other}', "
                                    f"and image '{image.name}' has both",
                                    f"remove one of them from {image.path}"))


def _merge(image: Image, parent: Plan | None, layers: tuple[Layer, ...],
           problems: list[Problem]) -> RuntimeConfig:
    merged: dict[str, Any] = {}
    owner: dict[str, Layer] = {}
    keyed: dict[tuple[str, str], tuple[Any, Layer, int]] = {}
    for layer in layers:
        for key, rule in MERGE.items():
            value = getattr(layer, key)
            if rule in ("none", "command") or value is None or value == ():
                continue
            if rule in ("union", "append"):
                have = merged.setdefault(key, [])
                have.extend(v for v in value if rule == "append" or v not in have)
            elif rule == "map":
                merged.setdefault(key, {}).update(dict(value))
            elif rule == "override":
                merged[key] = value
            elif rule == "exclusive":
                if key in merged and merged[key] != value:
                    first = owner[key]
                    problems.append(_at(layer.where(key),
                                        f"'{key}' is set by layer '{layer.name}' and differently "
                                        f"by layer '{first.name}' ({first.where(key)})",
                                        f"set '{key}' in one layer only"))
                merged.setdefault(key, value)
                owner.setdefault(key, layer)
            elif rule == "keyed":
                for i, item in enumerate(value):
                    ident = getattr(item, KEYED_BY[key])
                    first_item, first_layer, _ = keyed.get((key, ident), (item, layer, i))
                    # Two layers copying to one dest conflict even with equal specs: the
                    # sources are different files.
                    if first_item != item or (key == "files" and first_layer.name != layer.name):
                        _, first, j = keyed[key, ident]
                        problems.append(_at(layer.where(f"{key}[{i}]"),
                                            f"{key}: '{ident}' is defined by layer "
                                            f"'{layer.name}' and differently by layer "
                                            f"'{first.name}' ({first.where(f'{key}[{j}]')})",
                                            "define it once, in one layer"))
                    keyed.setdefault((key, ident), (item, layer, i))
    entrypoint, cmd = _command(layers)
    labels = dict(merged.get("labels", {}))
    for img in _image_chain(image, parent):
        labels.update(dict(img.labels))
    return RuntimeConfig(
        env=tuple(merged.get("env", {}).items()),
        workdir=merged.get("workdir"),
        user=merged.get("user"),
        expose=tuple(merged.get("expose", ())),
        volumes=tuple(merged.get("volumes", ())),
        entrypoint=entrypoint,
        cmd=cmd,
        stopsignal=merged.get("stopsignal"),
        healthcheck=merged.get("healthcheck"),
        labels=tuple(sorted(labels.items())),
        tmpfs=tuple(merged.get("tmpfs", ())),
        capabilities=tuple(merged.get("capabilities", ())),
    )


def _command(layers: tuple[Layer, ...]) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Entrypoint and cmd over the layers in order (the parent image's first), as Docker does:
    the later layer wins, and a layer that sets `entrypoint` resets the `cmd` before it unless
    it sets one too (the parent's default arguments are not arguments for a new program).
    `cmd: []` is a value: it clears the cmd."""
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    for layer in layers:
        if layer.entrypoint is not None:
            entrypoint, cmd = layer.entrypoint, layer.cmd
        elif layer.cmd is not None:
            cmd = layer.cmd
    return entrypoint, cmd


def _image_chain(image: Image, parent: Plan | None) -> list[Image]:
    chain = [image]
    while parent:
        chain.insert(0, parent.image)
        parent = parent.parent
    return chain


def _sections(parent: Plan | None, layers: tuple[Layer, ...]) -> tuple[Section, ...]:
    installed = set(parent.packages if parent else ())
    created = {(k, getattr(item, KEYED_BY[k])) for layer in (parent.all_layers if parent else ())
               for k in ("users", "groups") for item in getattr(layer, k)}
    sections = []
    for layer in layers:
        packages = tuple(p for p in dict.fromkeys(layer.packages) if p not in installed)
        installed.update(packages)
        groups = tuple(g for g in layer.groups if ("groups", g.name) not in created)
        users = tuple(u for u in layer.users if ("users", u.name) not in created)
        created.update(("groups", g.name) for g in groups)
        created.update(("users", u.name) for u in users)
        sections.append(Section(layer.name, layer.env, groups, users, packages, layer.files,
                                layer.run))
    return tuple(sections)


def compose_all(project: Project) -> list[Plan]:
    """Every image, parents before children; all definition problems reported together."""
    project.check_all()
    plans: dict[str, Plan] = {}
    problems: list[Problem] = []
    for name in project.image_names():
        try:
            plans[name] = compose(project, name)
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return build_order(plans.values())


def build_order(plans: Iterable[Plan]) -> list[Plan]:
    ordered: list[Plan] = []
    seen: set[str] = set()

    def visit(plan: Plan) -> None:
        if plan.parent:
            visit(plan.parent)
        if plan.image.name not in seen:
            seen.add(plan.image.name)
            ordered.append(plan)

    for plan in sorted(plans, key=lambda p: p.image.name):
        visit(plan)
    return ordered


__all__ = ["KilnError", "build_order", "compose", "compose_all"]
