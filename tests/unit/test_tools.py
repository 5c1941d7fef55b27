"""`kiln new`, `kiln graph` and the nightly report's picture: pure, no engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_cli import kiln

from kiln.errors import KilnError
from kiln.graph import COLOURS, dot, mermaid
from kiln.load import Project
from kiln.pipeline import validate
from kiln.report import ImageOutcome, NightlyReport
from kiln.scaffold import new_image, new_layer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    for folder in ("images", "layers"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def test_new_layer_and_image_pass_check(samples: Path) -> None:
    result = kiln(samples, "new", "layer", "hello")
    assert result.returncode == 0, result.stderr
    assert "wrote layers/hello/layer.yaml" in result.stdout
    assert (samples / "layers/hello/tests/test_hello.py").is_file()
    assert kiln(samples, "new", "image", "hello", "--base", "python").returncode == 0
    check = kiln(samples, "check")
    assert check.returncode == 0, check.stderr
    plan = next(p for p in validate(Project(samples)) if p.image.name == "hello")
    assert plan.parent is not None and plan.parent.image.name == "python"
    assert [la.name for la in plan.layers] == ["hello"]


def test_new_overwrites_nothing_and_checks_names(samples: Path) -> None:
    with pytest.raises(KilnError, match=r"layers/nginx/layer.yaml: already exists"):
        new_layer(samples, "nginx")
    with pytest.raises(KilnError, match=r"layer name 'Hello'"):
        new_layer(samples, "Hello")
    with pytest.raises(KilnError, match=r"images/nope.yaml: no such image to build on"):
        new_image(samples, "x", "nope", ["core"])
    with pytest.raises(KilnError, match=r"which layers\?"):
        new_image(samples, "lonely", "base", [])


def test_graph_draws_images_bases_and_layers() -> None:
    plans = validate(Project(REPO))
    text = mermaid(plans)
    assert text.startswith("flowchart BT\n")
    assert '  base_bookworm_minbase[("debian bookworm (minbase)")] --> image_base' in text
    assert "  image_python --> image_webapp" in text
    assert '  layers_base>"minimal, core, hardening, user"] -.-> image_base' in text
    graph = dot(plans)
    assert graph.startswith("digraph kiln {") and "image_base -> image_nginx;" in graph


def test_status_colours_the_images() -> None:
    plans = validate(Project(REPO))
    text = mermaid(plans, {"nginx": "failed", "base": "rebuilt", "python": "unchanged"})
    assert f"style image_nginx fill:{COLOURS['failed']}" in text
    assert f"style image_base fill:{COLOURS['rebuilt']}" in text
    assert 'image_nginx["nginx (failed)"]' in text
    assert f'fillcolor="{COLOURS["skipped"]}"' in dot(plans, {"python": "skipped"})


def test_the_nightly_report_carries_the_graph() -> None:
    plans = validate(Project(REPO))
    outcomes = (ImageOutcome("base", "rebuilt"), ImageOutcome("nginx", "failed"))
    from kiln.nightly import status_graph

    report = NightlyReport("s", "f", outcomes, graph=status_graph(plans, outcomes))
    markdown = report.to_markdown()
    assert "## Images\n\n```mermaid\nflowchart BT\n" in markdown
    assert f"style image_nginx fill:{COLOURS['failed']}" in markdown
    assert NightlyReport.from_json(report.to_json()) == report


def test_graph_task_writes_mermaid_and_dot(samples: Path) -> None:
    assert kiln(samples, "graph").stdout.startswith("flowchart BT")
    assert kiln(samples, "graph", "--format", "dot").stdout.startswith("digraph kiln {")
    svg = kiln(samples, "graph", "--format", "svg")
    if shutil.which("dot"):
        assert svg.returncode == 0 and "<svg" in svg.stdout
    else:
        assert svg.returncode == 1 and "apt-get install graphviz" in svg.stderr
