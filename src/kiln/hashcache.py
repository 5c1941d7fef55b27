"""Content hashes of input files, remembered by (path, size, mtime_ns, inode).

The fingerprint hashes the content of every file of every layer, on every run. The content hash
stays the truth; this cache only lets kiln skip reading a file whose size, mtime (to the
nanosecond) and inode are the ones it had when it was hashed. A file modified within a second
of being hashed is not cached (git's "racy" rule: the same mtime tick could hide a later write).
Kept in the state folder as hashes.json; a missing or unreadable cache is an empty one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from kiln.records import write_json

VERSION = 1
RACY_NS = 1_000_000_000

_open: dict[Path, HashCache] = {}


class HashCache:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.dirty = False
        self.entries: dict[str, list[int | str]] = {}
        try:
            data = json.loads(file.read_text())
            if data.get("version") == VERSION:
                self.entries = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def sha256(self, path: Path, hasher: Callable[[Path], str]) -> str:
        """The content hash of `path`; `hasher(path)` computes it when the cache cannot."""
        key = os.path.abspath(path)
        st = os.stat(key)
        stat = [st.st_size, st.st_mtime_ns, st.st_ino]
        known = self.entries.get(key)
        if known is not None and known[:3] == stat:
            return str(known[3])
        digest = hasher(path)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self.entries[key] = [*stat, digest]
            self.dirty = True
        return digest

    def save(self) -> None:
        """Write the cache atomically if it changed; a state folder that cannot be written
        only costs the next run its hashing."""
        if not self.dirty:
            return
        try:
            write_json(self.file, {"version": VERSION, "files": self.entries}, indent=None)
            self.dirty = False
        except OSError:
            pass


def cache(state: Path) -> HashCache:
    """The cache of a state folder, loaded once per process."""
    file = state / "hashes.json"
    if file not in _open:
        _open[file] = HashCache(file)
    return _open[file]
