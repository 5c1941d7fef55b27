"""docs/definitions.md's section on hostile definitions, written from kiln.guard's own limits
and rules so that the numbers in the docs are the ones enforced."""

from __future__ import annotations

from kiln.guard import (
    KILN_LABEL_PREFIX,
    KILN_OCI_LABELS,
    LABEL_KEY_RE,
    LINE_BREAKS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
)


def host_section() -> list[str]:
    breaks = ", ".join(f"U+{ord(c):04X}" for c in sorted(LINE_BREAKS))
    reserved = ", ".join(f"`{k}`" for k in sorted(KILN_OCI_LABELS))
    return [
        "## What a layer can and cannot do to the build host",
        "",
        "A layer often comes from another team or a pull request, and an image can feed it "
        "any param value. Read a layer as code that runs as root inside the build container; "
        "kiln makes sure that it cannot reach further than that, nor change the build's shape.",
        "",
        "A layer **can**:",
        "",
        "- run any shell commands in its `run` steps, as root, inside the build container, "
        "with no network and only the build secrets it names under `secrets` mounted;",
        "- put into the image any file of its own `files/` folder, with any mode and owner;",
        "- set the image's env, runtime configuration and labels (but not the reserved ones);",
        "- be changed by an image's params wherever it uses `{{ }}`: a param substituted into "
        "a `run` step is shell text (quote it in the script as any input), so an image's "
        "value can change what the step does. `$VAR` in `env`, `labels`, `workdir` and the "
        "like is expanded by the Dockerfile, as in `PATH: /opt/bin:$PATH`. Neither can add, "
        "remove or join a Dockerfile instruction.",
        "",
        "A layer **cannot**:",
        "",
        "- read a file outside its own `files/` folder. A file's `src` takes no params, no "
        "absolute path, no `..`, no `$` or `\\`; a link leading out of the folder is refused "
        "when the layer is loaded and again when the build context is made, and the context's "
        "files are opened without following links (a link swapped in later is refused), and "
        "only regular files (no FIFOs or devices);",
        "- write outside the build context: kiln lays the context out itself, every file under "
        "`files/<layer>/`;",
        "- change the number or the kind of the Dockerfile's instructions. Every value, "
        "written literally or substituted from a param, is checked after substitution: no "
        f"line breaks ({breaks}), no NUL or other control character except tab, no lone "
        "surrogate, no trailing backslash (it would join the next instruction). A one-line "
        "`run` step may not hold `<<` (newer Dockerfile parsers read a heredoc there); "
        "multi-line steps, `entrypoint`, `cmd` and `healthcheck.test` are rendered as JSON, "
        "where line breaks are inert. Names that land in kiln's own shell lines or mount "
        "options (accounts, groups, packages, secrets) must be plain names;",
        f"- set a label kiln sets: any `{KILN_LABEL_PREFIX}*` key, and {reserved}. Label keys "
        f"are OCI annotation keys (`{LABEL_KEY_RE.pattern}`), in reverse domain notation, "
        "like `org.example.role`;",
        "- exhaust the host while its definition is read: a definition file is at most "
        f"{MAX_FILE_BYTES // 1024} KiB (checked before it is read), nested at most "
        f"{MAX_DEPTH} levels deep, with at most {MAX_NODES} keys and items; YAML anchors and "
        "aliases are refused, so nothing expands while parsing;",
        "- crash kiln: every problem, an unreadable file, a name too long for the file system "
        "or a link loop included, is one line `path:line: message (hint)`, and nothing is "
        "built while any definition has one.",
        "",
        "Two checks hold even if a rule above had a gap: the rendered Dockerfile is read back "
        "the way Docker's parser reads it (continuation lines, comments, heredocs) and must "
        "have exactly the planned instructions; and after each build the image's history "
        "(one entry per instruction after `FROM`) must match the rendered instructions one "
        "for one. When it does not, the build fails with an error saying so, and the image is "
        "removed, never tagged.",
        "",
    ]
