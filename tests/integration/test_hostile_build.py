"""Hostile definitions on the real engine: refused before anything is built, and a Dockerfile
whose shape changed under kiln is caught after the build and kept by nobody."""

from __future__ import annotations

import dataclasses
import re

import pytest
from enginescope import session_refs

from kiln.context import prepare
from kiln.errors import BuildError, DefinitionError
from kiln.pipeline import build_all, build_image, ensure_base, run_build
from kiln.render import Rendered

ONE_LINE = re.compile(r"^(layers/[a-z]+/layer\.yaml|images/[a-z]+\.yaml):\d+: [^\n]+$")

HOSTILE = {
    "layers/steal/layer.yaml": """\
        params:
          what: {type: string, default: motd}
        files:
          - src: "{{ what }}"
            dest: /etc/motd
    """,
    "layers/steal/files/motd": "hi\n",
    "layers/forge/layer.yaml": """\
        params:
          key: {type: string, default: org.example.ok}
        labels:
          "{{ key }}": "yes"
    """,
    "layers/join/layer.yaml": """\
        params:
          tail: {type: string, default: ""}
        run:
          - echo one {{ tail }}
        files:
          - src: motd
            dest: /etc/motd
    """,
    "layers/join/files/motd": "hi\n",
    "images/steal.yaml": """\
        {busybox}
        layers: [steal]
        params: {what: /etc/passwd}
    """,
    "images/forge.yaml": """\
        {busybox}
        layers: [forge]
        params: {key: "dev.kiln.fingerprint"}
    """,
    "images/inject.yaml": """\
        {busybox}
        layers: [forge]
        params: {key: "a\\nRUN touch /pwned"}
    """,
    "images/join.yaml": """\
        {busybox}
        layers: [join]
        params: {tail: "\\\\"}
    """,
}


def test_hostile_definitions_build_nothing(make_project, kiln_ctx, engine):
    project = make_project(HOSTILE)
    before = session_refs(engine)
    ctx = kiln_ctx(project)
    with pytest.raises(DefinitionError) as err:
        build_all(ctx)  # stops at the layer that does not load, before composing any image
    assert str(err.value).startswith("layers/steal/layer.yaml:4: ")
    messages = []
    for name in ("steal", "forge", "inject", "join"):
        with pytest.raises(DefinitionError) as err:
            build_image(ctx, name)
        messages.append(str(err.value))
    lines = "\n".join(messages).split("\n")
    assert len(lines) == 4 and all(ONE_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert "layers/steal/layer.yaml:4: files[0].src: '{{ what }}': a source path cannot use " \
           "params" in text
    assert "layers/forge/layer.yaml:4: labels: label 'dev.kiln.fingerprint' is reserved" in text
    assert "layers/forge/layer.yaml:4: labels: invalid label key 'a\\nRUN touch /pwned'" in text
    assert "layers/join/layer.yaml:4: run[0]: 'echo one \\' ends in a backslash" in text
    assert session_refs(engine) == before  # not even the busybox base was imported


def test_a_dockerfile_whose_shape_changed_is_caught_after_the_build(make_project, kiln_ctx,
                                                                    engine):
    """The last line of defence, fed what kiln would never render: a RUN line ending in a
    backslash, which joins the COPY after it. The engine builds it without complaint."""
    project = make_project({
        "layers/join/layer.yaml": """\
            run: [echo one]
            files:
              - src: motd
                dest: /etc/motd
            cmd: ["cat", "/etc/motd"]
        """,
        "layers/join/files/motd": "hi\n",
        "images/join.yaml": "{busybox}\nlayers: [join]\n",
    })
    ctx = kiln_ctx(project)
    prepared = prepare(project, "join")
    text = prepared.rendered.dockerfile
    assert "\nCOPY files/join/motd /etc/motd\nRUN set -eu; echo one\n" in text
    forged = text.replace("\nCOPY files/join/motd /etc/motd\nRUN set -eu; echo one\n",
                          "\nRUN set -eu; echo one \\\nCOPY files/join/motd /etc/motd\n")
    prepared = dataclasses.replace(
        prepared, rendered=Rendered(forged, prepared.rendered.instructions))
    ensure_base(ctx, prepared)
    with pytest.raises(BuildError) as err:
        run_build(ctx, prepared)
    assert str(err.value) == (
        "images/join.yaml: the engine did not run the rendered Dockerfile step for step: "
        "first difference at instruction 1: RUN where COPY was planned (nothing was kept; a "
        "definition value changed the Dockerfile's shape: please report this as a kiln bug)")
    assert engine.image_id(prepared.ref) is None
