"""The composer: ordering, requires cycles, conflicts, params and the merge rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kilntest import REF, Definition, MakeProject, only_problem, problems_of

from kiln.compose import build_order, compose, compose_all
from kiln.fingerprint import base_ref, fingerprint
from kiln.model import FileSpec, GroupSpec, Healthcheck, Plan, UserSpec
from kiln.render import render_dockerfile

IMAGE = f"base:\n  ref: {REF}\nlayers:\n"


def image(*layers: str, extra: str = "") -> str:
    """An image on a pinned ref, listing `layers` one a line (layers[i] is on line 4 + i)."""
    return IMAGE + "".join(f"  - {name}\n" for name in layers) + extra


# --- compose errors ------------------------------------------------------------------------

# (id, layers, images, image to compose, the one problem)
COMPOSE_ERRORS: list[tuple[str, dict[str, Definition], dict[str, Definition], str, str]] = [
    ("missing layer", {"a": ""}, {"i": image("a", "nope")}, "i",
     "images/i.yaml:5: layer 'nope' does not exist "
     "(create layers/nope/layer.yaml; known layers: a)"),
    ("missing required layer", {"a": "description: x\nrequires: [ghost]\n"}, {"i": image("a")},
     "i", "layers/a/layer.yaml:2: layer 'ghost' does not exist "
     "(create layers/ghost/layer.yaml; known layers: a)"),
    ("requires cycle", {"a": "requires: [b]\n", "b": "requires: [c]\n",
                        "c": "description: c\nrequires: [a]\n"}, {"i": image("a")}, "i",
     "layers/c/layer.yaml:2: layers require each other in a cycle: a -> b -> c -> a "
     "(remove one of these requires)"),
    ("requires cycle below the listed layer", {"top": "requires: [a]\n", "a": "requires: [b]\n",
                                               "b": "requires: [a]\n"}, {"i": image("top")}, "i",
     "layers/b/layer.yaml:1: layers require each other in a cycle: a -> b -> a "
     "(remove one of these requires)"),
    ("layer requires itself", {"a": "requires: [a]\n"}, {"i": image("a")}, "i",
     "layers/a/layer.yaml:1: layers require each other in a cycle: a -> a "
     "(remove one of these requires)"),
    ("conflict", {"a": "description: a\nconflicts: [b]\n", "b": ""}, {"i": image("a", "b")}, "i",
     "layers/a/layer.yaml:2: layer 'a' conflicts with layer 'b', and image 'i' has both "
     "(remove one of them from images/i.yaml)"),
    ("conflict brought by requires", {"a": "conflicts: [c]\n", "b": "requires: [c]\n", "c": ""},
     {"i": image("a", "b")}, "i",
     "layers/a/layer.yaml:1: layer 'a' conflicts with layer 'c', and image 'i' has both "
     "(remove one of them from images/i.yaml)"),
    ("layer listed twice", {"a": "", "b": ""}, {"i": image("a", "b", "a")}, "i",
     "images/i.yaml:6: layer 'a' is listed twice"),
    ("unknown param override", {"a": "params:\n  port: {type: integer, default: 80}\n"},
     {"i": image("a", extra="params:\n  prot: 8080\n")}, "i",
     "images/i.yaml:6: param 'prot' is not declared by any of its layers (known params: port)"),
    ("override with no params at all", {"a": ""},
     {"i": image("a", extra="params:\n  port: 8080\n")}, "i",
     "images/i.yaml:6: param 'port' is not declared by any of its layers (known params: none)"),
    ("integer param given a string",
     {"a": "params:\n  port:\n    type: integer\n    default: 80\n"},
     {"i": image("a", extra="params:\n  port: eighty\n")}, "i",
     "images/i.yaml:6: param 'port' must be an integer, got 'eighty' "
     "(declared in layers/a/layer.yaml:3)"),
    ("integer param given a quoted number",
     {"a": "params:\n  port: {type: integer, default: 80}\n"},
     {"i": image("a", extra="params:\n  port: \"8080\"\n")}, "i",
     "images/i.yaml:6: param 'port' must be an integer, got '8080' "
     "(declared in layers/a/layer.yaml:2)"),
    ("boolean param given yes", {"a": "params:\n  debug: {type: boolean, default: false}\n"},
     {"i": image("a", extra="params:\n  debug: yes\n")}, "i",
     "images/i.yaml:6: param 'debug' must be a boolean, got 'yes' "
     "(declared in layers/a/layer.yaml:2)"),
    ("string param given a boolean", {"a": "params:\n  name: {type: string, default: x}\n"},
     {"i": image("a", extra="params:\n  name: true\n")}, "i",
     "images/i.yaml:6: param 'name' must be a string, got True "
     "(declared in layers/a/layer.yaml:2)"),
    ("unknown param reference", {"a": "description: x\nrun:\n  - echo ok\n  - echo {{ nope }}\n"},
     {"i": image("a")}, "i",
     "layers/a/layer.yaml:4: unknown param 'nope' "
     "(declare it under params: in this or a required layer)"),
    ("param declared by a layer the image lacks", {
        "a": "params:\n  port: {type: integer, default: 80}\n",
        "b": "expose: [\"{{ port }}\"]\n"}, {"i": image("b")}, "i",
     "layers/b/layer.yaml:1: unknown param 'port' "
     "(declare it under params: in this or a required layer)"),
    ("param declared differently", {
        "a": "params:\n  port: {type: integer, default: 80}\n",
        "b": "description: b\nparams:\n  port: {type: integer, default: 8080}\n"},
     {"i": image("a", "b")}, "i",
     "layers/b/layer.yaml:3: param 'port' is declared differently by layer 'a' "
     "(layers/a/layer.yaml:2) (declare it once, in the layer both require)"),
    ("param declared with another type", {
        "a": "params:\n  port: {type: integer, default: 80}\n",
        "b": "params:\n  port: {type: string, default: \"80\"}\n"},
     {"i": image("a", "b")}, "i",
     "layers/b/layer.yaml:2: param 'port' is declared differently by layer 'a' "
     "(layers/a/layer.yaml:2) (declare it once, in the layer both require)"),
    ("override of a parent image's param", {
        "u": "params:\n  user: {type: string, default: app}\nuser: \"{{ user }}\"\n",
        "x": "description: x\n"},
     {"parent": image("u"),
      "child": "base:\n  image: parent\nlayers: [x]\nparams:\n  user: bob\n"}, "child",
     "images/child.yaml:5: param 'user' belongs to layer 'u', which is built into base image "
     "'parent' (override it in that image's definition)"),
    ("base images in a cycle", {"a": ""},
     {"one": "base:\n  image: two\nlayers: [a]\n", "two": "base:\n  image: one\nlayers: [a]\n"},
     "one", "images/one.yaml:2: base images form a cycle: one -> two -> one "
     "(an image cannot be built on itself)"),
    ("image based on itself", {"a": ""}, {"one": "layers: [a]\nbase:\n  image: one\n"}, "one",
     "images/one.yaml:3: base images form a cycle: one -> one "
     "(an image cannot be built on itself)"),
    ("missing base image", {"a": ""}, {"i": "description: i\nbase:\n  image: ghost\nlayers: [a]\n"},
     "i", "images/i.yaml:3: base image 'ghost' does not exist (create images/ghost.yaml)"),
    ("invalid package after substitution", {
        "a": "params:\n  pkg: {type: string, default: curl}\npackages:\n  - \"{{ pkg }}\"\n"},
     {"i": image("a", extra="params:\n  pkg: Not A Package\n")}, "i",
     "layers/a/layer.yaml:4: invalid package 'Not A Package' "
     "(a Debian package name, optionally name=version)"),
    ("invalid port after substitution", {
        "a": "params:\n  port: {type: string, default: \"80\"}\nexpose: [\"{{ port }}\"]\n"},
     {"i": image("a", extra="params:\n  port: http\n")}, "i",
     "layers/a/layer.yaml:3: invalid port 'http' "
     "(write a port from 1 to 65535, like 8080 or 53/udp)"),
    ("port out of range", {"a": "expose: [99999]\n"}, {"i": image("a")}, "i",
     "layers/a/layer.yaml:1: invalid port '99999/tcp' "
     "(write a port from 1 to 65535, like 8080 or 53/udp)"),
    ("dest climbing out after substitution", {
        "a": "params:\n  d: {type: string, default: etc}\nfiles:\n"
             "  - {src: f, dest: \"/{{ d }}/x\"}\n", "a/files/f": "x\n"},
     {"i": image("a", extra="params:\n  d: \"../..\"\n")}, "i",
     "layers/a/layer.yaml:4: files[0].dest: invalid value '/../../x' "
     "(an absolute path without '..' or control characters)"),
    ("user with a space after substitution", {
        "a": "params:\n  who: {type: string, default: app}\nuser: \"{{ who }}\"\n"},
     {"i": image("a", extra="params:\n  who: app RUN rm\n")}, "i",
     "layers/a/layer.yaml:3: user: invalid value 'app RUN rm' "
     "(a user name or uid, optionally :group)"),
    ("healthcheck duration", {"a": "healthcheck:\n  test: [true]\n  interval: soon\n"},
     {"i": image("a")}, "i",
     "layers/a/layer.yaml:3: healthcheck.interval: invalid value 'soon' "
     "(a duration like 30s)"),
    ("invalid user name after substitution", {
        "a": "params:\n  who: {type: string, default: app}\nusers:\n  - name: \"{{ who }}\"\n"},
     {"i": image("a", extra="params:\n  who: Bob Smith\n")}, "i",
     "layers/a/layer.yaml:4: users[0].name: invalid name 'Bob Smith' "
     "(use lowercase letters, digits, '.', '_' and '-')"),
    ("invalid layer definition", {"a": "requires: [b]\n", "b": "pakages: []\n"},
     {"i": image("a")}, "i",
     "layers/b/layer.yaml:1: unknown key 'pakages' (did you mean 'packages'?)"),
]


@pytest.mark.parametrize(("layers", "images", "name", "expected"),
                         [c[1:] for c in COMPOSE_ERRORS], ids=[c[0] for c in COMPOSE_ERRORS])
def test_compose_error(make_project: MakeProject, layers: dict[str, Definition],
                       images: dict[str, Definition], name: str, expected: str) -> None:
    project = make_project(layers=layers, images=images)
    assert only_problem(lambda: compose(project, name)) == expected


def test_compose_reports_every_missing_layer(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={"i": image("x", "a", "y")})
    assert problems_of(lambda: compose(project, "i")) == [
        "images/i.yaml:4: layer 'x' does not exist (create layers/x/layer.yaml; known layers: a)",
        "images/i.yaml:6: layer 'y' does not exist (create layers/y/layer.yaml; known layers: a)",
    ]


def test_compose_all_gathers_problems_of_every_image(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "", "b": "conflicts: [a]\n"},
                           images={"one": image("nope"), "two": image("a", "b"),
                                   "three": image("a")})
    assert problems_of(lambda: compose_all(project)) == [
        "images/one.yaml:4: layer 'nope' does not exist "
        "(create layers/nope/layer.yaml; known layers: a, b)",
        "layers/b/layer.yaml:1: layer 'b' conflicts with layer 'a', and image 'two' has both "
        "(remove one of them from images/two.yaml)",
    ]


# --- ordering ------------------------------------------------------------------------------


def test_requires_are_placed_depth_first_and_once(make_project: MakeProject) -> None:
    project = make_project(layers={
        "app": "requires: [web, db]\n", "web": "requires: [os]\n", "db": "requires: [os, util]\n",
        "util": "requires: [os]\n", "os": "", "extra": "requires: [util]\n"},
        images={"i": image("app", "extra")})
    plan = compose(project, "i")
    assert [layer.name for layer in plan.layers] == ["os", "web", "util", "db", "app", "extra"]
    assert [s.layer for s in plan.sections] == ["os", "web", "util", "db", "app", "extra"]


def test_listed_order_is_kept_when_nothing_requires(make_project: MakeProject) -> None:
    project = make_project(layers={"z": "", "a": "", "m": ""}, images={"i": image("z", "a", "m")})
    assert [layer.name for layer in compose(project, "i").layers] == ["z", "a", "m"]


def test_a_required_layer_listed_later_is_not_repeated(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "requires: [b]\n", "b": ""}, images={"i": image("a", "b")})
    assert [layer.name for layer in compose(project, "i").layers] == ["b", "a"]


# --- params --------------------------------------------------------------------------------


def test_params_substitute_everywhere_with_defaults_and_overrides(
        make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": """
            params:
              port: {type: integer, default: 80}
              name: {type: string, default: web}
              debug: {type: boolean, default: false}
              umask: {type: string, default: "0022"}
            packages: ["{{ name }}-server"]
            env:
              DEBUG: "{{ debug }}"
              PORT: "{{port}}"
            files:
              - {src: x, dest: "/etc/{{ name }}/x", owner: "{{ name }}:{{ name }}"}
            run: ["umask {{ umask }}; echo {{ name }} {{ port }} {{ debug }}"]
            expose: ["{{ port }}"]
            user: "{{ name }}"
            workdir: "/srv/{{ name }}"
            healthcheck:
              test: ["curl", "localhost:{{ port }}"]
            labels:
              "{{ name }}.port": "{{ port }}"
            """},
        images={"i": image("a", extra="params:\n  port: 8080\n  debug: true\n  umask: 0027\n")},
        files={"layers/a/files/x": "x"})
    plan = compose(project, "i")
    assert plan.params == (("debug", True), ("name", "web"), ("port", 8080), ("umask", "0027"))
    (layer,) = plan.layers
    assert layer.packages == ("web-server",)
    assert layer.env == (("DEBUG", "true"), ("PORT", "8080"))
    assert layer.files == (FileSpec("x", "/etc/web/x", 0o644, "web:web"),)
    assert layer.run == ("umask 0027; echo web 8080 true",)
    assert plan.config.expose == ("8080/tcp",)
    assert (plan.config.user, plan.config.workdir) == ("web", "/srv/web")
    assert plan.config.healthcheck == Healthcheck(("curl", "localhost:8080"))
    assert plan.config.labels == (("web.port", "8080"),)


def test_string_param_keeps_yaml11_words_as_written(make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": "params:\n  v: {type: string, default: x}\nenv: {V: \"{{ v }}\"}\n"},
        images={"no": image("a", extra="params:\n  v: no\n"),
                "ver": image("a", extra="params:\n  v: 1.10\n"),
                "num": image("a", extra="params:\n  v: 8080\n")})
    assert [compose(project, n).config.env for n in ("no", "ver", "num")] == [
        (("V", "no"),), (("V", "1.10"),), (("V", "8080"),)]


def test_a_param_declared_identically_twice_is_fine(make_project: MakeProject) -> None:
    decl = "params:\n  port: {type: integer, default: 80, description: %s}\n"
    project = make_project(layers={"a": decl % "one", "b": decl % "two"},
                           images={"i": image("a", "b", extra="params:\n  port: 81\n")})
    assert compose(project, "i").params == (("port", 81),)


def test_child_image_sees_the_parent_params(make_project: MakeProject) -> None:
    project = make_project(
        layers={"u": "params:\n  user: {type: string, default: app}\nuser: \"{{ user }}\"\n",
                "x": "run: [\"chown {{ user }} /srv\"]\n"},
        images={"parent": image("u", extra="params:\n  user: svc\n"),
                "child": "base:\n  image: parent\nlayers: [x]\n"})
    plan = compose(project, "child")
    assert plan.params == (("user", "svc"),)
    assert plan.layers[0].run == ("chown svc /srv",)


# --- merge rules ---------------------------------------------------------------------------

Getter = Callable[[Plan], Any]

# (id, layer a, layer b, image extra, what to read from the plan, what it must be)
MERGE_CASES: list[tuple[str, Mapping[str, Any], Mapping[str, Any], str, Getter, Any]] = [
    ("packages union, deduped, in order",
     {"packages": ["curl", "tzdata", "curl"]}, {"packages": ["jq", "tzdata", "ca-certificates"]},
     "", lambda p: [s.packages for s in p.sections],
     [("curl", "tzdata"), ("jq", "ca-certificates")]),
    ("packages of a plan", {"packages": ["bb", "aa"]}, {"packages": ["aa", "cc"]}, "",
     lambda p: p.packages, ("bb", "aa", "cc")),
    ("run appended, repeats kept", {"run": ["echo 1", "echo 2"]}, {"run": ["echo 1"]}, "",
     lambda p: [r for s in p.sections for r in s.run], ["echo 1", "echo 2", "echo 1"]),
    ("env merged, later wins, first order kept", {"env": {"A": "a", "B": "a"}},
     {"env": {"C": "b", "B": "b"}}, "", lambda p: p.config.env,
     (("A", "a"), ("B", "b"), ("C", "b"))),
    ("env per section stays the layer's own", {"env": {"A": "a"}}, {"env": {"A": "b"}}, "",
     lambda p: [s.env for s in p.sections], [(("A", "a"),), (("A", "b"),)]),
    ("labels merged, later layer wins, image wins over all",
     {"labels": {"x": "a", "y": "a", "z": "a"}}, {"labels": {"y": "b", "z": "b"}},
     "labels:\n  z: image\n  w: image\n", lambda p: p.config.labels,
     (("w", "image"), ("x", "a"), ("y", "b"), ("z", "image"))),
    ("workdir: the later layer wins", {"workdir": "/a"}, {"workdir": "/b"}, "",
     lambda p: p.config.workdir, "/b"),
    ("workdir from one layer only", {"workdir": "/a"}, {}, "", lambda p: p.config.workdir, "/a"),
    ("user set identically twice", {"user": "app"}, {"user": "app"}, "",
     lambda p: p.config.user, "app"),
    ("user from one layer", {}, {"user": "app"}, "", lambda p: p.config.user, "app"),
    ("cmd set identically twice", {"cmd": ["a", "b"]}, {"cmd": ["a", "b"]}, "",
     lambda p: p.config.cmd, ("a", "b")),
    ("entrypoint and cmd from different layers", {"entrypoint": ["tini", "--"]},
     {"cmd": ["app"]}, "", lambda p: (p.config.entrypoint, p.config.cmd),
     (("tini", "--"), ("app",))),
    ("healthcheck set identically twice", {"healthcheck": {"test": ["true"], "retries": 2}},
     {"healthcheck": {"test": ["true"], "retries": 2}}, "", lambda p: p.config.healthcheck,
     Healthcheck(("true",), retries=2)),
    ("stopsignal", {"stopsignal": "SIGQUIT"}, {}, "", lambda p: p.config.stopsignal, "SIGQUIT"),
    ("stopsignal set identically twice", {"stopsignal": "SIGQUIT"}, {"stopsignal": "SIGQUIT"},
     "", lambda p: p.config.stopsignal, "SIGQUIT"),
    ("entrypoint set identically twice", {"entrypoint": ["tini"]}, {"entrypoint": ["tini"]}, "",
     lambda p: p.config.entrypoint, ("tini",)),
    # Docker's rules for ENTRYPOINT and CMD (docs/definitions.md, "Entrypoint and cmd")
    ("entrypoint: the later layer wins", {"entrypoint": ["a"]}, {"entrypoint": ["b"]}, "",
     lambda p: p.config.entrypoint, ("b",)),
    ("cmd: the later layer wins", {"cmd": ["a"]}, {"cmd": ["a", "b"]}, "",
     lambda p: p.config.cmd, ("a", "b")),
    ("an entrypoint resets the cmd before it", {"cmd": ["python3"]},
     {"entrypoint": ["python3", "/srv/app/server.py"]}, "",
     lambda p: (p.config.entrypoint, p.config.cmd), (("python3", "/srv/app/server.py"), None)),
    ("an entrypoint keeps the cmd it sets itself", {"cmd": ["python3"]},
     {"entrypoint": ["server"], "cmd": ["--port", "80"]}, "",
     lambda p: (p.config.entrypoint, p.config.cmd), (("server",), ("--port", "80"))),
    ("cmd: [] clears the cmd", {"cmd": ["python3"]}, {"cmd": []}, "",
     lambda p: p.config.cmd, ()),
    ("expose union", {"expose": [80, 443]}, {"expose": ["443/tcp", "53/udp", 80]}, "",
     lambda p: p.config.expose, ("80/tcp", "443/tcp", "53/udp")),
    ("volumes union", {"volumes": ["/data", "/logs"]}, {"volumes": ["/cache", "/data"]}, "",
     lambda p: p.config.volumes, ("/data", "/logs", "/cache")),
    ("files with different dests", {"files": [{"src": "x", "dest": "/x"}]},
     {"files": [{"src": "x", "dest": "/y"}]}, "",
     lambda p: [f.dest for s in p.sections for f in s.files], ["/x", "/y"]),
    ("the same user twice is created once",
     {"users": [{"name": "app", "uid": 1000}], "groups": [{"name": "g", "gid": 5}]},
     {"users": [{"name": "app", "uid": 1000}], "groups": [{"name": "g", "gid": 5}]}, "",
     lambda p: [(s.users, s.groups) for s in p.sections],
     [((UserSpec("app", 1000),), (GroupSpec("g", 5),)), ((), ())]),
    ("different users and groups", {"users": [{"name": "a"}]},
     {"users": [{"name": "b"}], "groups": [{"name": "b", "system": True}]}, "",
     lambda p: [(s.users, s.groups) for s in p.sections],
     [((UserSpec("a"),), ()), ((UserSpec("b"),), (GroupSpec("b", None, True),))]),
]


@pytest.mark.parametrize(("a", "b", "extra", "get", "expected"), [c[1:] for c in MERGE_CASES],
                         ids=[c[0] for c in MERGE_CASES])
def test_merge_rule(make_project: MakeProject, a: Mapping[str, Any], b: Mapping[str, Any],
                    extra: str, get: Getter, expected: Any) -> None:
    project = make_project(layers={"a": a, "b": b}, images={"i": image("a", "b", extra=extra)},
                           files={"layers/a/files/x": "a", "layers/b/files/x": "b"})
    assert get(compose(project, "i")) == expected


# (id, layer a, layer b, the one problem): layer b's key is on line 2 of its file.
MERGE_ERRORS = [
    # equal specs still name two different files (layers/a/files/x, layers/b/files/x)
    ("same dest, same spec", "files: [{src: x, dest: /x, mode: \"0600\"}]\n",
     "description: b\nfiles: [{src: x, dest: /x, mode: \"600\"}]\n",
     "layers/b/layer.yaml:2: files: '/x' is defined by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:1) (define it once, in one layer)"),
    ("user", "user: app\n", "description: b\nuser: root\n",
     "layers/b/layer.yaml:2: 'user' is set by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:1) (set 'user' in one layer only)"),
    ("stopsignal", "stopsignal: SIGTERM\n", "description: b\nstopsignal: SIGQUIT\n",
     "layers/b/layer.yaml:2: 'stopsignal' is set by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:1) (set 'stopsignal' in one layer only)"),
    ("healthcheck", "healthcheck: {test: [a]}\n",
     "description: b\nhealthcheck: {test: [a], interval: 1s}\n",
     "layers/b/layer.yaml:2: 'healthcheck' is set by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:1) (set 'healthcheck' in one layer only)"),
    ("file dest with another src", "files:\n  - {src: x, dest: /etc/x}\n",
     "description: b\nfiles:\n  - {src: y, dest: /etc/x}\n",
     "layers/b/layer.yaml:3: files: '/etc/x' is defined by layer 'b' and differently by layer "
     "'a' (layers/a/layer.yaml:2) (define it once, in one layer)"),
    ("file dest with another mode", "files:\n  - {src: x, dest: /etc/x}\n",
     "files:\n  - {src: x, dest: /etc/x, mode: 0600}\n",
     "layers/b/layer.yaml:2: files: '/etc/x' is defined by layer 'b' and differently by layer "
     "'a' (layers/a/layer.yaml:2) (define it once, in one layer)"),
    ("user defined differently", "users:\n  - {name: app, uid: 1}\n",
     "users:\n  - {name: other}\n  - {name: app, uid: 2}\n",
     "layers/b/layer.yaml:3: users: 'app' is defined by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:2) (define it once, in one layer)"),
    ("group defined differently", "groups:\n  - {name: g}\n", "groups:\n  - {name: g, gid: 7}\n",
     "layers/b/layer.yaml:2: groups: 'g' is defined by layer 'b' and differently by layer 'a' "
     "(layers/a/layer.yaml:2) (define it once, in one layer)"),
]


@pytest.mark.parametrize(("a", "b", "expected"), [c[1:] for c in MERGE_ERRORS],
                         ids=[c[0] for c in MERGE_ERRORS])
def test_merge_error_names_both_layers(make_project: MakeProject, a: str, b: str,
                                       expected: str) -> None:
    project = make_project(layers={"a": a, "b": b}, images={"i": image("a", "b")},
                           files={"layers/a/files/x": "x", "layers/b/files/x": "x",
                                  "layers/b/files/y": "y"})
    assert only_problem(lambda: compose(project, "i")) == expected


def test_exclusive_against_a_parent_image_layer(make_project: MakeProject) -> None:
    project = make_project(layers={"u": "user: app\n", "x": "description: x\nuser: root\n"},
                           images={"parent": image("u"),
                                   "child": "base:\n  image: parent\nlayers: [x]\n"})
    assert only_problem(lambda: compose(project, "child")) == (
        "layers/x/layer.yaml:2: 'user' is set by layer 'x' and differently by layer 'u' "
        "(layers/u/layer.yaml:1) (set 'user' in one layer only)")


# --- parent images -------------------------------------------------------------------------

PARENT_LAYERS: dict[str, Definition] = {
    "os": "packages: [ca-certificates, tzdata]\nenv: {LANG: C.UTF-8}\n",
    "account": """
        requires: [os]
        groups: [{name: app, gid: 1000}]
        users: [{name: app, uid: 1000, group: app}]
        user: app
        workdir: /home/app
        labels: {tier: base}
        """,
    "svc": """
        requires: [account]
        packages: [tzdata, nginx-light]
        users: [{name: app, uid: 1000, group: app}, {name: web}]
        cmd: [nginx]
        labels: {tier: svc}
        """,
    "tool": "packages: [curl]\n",
}


def _family(make_project: MakeProject) -> tuple[Plan, Plan, Plan]:
    project = make_project(layers=PARENT_LAYERS, images={
        "parent": image("account", extra="labels: {owner: parent, kind: parent}\n"),
        "child": "base:\n  image: parent\nlayers: [svc]\nlabels: {kind: child}\n",
        "rooted": "base:\n  image: tooled\nlayers: [svc]\n",
        "tooled": image("tool"),
    })
    return compose(project, "parent"), compose(project, "child"), compose(project, "rooted")


def test_parent_layers_are_not_repeated_in_the_child(make_project: MakeProject) -> None:
    parent, child, _ = _family(make_project)
    assert [layer.name for layer in parent.layers] == ["os", "account"]
    assert child.parent is not None and child.parent.image.name == "parent"
    assert [layer.name for layer in child.layers] == ["svc"]
    assert [layer.name for layer in child.all_layers] == ["os", "account", "svc"]
    (section,) = child.sections
    assert section.layer == "svc"
    assert section.packages == ("nginx-light",)  # tzdata is in the parent already
    assert section.users == (UserSpec("web"),)  # app was created by the parent
    assert child.packages == ("ca-certificates", "tzdata", "nginx-light")


def test_child_config_merges_over_the_parent(make_project: MakeProject) -> None:
    _, child, _ = _family(make_project)
    config = child.config
    assert (config.user, config.workdir, config.cmd) == ("app", "/home/app", ("nginx",))
    assert config.env == (("LANG", "C.UTF-8"),)
    assert config.labels == (("kind", "child"), ("owner", "parent"), ("tier", "svc"))


def test_an_entrypoint_in_a_child_resets_the_parent_images_cmd(
        make_project: MakeProject) -> None:
    project = make_project(
        layers={"py": "cmd: [python3]\n",
                "app": "entrypoint: [python3, /srv/app/server.py]\n",
                "args": "cmd: [--port, '80']\n"},
        images={"python": image("py"), "app": "base:\n  image: python\nlayers: [app]\n",
                "tool": "base:\n  image: python\nlayers: [args]\n"})
    app = compose(project, "app").config
    assert (app.entrypoint, app.cmd) == (("python3", "/srv/app/server.py"), None)
    def dockerfile(name: str) -> str:
        return render_dockerfile(compose(project, name), "p", "f" * 64).dockerfile

    assert "\nCMD " not in dockerfile("app")
    assert '\nCMD ["python3"]' in dockerfile("python")
    tool = compose(project, "tool").config
    assert (tool.entrypoint, tool.cmd) == (None, ("--port", "80"))


def test_child_of_a_non_root_parent_switches_to_root_to_build(
        make_project: MakeProject) -> None:
    _, child, _ = _family(make_project)
    lines = render_dockerfile(child, "parent:latest", "f" * 64).dockerfile.splitlines()
    assert lines[1:3] == ["FROM parent:latest", "USER 0:0"]
    assert lines.index("USER 0:0") < lines.index("# --- layer: svc ---")
    assert [line for line in lines if line.startswith("USER ")] == ["USER 0:0", "USER app"]
    assert lines.index("USER app") > lines.index('CMD ["nginx"]')


def test_child_of_a_root_parent_does_not_switch_user(make_project: MakeProject) -> None:
    _, _, rooted = _family(make_project)
    lines = render_dockerfile(rooted, "tooled:latest", "f" * 64).dockerfile.splitlines()
    assert lines[1:4] == ["FROM tooled:latest", "", "# --- layer: os ---"]
    assert [line for line in lines if line.startswith("USER ")] == ["USER app"]
    # os, account and svc all come in this image: svc skips what they already made
    assert [s.layer for s in rooted.sections] == ["os", "account", "svc"]
    assert rooted.sections[2].packages == ("nginx-light",)
    assert rooted.sections[2].users == (UserSpec("web"),)


def test_build_order_puts_parents_first(make_project: MakeProject) -> None:
    project = make_project(layers=PARENT_LAYERS, images={
        "a-child": "base:\n  image: z-parent\nlayers: [svc]\n",
        "z-parent": image("account"), "m-other": image("tool")})
    assert [p.image.name for p in compose_all(project)] == ["z-parent", "a-child", "m-other"]
    plans = [compose(project, n) for n in ("a-child", "m-other")]
    assert [p.image.name for p in build_order(plans)] == ["z-parent", "a-child", "m-other"]


def test_child_from_points_at_the_parent_fingerprint(make_project: MakeProject) -> None:
    project = make_project(layers=PARENT_LAYERS, images={
        "parent": image("account"), "child": "base:\n  image: parent\nlayers: [svc]\n"})
    parent, child = compose(project, "parent"), compose(project, "child")
    assert base_ref(project.root, child) == f"kiln/parent:{fingerprint(project.root, parent)[:16]}"
    assert base_ref(project.root, parent) == REF
