"""Every definition key, declared once: its type, default, merge rule and help.

The loader reads keys through this table (unknown keys are errors), the composer merges by its
rules, and docs/definitions.md is generated from it (`invoke docs`), so the three cannot drift.
How each type is read (Reader and the patterns) is kiln.readers; its names are re-exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kiln.readers import (
    CAPABILITY_RE,
    DIGEST_REF_RE,
    ENV_RE,
    MODE_RE,
    NAME_RE,
    PORT_RE,
    SHA256_RE,
    TAG_RE,
    Reader,
)
from kiln.testowners import read_overrides
from kiln.yamlnodes import Node

Merge = Literal["none", "union", "append", "keyed", "map", "override", "exclusive", "command",
                "image"]

MERGE_RULES: dict[Merge, str] = {
    "none": "not merged: read by the composer itself",
    "union": "union in layer order; a value already present is not repeated",
    "append": "appended in layer order",
    "keyed": "appended in layer order; an entry defined twice must be identical, otherwise error",
    "map": "merged per key; the later layer wins (image labels win over all layers)",
    "override": "the later layer wins",
    "exclusive": "set by at most one layer; two layers setting different values is an error",
    "command": "the later layer wins, as in a Dockerfile; a layer that sets `entrypoint` resets "
               "the `cmd` set before it (parent image included) unless it sets `cmd` too; "
               "`cmd: []` clears it",
    "image": "image files only",
}

TESTS_TYPE = "list of {skip or replace: <layer>::<test>, with, reason}"
TESTS_HELP = ("Tests of layers below that no longer apply: `skip` one, or `replace` it `with` a "
              "test of this definition's own tests/. `reason` is required and shown in the "
              "verification record and report. Checked at `check`; verification only, not part "
              "of the fingerprint.")


@dataclass(frozen=True)
class Field:
    key: str
    type: str  # as shown in the docs
    read: Callable[[Reader, Node, str], Any]
    default: str  # as shown in the docs
    merge: Merge
    help: str


def _f(key: str, type_: str, read: Callable[[Reader, Node, str], Any], default: str,
       merge: Merge, help_: str) -> Field:
    return Field(key, type_, read, default, merge, help_)


LAYER_FIELDS: tuple[Field, ...] = (
    _f("description", "string", Reader.string, '""', "none", "What the layer is for."),
    _f("requires", "list of layer names", Reader.names, "[]", "none",
       "Layers applied before this one (transitively); cycles are errors."),
    _f("conflicts", "list of layer names", Reader.names, "[]", "none",
       "Layers that must not be in the same image."),
    _f("params", "mapping name -> {type, default, description}", Reader.params, "{}", "none",
       "Typed parameters (string, integer, boolean) with defaults; used as `{{ name }}` in any "
       "string of any layer of the image. Two layers declaring one name must agree."),
    _f("packages", "list of strings", Reader.strings, "[]", "union",
       "Debian packages, installed with apt-get --no-install-recommends; `name=version` pins."),
    _f("groups", "list of {name, gid, system}", Reader.groups, "[]", "keyed",
       "Groups to create (before users)."),
    _f("users", "list of {name, uid, group, groups, home, shell, system}", Reader.users, "[]",
       "keyed", "Users to create; the primary group defaults to one named like the user; "
                "shell defaults to /usr/sbin/nologin."),
    _f("files", "list of {src, dest, mode, owner}", Reader.files, "[]", "keyed",
       "Files or folders copied from the layer's own files/ folder. `src` is relative to "
       "files/, `dest` absolute (a trailing '/' copies into that folder), `mode` octal "
       "(default 0644), `owner` user:group (default root:root). Keyed by dest."),
    _f("env", "mapping string -> string", lambda r, n, k: r.string_map(n, k, ENV_RE), "{}", "map",
       "Environment variables, set from this layer on (visible to its run steps)."),
    _f("run", "list of shell scripts", Reader.strings, "[]", "append",
       "Shell steps run as root with `sh -eu` after the layer's packages, users and files."),
    _f("workdir", "absolute path", Reader.abspath, "unset", "override", "Working directory."),
    _f("user", "string", Reader.string, "unset (root)", "exclusive",
       "The user the container runs as. Build steps always run as root."),
    _f("expose", "list of ports (8080, 53/udp)", Reader.ports, "[]", "union", "Ports exposed."),
    _f("volumes", "list of absolute paths", lambda r, n, k: tuple(
        v for i, x in enumerate(r.items(n, k)) if (v := r.abspath(x, f"{k}[{i}]"))), "[]",
       "union", "Mount points for state that must outlive the container."),
    _f("entrypoint", "list of strings (exec form)", Reader.command, "unset", "command",
       "The process the container runs. Setting it resets an inherited `cmd` (see "
       "Entrypoint and cmd below)."),
    _f("cmd", "list of strings (exec form)", Reader.command, "unset", "command",
       "Default arguments to the entrypoint (or the command, without one); `[]` clears it."),
    _f("stopsignal", "string", Reader.string, "unset (SIGTERM)", "exclusive",
       "Signal that stops the container gracefully."),
    _f("healthcheck", "{test, interval, timeout, retries, start_period}", Reader.healthcheck,
       "unset", "exclusive",
       "`test` in exec form; defaults: interval 30s, timeout 5s, retries 3, start_period 5s."),
    _f("labels", "mapping string -> string", Reader.string_map, "{}", "map", "OCI labels."),
    _f("secrets", "list of secret ids", Reader.names, "[]", "union",
       "Build secrets the layer's run steps read from /run/secrets/<id> (BuildKit secret "
       "mounts: never in a layer, the history, build args or env). Values come from "
       "`invoke build --secret id=path` or the environment variable KILN_SECRET_<ID>."),
    _f("tests", TESTS_TYPE, read_overrides, "[]", "none", TESTS_HELP),
    _f("tmpfs", "list of absolute paths", Reader.abspaths, "[]", "union",
       "Paths the running container must be able to write to when its root filesystem is "
       "read-only: empty, in-memory tmpfs mounts (a restricted platform's emptyDir). "
       "The restricted profile mounts exactly these and `volumes` (docs/hardening.md)."),
    _f("capabilities", "list of capability names (NET_BIND_SERVICE)", Reader.capabilities, "[]",
       "union", "Linux capabilities the running container needs; the restricted profile drops "
                "every other one (docs/hardening.md)."),
    _f("mutable", "list of absolute paths", lambda r, n, k: tuple(
        v for i, x in enumerate(r.items(n, k)) if (v := r.abspath(x, f"{k}[{i}]"))), "[]",
       "union", "Paths whose content may change at run time (a database's data, spools); "
                "`kiln drift` ignores them. Always mutable: /tmp, /var/tmp, /var/log, "
                "/var/cache, /run, /proc, /sys, /dev (docs/fleet.md)."),
)

IMAGE_FIELDS: tuple[Field, ...] = (
    _f("description", "string", Reader.string, '""', "image", "What the image is for."),
    _f("base", "one of {bootstrap}, {image}, {ref}, {rootfs}", lambda r, n, k: n, "required",
       "image", "Where the image starts; see the base kinds below."),
    _f("layers", "list of layer names", Reader.names, "required", "image",
       "Layers in order; each layer's `requires` are put before it."),
    _f("params", "mapping name -> value", lambda r, n, k: tuple(
        (name, v) for name, _, x in r.mapping(n, k)
        if (v := r.param_value(x, f"{k}.{name}")) is not None), "{}", "image",
       "Overrides of the params its layers declare, type-checked against the declaration."),
    _f("targets", "list of container, vm", Reader.strings, "[container]", "image",
       "What to build from the image. `vm`: a bootable disk made from the image's own "
       "filesystem; needs the `vm` layer (docs/vm.md)."),
    _f("version", "string", Reader.string, '"0"', "image",
       "The image's version, the first part of its immutable tags."),
    _f("tags", "list of strings", Reader.strings, "[]", "image",
       "Extra local tags given to the built image (kiln/<name>:<tag>)."),
    _f("labels", "mapping string -> string", Reader.string_map, "{}", "image",
       "OCI labels; they win over the layers' labels."),
    _f("tests", TESTS_TYPE, read_overrides, "[]", "image", TESTS_HELP),
    _f("unrestricted", "string (the reason)", Reader.reason, "unset", "image",
       "Opts the image out of the restricted-profile verification (read-only root, no "
       "capabilities, numeric user...); the reason is required and recorded with the "
       "verification and in what is published (docs/hardening.md)."),
    _f("audit_min_index", "integer (0-100)", Reader.integer, "unset", "image",
       "The lowest lynis hardening index (`kiln audit`) the image may be published with; "
       "publishing refuses it without an audit record at or above it (docs/hardening.md)."),
)

BOOTSTRAP_VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd",
                      "important", "standard")


__all__ = ["BOOTSTRAP_VARIANTS", "CAPABILITY_RE", "DIGEST_REF_RE", "ENV_RE", "IMAGE_FIELDS",
           "LAYER_FIELDS", "MERGE_RULES", "MODE_RE", "NAME_RE", "PORT_RE", "SHA256_RE", "TAG_RE",
           "TESTS_HELP", "TESTS_TYPE", "Field", "Merge", "Reader"]
