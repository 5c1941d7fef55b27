"""What `check` can know before a build, checked over the composed plans (pure, no engine).

compose checks each definition's keys and merge; these checks need the whole plan, the project's
files or several images at once. Every problem is `path:line: message (hint)`, all reported
together, and nothing is built while any remains:

- image file names (`images/Redis.yaml` is no image name);
- file owners and groups: an account must exist when the file is copied, created by a layer
  (this image's or a parent image's) or in the Debian base's passwd (base-passwd's static
  accounts); BuildKit would otherwise fail late, or an owner silently become root;
- healthcheck numbers (Docker refuses negative retries and durations under 1ms, late);
- the number of build steps: the engine stacks at most 125 layers, and BuildKit fails with
  "max depth exceeded" far into a build;
- tests a layer or image skips or replaces (kiln.testowners).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from kiln.durations import NANOS, nanoseconds
from kiln.errors import DefinitionError, Problem
from kiln.model import BootstrapBase, ImageBase, Layer, Plan
from kiln.render import render_dockerfile
from kiln.schema import NAME_RE
from kiln.testowners import check_overrides

# base-passwd's static accounts (passwd.master, group.master), in every Debian from mmdebstrap,
# plus _apt, which apt's own postinst creates in every bootstrap.
DEBIAN_USERS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt"})
DEBIAN_GROUPS = frozenset({
    "root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man",
    "proxy", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio",
    "dip", "www-data", "backup", "operator", "list", "irc", "src", "gnats", "shadow", "utmp",
    "video", "sasl", "plugdev", "staff", "games", "users", "nogroup"})
# moby's layer store refuses a chain deeper than 125 layers ("max depth exceeded"); a parent
# image is one layer once normalised, its own base one more.
MAX_LAYERS = 125
STEP_RE = re.compile(r"^(RUN|COPY|ADD) ", re.M)


def check_names(root: Path) -> None:
    """Definition file names are image and layer names: checked before anything is loaded."""
    problems = []
    for path in sorted((root / "images").glob("*.yaml")):
        if not NAME_RE.match(path.stem):
            problems.append(Problem(f"images/{path.name}", 0, f"'{path.stem}' is not a valid "
                                    "image name (the file name is the image's name)",
                                    f"rename it images/{_fixed(path.stem)}.yaml: lowercase "
                                    "letters, digits, '.', '_' and '-'"))
    for path in sorted((root / "layers").glob("*/layer.yaml")):
        name = path.parent.name
        if not NAME_RE.match(name):
            problems.append(Problem(f"layers/{name}/layer.yaml", 0, f"'{name}' is not a valid "
                                    "layer name (the folder name is the layer's name)",
                                    f"rename the folder layers/{_fixed(name)}: lowercase "
                                    "letters, digits, '.', '_' and '-'"))
    if problems:
        raise DefinitionError(problems)


def _fixed(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", name.lower()).lstrip("._-") or "image"


def check_plans(root: Path, plans: Iterable[Plan]) -> None:
    problems: list[Problem] = []
    for plan in plans:
        problems += check_overrides(root, plan)
        problems += check_owners(plan)
        problems += check_healthcheck(plan)
        problems += check_steps(plan)
    if problems:
        raise DefinitionError(problems)


# owners --------------------------------------------------------------------------------------
def _debian_rooted(plan: Plan) -> bool:
    """True when the chain starts from a bootstrap, whose passwd kiln knows."""
    while isinstance(plan.image.base, ImageBase) and plan.parent is not None:
        plan = plan.parent
    return isinstance(plan.image.base, BootstrapBase)


def check_owners(plan: Plan) -> list[Problem]:
    if not _debian_rooted(plan):
        return []  # a pinned ref or rootfs: its passwd is not known before a build
    users, groups = set(DEBIAN_USERS), set(DEBIAN_GROUPS)
    inherited = len(plan.all_layers) - len(plan.layers)
    problems = []
    for i, layer in enumerate(plan.all_layers):
        _add_accounts(layer, users, groups)  # accounts come before the layer's files
        if i < inherited:
            continue  # the parent image's own problems are reported on the parent
        for j, spec in enumerate(layer.files):
            user, _, group = spec.owner.partition(":")
            where = layer.where(f"files[{j}].owner")
            if not user.isdigit() and user not in users:
                problems.append(_owner_problem(where.path, where.line, j, "user", user, users))
            if group and not group.isdigit() and group not in groups:
                problems.append(_owner_problem(where.path, where.line, j, "group", group, groups))
    return problems


def _add_accounts(layer: Layer, users: set[str], groups: set[str]) -> None:
    groups.update(g.name for g in layer.groups)
    for u in layer.users:
        users.add(u.name)
        groups.add(u.group or u.name)


def _owner_problem(path: str, line: int, index: int, kind: str, name: str,
                   known: set[str]) -> Problem:
    return Problem(path, line, f"files[{index}].owner: no {kind} '{name}' when this file is "
                   "copied (neither the layers before it nor the Debian base create it)",
                   f"declare it under {kind}s: in this or an earlier layer, or write a numeric "
                   f"id if a package creates it")


# healthcheck ---------------------------------------------------------------------------------
def check_healthcheck(plan: Plan) -> list[Problem]:
    problems = []
    for layer in plan.layers:
        hc = layer.healthcheck
        if hc is None:
            continue
        if hc.retries < 1:
            where = layer.where("healthcheck.retries")
            problems.append(Problem(where.path, where.line, f"healthcheck.retries: {hc.retries} "
                                    "is not a number of tries", "write 1 or more (default 3)"))
        for attr in ("interval", "timeout", "start_period"):
            value = getattr(hc, attr)
            nanos = nanoseconds(value) or 0  # compose refused what is not a duration
            zero_ok = attr == "start_period"
            if nanos < NANOS["ms"] and not (zero_ok and nanos == 0):
                where = layer.where(f"healthcheck.{attr}")
                problems.append(Problem(where.path, where.line, f"healthcheck.{attr}: '{value}' "
                                        "is shorter than Docker's minimum of 1ms",
                                        "write a duration like 10s"
                                        + (" (or 0s for none)" if zero_ok else "")))
    return problems


# build steps ---------------------------------------------------------------------------------
def check_steps(plan: Plan) -> list[Problem]:
    dockerfile = render_dockerfile(plan, "kiln/check:0", "0" * 64).dockerfile
    steps = len(STEP_RE.findall(dockerfile))
    depth = 1  # the base: a bootstrap, rootfs or pinned ref is taken as one layer
    parent = plan.parent
    while parent is not None:
        depth += 1
        parent = parent.parent
    if steps + depth <= MAX_LAYERS:
        return []
    runs = sorted(((len(la.run), la) for la in plan.layers), key=lambda x: -x[0])
    most, layer = runs[0]
    where = layer.where("run")
    return [Problem(where.path, where.line, f"image '{plan.image.name}' needs {steps} build "
                    f"steps on {depth} base layers, more than the {MAX_LAYERS} layers the "
                    f"engine stacks (BuildKit would fail with 'max depth exceeded')",
                    f"merge run steps: layer '{layer.name}' has {most}; one step can run "
                    "several commands (join them with && or write one multi-line script)")]
