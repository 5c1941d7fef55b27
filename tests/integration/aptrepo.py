"""A real Debian repository on loopback, for tests that need a package to change version.

Packages are built with dpkg-deb, indexed with apt-ftparchive and served by a small HTTP
server on 127.0.0.1. Containers reach it with the host's network (network_mode="host").
The repository is unsigned: its sources line says [trusted=yes]. An image reaches it through
the `testrepo` layer (repo_files), which writes the sources lines into SOURCES.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from pathlib import Path
from types import TracebackType

SOURCES = "/etc/apt/sources.list.d/kiln-test.list"
BOOTSTRAP = "base:\n  bootstrap:\n    suite: bookworm\n    variant: minbase\n"


def repo_files(*sources: str, image: bool = True) -> dict[str, str]:
    """The `testrepo` layer, which writes the apt `sources` lines into SOURCES, and its test;
    with `image`, also `repo`: a Debian minbase bootstrap with that layer, the cheapest real
    image with apt, for images that install from the loopback repositories."""
    writes = " && ".join(f"echo '{line}' {'>' if i == 0 else '>>'} {SOURCES}"
                         for i, line in enumerate(sources))
    files = {
        "layers/testrepo/layer.yaml": f"run:\n  - {writes}\n",
        "layers/testrepo/tests/test_testrepo.py": (
            f"def test_sources(host):\n    assert host.file('{SOURCES}').contains('kiln-test')\n"),
    }
    if image:
        files["images/repo.yaml"] = BOOTSTRAP + 'version: "1"\nlayers: [testrepo]\n'
    return files


class AptRepo:
    def __init__(self, root: Path, suite: str = "kiln-test") -> None:
        self.root = root
        self.suite = suite
        self.pool = root / "pool"
        self.pool.mkdir(parents=True, exist_ok=True)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # packages ------------------------------------------------------------------------------
    def add(self, name: str, version: str, files: dict[str, str] | None = None,
            depends: str = "") -> Path:
        """Build name_version_all.deb holding `files` (absolute path -> text) and index it."""
        build = self.root / "build" / f"{name}-{version}"
        (build / "DEBIAN").mkdir(parents=True, exist_ok=True)
        control = [f"Package: {name}", f"Version: {version}", "Architecture: all",
                   "Maintainer: kiln tests <tests@kiln.invalid>",
                   f"Description: kiln test package {name}"]
        if depends:
            control.append(f"Depends: {depends}")
        (build / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
        for path, text in (files or {f"/usr/share/{name}/version": f"{version}\n"}).items():
            target = build / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        deb = self.pool / f"{name}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(build),
                        str(deb)], check=True, capture_output=True,
                       env={"SOURCE_DATE_EPOCH": "315532800", "PATH": "/usr/bin:/bin"})
        self.index()
        return deb

    def remove(self, name: str, version: str) -> None:
        (self.pool / f"{name}_{version}_all.deb").unlink()
        self.index()

    def index(self) -> None:
        dist = self.root / "dists" / self.suite
        binary = dist / "main" / "binary-amd64"
        binary.mkdir(parents=True, exist_ok=True)
        packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=self.root,
                                  check=True, capture_output=True, text=True).stdout
        (binary / "Packages").write_text(packages)
        release = subprocess.run(
            ["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Suite={self.suite}",
             "-o", "APT::FTPArchive::Release::Components=main",
             "-o", "APT::FTPArchive::Release::Architectures=amd64 all", "release", "."],
            cwd=dist, check=True, capture_output=True, text=True).stdout
        (dist / "Release").write_text(release)

    # serving -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start the repository first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def sources_line(self) -> str:
        return f"deb [trusted=yes] {self.url} {self.suite} main"

    def start(self) -> AptRepo:
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AptRepo:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Mirror:
    """Two repositories served by one server: `debian` and `debian-security`, laid out like
    Debian's, so that a package from the second is a security update by its URL."""

    def __init__(self, root: Path) -> None:
        self.server = AptRepo(root)
        self.main = AptRepo(root / "debian", suite="kiln-test")
        self.security = AptRepo(root / "debian-security", suite="kiln-test-security")

    @property
    def sources(self) -> tuple[str, str]:
        url = self.server.url
        return (f"deb [trusted=yes] {url}/debian kiln-test main",
                f"deb [trusted=yes] {url}/debian-security kiln-test-security main")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
