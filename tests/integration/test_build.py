"""Building on the real engine, from the busybox test base."""

from __future__ import annotations

import pytest
from enginescope import session_refs

from kiln import session
from kiln.context import prepare
from kiln.errors import BuildError, DefinitionError, KilnError
from kiln.fingerprint import image_repository
from kiln.pipeline import build_all, build_image

LAYERS = {
    "layers/hello/layer.yaml": """\
        description: writes a greeting
        params:
          greeting:
            type: string
            default: hello
        files:
          - src: motd
            dest: /etc/motd
            mode: "0600"
        env:
          GREETING: "{{ greeting }}"
        run:
          - echo "$GREETING from run" > /greeting
        labels:
          example.layer: hello
        cmd: ["cat", "/greeting"]
    """,
    "layers/hello/files/motd": "welcome\n",
    "layers/child/layer.yaml": """\
        requires: [hello]
        run:
          - |
            for f in /greeting /etc/motd; do
              cat "$f" >> /combined
            done
    """,
    "images/small.yaml": """\
        {busybox}
        version: "1.10"
        layers: [hello]
        params:
          greeting: bonjour
    """,
    "images/kid.yaml": """\
        base:
          image: small
        layers: [child]
    """,
}


def _run(engine, ref: str, *cmd: str) -> str:
    out = engine.client.containers.run(ref, list(cmd), remove=True, labels=session.labels())
    return out.decode()


def test_build_runs_every_layer_step_and_labels_the_image(make_project, kiln_ctx, engine):
    project = make_project(LAYERS)
    result = build_image(kiln_ctx(project), "small")
    assert result.action == "built"
    assert _run(engine, result.ref) == "bonjour from run\n"
    assert _run(engine, result.ref, "stat", "-c", "%a %u", "/etc/motd") == "600 0\n"
    labels = engine.inspect_image(result.ref)["Config"]["Labels"]
    assert labels["dev.kiln.fingerprint"] == result.fingerprint
    assert labels["dev.kiln.layers"] == "hello"
    assert labels["org.opencontainers.image.version"] == "1.10"
    assert labels["example.layer"] == "hello"
    # no tests, so not verified: the moving tags (latest, the version) do not move onto it
    assert result.tags == (result.ref,)
    assert engine.image_id(f"{image_repository('small')}:1.10") is None


def test_unchanged_fingerprint_is_not_built_again(make_project, kiln_ctx):
    project = make_project(LAYERS)
    first = build_image(kiln_ctx(project), "small")
    again = build_image(kiln_ctx(project), "small")
    assert again.action == "up to date"
    assert again.image_id == first.image_id


def test_child_image_builds_its_parent_first(make_project, kiln_ctx, engine):
    project = make_project(LAYERS)
    ctx = kiln_ctx(project)
    results = build_all(ctx)
    assert [r.image for r in results] == ["small", "kid"]
    kid = results[1]
    assert _run(engine, kid.ref, "cat", "/combined") == "bonjour from run\nwelcome\n"
    # the child's layer list covers the parent's layers too
    assert engine.inspect_image(kid.ref)["Config"]["Labels"]["dev.kiln.layers"] == "hello,child"


def test_failing_step_names_layer_step_and_output_tail(make_project, kiln_ctx, engine):
    files = dict(LAYERS)
    files["layers/child/layer.yaml"] = """\
        requires: [hello]
        run:
          - echo about to fail; echo "the reason is here" >&2; exit 7
    """
    project = make_project(files)
    with pytest.raises(BuildError) as err:
        build_image(kiln_ctx(project), "kid")
    message = str(err.value)
    assert message.startswith("images/kid.yaml: build of 'kid' failed in layer 'child'")
    assert "layers/child/layer.yaml" in message
    assert "returned a non-zero code: 7" in message
    assert "the reason is here" in message
    assert engine.image_id(prepare(project, "kid").ref) is None


def test_invalid_definition_builds_nothing(make_project, kiln_ctx, engine):
    files = dict(LAYERS)
    files["layers/child/layer.yaml"] = "requires: [hello]\nrun: [true]\nusr: app\n"
    project = make_project(files)
    before = session_refs(engine)
    with pytest.raises(DefinitionError) as err:
        build_all(kiln_ctx(project))
    assert str(err.value) == ("layers/child/layer.yaml:3: unknown key 'usr' "
                              "(did you mean 'user'?)")
    assert session_refs(engine) == before


def test_tampered_rootfs_is_refused(make_project, kiln_ctx, engine):
    project = make_project(LAYERS)
    # The check runs when the tarball is imported: an engine that already holds the pinned
    # rootfs never reads the file again, so start from an engine without it.
    engine.remove_image(prepare(project, "small").base_ref)
    (project.root / "rootfs" / "busybox.tar").write_bytes(b"not the pinned tarball")
    with pytest.raises(KilnError, match=r"sha256 is .* but the image pins"):
        build_image(kiln_ctx(project), "small")
