"""docs/definitions.md, generated: the key tables come from kiln.schema, the prose lives here.

`definitions_markdown()` is the whole reference; `write_definitions(root)` writes it to
docs/definitions.md (what `invoke docs` runs), and a unit test fails when the committed file
differs, so the reference cannot drift from the loader. Two parts live beside it: the section
on hostile layers (kiln.docs_guard, from kiln.guard's limits) and the full example it ends
with (kiln.docs_example, which a test composes).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from kiln.docs_example import (
    EXAMPLE_IMAGE,
    EXAMPLE_IMAGE_NAME,
    EXAMPLE_LAYER,
    EXAMPLE_LAYER_FILES,
    EXAMPLE_LAYER_NAME,
)
from kiln.docs_guard import host_section
from kiln.model import BootstrapBase
from kiln.schema import BOOTSTRAP_VARIANTS, IMAGE_FIELDS, LAYER_FIELDS, MERGE_RULES, Field

DOC_PATH = "docs/definitions.md"

# The bootstrap base's keys: type and help here, defaults read from the model's dataclass.
BOOTSTRAP_KEYS: tuple[tuple[str, str, str], ...] = (
    ("suite", "name", "The Debian suite or codename, e.g. `bookworm`."),
    ("variant", "one of the variants below", "How much mmdebstrap installs."),
    ("mirror", "URL", "The Debian mirror the root filesystem is made from."),
    ("components", "list of names", "Archive components to enable."),
    ("packages", "list of strings", "Extra packages installed while bootstrapping."),
)

# Labels every image gets; they win over the definitions' own labels of the same name.
PROVENANCE_LABELS: tuple[tuple[str, str], ...] = (
    ("org.opencontainers.image.title", "the image's name"),
    ("org.opencontainers.image.version", "the image's `version`"),
    ("org.opencontainers.image.description", "the image's `description` (when it has one)"),
    ("dev.kiln.image", "the image's name"),
    ("dev.kiln.layers", "every layer in the image, parent image's first, comma separated"),
    ("dev.kiln.fingerprint", "the fingerprint: a sha256 of every input of the image"),
    ("dev.kiln.version", "the version of kiln that rendered it"),
)

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _field_rows(fields: Iterable[Field], with_merge: bool) -> list[list[str]]:
    rows = []
    for f in fields:
        default = f"`{f.default}`" if f.default[:1] in ('"', "[", "{") else f.default
        row = [f"`{f.key}`", f.type, default]
        if with_merge:
            row.append(f"`{f.merge}`")
        rows.append([*row, f.help])
    return rows


def _bootstrap_defaults() -> dict[str, str]:
    out = {}
    for f in dataclasses.fields(BootstrapBase):
        if f.default is dataclasses.MISSING:
            out[f.name] = "required"
        elif isinstance(f.default, tuple):
            out[f.name] = "`[" + ", ".join(f.default) + "]`"
        else:
            out[f.name] = f"`{f.default}`"
    return out


def _code(lang: str, text: str) -> list[str]:
    return [f"```{lang}", *text.rstrip("\n").split("\n"), "```"]


def _entrypoint_section() -> list[str]:
    """Docker's rule for ENTRYPOINT and CMD, which kiln follows over layers and parent images."""
    return [
        "## Entrypoint and cmd",
        "",
        "`entrypoint` and `cmd` follow Docker's rules, over the layers in image order (the "
        "parent image's layers first):",
        "",
        "- The later layer wins, for each of the two.",
        "- A layer that sets `entrypoint` resets the `cmd` set before it, by an earlier layer "
        "or the parent image, unless it sets `cmd` too: the parent's default arguments "
        "(`python3` for the python sample) are not arguments to a new program.",
        "- `cmd: []` is a value, not a missing key: it clears the cmd (`CMD []`).",
        "",
        "So a layer on the python image that sets `entrypoint: [python3, /srv/app/server.py]` "
        "runs exactly that, and a layer that only sets `cmd` keeps the entrypoint and changes "
        "its arguments. An image with an `entrypoint` is a service: verification starts it as "
        "in production and tests it once it is healthy (docs/verification.md).",
        "",
    ]


def _checks_section() -> list[str]:
    """What `check` verifies beyond each key (kiln.checks), so nothing fails late in a build."""
    return [
        "## Checked before any build",
        "",
        "`check` (and every task that builds) also checks what needs the whole plan:",
        "",
        "- File names are names: `images/Redis.yaml` is refused (rename it `images/redis.yaml`).",
        "- A file's `owner` (user and group) must exist when the file is copied: created by "
        "this or an earlier layer (a parent image's included), or one of the Debian base's "
        "own accounts (base-passwd: `root`, `www-data`, `nobody`, ...). An account a package "
        "creates is not known before the build: declare it under `users:`, or use numeric "
        "ids. On a `ref` or `rootfs` base, whose accounts are unknown, names are not checked.",
        "- Healthcheck numbers: `retries` of 1 or more, `interval` and `timeout` of 1ms or "
        "more (`start_period` may be 0s).",
        "- The number of build steps: the engine stacks at most 125 layers; an image that "
        "would need more is refused, naming the layer with the most `run` steps (merge them: "
        "one step can run several commands).",
        "- The tests an image or layer skips or replaces (docs/verification.md).",
        "",
    ]


