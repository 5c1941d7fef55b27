"""Rendering: golden Dockerfiles, determinism, fingerprints and the build context."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from kilntest import REF, REPO_ROOT, MakeProject

from kiln import RENDER_VERSION, __version__, lockfile
from kiln.compose import compose
from kiln.context import prepare
from kiln.fingerprint import base_ref, fingerprint
from kiln.load import Project
from kiln.lockfile import Lock, LockedPackage, LockSection
from kiln.model import Plan
from kiln.render import context_entries, render_dockerfile, write_context_dir

GOLDEN = Path(__file__).parent / "golden"
SAMPLE_IMAGES = Project(REPO_ROOT).image_names()
EPOCH = 315532800  # 1980-01-01T00:00:00Z


def dockerfile(project: Project, plan: Plan) -> str:
    return render_dockerfile(plan, base_ref(project.root, plan),
                             fingerprint(project.root, plan)).dockerfile


# A built context as its files: {arcname: (mode, mtime, bytes or None for a folder)}.
Context = dict[str, tuple[int, int, bytes | None]]


def context_files(project: Project, plan: Plan, into: Path) -> Context:
    """The context laid out the way a build lays it out (write_context_dir, what BuildKit
    reads), then read back: names, modes, file mtimes and bytes."""
    write_context_dir(into, dockerfile(project, plan), context_entries(project.root, plan))
    out: Context = {}
    for path in sorted(into.rglob("*")):
        st = path.lstat()
        data = None if path.is_dir() else path.read_bytes()
        out[path.relative_to(into).as_posix()] = (st.st_mode & 0o7777, int(st.st_mtime), data)
    return out


def copy_definitions(root: Path, to: Path) -> Project:
    shutil.copytree(root / "layers", to / "layers")
    shutil.copytree(root / "images", to / "images")
    return Project(to)


# --- golden Dockerfiles --------------------------------------------------------------------


def test_the_sample_images_are_there() -> None:
    assert {"base", "nginx", "python"} <= set(SAMPLE_IMAGES)


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_golden_dockerfile(name: str) -> None:
    """Rendered as a build renders it: with the image's lock (the path production builds;
    without a lock kiln refuses to build), so the locked `--mount` installs are in the files."""
    rendered = prepare(Project(REPO_ROOT), name).rendered.dockerfile.encode()
    golden = GOLDEN / f"{name}.Dockerfile"
    if os.environ.get("KILN_UPDATE_GOLDEN") == "1":
        changed = not golden.is_file() or golden.read_bytes() != rendered
        golden.write_bytes(rendered)
        # Not a pass: a file compared with what was just written into it proves nothing.
        pytest.skip(f"{golden.name} {'rewritten' if changed else 'unchanged'}: review the diff")
    assert golden.is_file(), f"{golden} is missing: run KILN_UPDATE_GOLDEN=1 pytest tests/unit"
    assert golden.read_bytes() == rendered, (
        f"the Dockerfile of {name} changed; if that is intended, run "
        "KILN_UPDATE_GOLDEN=1 pytest tests/unit and review the diff")


# --- determinism ---------------------------------------------------------------------------


def test_same_bytes_from_any_checkout(tmp_path: Path) -> None:
    one = copy_definitions(REPO_ROOT, tmp_path / "one")
    other_root = tmp_path / "a" / "much" / "longer path" / "two"
    other_root.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "layers", other_root / "layers", copy_function=shutil.copyfile)
    shutil.copytree(REPO_ROOT / "images", other_root / "images", copy_function=shutil.copyfile)
    for path in (other_root / "layers").rglob("*"):  # other mtimes and modes on disk
        if path.is_file():
            path.chmod(0o600)
            os.utime(path, (1_700_000_000, 1_700_000_000))
    two = Project(other_root)
    for name in SAMPLE_IMAGES:
        plan_one, plan_two = compose(one, name), compose(two, name)
        assert dockerfile(one, plan_one) == dockerfile(two, plan_two), name
        assert fingerprint(one.root, plan_one) == fingerprint(two.root, plan_two), name
        assert (context_files(one, plan_one, tmp_path / "ctx-one" / name)
                == context_files(two, plan_two, tmp_path / "ctx-two" / name)), name
    # and the copies render what the repository renders
    repo = Project(REPO_ROOT)
    assert dockerfile(one, compose(one, "nginx")) == dockerfile(repo, compose(repo, "nginx"))


def test_rendering_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    project = Project(REPO_ROOT)
    plan = compose(project, "nginx")
    again = compose(Project(REPO_ROOT), "nginx")
    assert (context_files(project, plan, tmp_path / "one")
            == context_files(project, again, tmp_path / "two"))


# --- fingerprints --------------------------------------------------------------------------

Change = Callable[[Path], None]


def _edit(rel: str, old: str, new: str) -> Change:
    def change(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, f"{rel} no longer holds {old!r}: update this test"
        path.write_text(text.replace(old, new, 1))
    return change


def _flip_byte(rel: str) -> Change:
    def change(root: Path) -> None:
        data = bytearray((root / rel).read_bytes())
        data[0] ^= 1
        (root / rel).write_bytes(bytes(data))
    return change


def _touch_all(root: Path) -> None:
    for path in (root / "layers").rglob("*"):
        os.utime(path, (0, 0))


def _chmod_sources(root: Path) -> None:
    for path in (root / "layers").rglob("files/**/*"):
        if path.is_file():
            path.chmod(0o700)


# (id, the change, the images whose fingerprint must change; the others must not)
FINGERPRINT_CASES: list[tuple[str, Change, set[str]]] = [
    ("one byte of a copied file", _flip_byte("layers/nginx/files/nginx.conf"), {"nginx"}),
    ("one byte of a file inside a copied folder", _flip_byte("layers/nginx/files/www/index.html"),
     {"nginx"}),
    ("one byte of a parent image's file", _flip_byte("layers/minimal/files/apt-minimal.conf"),
     {"base", "base-vm", "nginx", "python", "redis", "webapp"}),
    ("a file mode", _edit("layers/nginx/layer.yaml", "dest: /etc/nginx/nginx.conf\n",
                          "dest: /etc/nginx/nginx.conf\n    mode: \"0600\"\n"), {"nginx"}),
    ("a param", _edit("images/nginx.yaml", "port: 8080", "port: 8081"), {"nginx"}),
    ("a parent image's param", _edit("layers/user/layer.yaml", "default: app", "default: svc"),
     {"base", "base-vm", "nginx", "python", "redis", "webapp"}),
    ("a package added", _edit("layers/python/layer.yaml", "  - python3-venv\n",
                              "  - python3-venv\n  - python3-pip\n"), {"python", "webapp"}),
    ("a run step", _edit("layers/python/layer.yaml", "cmd:", "run: [\"true\"]\ncmd:"),
     {"python", "webapp"}),
    ("an image label", _edit("images/python.yaml", "version:", "labels: {team: py}\nversion:"),
     {"python", "webapp"}),
    ("files' mtimes", _touch_all, set()),
    ("files' modes on disk", _chmod_sources, set()),
    ("a comment and a blank line", _edit("layers/nginx/layer.yaml", "packages:",
                                         "# the light flavour\n\npackages:"), set()),
]


@pytest.mark.parametrize(("change", "changed"), [c[1:] for c in FINGERPRINT_CASES],
                         ids=[c[0] for c in FINGERPRINT_CASES])
def test_fingerprint_changes_with_inputs_only(tmp_path: Path, change: Change,
                                              changed: set[str]) -> None:
    before_project = copy_definitions(REPO_ROOT, tmp_path)
    before = {n: fingerprint(tmp_path, compose(before_project, n)) for n in SAMPLE_IMAGES}
    change(tmp_path)
    after_project = Project(tmp_path)
    after = {n: fingerprint(tmp_path, compose(after_project, n)) for n in SAMPLE_IMAGES}
    assert {n for n in SAMPLE_IMAGES if before[n] != after[n]} == changed


def test_fingerprint_is_a_sha256(tmp_path: Path) -> None:
    project = Project(REPO_ROOT)
    fp = fingerprint(project.root, compose(project, "base"))
    assert len(fp) == 64 and set(fp) <= set("0123456789abcdef")


# --- the build context ---------------------------------------------------------------------


def test_context_of_a_sample_image_holds_exactly_its_files(tmp_path: Path) -> None:
    project = Project(REPO_ROOT)
    plan = compose(project, "nginx")
    members = context_files(project, plan, tmp_path)
    assert list(members) == ["Dockerfile", "files", "files/nginx", "files/nginx/nginx.conf",
                             "files/nginx/www", "files/nginx/www/index.html"]
    assert members.pop("Dockerfile")[2] == dockerfile(project, plan).encode()
    nginx = REPO_ROOT / "layers" / "nginx" / "files"
    assert members["files/nginx/nginx.conf"][2] == (nginx / "nginx.conf").read_bytes()
    assert members["files/nginx/www/index.html"][2] == (nginx / "www" / "index.html").read_bytes()
    for name, (mode, mtime, data) in members.items():
        assert (mode, mtime) == (0o755 if data is None else 0o644, EPOCH), name


def test_context_of_an_image_without_files_is_the_dockerfile(tmp_path: Path) -> None:
    project = Project(REPO_ROOT)
    assert list(context_files(project, compose(project, "python"), tmp_path)) == ["Dockerfile"]


def test_context_modes_folders_and_parent_layers(make_project: MakeProject, tmp_path: Path
                                                 ) -> None:
    project = make_project(
        layers={
            "inherited": "files:\n  - {src: not-in-child, dest: /x}\n",
            "tool": """
                files:
                  - {src: bin/run.sh, dest: /usr/local/bin/run, mode: 0755}
                  - {src: conf/, dest: /etc/tool/}
                  - {src: secret, dest: /etc/tool/secret, mode: "0600", owner: "app:app"}
                """},
        images={"parent": f"base: {{ref: {REF}}}\nlayers: [inherited]\n",
                "i": "base: {image: parent}\nlayers: [tool]\n"},
        files={"layers/inherited/files/not-in-child": "no\n",
               "layers/tool/files/bin/run.sh": "#!/bin/sh\n",
               "layers/tool/files/conf/a.conf": "a\n",
               "layers/tool/files/conf/sub/b.conf": "b\n",
               "layers/tool/files/secret": "s\n",
               "layers/tool/files/unused": "not declared\n"})
    plan = compose(project, "i")
    members = context_files(project, plan, tmp_path / "context")
    del members["Dockerfile"]  # the build reads it; COPY never takes it
    assert {name: mode for name, (mode, _, _) in members.items()} == {
        "files": 0o755,
        "files/tool": 0o755,
        "files/tool/bin": 0o755,
        "files/tool/bin/run.sh": 0o755,
        "files/tool/conf": 0o755,
        "files/tool/conf/a.conf": 0o644,
        "files/tool/conf/sub": 0o755,
        "files/tool/conf/sub/b.conf": 0o644,
        "files/tool/secret": 0o600,
    }
    assert members["files/tool/conf/sub/b.conf"][2] == b"b\n"
    assert {mtime for _, mtime, _ in members.values()} == {EPOCH}
    text = dockerfile(project, plan)
    assert "COPY files/tool/bin/run.sh /usr/local/bin/run\n" in text
    assert "COPY files/tool/conf /etc/tool/\n" in text
    assert "COPY --chown=app:app files/tool/secret /etc/tool/secret\n" in text
    copied = [line.split()[-2] for line in text.splitlines() if line.startswith("COPY ")]
    assert set(copied) <= set(members)


# --- the Dockerfile's shape ----------------------------------------------------------------

FULL_LAYER = """
    params:
      port: {type: integer, default: 8080}
    packages: [curl, jq]
    groups: [{name: app, gid: 1000}, {name: ops, system: true}]
    users:
      - {name: app, uid: 1000, group: app, groups: [ops], home: /home/app, shell: /bin/sh}
      - {name: daemon2, system: true}
    files:
      - {src: my file.txt, dest: /etc/my file.txt}
    env:
      GREETING: 'say "hi" on $PORT'
      PORT: "{{ port }}"
    run:
      - echo one
      - |
        echo two
        echo three
    workdir: /home/app
    user: app
    expose: ["{{ port }}", 53/udp]
    volumes: [/data]
    entrypoint: [tini, --]
    cmd: [app, --port, "{{ port }}"]
    stopsignal: SIGINT
    healthcheck: {test: [curl, -f, "http://localhost:{{ port }}/"], interval: 10s}
    labels: {org.example.tier: front, team: web}
    """

EXPECTED = """\
# Rendered by kiln {version} (render {render}) from images/i.yaml. Do not edit: change the definitions and run `invoke render`.
FROM example:1

