"""The registry client's pure parts: origins (what credentials are tied to) and backoff."""

from __future__ import annotations

import pytest
import requests

from kiln import registry_http
from kiln.registry_http import BACKOFF, BACKOFF_MAX, RETRIES, origin, parse_registry


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://r.example/v2/", "https://r.example:443/v2/x", True),
    ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/a/blobs/uploads/1", True),
    ("https://R.example/v2/", "https://r.example/v2/", True),
    ("https://r.example/v2/", "http://r.example/v2/", False),  # scheme
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5001/", False),  # port
    ("https://r.example/", "https://storage.r.example/blob", False),  # host
    ("https://r.example/", "https://r.example.evil/", False),
])
def test_origin(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


def test_parse_registry() -> None:
    assert parse_registry("127.0.0.1:5000") == ("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert parse_registry("r.example/ns") == ("https://r.example", "r.example")


def test_backoff_grows_with_jitter_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(registry_http.time, "sleep", slept.append)
    for attempt in range(1, RETRIES):
        registry_http._pause(attempt, None)
    for attempt, delay in enumerate(slept, 1):
        base = BACKOFF * 2 ** (attempt - 1)
        assert 0.5 * base <= delay <= min(1.5 * base, BACKOFF_MAX)
    resp = requests.Response()
    resp.headers["Retry-After"] = "2"
    registry_http._pause(1, resp)
    resp.headers["Retry-After"] = "3600"  # a server cannot park kiln for an hour
    registry_http._pause(1, resp)
    assert slept[-2:] == [2.0, BACKOFF_MAX]
