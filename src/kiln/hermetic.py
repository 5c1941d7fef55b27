"""What a hermetic build needs before the engine starts: a fitting lock, the locked .debs
fetched and verified, the declared secrets found, and the context laid out with all of it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiln import debcache, lockfile
from kiln.buildkit import write_context
from kiln.errors import KilnError
from kiln.model import Plan
from kiln.render import ContextEntry
from kiln.render.dockerfile import debs_dir

SECRET_ENV = "KILN_SECRET_"


@dataclass(frozen=True)
class BuildInputs:
    context: Path
    secrets: dict[str, Path]  # id -> file, outside the context


def check_lock(root: Path, plan: Plan) -> lockfile.Lock | None:
    lock = lockfile.read(root, plan.image.name)
    lockfile.check(plan, lock)
    return lock


def secret_ids(plan: Plan) -> tuple[str, ...]:
    return tuple(sorted({s for layer in plan.layers for s in layer.secrets}))


def mount_points(plan: Plan) -> tuple[str, ...]:
    """What BuildKit leaves behind where it mounted secrets: empty files, never content."""
    return tuple(f"run/secrets/{ident}" for ident in secret_ids(plan))


def parse_secret_args(values: list[str] | tuple[str, ...]) -> dict[str, Path]:
    """`id=path` pairs from the command line."""
    out: dict[str, Path] = {}
    for value in values:
        ident, sep, path = value.partition("=")
        if not sep or not ident or not path:
            raise KilnError(f"--secret {value}: expected id=path (a file holding the secret)")
        out[ident] = Path(path)
    return out


def find_secrets(plan: Plan, given: Mapping[str, Path], scratch: Path) -> dict[str, Path]:
    """A file for each secret the layers declare: given on the command line, or the value of
    KILN_SECRET_<ID> written to a private file outside the context. Missing ones are errors."""
    out: dict[str, Path] = {}
    missing = []
    for ident in secret_ids(plan):
        env = SECRET_ENV + ident.upper().replace("-", "_").replace(".", "_")
        if ident in given:
            if not given[ident].is_file():
                raise KilnError(f"--secret {ident}={given[ident]}: no such file")
            out[ident] = given[ident]
        elif env in os.environ:
            path = scratch / f"secret-{len(out)}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.environ[env])
            out[ident] = path
        else:
            missing.append(f"{ident} (--secret {ident}=FILE or {env})")
    if missing:
        layers = [la.name for la in plan.layers if la.secrets]
        raise KilnError(f"{plan.image.path}: the build of '{plan.image.name}' needs secrets "
                        f"that were not given: {', '.join(missing)}; declared by layers "
                        f"{', '.join(layers)}")
    return out


@contextmanager
def build_inputs(root: Path, plan: Plan, dockerfile: str, entries: tuple[ContextEntry, ...],
                 given_secrets: Mapping[str, Path]) -> Iterator[BuildInputs]:
    """The context folder and the secret files, removed afterwards whatever happens."""
    lock = check_lock(root, plan)
    with tempfile.TemporaryDirectory(prefix="kiln-build-") as tmp:
        scratch = Path(tmp)
        secrets = find_secrets(plan, given_secrets, scratch)
        debs: dict[str, list[tuple[str, Path]]] = {}
        if lock is not None:
            files = debcache.fetch_all(plan.image.name, lock.packages)
            for section in lock.sections:
                debs[debs_dir(section.layer)] = [(p.filename, files[p.sha256])
                                                 for p in section.packages]
        context = scratch / "context"
        write_context(context, dockerfile, entries, debs)
        yield BuildInputs(context, secrets)
