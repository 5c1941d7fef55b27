"""docs/definitions.md is generated, committed, and says what the loader and renderer do."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
from kilntest import REF, REPO_ROOT, only_problem, write_project

from kiln import docs
from kiln.compose import compose
from kiln.config import settings_markdown
from kiln.fingerprint import base_ref, fingerprint
from kiln.guard import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from kiln.load import Project, load_image
from kiln.model import BootstrapBase
from kiln.render import render_dockerfile
from kiln.render.dockerfile import provenance_labels
from kiln.schema import BOOTSTRAP_VARIANTS, IMAGE_FIELDS, LAYER_FIELDS, MERGE_RULES

MARKDOWN = docs.definitions_markdown()


def test_committed_reference_is_up_to_date() -> None:
    committed = (REPO_ROOT / "docs" / "definitions.md").read_text(encoding="utf-8")
    assert committed == MARKDOWN, "docs/definitions.md is out of date: run `invoke docs`"


def test_generation_is_stable_and_plain() -> None:
    assert docs.definitions_markdown() == MARKDOWN
    assert MARKDOWN.endswith("\n") and not MARKDOWN.endswith("\n\n")
    assert MARKDOWN.isascii()
    assert not [line for line in MARKDOWN.splitlines() if line != line.rstrip()]


def test_write_definitions(tmp_path: Path) -> None:
    assert docs.main([str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "definitions.md").read_text(encoding="utf-8") == MARKDOWN


def _rows(heading: str) -> dict[str, list[str]]:
    """The first table after `heading`, as {first cell without backticks: cells}."""
    section = MARKDOWN.split(f"\n{heading}\n", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.split("\n|---", 1)[1].splitlines()[1:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("field", LAYER_FIELDS, ids=lambda f: f.key)
def test_every_layer_key_has_its_row(field: docs.Field) -> None:
    _, type_, default, merge, help_ = _rows("## Layers: `layers/<name>/layer.yaml`")[field.key]
    assert type_ == field.type
    assert default.strip("`") == field.default
    assert merge == f"`{field.merge}`"
    assert help_ == field.help.replace("|", "\\|")


@pytest.mark.parametrize("field", IMAGE_FIELDS, ids=lambda f: f.key)
def test_every_image_key_has_its_row(field: docs.Field) -> None:
    _, type_, default, help_ = _rows("## Images: `images/<name>.yaml`")[field.key]
    assert (type_, default.strip("`"), help_) == (field.type, field.default, field.help)


def test_tables_hold_exactly_the_schema_keys() -> None:
    assert list(_rows("## Layers: `layers/<name>/layer.yaml`")) == [f.key for f in LAYER_FIELDS]
    assert list(_rows("## Images: `images/<name>.yaml`")) == [f.key for f in IMAGE_FIELDS]
    assert {k: v[1] for k, v in _rows("## Merge rules").items()} == MERGE_RULES


def test_bootstrap_keys_defaults_and_variants() -> None:
    rows = _rows("### `bootstrap`: a Debian root filesystem made with mmdebstrap")
    assert list(rows) == [f.name for f in dataclasses.fields(BootstrapBase)]
    assert {k: v[2] for k, v in rows.items()} == {
        "suite": "required", "variant": "`minbase`", "mirror": "`http://deb.debian.org/debian`",
        "components": "`[main]`", "packages": "`[]`"}
    assert "Variants: " + ", ".join(f"`{v}`" for v in BOOTSTRAP_VARIANTS) + "." in MARKDOWN


def test_documented_bootstrap_keys_are_the_ones_the_loader_reads(tmp_path: Path) -> None:
    keys = "".join(f"    {k}: {v}\n" for k, v in [
        ("suite", "bookworm"), ("variant", "apt"), ("mirror", "http://m/debian"),
        ("components", "[main]"), ("packages", "[]")])
    write_project(tmp_path, images={"i": f"base:\n  bootstrap:\n{keys}layers: []\n",
                                    "j": "base:\n  bootstrap:\n    suite: x\n    arch: y\n"
                                         "layers: []\n"})
    assert load_image(tmp_path, "i").base == BootstrapBase("bookworm", "apt", "http://m/debian")
    assert only_problem(lambda: load_image(tmp_path, "j")).startswith(
        "images/j.yaml:4: unknown key 'arch' in base.bootstrap (known keys: suite, variant, "
        "mirror, components, packages)")


def test_documented_provenance_labels_are_the_rendered_ones() -> None:
    project = Project(REPO_ROOT)
    plan = compose(project, "nginx")
    documented = list(_rows("## Provenance labels"))
    assert sorted(documented) == sorted(provenance_labels(plan, "f" * 64))


def test_sections_are_all_there() -> None:
    headings = [line for line in MARKDOWN.splitlines() if line.startswith("#")]
    assert headings == [
        "# Definitions reference", "## File layout", "## Layers: `layers/<name>/layer.yaml`",
        "## Images: `images/<name>.yaml`", "## Base kinds",
        "### `bootstrap`: a Debian root filesystem made with mmdebstrap",
        "### `image`: another kiln image of this project",
        "### `ref`: an external image, pinned by digest",
        "### `rootfs`: a root filesystem tarball, pinned by checksum", "## Params",
        "## Merge rules", "## Entrypoint and cmd", "## Checked before any build",
        "## YAML rules", "## The rendered Dockerfile", "## Provenance labels",
        "## What a layer can and cannot do to the build host", "## A full example"]


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", MARKDOWN, flags=re.S)


def test_the_base_examples_load(tmp_path: Path) -> None:
    bases = [b for b in _yaml_blocks() if b.startswith("base:\n")]
    assert len(bases) == 4
    for i, block in enumerate(bases):
        write_project(tmp_path, images={f"i{i}": block + "layers: []\n"})
        assert load_image(tmp_path, f"i{i}").layers == ()


def test_the_full_example_composes_with_the_sample_layers(tmp_path: Path) -> None:
    assert _yaml_blocks()[-2:] == [docs.EXAMPLE_LAYER, docs.EXAMPLE_IMAGE]
    shutil.copytree(REPO_ROOT / "layers", tmp_path / "layers")
    shutil.copytree(REPO_ROOT / "images", tmp_path / "images")
    write_project(tmp_path, layers={docs.EXAMPLE_LAYER_NAME: docs.EXAMPLE_LAYER},
                  images={docs.EXAMPLE_IMAGE_NAME: docs.EXAMPLE_IMAGE},
                  files={f"layers/{docs.EXAMPLE_LAYER_NAME}/files/{f}": "x\n"
                         for f in docs.EXAMPLE_LAYER_FILES})
    project = Project(tmp_path)
    plan = compose(project, docs.EXAMPLE_IMAGE_NAME)
    assert [layer.name for layer in plan.layers] == [
        "minimal", "core", "hardening", "webapp"]
    params = dict(plan.params)
    assert {k: params.pop(k) for k in ("banner", "shell_timeout")}  # the hardening layer's
    assert params == {"listen_port": 8080, "service": "webapp", "timezone": "Europe/Berlin"}
    assert plan.image.version == "1.10"
    assert plan.config.user == "webapp"
    assert plan.config.expose == ("8080/tcp",)
    assert plan.config.cmd == ("app.wsgi:application",)
    assert ("PORT", "8080") in plan.config.env
    webapp = plan.layers[-1]
    assert [f.mode for f in webapp.files] == [0o644, 0o644, 0o755]
    text = render_dockerfile(plan, base_ref(tmp_path, plan), fingerprint(tmp_path, plan)).dockerfile
    assert "COPY --chown=webapp:webapp files/webapp/app /srv/webapp/app/\n" in text
    assert 'org.opencontainers.image.vendor="Example Inc."' in text


def test_the_example_conflicts_as_documented(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "layers", tmp_path / "layers")
    write_project(tmp_path, layers={"webapp": docs.EXAMPLE_LAYER},
                  images={"both": f"base: {{ref: {REF}}}\nlayers: [webapp, nginx]\n"},
                  files={f"layers/webapp/files/{f}": "x\n" for f in docs.EXAMPLE_LAYER_FILES})
    assert only_problem(lambda: compose(Project(tmp_path), "both")) == (
        "layers/webapp/layer.yaml:3: layer 'webapp' conflicts with layer 'nginx', and image "
        "'both' has both (remove one of them from images/both.yaml)")


def test_the_host_section_states_the_limits_enforced() -> None:
    section = MARKDOWN[MARKDOWN.index("## What a layer can and cannot do"):]
    section = section[:section.index("\n## ")]
    assert f"at most {MAX_FILE_BYTES // 1024} KiB" in section
    assert f"nested at most {MAX_DEPTH} levels deep" in section
    assert f"at most {MAX_NODES} keys and items" in section
    assert "`dev.kiln.*`" in section and "`org.opencontainers.image.title`" in section


def test_publishing_settings_table_is_written_from_the_settings() -> None:
    """docs/publishing.md's settings table is config.SETTINGS as settings_markdown() writes
    it: a setting added, renamed or re-defaulted shows up here before it misleads a reader."""
    committed = (REPO_ROOT / "docs" / "publishing.md").read_text(encoding="utf-8")
    assert settings_markdown() in committed, (
        "docs/publishing.md's settings table differs from kiln.config.SETTINGS: paste "
        "`python -c 'from kiln.config import settings_markdown as s; print(s(), end=\"\")'`")
