"""What this machine has seen of a registry's signed, sequenced documents: the highest channel
sequence per channel, the highest revocation-list version per repository. Kept in kiln's state
folder, so a registry writer who puts back an older (validly signed) document is caught."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from kiln.context import Context
from kiln.records import state_dir


def _path(s: Context) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", s.registry.host)
    return state_dir(s.root) / "trust" / f"{safe}.json"


def _load(s: Context) -> dict[str, int]:
    try:
        data = json.loads(_path(s).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def high(s: Context, key: str) -> int:
    return _load(s).get(key, 0)


def raise_to(s: Context, key: str, value: int) -> None:
    """Remember `value` for `key` unless a higher one is known (atomic replace)."""
    data = _load(s)
    if data.get(key, 0) >= value:
        return
    data[key] = value
    path = _path(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".seen-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
