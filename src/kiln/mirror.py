"""The one door to plain HTTP downloads from package mirrors (the locked .debs, a Release
file): requests, streamed in chunks, every failure one typed MirrorError.

Registries have their own door (kiln.registry over kiln.registry_http), which adds
credentials, retries and capped reads; a mirror needs none of that: what comes from it is
checked against a sha256 by the caller, so a wrong or cut answer is caught there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kiln.errors import KilnError

if TYPE_CHECKING:
    import requests

CHUNK = 1 << 20
TIMEOUT = 60  # seconds to connect, and between two chunks of the answer


class MirrorError(KilnError):
    """A download failed: `status` is the HTTP status when the mirror answered one (None when
    nothing answered or the answer was cut), `reason` says what happened, for a message."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status = url, reason, status


@contextmanager
def download(url: str, timeout: float = TIMEOUT) -> Iterator[Iterator[bytes]]:
    """The body of `url` as an iterator of chunks; the connection is closed on leaving.

        with mirror.download(url) as chunks:
            for chunk in chunks: ...
    """
    # requests costs ~100 ms to import: only the tasks that download pay for it, never the
    # no-op build (tests/unit/test_imports.py).
    import requests

    try:
        resp = requests.get(url, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise MirrorError(url, f"no answer: {_reason(exc)}") from None
    with resp:
        if resp.status_code != 200:
            raise MirrorError(url, f"answered {resp.status_code} {resp.reason}",
                              resp.status_code)
        yield _chunks(url, resp)


def _chunks(url: str, resp: requests.Response) -> Iterator[bytes]:
    import requests

    try:
        yield from resp.iter_content(CHUNK)
    except requests.RequestException as exc:
        raise MirrorError(url, f"the answer was cut: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The innermost cause, which names what went wrong (refused, timed out, reset)."""
    while exc.__context__ is not None and str(exc.__context__):
        exc = exc.__context__
    return str(exc) or type(exc).__name__
