"""The restricted runtime profile: what kiln derives from the definitions, and the opt-out."""

from __future__ import annotations

import pytest
from kilntest import REF, MakeProject, only_problem

from kiln.compose import compose
from kiln.load import load_image, load_layer
from kiln.model import RuntimeConfig
from kiln.restricted import DEFAULT, RESTRICTED, RestrictedUnfit, expected, numeric_user, restricted


def test_the_profile_is_derived_from_every_layer(make_project: MakeProject) -> None:
    project = make_project(
        layers={"user": {"user": "10001:10001", "tmpfs": ["/tmp"]},
                "svc": {"requires": ["user"], "tmpfs": ["/run/svc", "/tmp"],
                        "capabilities": ["CAP_NET_BIND_SERVICE"], "entrypoint": ["svc"]}},
        images={"i": {"base": {"ref": REF}, "layers": ["svc"]}})
    plan = compose(project, "i")
    assert plan.config.tmpfs == ("/tmp", "/run/svc")  # union, in layer order
    assert plan.config.capabilities == ("NET_BIND_SERVICE",)  # CAP_ is dropped
    assert expected(plan) == RESTRICTED
    profile = restricted(plan)
    assert profile.user == "10001:10001"
    assert profile.host_options() == {
        "read_only": True, "cap_drop": ["ALL"], "cap_add": ["NET_BIND_SERVICE"],
        "security_opt": ["no-new-privileges"],
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m", "/run/svc": "rw,nosuid,nodev,size=64m"}}
    assert profile.describe() == (
        "--read-only --tmpfs /tmp --tmpfs /run/svc --cap-drop ALL --cap-add NET_BIND_SERVICE "
        "--security-opt no-new-privileges --user 10001:10001")


def test_an_image_opts_out_with_its_reason(make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": {"user": "app"}},
        images={"i": {"base": {"ref": REF}, "layers": ["a"],
                      "unrestricted": "writes its cache under /var (upstream bug 123)"}})
    plan = compose(project, "i")
    assert expected(plan) == DEFAULT
    assert plan.image.unrestricted == "writes its cache under /var (upstream bug 123)"


@pytest.mark.parametrize(("user", "why"), [
    (None, "runs as root"), ("0:0", "runs as root"), ("root", "a name"), ("app", "a name"),
    ("app:app", "a name"), ("10001", "has no group")])
def test_a_user_a_restricted_platform_refuses_is_named(user: str | None, why: str) -> None:
    with pytest.raises(RestrictedUnfit, match=why):
        numeric_user(RuntimeConfig(user=user))


def test_numeric_user_passes() -> None:
    assert numeric_user(RuntimeConfig(user="10001:10001")) == "10001:10001"


@pytest.mark.parametrize(("text", "message"), [
    ("capabilities: [net_raw]\n", "capabilities[0]: invalid capability 'net_raw'"),
    ("tmpfs: [tmp]\n", "tmpfs[0]: 'tmp' must be an absolute path"),
])
def test_bad_keys_are_located_errors(make_project: MakeProject, text: str, message: str) -> None:
    project = make_project(layers={"a": text})
    assert message in only_problem(lambda: load_layer(project.root, "a"))


def test_an_audit_minimum_must_be_an_integer(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={
        "i": f"base:\n  ref: {REF}\nlayers: [a]\naudit_min_index: high\n"})
    assert "audit_min_index: expected an integer" in only_problem(
        lambda: load_image(project.root, "i"))


def test_a_root_toolbox_image_is_held_to_the_default_profile(make_project: MakeProject) -> None:
    project = make_project(
        layers={"tool": {"cmd": ["sh"]}, "svc": {"entrypoint": ["svc"]},
                "mine": {"user": "10001:10001", "cmd": ["python3"]}},
        images={"tool": {"base": {"ref": REF}, "layers": ["tool"]},
                "svc": {"base": {"ref": REF}, "layers": ["svc"]},
                "mine": {"base": {"ref": REF}, "layers": ["mine"]}})
    assert expected(compose(project, "tool")) == DEFAULT
    assert expected(compose(project, "svc")) == RESTRICTED  # a root service fails it, named
    assert expected(compose(project, "mine")) == RESTRICTED


def test_an_opt_out_needs_a_reason(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={
        "i": f"base:\n  ref: {REF}\nlayers: [a]\nunrestricted: \"  \"\n"})
    assert only_problem(lambda: load_image(project.root, "i")) == (
        "images/i.yaml:4: unrestricted: the reason must not be empty (say why, for whoever "
        "reads the record)")