# --- layer: early ---
RUN set -eu; echo early

# --- layer: full ---
ENV GREETING="say \\"hi\\" on $PORT" PORT="8080"
RUN groupadd --gid 1000 app \\
 && groupadd --system ops \\
 && useradd --no-log-init --uid 1000 --gid app --groups ops --create-home --home-dir /home/app --shell /bin/sh app \\
 && useradd --no-log-init --system --user-group --no-create-home --shell /usr/sbin/nologin daemon2
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      curl jq \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY ["files/full/my file.txt", "/etc/my file.txt"]
RUN set -eu; echo one
RUN ["/bin/sh", "-euc", "echo two\\necho three\\n"]

# --- image configuration ---
WORKDIR /home/app
EXPOSE 8080/tcp 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["curl", "-f", "http://localhost:8080/"]
ENTRYPOINT ["tini", "--"]
CMD ["app", "--port", "8080"]
USER app
LABEL dev.kiln.fingerprint="{fp}" \\
      dev.kiln.image="i" \\
      dev.kiln.layers="early,full" \\
      dev.kiln.version="{version}" \\
      org.example.tier="front" \\
      org.opencontainers.image.description="Everything, once." \\
      org.opencontainers.image.title="i" \\
      org.opencontainers.image.version="2.0" \\
      team="web"
