"""Definitions as an attacker writes them: each attack is one `path:line` error, or inert.

The cases of issue 12, one by one; test_hostile_property.py throws random hostile strings at
every field that takes params. Nothing here needs an engine: a definition error is raised
before anything is built (tests/integration/test_hostile.py shows it on the real engine).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from kilntest import REF, MakeProject, only_problem, problems_of

from kiln import lockfile
from kiln.compose import compose
from kiln.errors import DefinitionError, KilnError
from kiln.guard import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from kiln.lockfile import FORMAT, LockError
from kiln.render import context_entries, render_dockerfile
from kiln.render.checks import instruction_kinds, steps_problem, structure_problem
from kiln.render.context import open_source

L = "layers/a/layer.yaml"
I = "images/i.yaml"  # noqa: E741
IMAGE = f"base: {{ref: {REF}}}\nlayers: [a]\n"
FP = "0" * 64


def _image(params: str = "") -> str:
    return IMAGE + (f"params: {params}\n" if params else "")


def _compose(make_project: MakeProject, layer: str, params: str = "",
             files: dict[str, str | bytes] | None = None) -> str:
    project = make_project(layers={"a": layer}, images={"i": _image(params)},
                           files={"layers/a/files/motd": "hi\n", **(files or {})})
    return only_problem(lambda: compose(project, "i"))


# --- files[].src: never chosen by a param, never outside the layer ---------------------------

@pytest.mark.parametrize("value", ["/work/.kiln/signing.key", "../../../etc/passwd", "motd"])
def test_a_param_cannot_choose_a_source(make_project: MakeProject, value: str) -> None:
    layer = ("params:\n  f: {type: string, default: motd}\n"
             "files:\n  - src: \"{{ f }}\"\n    dest: /etc/motd\n")
    assert _compose(make_project, layer, f'{{f: "{value}"}}') == (
        f"{L}:4: files[0].src: '{{{{ f }}}}': a source path cannot use params (name the file "
        "itself; choose between files with a param in `dest` or `run`)")


@pytest.mark.parametrize(("src", "message"), [
    ("/etc/passwd", "'/etc/passwd' must be a path inside the layer's files/ folder "
                    "(no absolute paths and no '..')"),
    ("x/../../../../etc", "'x/../../../../etc' must be a path inside the layer's files/ folder "
                          "(no absolute paths and no '..')"),
    ("$HOME", "'$HOME' holds '$' or '\\' (the Dockerfile would expand or escape it; "
              "rename the file)"),
    ("mo\\0td", "'mo\\x00td' holds a NUL character (name a file inside the layer's files/ "
                "folder)"),
])
def test_a_literal_source_stays_in_the_layer(make_project: MakeProject, src: str,
                                             message: str) -> None:
    layer = f'files:\n  - src: "{src}"\n    dest: /etc/motd\n'
    assert _compose(make_project, layer) == f"{L}:2: files[0].src: {message}"


def test_a_source_name_too_long_is_a_definition_error(make_project: MakeProject) -> None:
    layer = f"files:\n  - src: {'x' * 300}\n    dest: /etc/motd\n"
    line = _compose(make_project, layer)
    assert line.startswith(f"{L}:2: files[0].src: cannot read 'files/xxx")
    assert line.endswith("File name too long (name a readable file inside the layer)")


def _plan(make_project: MakeProject) -> tuple[Path, object]:
    project = make_project(layers={"a": "files:\n  - src: motd\n    dest: /etc/motd\n"},
                           images={"i": IMAGE}, files={"layers/a/files/motd": "hi\n"})
    return project.root, compose(project, "i")


def test_a_source_removed_after_checking_is_a_located_error(make_project: MakeProject) -> None:
    root, plan = _plan(make_project)
    (root / "layers/a/files/motd").unlink()
    line = only_problem(lambda: context_entries(root, plan))  # type: ignore[arg-type]
    assert line == (f"{L}:2: files[0].src: cannot read 'files/motd': No such file or directory "
                    "(name a readable file inside the layer's files/ folder)")


def test_a_link_swapped_in_after_checking_is_refused(make_project: MakeProject) -> None:
    root, plan = _plan(make_project)
    (root / "layers/a/files/motd").unlink()
    (root / "layers/a/files/motd").symlink_to(root / "images/i.yaml")
    assert only_problem(lambda: context_entries(root, plan)) == (  # type: ignore[arg-type]
        f"{L}:2: files[0].src: 'files/motd' leads outside the layer "
        "(copy the file into the layer instead of linking to it)")


def test_a_plan_made_by_hand_is_checked_too(make_project: MakeProject) -> None:
    root, plan = _plan(make_project)
    layer = plan.layers[0]  # type: ignore[attr-defined]
    forged = dataclasses.replace(layer, files=(dataclasses.replace(layer.files[0],
                                                                   src="/etc/passwd"),))
    plan = dataclasses.replace(plan, layers=(forged,))  # type: ignore[type-var]
    assert "must be a path inside the layer's files/ folder" in only_problem(
        lambda: context_entries(root, plan))  # type: ignore[arg-type]


def test_context_files_are_opened_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    with open_source(tmp_path / "real") as f:
        assert f.read() == b"x"
    with pytest.raises(KilnError, match="cannot read a build context file"):
        open_source(tmp_path / "link")
    with pytest.raises(KilnError, match="not a regular file"):
        open_source(tmp_path / "fifo")  # would block a plain open() forever


@pytest.mark.parametrize("value", ["../../root/x", "/etc/$HOME", "/etc/motd\\\\"])
def test_a_destination_cannot_escape_or_expand(make_project: MakeProject, value: str) -> None:
    layer = ("params:\n  d: {type: string, default: x}\n"
             "files:\n  - src: motd\n    dest: \"/etc/{{ d }}\"\n")
    assert _compose(make_project, layer, f'{{d: "{value}"}}').startswith(
        f"{L}:5: files[0].dest: ")


# --- label keys -----------------------------------------------------------------------------

LABEL_PARAM = "params:\n  k: {type: string, default: org.example.k}\nlabels:\n  \"{{ k }}\": v\n"


def test_a_newline_in_a_label_key_is_refused(make_project: MakeProject) -> None:
    assert _compose(make_project, LABEL_PARAM, '{k: "a\\nRUN touch /pwned"}') == (
        f"{L}:4: labels: invalid label key 'a\\nRUN touch /pwned' (an OCI annotation key: "
        "letters, digits, '.', '_', '-', like org.example.role)")


@pytest.mark.parametrize("key", ["dev.kiln.fingerprint", "dev.kiln.anything",
                                 "org.opencontainers.image.version"])
def test_kiln_labels_cannot_be_forged(make_project: MakeProject, key: str) -> None:
    hint = "(use a key under your own reverse-DNS prefix, like org.example.role)"
    assert _compose(make_project, LABEL_PARAM, f"{{k: {key}}}") == (
        f"{L}:4: labels: label '{key}' is reserved: kiln sets it itself {hint}")
    project = make_project(layers={"a": ""},
                           images={"i": IMAGE + f"labels:\n  x: y\n  {key}: forged\n"})
    assert only_problem(lambda: project.image("i")) == (
        f"{I}:5: labels: label '{key}' is reserved: kiln sets it itself {hint}")


def test_other_oci_keys_remain_the_definitions_own(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "labels: {org.opencontainers.image.vendor: Me}\n"},
                           images={"i": IMAGE})
    assert dict(compose(project, "i").config.labels) == {"org.opencontainers.image.vendor": "Me"}


# --- instructions keep their number and kind ------------------------------------------------

RUN_PARAM = ("params:\n  t: {type: string, default: x}\nfiles:\n  - src: motd\n    dest: /m\n"
             "run:\n  - echo {{ t }}\n")


def test_a_trailing_backslash_cannot_eat_the_next_copy(make_project: MakeProject) -> None:
    assert _compose(make_project, RUN_PARAM, '{t: "\\\\"}') == (
        f"{L}:7: run[0]: 'echo \\' ends in a backslash (it would join the next Dockerfile "
        "instruction to this one; remove it)")


@pytest.mark.parametrize(("value", "what"), [
    ("a\\rb", "a line break (U+000D)"), ("a\\u2028b", "a line break (U+2028)"),
    ("a\\x85b", "a line break (U+0085)"), ("a\\0b", "a NUL character"),
    ("\\ud800", "a lone surrogate (U+D800)"), ("a\\x1bb", "a control character (U+001B)"),
])
def test_values_cannot_hold_line_breaks_or_nul(make_project: MakeProject, value: str,
                                               what: str) -> None:
    line = _compose(make_project, RUN_PARAM, f'{{t: "{value}"}}')
    assert line.startswith(f"{L}:7: run[0]: 'echo ") and f"holds {what}" in line
    env = "params:\n  t: {type: string, default: x}\nenv:\n  A: \"{{ t }}\"\n"
    assert f"{L}:4: env.A: " in _compose(make_project, env, f'{{t: "{value}"}}')


def test_a_one_line_heredoc_is_refused_a_multi_line_one_is_inert(
        make_project: MakeProject) -> None:
    assert "holds '<<' on one line" in _compose(make_project, "run: ['cat <<EOF']\n")
    project = make_project(layers={"a": "run:\n  - |\n    cat > /x <<EOF\n    hi\n    EOF\n"
                                        "  - echo after\n"}, images={"i": IMAGE})
    rendered = render_dockerfile(compose(project, "i"), "example:1", FP)
    assert instruction_kinds(rendered.dockerfile) == ["FROM", "RUN", "RUN", "LABEL"]


def test_shell_words_in_params_reach_the_script_not_the_dockerfile(
        make_project: MakeProject) -> None:
    project = make_project(layers={"a": RUN_PARAM}, images={"i": _image(
        '{t: "x; echo \\"q\\" $HOME ` = \' {{ t }}"}')}, files={"layers/a/files/motd": "hi"})
    rendered = render_dockerfile(compose(project, "i"), "example:1", FP)
    assert instruction_kinds(rendered.dockerfile) == ["FROM", "COPY", "RUN", "LABEL"]
    assert "{{ t }}" in rendered.dockerfile  # a value is substituted once, never re-read


def test_an_image_version_is_a_tag(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={"i": IMAGE + 'version: "1.0\\nRUN x"\n'})
    assert only_problem(lambda: project.image("i")) == (
        f"{I}:3: version: invalid version '1.0\\nRUN x' (it becomes a tag: letters, digits, "
        "'_', '.', '-'; at most 128)")


# --- limits: refused before parsing, in one line ------------------------------------------

def test_deep_nesting_is_a_definition_error_not_a_recursion_error(
        make_project: MakeProject) -> None:
    project = make_project(layers={"a": "description: " + "[" * 20000 + "]" * 20000 + "\n"},
                           images={"i": IMAGE})
    assert only_problem(lambda: project.layer("a")) == (
        f"{L}:1: nested more than {MAX_DEPTH} levels deep "
        "(definitions are a few levels deep; flatten the structure)")


def test_too_many_items(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "packages:\n" + "  - x\n" * (MAX_NODES + 1)})
    assert only_problem(lambda: project.layer("a")).endswith(
        f": more than {MAX_NODES} keys and items (split the definition into several layers)")


def test_a_huge_file_is_refused_before_it_is_read(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={"i": IMAGE})
    path = project.root / L
    with path.open("wb") as f:  # 200 MiB of NULs, sparse: read, it would say "control char"
        f.truncate(200 * 1024 * 1024)
    assert only_problem(lambda: project.layer("a")) == (
        f"{L}: {200 * 1024 * 1024} bytes: over the {MAX_FILE_BYTES // 1024} KiB limit of a "
        "definition (keep big content in the layer's files/ folder)")


def test_a_definition_that_is_no_file_is_a_definition_error(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={"i": IMAGE})
    (project.root / L).unlink()
    os.mkfifo(project.root / L)  # reading it would block forever
    assert only_problem(lambda: project.layer("a")) == (
        f"{L}: not a regular file (a definition is a plain YAML file)")


def test_a_layer_name_too_long_for_the_file_system(make_project: MakeProject) -> None:
    project = make_project(layers={"a": f"requires: [{'b' * 300}]\n"}, images={"i": IMAGE})
    line = only_problem(lambda: compose(project, "i"))
    assert line.startswith(f"{L}:1: layer '{'b' * 300}' does not exist")


# --- the shape checks themselves ------------------------------------------------------------

def test_instruction_kinds_read_like_dockers_parser() -> None:
    text = ("# c\nFROM x\nRUN a \\\n# comment inside\n\n  b\nCOPY a b\n"
            "RUN cat <<EOF\nLABEL swallowed=1\nEOF\nRUN [\"sh\", \"-c\", \"<<EOF\"]\nENV a=b \\\n")
    assert instruction_kinds(text) == ["FROM", "RUN", "COPY", "RUN", "RUN", "ENV"]


def test_structure_and_steps_compare_one_for_one() -> None:
    planned = ["FROM x", "COPY a /a", "RUN b", "LABEL c=d"]
    assert structure_problem("FROM x\nCOPY a /a\nRUN b\nLABEL c=d\n", planned) is None
    assert structure_problem("FROM x\nRUN b \\\nCOPY a /a\nLABEL c=d\n", planned) == (
        "first difference at instruction 2: RUN where COPY was planned")
    assert steps_problem(["COPY a /a # buildkit", "RUN /bin/sh -c b", "LABEL c=d"],
                         planned) is None
    assert steps_problem(["COPY a /a # buildkit", "RUN /bin/sh -c b"], planned) == (
        "2 instructions where 3 were planned")


def test_every_problem_of_a_hostile_image_is_one_line(make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": LABEL_PARAM + "run: ['echo {{ k }}']\nworkdir: \"/{{ k }}\"\n"},
        images={"i": _image('{k: "x\\u2029y\\\\"}')})
    lines = problems_of(lambda: compose(project, "i"))
    assert len(lines) == 3 and all(line.startswith(f"{L}:") for line in lines)
    with pytest.raises(DefinitionError) as err:
        compose(project, "i")
    assert str(err.value).count("\n") == 2


# --- the lock: its .deb file names land in a context path and a RUN line ----------------------

@pytest.mark.parametrize(("field", "value"), [
    ("name", "../../../../tmp/x"), ("name", "/etc/passwd"), ("version", "1 \\\nCOPY / /"),
    ("arch", "amd64\nRUN x"),
])
def test_a_hand_edited_lock_cannot_name_a_path_or_an_instruction(field: str,
                                                                 value: str) -> None:
    package = {"name": "curl", "version": "1:7.88", "arch": "amd64", "size": 1,
               "sha256": "a" * 64, "url": "http://deb.debian.org/x.deb", field: value}
    text = json.dumps({"kiln-lock": FORMAT, "image": "i", "sections": [
        {"layer": "a", "requests": ["curl"], "packages": [package]}]})
    with pytest.raises(LockError) as err:
        lockfile.parse(text, "images/i.lock")
    assert str(err.value) == (f"images/i.lock: sections[0].packages[0]: invalid {field} "
                              f"{json.dumps(value)} (regenerate it with `invoke lock`)")
    assert "\n" not in str(err.value)
