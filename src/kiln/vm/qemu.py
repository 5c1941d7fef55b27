"""The one door to qemu: boot a disk through its own bootloader, reach it over SSH, always kill it.

qemu is started through kiln.run.spawn: in its own session (Ctrl-C in the terminal reaches
kiln, which then stops the machine), killed and reaped however the machine's block is left,
and killed by the kernel if kiln itself is killed outright. Its serial console goes to a file,
whose tail every error carries.

KVM is used when a short test boot works: /dev/kvm can exist and still hang a guest kernel
(nested virtualisation), so the first boot under KVM must show the guest's init within
KVM_PROBE_SECONDS, otherwise the machine is killed and booted again under TCG. The verdict is
kept per host and guest kernel, so a host where KVM hangs pays for the probe once.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paramiko

from kiln.errors import KilnError
from kiln.run import Child, spawn
from kiln.run import free_port as free_port  # the VM callers name it qemu.free_port
from kiln.vm.spec import BootMode

Accel = Literal["kvm", "tcg"]
QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
KVM_PROBE_SECONDS = 30.0
INIT_MARKERS = ("systemd[1]:", "Run /init as init process", "Welcome to")


class BootError(KilnError):
    """The machine did not come up (or died); the message carries the console's tail."""


@dataclass(frozen=True)
class MachineSpec:
    disk: Path  # a throwaway raw copy: the guest writes to it
    boot: BootMode
    accel: Accel
    ssh_port: int
    console: Path
    work: Path
    memory_mib: int = 1024
    cpus: int = 2
    seed: Path | None = None  # a NoCloud seed (ISO labelled cidata), attached read-only
    disk_format: str = "raw"  # or qcow2: an overlay whose backing file is the built disk
    user: str = "root"  # who logs in with the run's key (the seed's account, with a seed)


def qemu_argv(spec: MachineSpec) -> list[str]:
    argv = [QEMU, "-name", "kiln-verify", "-machine", f"q35,accel={spec.accel}",
            "-cpu", "max" if spec.accel == "tcg" else "qemu64",
            "-m", str(spec.memory_mib), "-smp", str(spec.cpus),
            "-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{spec.console}",
            "-drive", f"file={spec.disk},format={spec.disk_format},if=virtio,cache=unsafe",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci"]  # entropy for sshd's first-boot host keys
    if spec.seed is not None:  # the second disk: the root disk stays /dev/vda
        argv += ["-drive", f"file={spec.seed},format=raw,if=virtio,readonly=on"]
    if spec.boot == "uefi":
        variables = spec.work / f"OVMF_VARS-{spec.ssh_port}.fd"
        shutil.copyfile(OVMF_VARS, variables)
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
    return argv


def check_host(boot: tuple[BootMode, ...]) -> None:
    if not shutil.which(QEMU):
        raise KilnError(f"{QEMU}: not found (apt-get install qemu-system-x86)")
    if "uefi" in boot and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        raise KilnError(f"{OVMF_CODE}: UEFI firmware not found (apt-get install ovmf)")


class Machine:
    """A running qemu. Use as a context manager: leaving it, in any way, kills qemu."""

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.started = 0.0
        self.proc: Child | None = None

    def __enter__(self) -> Machine:
        self.spec.console.write_bytes(b"")
        self.started = time.monotonic()
        self.proc = spawn(qemu_argv(self.spec), log=self.spec.work / "qemu.log")
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.stop()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        """CPU time qemu has used (all its threads): unlike elapsed(), it hardly changes with
        how busy the host is, so boots on a shared machine compare by it."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def console_text(self) -> str:
        try:
            return self.spec.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def qemu_errors(self) -> str:
        """What qemu itself said (its stdout and stderr): why it refused to start or died."""
        path = self.spec.work / "qemu.log"
        return path.read_text(errors="replace").strip() if path.exists() else ""

    def wait_for_console(self, markers: tuple[str, ...], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.alive:
            text = self.console_text()
            if any(m in text for m in markers):
                return True
            time.sleep(0.5)
        return False

    def wait_for_ssh(self, key: Path, seconds: float) -> float:
        """Seconds from qemu's start until the spec's user could log in with `key`."""
        deadline = self.started + seconds
        # While sshd is not up yet, paramiko's transport thread logs a traceback per attempt.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
        while time.monotonic() < deadline:
            if not self.alive:
                raise BootError(self.failure("qemu exited before SSH answered"))
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect("127.0.0.1", port=self.spec.ssh_port, username=self.spec.user,
                               pkey=pkey,
                               timeout=5, banner_timeout=10, auth_timeout=10,
                               allow_agent=False, look_for_keys=False)
                client.exec_command("true", timeout=10)[1].channel.recv_exit_status()
                return self.elapsed()
            except (paramiko.SSHException, OSError, EOFError):
                time.sleep(2)
            finally:
                client.close()
        raise BootError(self.failure(f"no SSH login within {seconds:.0f}s"))

    def wait_until_booted(self, key: Path, seconds: float) -> str:
        """Block until systemd's boot jobs are done, and return its state (running, degraded).
        sshd answers before the boot is over, and cloud-init's config stage restarts it: a
        suite started at the first login meets refused connections mid-run."""
        state = self.ssh_output(key, "systemctl is-system-running --wait", timeout=seconds)
        return state.strip() or "unknown"

    def ssh_output(self, key: Path, command: str, timeout: float = 60) -> str:
        """`command`'s output on the machine, as the spec's user (for facts, not checks: ""
        on failure)."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=self.spec.ssh_port, username=self.spec.user,
                           pkey=paramiko.Ed25519Key.from_private_key_file(str(key)),
                           timeout=10, allow_agent=False, look_for_keys=False)
            _, out, _ = client.exec_command(command, timeout=timeout)
            return str(out.read().decode(errors="replace"))
        except (paramiko.SSHException, OSError, EOFError):
            return ""
        finally:
            client.close()

    def failure(self, what: str, lines: int = 40) -> str:
        console = self.console_text().splitlines()
        tail = deque(console, maxlen=lines)
        out = [f"{what} ({self.spec.boot}, {self.spec.accel}, after {self.elapsed():.0f}s)"]
        if errors := self.qemu_errors():
            out.append("  qemu: " + errors.splitlines()[-1])
        # A unit that failed early in the boot has scrolled out of the tail by the login prompt.
        failed = [line for line in map(_printable, console) if FAILED_RE.search(line)][-10:]
        if failed:
            out.append("  serial console, failures:")
            out += [f"  | {line}" for line in failed]
        out.append(f"  serial console, last {len(tail)} lines:")
        out += [f"  | {_printable(line)}" for line in tail]
        return "\n".join(out)


