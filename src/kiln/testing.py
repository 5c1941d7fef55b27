"""The pytest plugin behind `kiln verify`: testinfra's `host`, served fast, plus kiln's fixtures.

kiln.testsuite runs the suite in a pytest subprocess with `-p kiln.testing`, for a container
(`--hosts=kiln://<container>`, kiln.verify) or a booted VM (`--hosts=kiln-ssh://...`,
kiln.vm.verify); KILN_VERIFY_INFO names a JSON file with what the tests may know (the image,
its resolved params and config, the target, a VM's seed) and where to write the results. The
fixtures (`host`, `root_host`, `params`, `image`, `cloud`) mean the same on both targets.

The `kiln` backend keeps testinfra's API and replaces its transport. testinfra's docker backend
spawns the docker CLI once per command, and the engine starts a new exec process each time
(~80 ms per command on the engine alone, ~130 ms with the CLI). kiln's backend starts one
`/bin/sh` per (container, user) with its stdin attached and feeds it one line per command:

    /bin/sh -c '<command>' </dev/null; printf '\\n%s %d\\n' TOKEN $?; printf '\\n%s\\n' TOKEN >&2

Each command still runs in its own `/bin/sh -c`, with the container's user, environment and
working folder (as `docker exec` would), so `exit`, `cd` or `set -e` cannot leak between
commands, and it cannot eat the protocol from stdin. TOKEN is random per command, so output
cannot fake the end of another command. A command costs one fork in the container, ~1 ms.

The `kiln-ssh` backend does the same on a booted VM: testinfra's paramiko connection, and one
`/bin/sh` on one SSH channel, started through `sudo -n` once when the login is not root.
testinfra's paramiko backend opens a channel and runs sudo for every command: ~0.7 s each on a
TCG guest, most of a VM's verification; through the shell a command costs a fork.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import select
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko
import pytest
import testinfra.backend
import testinfra.host
from testinfra.backend import base
from testinfra.backend.paramiko import ParamikoBackend

from kiln.errors import KilnError
from kiln.model import Healthcheck, ParamValue, RuntimeConfig
from kiln.suiteinfo import INFO_ENV, SCHEME, SSH_SCHEME
from kiln.testkit import HttpResponse, engine, http_get, listening, service_logs
from kiln.testowners import describe

# testinfra finds backends by URL scheme in this table (module path, class name).
testinfra.backend.BACKENDS[SCHEME] = f"{__name__}.KilnBackend"
testinfra.backend.BACKENDS[SSH_SCHEME] = f"{__name__}.KilnSshBackend"


@dataclass(frozen=True)
class ImageInfo:
    """What a test knows about the image under test: its definition, resolved."""

    name: str
    ref: str  # the container image (a disk is made from it)
    image_id: str  # its ID: what the verification record is kept under
    container: str  # the throwaway container's name; "" on a VM
    layers: tuple[str, ...]  # every layer, the parent image's first
    params: dict[str, ParamValue]
    config: RuntimeConfig  # user, workdir, env, expose ("8080/tcp"), entrypoint, cmd, ...
    service: bool  # started with its own entrypoint, as in production (never on a VM: init is)
    target: str = "container"  # or "vm": a booted disk of the image

    @property
    def env(self) -> dict[str, str]:
        return dict(self.config.env)

    @property
    def ports(self) -> tuple[int, ...]:
        """The exposed TCP ports, as numbers."""
        return tuple(int(p.split("/")[0]) for p in self.config.expose if p.endswith("/tcp"))


def config_from_json(data: dict[str, Any]) -> RuntimeConfig:
    def pairs(value: list[list[str]]) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in value)

    def maybe(value: list[str] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(value)

    hc = data.get("healthcheck")
    return RuntimeConfig(
        env=pairs(data["env"]), workdir=data["workdir"], user=data["user"],
        expose=tuple(data["expose"]), volumes=tuple(data["volumes"]),
        entrypoint=maybe(data["entrypoint"]), cmd=maybe(data["cmd"]),
        stopsignal=data["stopsignal"], labels=pairs(data["labels"]),
        healthcheck=Healthcheck(**{**hc, "test": tuple(hc["test"])}) if hc else None,
        tmpfs=tuple(data.get("tmpfs", ())), capabilities=tuple(data.get("capabilities", ())))


def image_info(data: dict[str, Any]) -> ImageInfo:
    return ImageInfo(name=data["image"], ref=data["ref"], image_id=data["image_id"],
                     container=data["container"], layers=tuple(data["layers"]),
                     params=dict(data["params"]), config=config_from_json(data["config"]),
                     service=bool(data["service"]), target=data.get("target", "container"))


# the backend ---------------------------------------------------------------------------------
@dataclass
class Command:
    command: str
    user: str | None
    seconds: float


COMMANDS: list[Command] = []  # every command the suite ran, for the report and the benchmark
SESSIONS: list[ShellSession] = []  # closed when the suite ends


class Channel(Protocol):
    """Where a ShellSession's shell runs: its stdin, and its output as (1 or 2, bytes) pieces."""

    def write(self, data: bytes) -> None: ...
    def piece(self) -> tuple[int, bytes]: ...
    def close(self) -> None: ...


