"""The run's context (kiln.context): each image prepared once per run, again only when told."""

from __future__ import annotations

from collections import Counter

import pytest
from kilntest import REF, MakeProject

from kiln.context import Context
from kiln.errors import KilnError
from kiln.load import Project
from preparecount import count_prepare


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    return count_prepare(monkeypatch)


def family(make_project: MakeProject) -> Project:
    return make_project(
        layers={"conf": "files:\n  - {src: app.conf, dest: /etc/app.conf}\n",
                "other": "env:\n  OTHER: '1'\n"},
        images={"parent": {"base": {"ref": REF}, "version": "1", "layers": ["conf"]},
                "child": {"base": {"image": "parent"}, "version": "1", "layers": ["other"]},
                "alone": {"base": {"ref": REF}, "version": "1", "layers": ["other"]}},
        files={"layers/conf/files/app.conf": "one\n"})


def test_each_image_is_prepared_once_and_no_door_is_opened(make_project: MakeProject,
                                                           calls: Counter[str]) -> None:
    ctx = Context(family(make_project))
    first = ctx.prepared("child")
    assert ctx.prepared("child") is first
    assert ctx.prepared("parent").ref == first.base_ref  # the child's FROM is its parent
    ctx.prepared("parent")
    assert calls == {"child": 1, "parent": 1}
    assert ctx._engine is None and ctx._registry is None  # nothing connected


def test_forget_prepares_the_image_and_its_children_again(make_project: MakeProject,
                                                          calls: Counter[str]) -> None:
    project = family(make_project)
    ctx = Context(project)
    before = {name: ctx.prepared(name) for name in ("parent", "child", "alone")}
    (project.root / "layers/conf/files/app.conf").write_text("two, longer\n")
    assert ctx.prepared("parent") is before["parent"]  # remembered until told
    ctx.forget("parent")
    after = {name: ctx.prepared(name) for name in ("parent", "child", "alone")}
    assert after["parent"].fingerprint != before["parent"].fingerprint
    assert after["child"].base_ref == after["parent"].ref != before["child"].base_ref
    assert after["alone"] is before["alone"]  # unrelated: kept
    assert calls == {"parent": 2, "child": 2, "alone": 1}


def test_settings_are_frozen_and_the_config_is_read_on_first_use(
        make_project: MakeProject) -> None:
    project = family(make_project)
    (project.root / "kiln.toml").write_text("[publish]\nnot_a_key = 1\n")
    ctx = Context(project, force=True, secrets={"token": project.root / "t"})
    assert ctx.options.force and not ctx.options.nocache
    with pytest.raises(AttributeError):
        ctx.settings.options.force = False  # type: ignore[misc]
    ctx.prepared("parent")  # building reads no kiln.toml
    with pytest.raises(KilnError, match=r"unknown key publish\.not_a_key"):
        _ = ctx.config
