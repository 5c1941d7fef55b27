"""The no-op build: `kiln build <image>` with nothing changed, answered in tens of milliseconds.

A whole build process that finds nothing to do spends its time importing (invoke, YAML, the
pipeline), parsing every definition and hashing every input. When the last build of an image
ended verified, kiln keeps a record of it (.kiln/noop/<image>.json): the stat of every file
and folder under images/ and layers/ (path, size, mtime_ns, inode, mode; a folder's mtime
changes when an entry is added or removed), of the project's kiln.toml, and of each verify
record it relied on, with what that build ended with (each image of the chain, parents
first: its ref, ID and tags).

If every stat is as recorded, no input can have changed, so the fingerprints are the recorded
ones; one question to the engine (the images whose names are the recorded refs and tags)
says whether they still name the recorded IDs. Then kiln prints what the full path printed
the last time it found the same records (kept per terminal, see `capture`), without loading
invoke, YAML, rich or the pipeline. Any difference, any option other than the image names,
any image with a VM target, no kept output for this terminal: the full path runs, rewrites
the record when it ends verified, and keeps its output when it was a no-op. The content
hashes stay the truth: the record only ever lets kiln skip work when nothing it could read
has moved.

This module imports only the standard library and kiln.dockersock, on purpose.
"""

from __future__ import annotations

import json
import os
import sys
import zlib

TYPE_CHECKING = False  # typing costs ~6 ms to import: the no-op answer does without it
if TYPE_CHECKING:
    from typing import Any

RECORD_VERSION = 1
WATCHED_DIRS = ("images", "layers")
WATCHED_FILES = ("kiln.toml", ".kiln/config.toml")
ENV = ("KILN_PROJECT", "KILN_STATE_DIR", "SOURCE_DATE_EPOCH", "KILN_DOCKER")
RICH_ENV = ("TERM", "COLORTERM", "NO_COLOR", "COLUMNS", "LINES", "JUPYTER_COLUMNS",
            "JUPYTER_LINES", "CLICOLOR", "CLICOLOR_FORCE", "PYCHARM_HOSTED", "TERM_PROGRAM")


def state_dir(root: str) -> str:
    return os.environ.get("KILN_STATE_DIR") or os.path.join(root, ".kiln")


def record_path(root: str, image: str) -> str:
    return os.path.join(state_dir(root), "noop", f"{image}.json")


def find_root(start: str | None = None) -> str | None:
    """As kiln.load.Project.find: KILN_PROJECT, or the nearest folder with images/, layers/."""
    if env := os.environ.get("KILN_PROJECT"):
        return os.path.realpath(env)
    here = os.path.realpath(start or os.getcwd())
    while True:
        if all(os.path.isdir(os.path.join(here, d)) for d in WATCHED_DIRS):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def stamp(root: str) -> str:
    """The stat of every watched path, and the environment kiln reads, as one text (kept
    whole: a few kB, and comparing it needs no hash library loaded)."""
    lines = [_line(root, name) for name in WATCHED_FILES]
    for top in WATCHED_DIRS:
        stack = [top]
        while stack:
            rel = stack.pop()
            lines.append(_line(root, rel))
            try:
                entries = sorted(os.scandir(os.path.join(root, rel)), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                child = f"{rel}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)
                elif entry.is_symlink():
                    # Its target's stat too: the link stays put when the file it names changes.
                    # A linked folder is not walked: such a tree never gets the fast path.
                    lines += [_line(root, child), _line(root, child, follow=True)]
                    if entry.is_dir():
                        lines.append(f"{child} linked folder {os.urandom(8).hex()}\n")
                else:
                    lines.append(_line(root, child))
    lines += [f"{key}={os.environ.get(key, '')}\n" for key in ENV]
    return "".join(lines)


def _line(root: str, rel: str, follow: bool = False) -> str:
    try:
        st = os.stat(os.path.join(root, rel), follow_symlinks=follow)
    except OSError:
        return f"{rel} -\n"
    return f"{rel} {st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_mode}\n"


# writing (the full path, at the end of a verified build) ------------------------------------
def remember(root: str, image: str, before: str, chain: list[dict[str, Any]]) -> None:
    """Record that `image` ended verified. `before` is stamp() taken before any input was read
    (a file edited while the build ran then makes the next run take the full path); `chain`
    is, parents first, {image, ref, id, tags, verify_record}."""
    import tempfile

    from kiln import __version__

    records = [c["verify_record"] for c in chain]
    data = {"version": RECORD_VERSION, "kiln": __version__, "image": image, "chain": chain,
            "stamp": _combine(before, root, records)}
    path = record_path(root, image)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False,
                                     suffix=".tmp") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(f.name, path)


def forget(root: str, image: str) -> None:
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(root, image))


def _combine(tree: str, root: str, records: list[str]) -> str:
    """The tree's stamp and the stat of each verify record (kiln's own files, outside it)."""
    return tree + "".join(_line(root, path) for path in records)


# reading (before invoke is even imported) -----------------------------------------------------
def bare_build(argv: list[str]) -> list[str] | None:
    """The image names of `kiln build <names>` without options, or None."""
    if len(argv) != 2 or argv[0] != "build" or argv[1].startswith("-") or argv[1] == "all":
        return None
    return argv[1].split(",")


