"""A readable byte stream over an iterator of chunks (what `Engine.save` yields), for
tarfile's stream mode (`mode="r|"`): a `docker save` is read as it arrives, never whole in
memory or on disk."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any


class ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            try:
                self.rest = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n
