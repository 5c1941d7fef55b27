"""Base images that do not come from a registry: Debian from the mirror, or a rootfs tarball."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.fingerprint import file_sha256
from kiln.model import BootstrapBase, RootfsBase
from kiln.render.context import EPOCH
from kiln.run import run

# An imported filesystem has no config at all; give it what `debian:<suite>` images have.
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/bin/sh"]',
]


def mmdebstrap_argv(base: BootstrapBase, out: Path) -> list[str]:
    argv = ["mmdebstrap", "--quiet", f"--variant={base.variant}",
            f"--components={','.join(base.components)}", "--format=tar"]
    if base.packages:
        argv.append(f"--include={','.join(base.packages)}")
    return [*argv, base.suite, str(out), base.mirror]


def bootstrap(engine: Engine, base: BootstrapBase, ref: str) -> str:
    """Build a Debian root filesystem with mmdebstrap and import it into the engine as `ref`."""
    with tempfile.TemporaryDirectory(prefix="kiln-bootstrap-") as tmp:
        out = Path(tmp) / "rootfs.tar"
        # SOURCE_DATE_EPOCH makes mmdebstrap clamp timestamps and skip machine-specific data.
        run(mmdebstrap_argv(base, out), env={"SOURCE_DATE_EPOCH": str(EPOCH)})
        return engine.import_rootfs(out, ref, IMPORT_CHANGES)


def import_rootfs(engine: Engine, root: Path, base: RootfsBase, ref: str) -> str:
    path = root / base.path
    if not path.is_file():
        raise KilnError(f"{base.path}: rootfs tarball not found (the image's base.rootfs.path)")
    actual = file_sha256(path)
    if actual != base.sha256:
        raise KilnError(f"{base.path}: sha256 is {actual}, but the image pins {base.sha256} "
                        "(the tarball changed; update base.rootfs.sha256 if that was meant)")
    return engine.import_rootfs(path, ref, IMPORT_CHANGES)
