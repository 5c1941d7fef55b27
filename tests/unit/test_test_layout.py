"""pytest imports test modules by basename (rootdir mode): two test files of one name in
tests/unit and tests/integration stop the whole run at collection. Caught here, in seconds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique_across_the_suite() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert len(names) > 20  # the suite itself was found
    assert [name for name, count in names.items() if count > 1] == []