class ShellSession:
    """One long-lived /bin/sh, fed a command per line (see the module doc)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def run(self, command: bytes) -> tuple[int, bytes, bytes]:
        token = secrets.token_hex(16).encode()
        line = (b"/bin/sh -c " + _quote(command) + b" </dev/null; printf '\\n%s %d\\n' " + token
                + b" $?; printf '\\n%s\\n' " + token + b" >&2\n")
        self.channel.write(line)
        out, err = bytearray(), bytearray()
        out_end, err_end = b"\n" + token + b" ", b"\n" + token + b"\n"
        while True:
            done_out = out.find(out_end)
            if done_out >= 0 and out.endswith(b"\n") and err.find(err_end) >= 0:
                code = int(out[done_out + len(out_end):].strip())
                return code, bytes(out[:done_out]), bytes(err[:err.find(err_end)])
            stream, payload = self.channel.piece()
            (err if stream == 2 else out).extend(payload)

    def close(self) -> None:
        try:
            self.channel.write(b"exit 0\n")
            self.channel.close()
        except (OSError, EOFError):
            pass


class ContainerChannel:
    """A shell in a container: `docker exec` with stdin attached (multiplexed stream frames)."""

    def __init__(self, container: str, user: str | None) -> None:
        self.container = container
        self.sock = engine().exec_attached(container, ["/bin/sh"], user)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def piece(self) -> tuple[int, bytes]:
        header = self._read(8)
        return header[0], self._read(int.from_bytes(header[4:8], "big"))

    def close(self) -> None:
        self.sock.close()

    def _read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise KilnError(f"the shell kiln runs checks through in container "
                                f"{self.container} ended (did the container stop?)")
            data.extend(chunk)
        return bytes(data)


class SshChannel:
    """A shell on a machine: one SSH session channel, as root through one `sudo -n` when the
    login is not root. Per command, a new channel and a sudo cost ~0.7 s on a TCG guest; a
    command through this shell costs a fork."""

    def __init__(self, client: paramiko.SSHClient, sudo: bool, where: str) -> None:
        transport = client.get_transport()
        if transport is None:
            raise KilnError(f"{where}: the SSH connection is closed")
        self.where = where
        self.chan = transport.open_session()
        self.chan.exec_command("sudo -n /bin/sh" if sudo else "/bin/sh")

    def write(self, data: bytes) -> None:
        self.chan.sendall(data)

    def piece(self) -> tuple[int, bytes]:
        while True:
            if self.chan.recv_stderr_ready():
                return 2, self.chan.recv_stderr(1 << 16)
            if self.chan.recv_ready():
                return 1, self.chan.recv(1 << 16)
            if self.chan.eof_received or self.chan.closed:
                raise KilnError(f"the shell kiln runs checks through on {self.where} ended "
                                f"(exit status {self.chan.recv_exit_status()}; did the machine "
                                "stop, or does the login lack passwordless sudo?)")
            select.select([self.chan], [], [], 1.0)  # readable when either stream has data

    def close(self) -> None:
        self.chan.close()


def _quote(command: bytes) -> bytes:
    return b"'" + command.replace(b"'", b"'\\''") + b"'"


def _through(session: ShellSession, command: bytes, user: str | None) -> tuple[int, bytes, bytes]:
    started = time.perf_counter()
    code, out, err = session.run(command)
    COMMANDS.append(Command(command.decode(errors="replace"), user,
                            time.perf_counter() - started))
    return code, out, err


class KilnBackend(base.BaseBackend):  # type: ignore[misc]
    """testinfra backend `kiln://[user@]container`: commands through a ShellSession."""

    NAME = SCHEME
    label = ""  # shown in test ids instead of the throwaway container's random name

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name, self.user = self.parse_containerspec(name)
        self._session: ShellSession | None = None
        super().__init__(self.name, *args, **kwargs)

    def get_pytest_id(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{SCHEME}://{user}{self.label or self.name}"

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.encode(self.get_command(command, *args))
        if self._session is None:
            self._session = ShellSession(ContainerChannel(self.name, self.user))
            SESSIONS.append(self._session)
        code, out, err = _through(self._session, cmd, self.user)
        return self.result(code, cmd, out, err)


class KilnSshBackend(ParamikoBackend):  # type: ignore[misc]
    """testinfra backend `kiln-ssh://host` (a booted VM, with --ssh-config and maybe --sudo):
    testinfra's paramiko connection, commands through a ShellSession on one channel."""

    NAME = SSH_SCHEME

    def __init__(self, hostspec: str, *args: Any, **kwargs: Any) -> None:
        self._session: ShellSession | None = None
        super().__init__(hostspec, *args, **kwargs)

    def get_command(self, command: str, *args: str) -> str:
        return str(self.quote(command, *args))  # the session's shell already is root

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.encode(self.get_command(command, *args))
        if self._session is None:
            self._session = ShellSession(SshChannel(self.client, bool(self.sudo),
                                                    self.host.name))
            SESSIONS.append(self._session)
        code, out, err = _through(self._session, cmd, "root" if self.sudo else None)
        return self.result(code, cmd, out, err)


