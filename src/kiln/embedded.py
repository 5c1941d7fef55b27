"""kiln's embedded registry: Debian's docker-registry (distribution) on a loopback port.

Used when no registry is configured. Everything lives in one folder, <state dir>/registry/:
config.yml (written by kiln, never the packaged /etc/docker/registry one), data/ (filesystem
storage), registry.log (its access log), pid and port. The port is chosen once and kept, so
image references stay stable across restarts. Loopback registries are trusted by dockerd
without TLS (127.0.0.0/8 is an insecure registry by default).

Not open to every local process: the embedded registry gets a random credential on first start
(`credential`, 0600: user and password; `htpasswd`, 0600: its bcrypt hash, distribution's only
scheme), and kiln uses it by itself (`client()`, and for the engine's pulls). Delete stays
enabled, behind that credential, because kiln releases its leases by deleting them. One
instance per folder: start and stop hold an exclusive fcntl lock on `lock`, so concurrent kiln
processes find the one that is starting instead of starting a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError
from kiln.records import state_dir
from kiln.registry import Registry, RegistryError, wait_until_up
from kiln.run import detach, free_port

BINARY = "/usr/bin/docker-registry"
USER = "kiln"
# bcrypt's minimum cost: the password is 256 random bits, so a slow hash adds no protection
# against guessing, while distribution checks it on every request (cost 12: ~0.2 s a request).
BCRYPT_ROUNDS = 4


def registry_config(port: int, storage: Path, htpasswd: Path | None = None) -> str:
    """A distribution 2.8 config: loopback only, filesystem storage, delete enabled."""
    auth = (f"auth:\n  htpasswd:\n    realm: kiln\n    path: {htpasswd}\n" if htpasswd else "")
    return (
        "version: 0.1\n"
        "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
        + auth
    )


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    address: str | None
    folder: Path

    def describe(self) -> str:
        if self.running:
            return f"running: pid {self.pid}, http://{self.address}/v2/, storage {self.folder}"
        return f"stopped (storage {self.folder})"


class LocalRegistry:
    """One docker-registry process and its folder: start, stop, status, health."""

    def __init__(self, folder: Path, *, htpasswd: Path | None = None, auth: bool = False,
                 binary: str = BINARY) -> None:
        """`auth`: make the folder's random credential on first start. A folder that has one
        keeps using it (whoever opens it); `htpasswd`: someone else's file (tests)."""
        self.folder = folder
        self.binary = binary
        self.config = folder / "config.yml"
        self.data = folder / "data"
        self.log = folder / "registry.log"
        self.pid_file = folder / "pid"
        self.port_file = folder / "port"
        self.credential_file = folder / "credential"
        self.auth = auth
        self.htpasswd = htpasswd

    def credentials(self) -> tuple[str, str] | None:
        """The folder's own credential (user, password), if it has one."""
        try:
            user, _, password = self.credential_file.read_text().strip().partition(":")
        except FileNotFoundError:
            return None
        return (user, password) if user and password else None

    def client(self, timeout: float = 30.0) -> Registry:
        """A client of this registry, with its credential."""
        address = self.address
        if address is None:
            raise KilnError(f"the embedded registry in {self.folder} was never started "
                            "(`kiln registry up`)")
        return Registry(address, timeout=timeout, credentials=self.credentials())

    def _ensure_credential(self) -> Path | None:
        """The htpasswd file to start with: the caller's, or the folder's (made on first use
        when `auth`), or None (open: tests' own registries)."""
        if self.htpasswd is not None:
            return self.htpasswd
        path = self.folder / "htpasswd"
        if self.credentials() is None:
            if not self.auth:
                return None
            import bcrypt  # here: only the first start of a registry needs it

            password = secrets.token_urlsafe(32)
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
            _write_private(path, f"{USER}:{hashed}\n")
            _write_private(self.credential_file, f"{USER}:{password}\n")
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One kiln process at a time starts or stops this folder's registry."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @property
    def port(self) -> int | None:
        try:
            return int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def address(self) -> str | None:
        port = self.port
        return f"127.0.0.1:{port}" if port else None

    def pid(self) -> int | None:
        """The pid in the pid file, if that process is alive and is our docker-registry."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        if str(self.config).encode() not in cmdline:
            return None  # the pid was reused by another process: not ours to signal
        return pid

    def healthy(self) -> bool:
        address = self.address
        if not address or not self.pid():
            return False
        try:
            wait_until_up(Registry(address, timeout=2, credentials=("", "")), seconds=0.5)
        except RegistryError:
            return False
        return True

    def status(self) -> Status:
        running = self.healthy()
        return Status(running, self.pid() if running else None,
                      self.address if running else None, self.folder)

    def start(self, port: int | None = None) -> str:
        """Start (idempotent) and wait for GET /v2/ to answer; returns host:port."""
        with self._locked():
            return self._start(port)

    def _start(self, port: int | None) -> str:
        # A registry started before kiln gave it a credential is restarted with one.
        opened_up = self.auth and self.htpasswd is None and self.credentials() is None
        if self.healthy() and not opened_up:
            assert self.address is not None
            return self.address
        if self.pid():
            self._stop(signal.SIGTERM)
        if not Path(self.binary).is_file():
            raise KilnError(f"{self.binary} not found: install Debian's registry "
                            "(apt-get install docker-registry) or set KILN_REGISTRY")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        port = port or self.port or free_port()
        if not _port_free(port):
            port = free_port()
        self.config.write_text(registry_config(port, self.data, self._ensure_credential()))
        self.port_file.write_text(str(port))
        pid = detach([self.binary, "serve", self.config], log=self.log)
        self.pid_file.write_text(str(pid))
        address = f"127.0.0.1:{port}"
        try:
            wait_until_up(Registry(address, timeout=2, credentials=("", "")), seconds=15)
        except RegistryError:
            tail = self.log.read_text(errors="replace").splitlines()[-5:]
            self._stop(signal.SIGTERM)
            raise KilnError(f"{self.binary} did not come up on {address}:\n  "
                            + "\n  ".join(tail)) from None
        return address

    def stop(self, sig: int = signal.SIGTERM) -> bool:
        with self._locked():
            return self._stop(sig)

    def _stop(self, sig: int) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                # Reap it when it is our child (tests); otherwise wait for it to vanish.
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    break
            except ChildProcessError:
                if not Path(f"/proc/{pid}").exists():
                    break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Die the hard way, mid-operation (for tests of interrupted pushes)."""
        self.stop(signal.SIGKILL)


def embedded(project_root: Path) -> LocalRegistry:
    return LocalRegistry(state_dir(project_root) / "registry", auth=True)


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (0600 from the start, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the registry will bind it: a port in TIME_WAIT after a restart is still free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