def definitions_markdown() -> str:
    """The complete definitions reference, as committed in docs/definitions.md."""
    defaults = _bootstrap_defaults()
    lines: list[str] = [
        "# Definitions reference",
        "",
        "<!-- Generated from src/kiln/schema.py and src/kiln/docs.py by `invoke docs`. "
        "Do not edit. -->",
        "",
        "An image is a base plus an ordered list of layers. Layers say what to add (packages, "
        "accounts, files, steps) and how the container runs; images say where to start, which "
        "layers to apply and which params to change. kiln composes them into one plan, renders "
        "it as a Dockerfile and a build context, and fingerprints every input.",
        "",
        "Every definition is checked before anything is built. An unknown key, a value of the "
        "wrong type or a file that is not where it should be is an error, printed as one line "
        "`path:line: message (hint)`, and every problem in every file is reported at once.",
        "",
        "## File layout",
        "",
        "```text",
        "layers/<name>/layer.yaml    the layer's definition; <name> is how images refer to it",
        "layers/<name>/files/        files the layer copies into the image (its `files` key)",
        "layers/<name>/tests/        the layer's tests, run against images that contain it",
        "images/<name>.yaml          an image: its base, its layers, its params",
        "```",
        "",
        "Names of layers and images use lowercase letters, digits, `.`, `_` and `-`, and start "
        "with a letter or a digit. A layer can copy only what is inside its own `files/` "
        "folder: `src` is relative to it, absolute paths and `..` are errors, and so is a "
        "symbolic link (also one inside a copied folder) that leads out of it. Inside a copied "
        "folder, links to files are followed; a link to a folder is an error.",
        "",
        "## Layers: `layers/<name>/layer.yaml`",
        "",
        "Every key is optional. The merge rule says what happens when several layers of one "
        "image (the parent image's layers included) set the key; see "
        "[Merge rules](#merge-rules).",
        "",
        *_table(("Key", "Type", "Default", "Merge", "Description"),
                _field_rows(LAYER_FIELDS, with_merge=True)),
        "",
        "Accounts: `groupadd` and `useradd` run as root, groups before users. A user without "
        "`group` gets a primary group of its own name; a user without `home` gets no home "
        "folder; `system: true` makes system accounts. A group or user that an earlier layer, "
        "or the parent image, already created is not created again.",
        "",
        "## Images: `images/<name>.yaml`",
        "",
        *_table(("Key", "Type", "Default", "Description"),
                _field_rows(IMAGE_FIELDS, with_merge=False)),
        "",
        "## Base kinds",
        "",
        "`base` holds exactly one of these four keys.",
        "",
        "### `bootstrap`: a Debian root filesystem made with mmdebstrap",
        "",
        *_table(("Key", "Type", "Default", "Description"),
                ([f"`{key}`", type_, defaults[key], help_]
                 for key, type_, help_ in BOOTSTRAP_KEYS)),
        "",
        "Variants: " + ", ".join(f"`{v}`" for v in BOOTSTRAP_VARIANTS) + ".",
        "",
        "```yaml",
        "base:",
        "  bootstrap:",
        "    suite: bookworm",
        "```",
        "",
        "### `image`: another kiln image of this project",
        "",
        "The value is the name of another image in `images/`. It is built first when it is "
        "missing, and this image starts from it: its layers are not applied again, and its "
        "params are fixed (see [Params](#params)). Images that are based on each other in a "
        "cycle are an error.",
        "",
        "```yaml",
        "base:",
        "  image: base",
        "```",
        "",
        "### `ref`: an external image, pinned by digest",
        "",
        "Only `name@sha256:<64 hex digits>` is accepted: a tag can move under you, a digest "
        "cannot.",
        "",
        "```yaml",
        "base:",
        "  ref: docker.io/library/debian@sha256:" + "0" * 64,
        "```",
        "",
        "### `rootfs`: a root filesystem tarball, pinned by checksum",
        "",
        "`path` is the tarball, a path inside the project (relative to its root); `sha256` is "
        "the checksum it must have, 64 lowercase hex digits.",
        "",
        "```yaml",
        "base:",
        "  rootfs:",
        "    path: rootfs/bookworm.tar.gz",
        "    sha256: " + "0" * 64,
        "```",
        "",
        "## Params",
        "",
        "A layer declares params under `params`, each with a `type` (`string`, `integer` or "
        "`boolean`), a `default` of that type and an optional `description`. `{{ name }}` in "
        "the strings of any layer of the image (packages, a file's `dest` and `owner`, env, "
        "run, user, labels, ...) is replaced by the param's value; booleans are written "
        "`true` and `false`. `requires`, `conflicts`, `params` and a file's `src` are read "
        "before params are known and take no `{{ }}`. A reference to a param that no layer of "
        "the image declares is an error.",
        "",
        "An image changes a param under its own `params`. The value is checked against the "
        "declaration: an unknown name or a value of the wrong type is an error. Two layers "
        "may declare the same param only with the same type and default.",
        "",
        "The params of layers built into a parent image (`base: {image: ...}`) are fixed by "
        "that image: the child sees their values but cannot override them; change them in the "
        "parent's definition.",
        "",
        "## Merge rules",
        "",
        *_table(("Rule", "Meaning"), ([f"`{rule}`", text] for rule, text in MERGE_RULES.items())),
        "",
        "Layers are merged in image order: each layer listed in the image is preceded by what "
        "it `requires` (depth first), and every layer appears once. `files` are keyed by "
        "`dest`, `users` and `groups` by `name`. When two layers set an `exclusive` key "
        "differently, the error names both layers and their files.",
        "",
        *_entrypoint_section(),
        *_checks_section(),
        "## YAML rules",
        "",
        "Definitions are read the YAML 1.2 way on purpose, so that a file means the same to "
        "every tool and to whoever reads it:",
        "",
        "- Only `true` and `false` are booleans. `yes`, `no`, `on` and `off` are strings where "
        "a string is expected (a package named `no`, an env value `on`), and an error with a "
        "hint where a boolean is expected.",
        "- Values are kept as written where a string is expected: `version: 1.10` is `\"1.10\"`,"
        " never the number 1.1.",
        "- File modes are read as octal whatever their spelling: `0755`, `\"0755\"`, `755` and "
        "`0o755` are all `rwxr-xr-x`.",
        "- Anchors (`&name`), aliases (`*name`), merge keys (`<<`), explicit tags (`!!str`) "
        "and duplicate keys are errors: reuse belongs in a layer.",
        "- One document per file; an empty file is an empty definition.",
        "",
        "## The rendered Dockerfile",
        "",
        "The Dockerfile is rendered from the composed plan, byte for byte the same for the same "
        "definitions, from any checkout path, at any time. It starts `FROM` the base; when the "
        "parent image runs as a non-root user, `USER root` follows, since build steps always "
        "run as root. Then, for each layer in order:",
        "",
        "1. `ENV` for the layer's `env` (visible to its own and later steps);",
        "2. one `RUN` creating its `groups`, then its `users`;",
        "3. one `RUN apt-get install --no-install-recommends` for its `packages` that no "
        "earlier layer (or the parent image) installed, cleaning apt's caches in the same step;",
        "4. one `COPY` per entry of `files`, from the build context;",
        "5. one `RUN` per `run` step: a one-line step as `RUN set -eu; ...`, a multi-line one "
        "as `/bin/sh -euc` in exec form.",
        "",
        "Then the runtime configuration merged over all layers, last so that changing it never "
        "rebuilds a filesystem layer: `WORKDIR`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`, "
        "`HEALTHCHECK`, `ENTRYPOINT`, `CMD`, `USER`, and finally `LABEL` with the merged labels "
        "and the provenance labels.",
        "",
        "The build context holds exactly the Dockerfile and the files the layers declare, as "
        "`files/<layer>/<src>`, with the declared modes, owner 0:0 and a fixed mtime.",
        "",
        "## Provenance labels",
        "",
        "Every image gets these labels. A definition setting one of them, any other "
        "`dev.kiln.*` label or `org.opencontainers.image.created` is an error: see "
        "[What a layer can and cannot do](#what-a-layer-can-and-cannot-do-to-the-build-host).",
        "",
        *_table(("Label", "Value"), ([f"`{k}`", v] for k, v in PROVENANCE_LABELS)),
        "",
        *host_section(),
        "## A full example",
        "",
        f"`layers/{EXAMPLE_LAYER_NAME}/layer.yaml`, with "
        + ", ".join(f"`files/{f}`" for f in EXAMPLE_LAYER_FILES) + " next to it:",
        "",
        *_code("yaml", EXAMPLE_LAYER),
        "",
        f"`images/{EXAMPLE_IMAGE_NAME}.yaml`:",
        "",
        *_code("yaml", EXAMPLE_IMAGE),
    ]
    return "\n".join(lines) + "\n"


def write_definitions(root: Path) -> Path:
    """Write the reference to <root>/docs/definitions.md; returns the path written."""
    path = root / DOC_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(definitions_markdown(), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kiln.docs [ROOT]` writes ROOT/docs/definitions.md (ROOT defaults to '.')."""
    args = list(sys.argv[1:] if argv is None else argv)
    print(write_definitions(Path(args[0] if args else ".")))
    return 0


__all__ = ["DOC_PATH", "EXAMPLE_IMAGE", "EXAMPLE_IMAGE_NAME", "EXAMPLE_LAYER",
           "EXAMPLE_LAYER_FILES", "EXAMPLE_LAYER_NAME", "Field", "definitions_markdown", "main",
           "write_definitions"]


if __name__ == "__main__":
    raise SystemExit(main())
