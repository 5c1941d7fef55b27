"""Plan -> Dockerfile. Deterministic: the same plan gives the same bytes, anywhere, any time.

Order keeps the engine's cache useful: per layer (in layer order) its env, groups and users,
packages, files, then run steps; all runtime metadata and labels come last, so editing a label
or the command never rebuilds a filesystem layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kiln import RENDER_VERSION, __version__
from kiln.errors import KilnError
from kiln.lockfile import Lock
from kiln.model import GroupSpec, Plan, UserSpec
from kiln.render import checks
from kiln.render.context import source_arcname

APT_CLEAN = ("apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin "
             "/var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log "
             "/var/log/alternatives.log")

DEBS_AT = "/tmp/kiln-debs"  # where a layer's locked .debs are bind-mounted while it installs


def debs_dir(layer: str) -> str:
    """The folder of the build context holding the locked .debs a layer installs."""
    return f"debs/{layer}"


@dataclass(frozen=True)
class Instruction:
    layer: str | None  # the layer the instruction comes from; None for kiln's own
    text: str


@dataclass(frozen=True)
class Rendered:
    dockerfile: str
    instructions: tuple[Instruction, ...]  # one per engine build step, in order


def render_dockerfile(plan: Plan, base_ref: str, fingerprint: str,
                      lock: Lock | None = None) -> Rendered:
    """With a lock, packages are installed from the locked .debs, bind-mounted from the context
    (never copied into a layer) and run steps mount the layer's secrets: BuildKit syntax."""
    out: list[Instruction] = [Instruction(None, f"FROM {base_ref}")]
    secrets = {layer.name: layer.secrets for layer in plan.layers}
    parent_user = plan.parent.config.user if plan.parent else None
    if parent_user not in (None, "root", "0", "0:0"):
        # numeric, like every USER kiln writes: hadolint's DL3066, runAsNonRoot's checks
        out.append(Instruction(None, "USER 0:0"))
    for section in plan.sections:
        def add(text: str, layer: str = section.layer) -> None:
            out.append(Instruction(layer, text))

        if section.env:
            add("ENV " + " ".join(f"{k}={_quote(v)}" for k, v in section.env))
        accounts = [_groupadd(g) for g in section.groups] + [_useradd(u) for u in section.users]
        if accounts:
            add("RUN " + " \\\n && ".join(accounts))
        locked = lock.section(section.layer) if lock else None
        if section.packages and locked is not None:
            if locked.packages:  # none when the base already has every package
                add(f"RUN --mount=type=bind,source={debs_dir(section.layer)},target={DEBS_AT} "
                    "\\\n    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                    "--no-install-recommends \\\n      "
                    + " ".join(f"{DEBS_AT}/{p.filename}" for p in locked.packages)
                    + " \\\n && " + APT_CLEAN)
        elif section.packages:
            add("RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "--no-install-recommends \\\n      " + " ".join(section.packages)
                + " \\\n && " + APT_CLEAN)
        for spec in section.files:
            chown = "" if spec.owner in ("root:root", "root", "0:0") else f"--chown={spec.owner} "
            src = source_arcname(section.layer, spec)
            if any(c.isspace() for c in src + spec.dest):
                add(f"COPY {chown}{json.dumps([src, spec.dest])}")
            else:
                add(f"COPY {chown}{src} {spec.dest}")
        mounts = "".join(f"--mount=type=secret,id={s} " for s in secrets.get(section.layer, ()))
        for script in section.run:
            if "\n" in script.strip():
                add(f"RUN {mounts}" + json.dumps(["/bin/sh", "-euc", script.strip() + "\n"]))
            else:
                add(f"RUN {mounts}set -eu; {script.strip()}")
    config = plan.config

    def kiln(text: str) -> None:
        out.append(Instruction(None, text))

    if config.workdir:
        kiln(f"WORKDIR {config.workdir}")
    if config.expose:
        kiln("EXPOSE " + " ".join(config.expose))
    if config.volumes:
        kiln("VOLUME " + json.dumps(list(config.volumes)))
    if config.stopsignal:
        kiln(f"STOPSIGNAL {config.stopsignal}")
    if hc := config.healthcheck:
        kiln(f"HEALTHCHECK --interval={hc.interval} --timeout={hc.timeout} "
             f"--start-period={hc.start_period} --retries={hc.retries} "
             f"CMD {json.dumps(list(hc.test))}")
    if config.entrypoint is not None:
        kiln(f"ENTRYPOINT {json.dumps(list(config.entrypoint))}")
    if config.cmd is not None:
        kiln(f"CMD {json.dumps(list(config.cmd))}")
    if config.user or parent_user not in (None, "root", "0"):
        kiln(f"USER {config.user or '0:0'}")
    labels = dict(config.labels) | provenance_labels(plan, fingerprint)
    kiln("LABEL " + " \\\n      ".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items())))
    header = (f"# Rendered by kiln {__version__} (render {RENDER_VERSION}) from "
              f"{plan.image.path}. Do not edit: change the definitions and run `invoke render`.\n")
    body = "\n".join(_comment(i, out) + ins.text for i, ins in enumerate(out))
    rendered = Rendered(header + body + "\n", tuple(out))
    _check_structure(plan, rendered)
    return rendered


def _check_structure(plan: Plan, rendered: Rendered) -> None:
    """The Dockerfile, read as Docker reads it, has the instructions kiln wrote, one for one.

    kiln.guard keeps every value from ending or joining an instruction; this holds even if a
    rule there is missing. The header comes first, before any value: a parser directive
    (`# escape=`, `# syntax=`) is only read above the first other line, so none can be injected.
    """
    if problem := checks.structure_problem(rendered.dockerfile,
                                           [i.text for i in rendered.instructions]):
        raise KilnError(f"{plan.image.path}: the rendered Dockerfile lost its planned shape: "
                        f"{problem} (a definition value got past kiln's checks: please report "
                        "this as a kiln bug, with the definition)")


def provenance_labels(plan: Plan, fingerprint: str) -> dict[str, str]:
    image = plan.image
    labels = {
        "org.opencontainers.image.title": image.name,
        "org.opencontainers.image.version": image.version,
        "dev.kiln.image": image.name,
        "dev.kiln.layers": ",".join(layer.name for layer in plan.all_layers),
        "dev.kiln.fingerprint": fingerprint,
        "dev.kiln.version": __version__,
    }
    if image.description:
        labels["org.opencontainers.image.description"] = image.description
    return labels


def _comment(index: int, out: list[Instruction]) -> str:
    """A banner where a new layer's instructions start, so the file reads layer by layer."""
    layer = out[index].layer
    if index and layer != out[index - 1].layer:
        return f"\n# --- layer: {layer} ---\n" if layer else "\n# --- image configuration ---\n"
    return ""


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _groupadd(group: GroupSpec) -> str:
    args = ["groupadd"]
    if group.system:
        args.append("--system")
    if group.gid is not None:
        args += ["--gid", str(group.gid)]
    return " ".join([*args, group.name])


def _useradd(user: UserSpec) -> str:
    args = ["useradd", "--no-log-init"]
    if user.system:
        args.append("--system")
    if user.uid is not None:
        args += ["--uid", str(user.uid)]
    args += ["--gid", user.group] if user.group else ["--user-group"]
    if user.groups:
        args += ["--groups", ",".join(user.groups)]
    args += ["--create-home", "--home-dir", user.home] if user.home else ["--no-create-home"]
    args += ["--shell", user.shell, user.name]
    return " ".join(args)
