"""The engine's images: look up, tag, import, pull, push, save, load, remove, and the disk
they and the build cache take. Streamed operations report their errors inside the stream:
they are read to the end here and raise EngineError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kiln import dockersock
from kiln.credentials import IDENTITY_TOKEN_USER
from kiln.dockersock import unix_socket
from kiln.engine.client import Connection, _reason, docker
from kiln.errors import EngineError


class ImageOps(Connection):
    def image_id(self, ref: str) -> str | None:
        found = self.image_tags(ref)
        return found[0] if found else None

    def image_tags(self, ref: str) -> tuple[str, list[str]] | None:
        """(ID, every name it has) of an image, or None: one question to the engine."""
        if self._client is None and unix_socket():
            found = dockersock.inspect_image(ref)
        else:
            try:
                found = self.api.inspect_image(ref)  # type: ignore[no-untyped-call]
            except docker.errors.ImageNotFound:
                found = None
            except docker.errors.APIError as exc:
                if exc.status_code != 404:
                    raise EngineError(f"{ref}: cannot inspect image: {_reason(exc)}") from None
                found = None
        return (str(found["Id"]), list(found.get("RepoTags") or [])) if found else None

    def images_named(self, repositories: list[str]) -> list[dict[str, Any]]:
        """Every image with a name in these repositories (their IDs and RepoTags): one call."""
        if self._client is None and unix_socket():
            return dockersock.images_named(repositories)
        try:
            return list(self.api.images(filters={"reference": repositories}))
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list images: {_reason(exc)}") from None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        try:
            return dict(self.api.inspect_image(ref))  # type: ignore[no-untyped-call]
        except docker.errors.DockerException as exc:
            raise EngineError(f"{ref}: no such image in the engine ({_reason(exc)})") from None

    def history(self, ref: str) -> list[str]:
        """What made each history entry of the image (`created_by`), oldest first."""
        try:
            entries = self.api.history(ref)  # type: ignore[no-untyped-call]
        except docker.errors.DockerException as exc:
            raise EngineError(f"{ref}: cannot read the image's history ({_reason(exc)})"
                              ) from None
        return [str(entry.get("CreatedBy") or "") for entry in reversed(entries)]

    def tag(self, image_id: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        try:
            self.api.tag(image_id, repository, tag)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot tag {image_id[:19]} as {ref}: {_reason(exc)}") from None

    def ensure_tags(self, image_id: str, refs: Iterable[str]) -> None:
        """Tag the image as each of `refs` that does not name it already: one inspect, and
        no tag request at all when nothing moved (a no-op build)."""
        named = set(self.inspect_image(image_id).get("RepoTags") or ())
        for ref in refs:
            if ref not in named:
                self.tag(image_id, ref)

    def remove_image(self, ref: str) -> None:
        try:
            self.api.remove_image(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot remove {ref}: {_reason(exc)}") from None

    def images(self, label: str) -> list[dict[str, Any]]:
        return list(self.api.images(filters={"label": label}))

    # disk use (kiln prune) -----------------------------------------------------------------
    def layers_size(self) -> int:
        """Bytes the engine's image layers take, shared layers counted once."""
        try:
            return int(self.api.df().get("LayersSize") or 0)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot read the engine's disk use: {_reason(exc)}") from None

    def build_cache(self) -> list[dict[str, Any]]:
        try:
            return list(self.api.df().get("BuildCache") or [])
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list the build cache: {_reason(exc)}") from None

    def prune_build_cache(self) -> int:
        """Remove the unused BuildKit cache (the engine cannot prune one build's records alone:
        filtered prunes leave records whose children remain); the bytes reclaimed."""
        try:
            result = self.api.prune_builds()
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot prune the build cache: {_reason(exc)}") from None
        return int(result.get("SpaceReclaimed") or 0)

    def import_rootfs(self, tarball: Path, ref: str, changes: list[str]) -> str:
        repository, _, tag = ref.rpartition(":")
        try:
            self.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                            changes=changes)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot import {tarball.name} as {ref}: {_reason(exc)}") from None
        image_id = self.image_id(ref)
        if image_id is None:
            raise EngineError(f"importing {tarball.name} as {ref} produced no image")
        return image_id

    def load_image(self, archive: Path) -> None:
        """`docker load` from a file, streamed; errors come inside the stream."""
        try:
            with archive.open("rb") as f:
                for chunk in self.api.load_image(f):  # type: ignore[no-untyped-call]
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise EngineError(f"cannot load {archive.name}: {chunk['error']}")
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot load {archive.name}: {_reason(exc)}") from None

    def remove_unused(self, image_id: str) -> None:
        """Remove an image unless something (a tag, a child, a container) still uses it.

        The engine removes an image by ID together with its one tag, if it has exactly one:
        so a tagged image is left alone here (another build, e.g. another session's, which
        BuildKit answered with the same raw image, holds that tag)."""
        with contextlib.suppress(docker.errors.DockerException):
            if self.api.inspect_image(image_id).get("RepoTags"):  # type: ignore[no-untyped-call]
                return
            self.api.remove_image(image_id, noprune=False)

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save` as a stream of tar bytes (read it once, never whole in memory)."""
        try:
            yield from self.api.get_image(ref, chunk_size=1 << 20)
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot save {ref}: {_reason(exc)}") from None

    def pull(self, ref: str, credentials: tuple[str, str] | None = None) -> str:
        """Pull `repository[:tag]` or `repository@sha256:...`; the image ID the engine got.
        Errors come in the stream. `credentials` (user, secret; user `<token>`: an identity
        token) go to the engine for this pull only; without them docker-py looks in Docker's
        config as `docker pull` does."""
        repository, tag_or_digest = split_reference(ref)
        auth: dict[str, str] | None = None
        if credentials is not None:
            user, secret = credentials
            auth = {"identitytoken": secret} if user == IDENTITY_TOKEN_USER else \
                {"username": user, "password": secret}
        self._read_stream(lambda: self.api.pull(repository, tag=tag_or_digest, stream=True,
                                                decode=True, auth_config=auth),
                          f"pull {ref}", " (is the registry reachable, and are you logged in?)")
        image_id = self.image_id(ref)
        if image_id is None:  # remote state: checked, never asserted
            raise EngineError(f"the engine pulled {ref} but has no such image")
        return image_id

    def push(self, ref: str) -> str:
        """`docker push` (used by the benchmark); returns the digest the engine reports."""
        repository, _, tag = ref.rpartition(":")
        events = self._read_stream(lambda: self.api.push(repository, tag=tag, stream=True,
                                                         decode=True), f"push {ref}")
        for event in events:
            digest = (event.get("aux") or {}).get("Digest")
            if digest:
                return str(digest)
        raise EngineError(f"push {ref}: the engine reported no digest")


def split_reference(ref: str) -> tuple[str, str]:
    """(repository, tag or digest) of an image reference; the tag is `latest` when none is
    given. A registry's port (`host:5000/name`) is not a tag."""
    if "@" in ref:
        repository, _, digest = ref.partition("@")
        return repository, digest
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repository, tag