def answer(argv: list[str]) -> bool:
    """Print the result of `kiln <argv>` and return True if it is a no-op build whose answer
    is known; else False (nothing printed: the caller runs the full command)."""
    names = bare_build(argv)
    root = find_root()
    if names is None or root is None:
        return False
    try:
        return _answer(root, names)
    except Exception:  # any doubt at all: the full path decides, and reports
        return False


def _records(root: str, names: list[str]) -> list[str] | None:
    """The text of each image's record, or None if one is missing or from another kiln."""
    from kiln import __version__

    texts = []
    for name in names:
        try:
            with open(record_path(root, name)) as f:
                texts.append(f.read())
            data = json.loads(texts[-1])
        except (OSError, ValueError):
            return None
        if data.get("version") != RECORD_VERSION or data.get("kiln") != __version__:
            return None
    return texts


def _answer(root: str, names: list[str]) -> bool:
    texts = _records(root, names)
    if texts is None:
        return False
    found = [json.loads(text) for text in texts]
    tree = stamp(root)
    for data in found:
        records = [c["verify_record"] for c in data["chain"]]
        if _combine(tree, root, records) != data["stamp"]:
            return False
    shown = _shown(root, names, texts)
    if shown is None or not _engine_agrees([c for data in found for c in data["chain"]]):
        return False
    sys.stderr.write(shown["stderr"])
    sys.stderr.flush()
    sys.stdout.write(shown["stdout"])
    sys.stdout.flush()
    return True


def _engine_agrees(chain: list[dict[str, Any]]) -> bool:
    """One question: the engine's images named by the recorded refs' repositories."""
    from kiln.dockersock import images_named

    repositories = sorted({c["ref"].rpartition(":")[0] for c in chain})
    named: dict[str, str] = {}
    for image in images_named(repositories):
        for tag in image.get("RepoTags") or ():
            named[tag] = image["Id"]
    return all(named.get(tag) == c["id"] for c in chain for tag in (c["ref"], *c["tags"]))


# what a no-op prints: the full path's own words, kept ------------------------------------------
# The fast path never words an answer itself: the full path's output of a no-op build is kept
# (per terminal: tty or not, size, encoding, colour settings; and per records) and printed
# again while nothing has changed. So the two can never say different things, and rich (which
# takes longer to import than the whole answer) is not loaded.
NOTED: dict[str, str] = {}  # image -> action of each build_image in this process


def note(image: str, action: str) -> None:
    NOTED[image] = action


class capture:
    """Around the full path of a bare `kiln build`: keep what it printed if it was a no-op
    (every image up to date, every requested one recorded verified)."""

    def __init__(self, argv: list[str]) -> None:
        self.names = bare_build(argv) or []
        self.root = find_root() if self.names else None
        self.out, self.err = _Tee(sys.stdout), _Tee(sys.stderr)

    def __enter__(self) -> capture:
        if self.root is not None:
            sys.stdout, sys.stderr = self.out, self.err
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if self.root is None:
            return
        sys.stdout, sys.stderr = self.out.file, self.err.file
        if kind is not None or not NOTED or set(NOTED.values()) != {"up to date"}:
            return
        texts = _records(self.root, self.names)
        if texts is not None:
            _keep(self.root, self.names, texts, "".join(self.out.text), "".join(self.err.text))


def _shown_path(root: str, key: str) -> str:
    return os.path.join(state_dir(root), "noop", "shown", f"{zlib.crc32(key.encode()):08x}.json")


def _shown(root: str, names: list[str], texts: list[str]) -> dict[str, str] | None:
    key = _terminal(names)
    try:
        with open(_shown_path(root, key)) as f:
            kept = json.load(f)
    except (OSError, ValueError):
        return None
    if kept.get("key") != key or kept.get("records") != texts:
        return None
    return {"stdout": str(kept["stdout"]), "stderr": str(kept["stderr"])}


def _keep(root: str, names: list[str], texts: list[str], out: str, err: str) -> None:
    key = _terminal(names)
    path = _shown_path(root, key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump({"key": key, "records": texts, "stdout": out, "stderr": err}, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # not kept: the next no-op takes the full path again


def _terminal(names: list[str]) -> str:
    """What rich's rendering depends on: the streams (terminal or not, their size and
    encoding) and the environment it reads."""
    parts = [",".join(names)]
    for stream in (sys.stdout, sys.stderr):
        tty = stream.isatty()
        size = os.get_terminal_size(stream.fileno()) if tty else None
        parts.append(f"{tty} {size} {getattr(stream, 'encoding', '')}")
    parts += [f"{k}={v}" for k, v in sorted(os.environ.items())
              if k in RICH_ENV or k.startswith(("FORCE_COLOR", "TTY_"))]
    return "\n".join(parts)


class _Tee:
    """A text stream that keeps what is written to it and passes it on."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.text: list[str] = []

    def write(self, text: str) -> int:
        self.text.append(text)
        return int(self.file.write(text))

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding...
        return getattr(self.file, name)
