"""Which engine resources are this test session's (see kiln.session), and removing them.

The engine may be shared (a developer's own images, another test session): each pytest
process has a session name of its own, every container it makes carries the session's label
and every local image reference kiln makes is under `<session>/`. Cleanup and leak checks look
at nothing else, and remove images by reference, never by ID: an image another party also
tagged keeps its other tags.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time

import docker.errors

from kiln import session as kiln_session
from kiln.embedded import LocalRegistry
from kiln.engine import Container, Engine

# This process's session: new for every pytest run, so a pytest started by a test (or by a
# person beside this one) is a session of its own, whatever KILN_SESSION it inherited.
SESSION = f"kiln-test-{os.getpid()}-{secrets.token_hex(4)}"
REGISTRIES: set[str] = set()  # host:port of the registries this session started


def owns(ref: str) -> bool:
    """Whether an image reference is this session's: under its namespace, or in a registry
    it started (a pulled or pushed image's remote name)."""
    if ref.startswith(f"{SESSION}/"):
        return True
    host = ref.split("/", 1)[0]
    return "/" in ref and host in REGISTRIES


def all_refs(engine: Engine) -> set[str]:
    """Every tag and digest reference in the engine (an image Swarm or a test pulled by digest
    has only the latter)."""
    return {ref for img in engine.api.images(all=True)
            for ref in (*(img.get("RepoTags") or ()), *(img.get("RepoDigests") or ()))
            if not ref.startswith("<none>")}


def session_refs(engine: Engine) -> set[str]:
    """The image references in the engine that this session made."""
    return {ref for ref in all_refs(engine) if owns(ref)}


def track_registry(local: LocalRegistry) -> None:
    """A registry a test started itself: images tagged with its address are the session's."""
    REGISTRIES.add(str(local.address))


def session_containers(engine: Engine) -> list[Container]:
    return engine.containers(f"{kiln_session.LABEL}={SESSION}")


def named_images(engine: Engine, since: float) -> set[str]:
    """IDs of the images this session named (tagged, built, loaded or pulled under its names)
    since `since`, from the engine's own event log."""
    ids: set[str] = set()
    events = engine.api.events(since=int(since), until=int(time.time()) + 1,
                               filters={"type": "image"}, decode=True)
    for event in events:
        actor = event.get("Actor") or {}
        subject = str(actor.get("ID", ""))
        name = str((actor.get("Attributes") or {}).get("name", ""))
        if not (owns(name) or owns(subject)):
            continue
        if subject.startswith("sha256:"):
            ids.add(subject)
            continue
        with contextlib.suppress(docker.errors.APIError):  # a pull names the reference
            ids.add(engine.api.inspect_image(subject)["Id"])
    return ids


def remove_orphans(engine: Engine, ids: set[str]) -> None:
    """The images among `ids` left with no reference at all (the raw build a tag moved away
    from, an image whose last name was ours) go by ID: no other party names them."""
    for _ in range(5):
        left = set()
        for image_id in ids:
            try:
                image = engine.api.inspect_image(image_id)
            except docker.errors.NotFound:
                continue
            if image.get("RepoTags") or image.get("RepoDigests"):
                continue
            try:
                engine.api.remove_image(image_id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                left.add(image_id)  # a child or a container holds it: next pass
        if not left:
            return
        ids = left


def remove_refs(engine: Engine, refs: set[str]) -> None:
    """Remove image references, never forced: a reference is untagged, and the image goes
    only with its last tag; one another party also tagged stays. Children go before parents
    (the engine refuses the other order)."""
    refs = set(refs)
    for _ in range(10):
        if not refs:
            return
        for ref in sorted(refs):
            try:
                engine.api.remove_image(ref)
                refs.discard(ref)
            except docker.errors.NotFound:
                refs.discard(ref)
            except docker.errors.APIError:
                pass  # a child still exists; the next pass gets it
        refs &= all_refs(engine)
    raise AssertionError(f"could not remove images: {sorted(refs)}")
