"""Random hostile strings in every field that takes params (and in the image's own values).

For each example the outcome is one of two, never a third (a traceback, a Dockerfile of another
shape, a context entry outside the layer):
- a DefinitionError whose every problem is one line, `path:line: message (hint)`;
- a rendered Dockerfile that Docker's parser reads as exactly the planned instructions (their
  number and kinds derived here from the Plan, independently of the renderer), a context whose
  every entry lies inside the layer's files/ folder, and both writable as UTF-8.

Deterministic for CI: derandomize=True and no example database, so every run tries the same
examples; max_examples keeps it to a few seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kilntest import REF, write_project

from kiln.compose import compose
from kiln.errors import DefinitionError
from kiln.model import Plan
from kiln.render import context_entries, render_dockerfile
from kiln.render.checks import instruction_kinds

ATOMS = [
    "\\", "\\\\", "\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\0", "\x1b",
    "\ud800", "\U0001f600", "é", "..", "../", "../../", "/", "/etc/passwd", "=", " ", "\t", '"',
    "'", "`", "$", "${HOME}", "$(id)", ";", "&&", "|", "#", "# escape=`", "<<EOF", "EOF", "{{",
    "}}", "{{ p }}", "{{ q }}", "[", "]", ",", ":", "*", "--", "RUN touch /pwned", "\nRUN x",
    "\\\nCOPY / /", "dev.kiln.fingerprint", "org.opencontainers.image.title", "a", "app", "80",
    "x" * 300,
]
HOSTILE = st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=3)), max_size=6).map(
    "".join)

P = "{{ p }}"
BASE: dict[str, Any] = {
    "params": {"p": {"type": "string", "default": "x"}},
    "files": [{"src": "motd", "dest": "/etc/motd"}],
    "run": ["echo before"],
}
# Every layer field that accepts params, each as the one place a param lands.
LAYER_FIELDS: dict[str, dict[str, Any]] = {
    "packages": {"packages": [P]},
    "groups.name": {"groups": [{"name": P}]},
    "users.name": {"users": [{"name": P}]},
    "users.group": {"users": [{"name": "u", "group": P}]},
    "users.groups": {"users": [{"name": "u", "groups": [P]}]},
    "users.home": {"users": [{"name": "u", "home": f"/home/{P}"}]},
    "users.shell": {"users": [{"name": "u", "shell": f"/bin/{P}"}]},
    "files.dest": {"files": [{"src": "motd", "dest": f"/etc/{P}"}]},
    "files.dest.folder": {"files": [{"src": "motd", "dest": f"/{P}/"}]},
    "files.owner": {"files": [{"src": "motd", "dest": "/etc/motd", "owner": P}]},
    "env": {"env": {"A": P, "B": f"pre {P} post"}},
    "run": {"run": [f"echo {P}", "echo after"]},
    "run.multiline": {"run": [f"echo a\necho {P}\n", "echo after"]},
    "run.alone": {"run": [P]},
    "workdir": {"workdir": f"/{P}"},
    "user": {"user": P},
    "expose": {"expose": [P]},
    "volumes": {"volumes": [f"/{P}"]},
    "entrypoint": {"entrypoint": [P, "--"]},
    "cmd": {"cmd": ["x", P]},
    "stopsignal": {"stopsignal": P},
    "healthcheck.test": {"healthcheck": {"test": ["sh", "-c", P]}},
    "healthcheck.interval": {"healthcheck": {"test": ["true"], "interval": P}},
    "labels.key": {"labels": {P: "v"}},
    "labels.value": {"labels": {"org.example.x": P}},
    "secrets": {"secrets": [P]},
}
IMAGE_FIELDS = ("param", "description", "version", "tags", "labels.key", "labels.value")
WHERE = re.compile(r"^(layers/a/layer\.yaml|images/i\.yaml)(:\d+)?: \S")


def _image(field: str, value: str) -> str:
    quoted = json.dumps(value)  # a YAML double-quoted scalar holding any code point
    lines = [f"base: {{ref: {REF}}}", "layers: [a]", f"params: {{p: {quoted}}}"]
    if field != "param":
        lines[2] = "params: {p: x}"
        lines.append({"description": f"description: {quoted}", "version": f"version: {quoted}",
                      "tags": f"tags: [{quoted}]", "labels.key": f"labels: {{{quoted}: v}}",
                      "labels.value": f"labels: {{org.example.v: {quoted}}}"}[field])
    return "\n".join(lines) + "\n"


def _planned(plan: Plan) -> list[str]:
    """The instruction kinds a plan must render to, counted from the plan itself."""
    kinds = ["FROM"]
    for section in plan.sections:
        kinds += ["ENV"] * bool(section.env)
        kinds += ["RUN"] * bool(section.groups or section.users)
        kinds += ["RUN"] * bool(section.packages)
        kinds += ["COPY"] * len(section.files)
        kinds += ["RUN"] * len(section.run)
    c = plan.config
    kinds += ["WORKDIR"] * bool(c.workdir) + ["EXPOSE"] * bool(c.expose)
    kinds += ["VOLUME"] * bool(c.volumes) + ["STOPSIGNAL"] * bool(c.stopsignal)
    kinds += ["HEALTHCHECK"] * bool(c.healthcheck) + ["ENTRYPOINT"] * (c.entrypoint is not None)
    kinds += ["CMD"] * (c.cmd is not None) + ["USER"] * bool(c.user)
    return [*kinds, "LABEL"]


def _check(root: Path, layer: dict[str, Any], image: str) -> str:
    project = write_project(root, layers={"a": {**BASE, **layer}}, images={"i": image},
                            files={"layers/a/files/motd": "hi\n"})
    try:
        plan = compose(project, "i")
    except DefinitionError as exc:
        assert exc.problems
        for problem in exc.problems:
            line = str(problem)
            assert line.splitlines() == [line], line  # one line, whatever the value held
            assert WHERE.match(line), line
        return "refused"
    rendered = render_dockerfile(plan, "example:1", "0" * 64)
    rendered.dockerfile.encode("utf-8")
    assert instruction_kinds(rendered.dockerfile) == _planned(plan), rendered.dockerfile
    files = (root / "layers/a/files").resolve()
    for entry in context_entries(root, plan):
        assert entry.arcname in ("files", "files/a") or entry.arcname.startswith("files/a/"), entry
        assert ".." not in entry.arcname.split("/"), entry
        assert entry.source is None or files in entry.source.resolve().parents, entry
    return "rendered"


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(LAYER_FIELDS) + [f"image.{f}" for f in IMAGE_FIELDS]),
       value=HOSTILE)
def test_hostile_values_are_refused_in_one_line_or_rendered_inert(field: str, value: str
                                                                 ) -> None:
    root = Path(tempfile.mkdtemp(prefix="kiln-hostile-"))
    try:
        if field.startswith("image."):
            event(_check(root, {}, _image(field.removeprefix("image."), value)))
        else:
            event(_check(root, LAYER_FIELDS[field], _image("param", value)))
    finally:
        shutil.rmtree(root)


def test_the_property_sees_both_outcomes(tmp_path: Path) -> None:
    """The property is not vacuous: hostile values are refused, plain ones render."""
    assert _check(tmp_path / "a", LAYER_FIELDS["run"], _image("param", "x\\")) == "refused"
    assert _check(tmp_path / "b", LAYER_FIELDS["run"], _image("param", "x; y")) == "rendered"
    assert _check(tmp_path / "c", LAYER_FIELDS["labels.key"],
                  _image("param", "\nRUN x")) == "refused"