"""  # noqa: E501


def test_dockerfile_order_and_quoting(make_project: MakeProject) -> None:
    project = make_project(
        layers={"full": FULL_LAYER, "early": "run: [echo early]\n"},
        images={"i": f"description: Everything, once.\nversion: \"2.0\"\nbase: {{ref: {REF}}}\n"
                     "layers: [early, full]\n"},
        files={"layers/full/files/my file.txt": "x\n"})
    plan = compose(project, "i")
    fp = "0123456789abcdef" * 4
    rendered = render_dockerfile(plan, "example:1", fp)
    assert rendered.dockerfile == EXPECTED.format(version=__version__, render=RENDER_VERSION, fp=fp)
    assert [i.layer for i in rendered.instructions] == [
        None, "early", "full", "full", "full", "full", "full", "full",
        None, None, None, None, None, None, None, None, None]


def test_provenance_labels_and_layers_list_the_parents(make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": "labels: {org.example.a: one}\n", "b": ""},
        images={"p": f"base: {{ref: {REF}}}\nlayers: [a]\nversion: \"1\"\n",
                "c": "base: {image: p}\nlayers: [b]\nlabels: {mine: yes}\n"})
    text = dockerfile(project, compose(project, "c"))
    label = text[text.index("LABEL "):]
    assert 'dev.kiln.image="c"' in label
    assert 'org.opencontainers.image.title="c"' in label
    assert 'org.opencontainers.image.version="0"' in label
    assert 'dev.kiln.layers="a,b"' in label
    assert 'mine="yes"' in label
    assert 'org.example.a="one"' in label
    assert "org.opencontainers.image.description" not in label


# --- the locked render (what a build renders) ----------------------------------------------


def test_locked_render_installs_the_locked_debs_from_a_bind_mount(make_project: MakeProject
                                                                   ) -> None:
    project = make_project(
        layers={"tools": {"packages": ["curl"], "secrets": ["token"],
                          "run": ["test -s /run/secrets/token"]},
                "settled": {"requires": ["tools"], "packages": ["ca-certificates"]}},
        images={"app": {"base": {"ref": REF}, "layers": ["tools", "settled"]}})
    deb = "http://deb.debian.org/debian/pool/main/c/curl/"
    lockfile.write(project.root, Lock("app", (
        LockSection("tools", ("curl",), (
            LockedPackage("curl", "7.88.1-10+deb12u8", "amd64", 315000, "1" * 64,
                          deb + "curl_7.88.1-10%2bdeb12u8_amd64.deb"),
            LockedPackage("libcurl4", "1:7.88.1-10", "amd64", 390000, "2" * 64,
                          deb + "libcurl4_7.88.1-10_amd64.deb"))),
        LockSection("settled", ("ca-certificates",), ()))))  # the base has it already
    text = prepare(project, "app").rendered.dockerfile
    assert ("RUN --mount=type=bind,source=debs/tools,target=/tmp/kiln-debs \\\n"
            "    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
            " \\\n      /tmp/kiln-debs/curl_7.88.1-10+deb12u8_amd64.deb "
            "/tmp/kiln-debs/libcurl4_1%3a7.88.1-10_amd64.deb \\\n && apt-get clean") in text
    assert "RUN --mount=type=secret,id=token set -eu; test -s /run/secrets/token" in text
    assert "apt-get update" not in text  # locked: nothing is resolved at build time
    assert "ca-certificates" not in text  # locked to no .deb: no install step at all
    # Without the lock the same image renders the unlocked branch, which kiln does not build.
    (project.root / "images" / "app.lock").unlink()
    unlocked = prepare(project, "app").rendered.dockerfile
    assert "apt-get update" in unlocked and "--mount=type=bind" not in unlocked
