"""`kiln new layer|image <name>`: a layer with a test, or an image, that `check` accepts as is.

The files say what to fill in; nothing existing is ever overwritten.
"""

from __future__ import annotations

from pathlib import Path

from kiln.errors import KilnError
from kiln.schema import NAME_RE

LAYER = """\
description: {name}, in one sentence (what an image gets from this layer).
requires: [core]
# Fill in what the layer adds (docs/definitions.md has every key):
# packages: [some-package]
# files:
#   - {{src: {name}.conf, dest: /etc/{name}/{name}.conf}}   # from files/{name}.conf
# run:
#   - some-command --that-sets-it-up
# entrypoint: ["program", "--foreground"]                 # a service: verified running
# expose: ["8080"]
"""

TEST = '''\
"""{name}: what this layer promises to every image built on it (checked by `kiln verify`)."""

from kiln.testkit import http_get, listening  # noqa: F401 (helpers that need no ss or curl)


def test_{ident}_is_in_the_image(image):
    assert "{name}" in image.layers


# Assert what the layer promises, not what an image on it may change, e.g.:
# def test_package_installed(host):
#     assert host.package("some-package").is_installed
#
# def test_listening(host):
#     assert 8080 in listening(host)
'''

IMAGE = """\
description: {name}, in one sentence (what it is for).
version: "0.1"
base:
  image: {base}
layers: [{layers}]
"""


def _name(kind: str, name: str) -> str:
    if not NAME_RE.match(name) or name == "all":
        raise KilnError(f"{kind} name '{name}': use lowercase letters, digits, '.', '_' and '-' "
                        "(and not 'all')")
    return name


def _write(root: Path, files: dict[str, str]) -> list[str]:
    existing = [rel for rel in files if (root / rel).exists()]
    if existing:
        raise KilnError(f"{existing[0]}: already exists (kiln new never overwrites; pick "
                        "another name or edit it)")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def new_layer(root: Path, name: str) -> list[str]:
    _name("layer", name)
    return _write(root, {
        f"layers/{name}/layer.yaml": LAYER.format(name=name),
        f"layers/{name}/files/.keep": "",
        f"layers/{name}/tests/test_{name.replace('-', '_').replace('.', '_')}.py":
            TEST.format(name=name, ident=name.replace("-", "_").replace(".", "_")),
    })


def new_image(root: Path, name: str, base: str, layers: list[str]) -> list[str]:
    _name("image", name)
    if not (root / "images" / f"{base}.yaml").is_file():
        raise KilnError(f"images/{base}.yaml: no such image to build on (--base names an image "
                        "of this project)")
    if not layers:
        if not (root / "layers" / name / "layer.yaml").is_file():
            raise KilnError(f"images/{name}.yaml: which layers? (`kiln new layer {name}` first, "
                            "or --layers a,b)")
        layers = [name]
    for layer in layers:
        if not (root / "layers" / layer / "layer.yaml").is_file():
            raise KilnError(f"layers/{layer}/layer.yaml: no such layer (`kiln new layer {layer}`)")
    return _write(root, {f"images/{name}.yaml": IMAGE.format(name=name, base=base,
                                                              layers=", ".join(layers))})