FAILED_RE = re.compile(r"\[FAILED\]|Failed to start|Kernel panic|Dependency failed")


def _printable(line: str) -> str:
    """Console lines without terminal escapes (grub and systemd colour their output)."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "\x1b":
            i += 1
            if i < len(line) and line[i] == "[":
                i += 1
                while i < len(line) and not ("@" <= line[i] <= "~"):
                    i += 1
            i += 1
            continue
        if line[i].isprintable():
            out.append(line[i])
        i += 1
    return "".join(out).rstrip()


# KVM probe -----------------------------------------------------------------------------------
def kvm_available() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def verdict_dir() -> Path:
    """KVM working or not is a property of the host, so the verdict is kept per user, not per
    project: $XDG_CACHE_HOME/kiln (~/.cache/kiln)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "kiln"


def _verdicts(state: Path) -> dict[str, str]:
    try:
        return dict(json.loads((state / "accel.json").read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _probe_key(guest_kernel: str) -> str:
    return f"{platform.release()}|{guest_kernel}"


def remembered_accel(state: Path, guest_kernel: str) -> Accel | None:
    verdict = _verdicts(state).get(_probe_key(guest_kernel))
    return verdict if verdict in ("kvm", "tcg") else None  # type: ignore[return-value]


def remember_accel(state: Path, guest_kernel: str, accel: Accel) -> None:
    verdicts = _verdicts(state) | {_probe_key(guest_kernel): accel}
    state.mkdir(parents=True, exist_ok=True)
    (state / "accel.json").write_text(json.dumps(verdicts, indent=2, sort_keys=True) + "\n")


@contextmanager
def boot(make_spec: Callable[[Accel], MachineSpec], *, accel: Accel | Literal["auto"],
         guest_kernel: str, log: Callable[[str], None]) -> Iterator[Machine]:
    """A running machine, under KVM when asked or when a probe boot shows it works."""
    state = verdict_dir()
    if accel == "auto":
        chosen = remembered_accel(state, guest_kernel)
        if chosen is None and kvm_available():
            with Machine(make_spec("kvm")) as machine:
                if machine.wait_for_console(INIT_MARKERS, KVM_PROBE_SECONDS):
                    remember_accel(state, guest_kernel, "kvm")
                    log(f"KVM works here (init started after {machine.elapsed():.1f}s)")
                    yield machine
                    return
            log(f"KVM did not reach init within {KVM_PROBE_SECONDS:.0f}s: using TCG "
                "(remembered for this host and kernel)")
            remember_accel(state, guest_kernel, "tcg")
            chosen = "tcg"
        accel = chosen or "tcg"
    with Machine(make_spec(accel)) as machine:
        yield machine