# fixtures for test authors -------------------------------------------------------------------
def _info_path(config: pytest.Config) -> Path:
    path = os.environ.get(INFO_ENV)
    if not path:
        raise pytest.UsageError(f"kiln.testing needs {INFO_ENV} (run the suite with "
                                "`invoke verify <image>`)")
    return Path(path)


@pytest.fixture(scope="session")
def image(pytestconfig: pytest.Config) -> ImageInfo:
    """The image under test: name, layers, params and config (user, expose, entrypoint...), and
    the target it runs as: a container, or a booted VM of its disk."""
    return image_info(json.loads(_info_path(pytestconfig).read_text()))


@pytest.fixture(scope="session")
def params(image: ImageInfo) -> dict[str, ParamValue]:
    """The image's resolved params: every layer's defaults, overridden by the image file."""
    return dict(image.params)


@pytest.fixture(scope="module")
def root_host(host: testinfra.host.Host, image: ImageInfo) -> testinfra.host.Host:
    """Like `host`, but every command runs as root (for checks an unprivileged user can't do).
    On a VM `host` already is root: logged in as root, or as the seed's account with
    testinfra's --sudo."""
    if image.target == "vm":
        return host
    backend: Any = host.backend
    return testinfra.host.Host.get_host(f"{backend.NAME}://root@{backend.name}")


@pytest.fixture(scope="session")
def cloud(pytestconfig: pytest.Config) -> dict[str, Any]:
    """What the machine's datasource gave (a NoCloud seed made by kiln's VM verifier) and what
    the image holds that the machine must not share; skips when there was no seed (a
    container, or a disk without the cloud-init layer)."""
    given = json.loads(_info_path(pytestconfig).read_text()).get("cloud")
    if not given:
        pytest.skip("booted without a cloud-init datasource")
    return dict(given)


# The helpers for test authors live in kiln.testkit; these names stay importable from here.
__all__ = ["HttpResponse", "http_get", "listening", "service_logs"]


# reporting to kiln ---------------------------------------------------------------------------
@dataclass
class _Check:
    nodeid: str
    owner: str
    outcome: str = "passed"
    message: str = ""


@dataclass(eq=False)  # pluggy keeps plugins in sets
class Reporter:
    """Collects each test's outcome, with its owner (the layer), into the results file."""

    owners: dict[str, str]  # tests folder relative to the rootdir -> layer or image:<name>
    results: Path
    checks: dict[str, _Check] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)  # kiln.testowners.overrides

    def owner(self, nodeid: str) -> str:
        path = nodeid.split("::")[0]
        for folder, owner in self.owners.items():
            if path == folder or path.startswith(folder + "/"):
                return owner
        return "?"

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            owner = self.owner(item.nodeid)
            item.user_properties.append(("layer", owner))
            name = getattr(item, "originalname", None) or item.name.split("[")[0]
            for o in self.overrides:
                if (o["layer"], o["test"]) == (owner, name):
                    # the image (or a layer above) said this promise no longer holds, and why
                    item.add_marker(pytest.mark.skip(reason=describe(o)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.checks[report.nodeid] = _Check(report.nodeid, self.owner(report.nodeid),
                                                "error", _message(report))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        check = self.checks.setdefault(report.nodeid,
                                       _Check(report.nodeid, self.owner(report.nodeid)))
        if check.outcome in ("failed", "error"):
            return
        if report.failed:
            check.outcome = "failed" if report.when == "call" else "error"
            check.message = _message(report)
        elif report.skipped:
            check.outcome, check.message = "skipped", _message(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        while SESSIONS:
            SESSIONS.pop().close()
        data = {"exitstatus": int(exitstatus),
                "checks": [dataclasses.asdict(c) for c in self.checks.values()],
                "commands": [dataclasses.asdict(c) for c in COMMANDS]}
        tmp = self.results.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.results)


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return f"{crash.message}\n  at {Path(crash.path).name}:{crash.lineno}"
    return str(longrepr or "").strip().split("\n")[-1]


def pytest_configure(config: pytest.Config) -> None:
    data = json.loads(_info_path(config).read_text())
    KilnBackend.label = data["image"]
    config.pluginmanager.register(Reporter(dict(data["owners"]), Path(data["results"]),
                                           overrides=list(data.get("overrides", ()))),
                                  "kiln-reporter")

