"""Moving tags go onto verified images only, and `kiln prune` removes what nothing needs: on the
real engine, from the busybox test base."""

from __future__ import annotations

import json

import pytest
from released import verified_record

from kiln import records
from kiln.context import prepare
from kiln.fingerprint import image_repository
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.testsuite import VerifyError

FILES = {
    "layers/greet/layer.yaml": """\
        params:
          greeting: {type: string, default: hello}
        run:
          - echo "{{ greeting }}" > /etc/greeting
    """,
    "layers/greet/tests/test_greet.py": """\
        def test_greets_hello(host):
            assert host.file("/etc/greeting").content_string == "hello\\n"
    """,
    "images/small.yaml": "{busybox}\nversion: '1.0'\nlayers: [greet]\ntags: [stable-ish]\n",
}


def moving() -> tuple[str, ...]:
    """The moving tags of small, under the test session's names."""
    return tuple(f"{image_repository('small')}:{tag}" for tag in ("latest", "1.0", "stable-ish"))


def test_failed_verification_moves_no_tag_and_prune_removes_it(make_project, kiln_ctx, engine,
                                                               kiln_cli):
    project = make_project(FILES)

    def kiln(root, *args):
        return kiln_cli(root, *args, env={"KILN_PROJECT": str(root)})

    good = build_image(kiln_ctx(project), "small")
    assert {engine.image_id(t) for t in moving()} == {good.image_id}
    # the release tests record a verification without running it (released.py): held here
    # to the record of a real run, they cannot drift from what the gate writes
    real, stand_in = records.load(project.root, good.image_id), verified_record(project.root,
                                                                                 good)
    assert real is not None and set(real.to_json()) == set(stand_in.to_json())
    for key in ("image", "image_id", "fingerprint", "target", "suite", "passed", "reason",
                "profile"):
        assert getattr(stand_in, key) == getattr(real, key), key
    assert set(moving()) <= set(good.tags)

    (project.root / "images" / "small.yaml").write_text(
        (project.root / "images" / "small.yaml").read_text() + "params: {greeting: bye}\n")
    project = Project(project.root)  # read the definitions again
    with pytest.raises(VerifyError, match="failed verification"):
        build_image(kiln_ctx(project), "small")
    bad_ref = prepare(project, "small").ref
    bad_id = engine.image_id(bad_ref)
    assert bad_id is not None and bad_id != good.image_id
    failed = records.load(project.root, bad_id)
    assert failed is not None and not failed.passed
    assert failed.profile == verified_record(project.root, good, passed=False).profile
    # the moving tags stay on the last verified image
    assert {engine.image_id(t) for t in moving()} == {good.image_id}

    dry = kiln(project.root, "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert [(r["kind"], r["what"]) for r in listed["removed"] if r["kind"] == "image"] == [
        ("image", bad_id)]
    assert listed["removed"][0]["why"].startswith("unverified")
    assert listed["bytes_freed"] == 0 and engine.image_id(bad_ref) == bad_id  # dry: nothing gone

    done = kiln(project.root, "prune")
    assert done.returncode == 0, done.stderr
    assert "removed 1 images" in done.stdout and "freed" in done.stdout
    assert engine.image_id(bad_ref) is None
    assert {engine.image_id(t) for t in moving()} == {good.image_id}  # the verified one stays
    again = json.loads(kiln(project.root, "prune", "--json").stdout)
    assert [r for r in again["removed"] if r["kind"] == "image"] == []
