"""Every definition key, declared once: its type, default, merge rule and help.

The loader reads keys through this table (unknown keys are errors), the composer merges by its
rules, and docs/definitions.md is generated from it (`invoke docs`), so the three cannot drift.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kiln.errors import Problem
from kiln.model import (
    FileSpec,
    GroupSpec,
    Healthcheck,
    ParamSpec,
    ParamType,
    ParamValue,
    UserSpec,
)
from kiln.testowners import read_overrides
from kiln.yamlnodes import Map, Node, Scalar, Seq, describe

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

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PORT_RE = re.compile(r"^[0-9]{1,5}(/(tcp|udp|sctp))?$")
MODE_RE = re.compile(r"^(0o|0)?([0-7]{3,4})$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
INT_RE = re.compile(r"^[-+]?[0-9]+$")
DIGEST_REF_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CAPABILITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
BOOLS = {"true": True, "false": False}
YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
NULLS = {"", "~", "null"}


class Reader:
    """Converts located nodes to typed values, collecting problems and the line of every key."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    def problem(self, line: int, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.shown, line, message, hint))

    # scalars -----------------------------------------------------------------------------
    def string(self, node: Node, key: str) -> str | None:
        self.lines[key] = node.line
        if not isinstance(node, Scalar) or (node.plain and node.text.lower() in NULLS):
            self.problem(node.line, f"{key}: expected a string, got {describe(node)}",
                         "quote the value")
            return None
        # Plain scalars stay the text that was written: `no` is "no", `1.10` is "1.10".
        return node.text

    def integer(self, node: Node, key: str) -> int | None:
        self.lines[key] = node.line
        if isinstance(node, Scalar) and node.plain and INT_RE.match(node.text):
            return int(node.text, 10)
        self.problem(node.line, f"{key}: expected an integer, got {describe(node)}")
        return None

    def boolean(self, node: Node, key: str) -> bool | None:
        self.lines[key] = node.line
        if isinstance(node, Scalar) and node.plain and node.text.lower() in BOOLS:
            return BOOLS[node.text.lower()]
        hint = "write true or false"
        if isinstance(node, Scalar) and node.text.lower() in YAML11_BOOLS:
            hint = f"'{node.text}' is a boolean only in YAML 1.1; write true or false"
        self.problem(node.line, f"{key}: expected true or false, got {describe(node)}", hint)
        return None

    def mode(self, node: Node, key: str) -> int | None:
        self.lines[key] = node.line
        # Read as octal whatever YAML thinks: 0644, "0644", 644 and 0o644 all mean rw-r--r--.
        m = MODE_RE.match(node.text) if isinstance(node, Scalar) else None
        if not m:
            self.problem(node.line, f"{key}: expected an octal file mode, got {describe(node)}",
                         "write it like \"0644\"")
            return None
        return int(m.group(2), 8)

    def param_value(self, node: Node, key: str) -> ParamValue | None:
        """An image's param override, typed later against the layer's declaration."""
        self.lines[key] = node.line
        if not isinstance(node, Scalar):
            self.problem(node.line, f"{key}: expected a string, integer or boolean, "
                         f"got {describe(node)}")
            return None
        if node.plain and INT_RE.match(node.text) and str(int(node.text, 10)) == node.text:
            return int(node.text, 10)  # "0027" or "+5" stay as written, like any string
        if node.plain and node.text.lower() in BOOLS:
            return BOOLS[node.text.lower()]
        return node.text

    # collections -------------------------------------------------------------------------
    def items(self, node: Node, key: str) -> tuple[Node, ...]:
        self.lines[key] = node.line
        if isinstance(node, Seq):
            return node.items
        self.problem(node.line, f"{key}: expected a list, got {describe(node)}",
                     "write one '- item' per line")
        return ()

    def strings(self, node: Node, key: str) -> tuple[str, ...]:
        out = (self.string(n, f"{key}[{i}]") for i, n in enumerate(self.items(node, key)))
        return tuple(s for s in out if s is not None)

    def mapping(self, node: Node, key: str) -> tuple[tuple[str, int, Node], ...]:
        self.lines[key] = node.line
        if isinstance(node, Map):
            for k, line, _ in node.entries:
                self.lines[f"{key}.{k}" if key else k] = line
            return node.entries
        where = f"{key}: " if key else ""  # "" is the file's top level
        self.problem(node.line, f"{where}expected a mapping, got {describe(node)}")
        return ()

    def string_map(self, node: Node, key: str, key_re: re.Pattern[str] | None = None
                   ) -> tuple[tuple[str, str], ...]:
        out = []
        for k, line, value in self.mapping(node, key):
            if key_re and not key_re.match(k):
                self.problem(line, f"{key}: invalid name '{k}'", "use letters, digits and '_'")
            # A value of `on` or `1.10` is kept as written: env and labels are strings.
            v = self.string(value, f"{key}.{k}")
            if v is not None:
                out.append((k, v))
        return tuple(out)

    def record(self, node: Node, key: str, fields: dict[str, Callable[[Node, str], Any]],
               required: tuple[str, ...] = ()) -> dict[str, Any] | None:
        entries = self.mapping(node, key)
        if not isinstance(node, Map):
            return None
        out: dict[str, Any] = {}
        for k, line, value in entries:
            if k not in fields:
                self.unknown(line, key, k, list(fields))
                continue
            out[k] = fields[k](value, f"{key}.{k}")
        missing = [r for r in required if r not in out]
        for r in missing:
            if not any(k == r for k, _, _ in entries):
                self.problem(node.line, f"{key}: missing required key '{r}'")
        return None if missing or any(v is None for k, v in out.items() if k in required) else out

    def unknown(self, line: int, where: str, key: str, known: list[str]) -> None:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
        self.problem(line, f"unknown key '{key}'" + (f" in {where}" if where else ""), hint)

    # kiln's own record types -------------------------------------------------------------
    def name(self, node: Node, key: str) -> str | None:
        value = self.string(node, key)
        # A name made of params ("{{ user }}") is checked again once they are substituted.
        if value is not None and "{{" not in value and not NAME_RE.match(value):
            self.problem(node.line, f"{key}: invalid name '{value}'",
                         "use lowercase letters, digits, '.', '_' and '-'")
            return None
        return value

    def names(self, node: Node, key: str) -> tuple[str, ...]:
        out = (self.name(n, f"{key}[{i}]") for i, n in enumerate(self.items(node, key)))
        return tuple(s for s in out if s is not None)

    def abspath(self, node: Node, key: str) -> str | None:
        value = self.string(node, key)
        if value is None:
            return None
        # No control characters: a newline would end the Dockerfile instruction (WORKDIR).
        if (not value.startswith("/") or "/../" in f"{value}/"
                or any(ord(c) < 32 or c == "\x7f" for c in value)):
            self.problem(node.line, f"{key}: '{value}' must be an absolute path without '..' "
                         "or control characters")
            return None
        return value

    def reason(self, node: Node, key: str) -> str | None:
        value = self.string(node, key)
        if value is not None and not value.strip():
            self.problem(node.line, f"{key}: the reason must not be empty",
                         "say why, for whoever reads the record")
            return None
        return value

    def abspaths(self, node: Node, key: str) -> tuple[str, ...]:
        out = (self.abspath(n, f"{key}[{i}]") for i, n in enumerate(self.items(node, key)))
        return tuple(s for s in out if s is not None)

    def capabilities(self, node: Node, key: str) -> tuple[str, ...]:
        out = []
        for i, n in enumerate(self.items(node, key)):
            v = self.string(n, f"{key}[{i}]")
            if v is not None and not CAPABILITY_RE.match(v.removeprefix("CAP_")):
                self.problem(n.line, f"{key}[{i}]: invalid capability '{v}'",
                             "write a Linux capability name like NET_BIND_SERVICE")
            elif v is not None:
                out.append(v.removeprefix("CAP_"))  # docker and Kubernetes both take NET_RAW
        return tuple(out)

    def command(self, node: Node, key: str) -> tuple[str, ...] | None:
        if isinstance(node, Scalar) and not (node.plain and node.text in NULLS):
            self.lines[key] = node.line
            self.problem(node.line, f"{key}: expected a list (exec form), got a string",
                         f"write [\"{node.text.split(' ')[0]}\", ...] so signals reach the process")
            return None
        return self.strings(node, key)

    def ports(self, node: Node, key: str) -> tuple[str, ...]:
        out = []
        for i, n in enumerate(self.items(node, key)):
            v = self.string(n, f"{key}[{i}]")
            # "{{ port }}" is checked (and given its /tcp) once params are substituted.
            if v is not None and "{{" not in v and not PORT_RE.match(v):
                self.problem(n.line, f"{key}[{i}]: invalid port '{v}'", "write 8080 or 53/udp")
            elif v is not None:
                out.append(v if "/" in v or "{{" in v else f"{v}/tcp")
        return tuple(out)

    def params(self, node: Node, key: str) -> tuple[ParamSpec, ...]:
        out = []
        for name, line, value in self.mapping(node, key):
            if not ENV_RE.match(name):
                self.problem(line, f"{key}: invalid param name '{name}'",
                             "use letters, digits and '_'")
                continue
            types: dict[str, Callable[[Node, str], Any]] = {
                "string": self.string, "integer": self.integer, "boolean": self.boolean}
            rec = self.record(value, f"{key}.{name}", {
                "type": self.string, "default": lambda n, k: n, "description": self.string,
            }, required=("type", "default"))
            if rec is None:
                continue
            if rec["type"] not in types:
                self.problem(self.lines[f"{key}.{name}.type"],
                             f"{key}.{name}.type: unknown type '{rec['type']}'",
                             "use string, integer or boolean")
                continue
            default = types[rec["type"]](rec["default"], f"{key}.{name}.default")
            if default is not None:
                ptype: ParamType = rec["type"]
                out.append(ParamSpec(name, ptype, default, rec.get("description") or ""))
        return tuple(out)

    def files(self, node: Node, key: str) -> tuple[FileSpec, ...]:
        out = []
        for i, n in enumerate(self.items(node, key)):
            rec = self.record(n, f"{key}[{i}]", {
                "src": self.string, "dest": self.abspath, "mode": self.mode, "owner": self.string,
            }, required=("src", "dest"))
            if rec is not None:
                out.append(FileSpec(**{k: v for k, v in rec.items() if v is not None}))
        return tuple(out)

    def groups(self, node: Node, key: str) -> tuple[GroupSpec, ...]:
        out = []
        for i, n in enumerate(self.items(node, key)):
            rec = self.record(n, f"{key}[{i}]", {
                "name": self.name, "gid": self.integer, "system": self.boolean,
            }, required=("name",))
            if rec is not None:
                out.append(GroupSpec(**{k: v for k, v in rec.items() if v is not None}))
        return tuple(out)

    def users(self, node: Node, key: str) -> tuple[UserSpec, ...]:
        out = []
        for i, n in enumerate(self.items(node, key)):
            rec = self.record(n, f"{key}[{i}]", {
                "name": self.name, "uid": self.integer, "group": self.name,
                "groups": self.names, "home": self.abspath, "shell": self.abspath,
                "system": self.boolean,
            }, required=("name",))
            if rec is not None:
                out.append(UserSpec(**{k: v for k, v in rec.items() if v is not None}))
        return tuple(out)

    def healthcheck(self, node: Node, key: str) -> Healthcheck | None:
        rec = self.record(node, key, {
            "test": self.command, "interval": self.string, "timeout": self.string,
            "retries": self.integer, "start_period": self.string,
        }, required=("test",))
        if rec is None:
            return None
        return Healthcheck(**{k: v for k, v in rec.items() if v is not None})


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
