"""Engine.pull takes one reference, split as the engine's API wants it."""

from __future__ import annotations

import pytest

from kiln.engine.images import split_reference


@pytest.mark.parametrize(("ref", "expected"), [
    ("debian:bookworm", ("debian", "bookworm")),
    ("debian", ("debian", "latest")),
    ("127.0.0.1:5000/kiln/base:1.0", ("127.0.0.1:5000/kiln/base", "1.0")),
    ("127.0.0.1:5000/kiln/base", ("127.0.0.1:5000/kiln/base", "latest")),
    ("127.0.0.1:5000/kiln/base@sha256:" + "a" * 64,
     ("127.0.0.1:5000/kiln/base", "sha256:" + "a" * 64)),
])
def test_a_reference_splits_into_repository_and_tag_or_digest(
        ref: str, expected: tuple[str, str]) -> None:
    assert split_reference(ref) == expected
