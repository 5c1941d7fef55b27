"""Typed readers of located YAML nodes: strings, names, paths, ports, params, files,
accounts, healthchecks. Each reads one value, records the line of its key, and collects a
Problem (`path:line: message (hint)`) instead of raising, so one pass reports every mistake.

kiln.schema's table says which reader reads which key; kiln.load runs them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

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
from kiln.yamlnodes import Map, Node, Scalar, Seq, describe

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
