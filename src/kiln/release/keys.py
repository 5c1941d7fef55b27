"""Pinning the project key: `kiln keygen` writes its id into kiln.toml ([publish] key_id), so a
swapped kiln.pub is refused rather than trusted."""

from __future__ import annotations

import re
from pathlib import Path

from kiln.config import CONFIG_FILES, config_file

KEY_ID_LINE = re.compile(r"^key_id\s*=.*$", re.MULTILINE)


def pin_key_id(root: Path, key: str) -> Path:
    """Set key_id in the project's config file (kiln.toml, made when there is none)."""
    path = config_file(root) or root / CONFIG_FILES[0]
    text = path.read_text() if path.is_file() else ""
    line = f'key_id = "{key}"'
    if KEY_ID_LINE.search(text):
        text = KEY_ID_LINE.sub(line, text, count=1)
    elif re.search(r"^\[publish\]\s*$", text, re.MULTILINE):
        text = re.sub(r"^\[publish\]\s*$", f"[publish]\n{line}", text, count=1,
                      flags=re.MULTILINE)
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[publish]\n{line}\n"
    path.write_text(text)
    return path
