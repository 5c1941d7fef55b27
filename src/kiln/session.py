"""Whose engine resources these are: an optional session name, for sharing one engine.

With KILN_SESSION set (the test suite sets it; a person may too), every container kiln creates
carries the label `dev.kiln.session=<name>` and every local image reference kiln makes is put
under `<name>/` (`<name>/kiln/app:...`, `<name>/kiln-rootfs/...`). Images cannot carry a label
without changing their IDs, so a reference namespace is what marks them; image IDs, and so
digests, are the same with or without a session. Cleanup then removes a session's references
(by reference, so an image another party also tagged stays) and its labelled containers.
"""

from __future__ import annotations

import os
import re

from kiln.errors import KilnError

ENV = "KILN_SESSION"
LABEL = "dev.kiln.session"
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


def current() -> str | None:
    name = os.environ.get(ENV) or None
    if name is not None and (len(name) > 64 or not _NAME.fullmatch(name)):
        raise KilnError(f"{ENV}={name!r} is not a session name (use lowercase letters, digits "
                        "and single . _ - between them, at most 64 characters)")
    return name


def prefix() -> str:
    """What goes in front of every local image reference kiln makes: `<session>/` or ''."""
    name = current()
    return f"{name}/" if name else ""


def labels() -> dict[str, str]:
    """The labels that mark a container as the session's (none without a session)."""
    name = current()
    return {LABEL: name} if name else {}
