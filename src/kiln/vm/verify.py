"""verify_vm: boot a throwaway copy of the built disk, log in over SSH, run the image's suite.

For each boot mode the disk declares, the machine gets an ephemeral SSH key. An image with the
cloud-init layer gets it the way a cloud gives it: it boots a qcow2 overlay of the built disk
(raw, or the qcow2/vmdk/vhd made from it) grown with `qemu-img resize` (the root must grow into
it), with a NoCloud seed (kiln.vm.seed: the key, a hostname, a runcmd marker); an image without
cloud-init boots a sparse copy of disk.raw with the key written into it with debugfs. The
machine boots through its own loader (SeaBIOS or OVMF, then grub); once SSH answers, the
image's suite for the vm target (kiln.testsuite: the layers' and the image's own tests, with
the same fixtures as in a container) runs through kiln's `kiln-ssh` backend (kiln.testing:
one connection and one shell for the whole suite). With a seed, the suite logs in as the seed's
account (kiln.vm.seed.USER: root may not log in over SSH) and its shell is started through
`sudo -n` (testinfra's --sudo); the raw copy lets root in with the injected key. The built
disk is never written to, and carries no test key. The result is kiln.testsuite's record with
target "vm", saved like a container's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiln import records, testsuite
from kiln.context import Context
from kiln.errors import KilnError
from kiln.model import Plan
from kiln.records import CheckResult, VerifyRecord
from kiln.run import run
from kiln.suiteinfo import SSH_SCHEME
from kiln.testsuite import Suite, Target, VerifyError
from kiln.vm import disk, formats, qemu, seed
from kiln.vm.build import DiskResult, built_disk
from kiln.vm.spec import BOOT_CHOICES, BootMode, DiskSpec, disk_spec

SSH_TIMEOUT = {"kvm": 120.0, "tcg": 900.0}  # TCG on a busy host: minutes
HOST_ALIAS = "kiln-vm"
CLOUD_INIT_LAYER = "cloud-init"
BLAME_UNITS = 15
GROW = 1 << 30  # the seeded boot's disk is this much bigger than the image's
SUITE_TIMEOUT = 600.0  # seconds for the pytest run over SSH (a hung connection ends here)


WhileUp = Callable[[qemu.Machine, Path], None]


@dataclass
class BootReport:
    mode: BootMode
    disk_format: str = "raw"  # the file the machine booted (through a qcow2 overlay)
    accel: str = ""
    ssh_seconds: float = 0.0
    ssh_cpu_seconds: float = 0.0  # qemu's CPU time until SSH answered (load-independent)
    booted_seconds: float = 0.0  # until systemd said the boot was over (the suite starts)
    test_seconds: float = 0.0
    console: str = ""  # where the console log was kept (failures only)
    checks: tuple[CheckResult, ...] = ()
    exitstatus: int = 0  # pytest's
    error: str = ""  # the machine did not come up, or the suite could not run
    tail: str = ""  # the console's tail when tests failed
    startup: str = ""  # systemd-analyze: where the boot spent its time
    blame: tuple[str, ...] = ()  # the slowest units, slowest first

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "disk_format": self.disk_format, "accel": self.accel,
                "ssh_seconds": round(self.ssh_seconds, 1),
                "ssh_cpu_seconds": round(self.ssh_cpu_seconds, 1),
                "booted_seconds": round(self.booted_seconds, 1),
                "test_seconds": round(self.test_seconds, 1), "console": self.console,
                "startup": self.startup, "blame": list(self.blame),
                "error": self.error.splitlines()[0] if self.error else ""}


@dataclass
class VmVerification:
    record: VerifyRecord
    boots: list[BootReport] = field(default_factory=list)


def make_key(work: Path) -> tuple[Path, str]:
    """A new ed25519 key for this run only: (private key file, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = work / "id_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} kiln-verify"


def ssh_config(work: Path, port: int, key: Path, user: str = "root") -> Path:
    path = work / "ssh_config"
    path.write_text(f"Host {HOST_ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                    f"  IdentityFile {key}\n  StrictHostKeyChecking no\n")
    return path


def suite_hosts(work: Path, port: int, key: Path, user: str) -> list[str]:
    """testinfra's arguments: kiln's SSH backend (kiln.testing: one paramiko connection, one
    shell), as root through one sudo when the login is not root (the seed's account)."""
    hosts = [f"--hosts={SSH_SCHEME}://{HOST_ALIAS}",
             f"--ssh-config={ssh_config(work, port, key, user)}"]
    return hosts if user == "root" else [*hosts, "--sudo"]


def login_user(plan: Plan, seeded: bool) -> str:
    """Who the verifier logs in as: the seed's account, or root (its key written into the copy),
    which an image that refuses root over SSH cannot allow: refused here, not after a boot."""
    if seeded:
        return seed.USER
    if dict(plan.params).get("ssh_permit_root_login") == "no":
        raise KilnError(f"{plan.image.path}: without the cloud-init layer kiln logs in to the "
                        "disk as root, and its sshd refuses root (ssh_permit_root_login: no); "
                        "add the cloud-init layer, or set ssh_permit_root_login: "
                        "prohibit-password")
    return "root"


def verify_vm(ctx: Context, name: str, *, boot: str | None = None,
              accel: Literal["auto", "kvm", "tcg"] = "auto",
              ssh_timeout: float | None = None, disk_format: str = "raw",
              while_up: WhileUp | None = None) -> VmVerification:
    """Boot and test the disk; `disk_format` (raw, qcow2, vmdk, vhd: made by `build --format`)
    is the file the machine boots, for an image with cloud-init (the others boot a raw copy).
    `while_up(machine, key)` runs after the suite of each boot, the machine still up (a TCG
    boot costs minutes: the boot test checks drift over SSH in the same boot); what it raises
    ends the verification, and the machine and its disk copy are removed all the same."""
    project = ctx.project
    prepared = ctx.prepared(name)
    spec = disk_spec(prepared.plan, prepared.fingerprint)
    built = built_disk(project.root, name, prepared.fingerprint)
    if built is None:
        raise KilnError(f"{prepared.plan.image.path}: no disk built for this definition "
                        f"(run `invoke build {name} --target vm` first)")
    modes = spec.boot if boot is None else _modes(boot, spec)
    qemu.check_host(modes)
    seeded = any(layer.name == CLOUD_INIT_LAYER for layer in prepared.plan.all_layers)
    login_user(prepared.plan, seeded)
    source = _source(built, disk_format, seeded, prepared.plan.image.path)
    if seeded:
        seed.check_host()
    target = Target(prepared.plan, prepared.ref, str(built.manifest["image_id"]),
                    prepared.fingerprint)
    suite = testsuite.collect(project.root, prepared.plan, "vm")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    disk_facts = {"disk_sha256": built.manifest["sha256"], "kernel": built.manifest["kernel"]}
    if not suite.has_tests:  # refused before minutes of booting, and recorded like a container
        refusal = testsuite.no_tests(target)
        records.save(project.root, testsuite.record(target, suite, started, False,
                                                    reason=str(refusal), extra=disk_facts))
        raise refusal
    t0 = time.monotonic()
    state = records.state_dir(project.root)
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    reports: list[BootReport] = []
    with tempfile.TemporaryDirectory(prefix=f"kiln-verify-{name}-", dir=state / "tmp") as tmp:
        work = Path(tmp)
        key, public = make_key(work)
        for mode in modes:
            with ctx.ui.task(f"verify {name} (vm, {mode}): boot, SSH, "
                             f"{len(suite.files)} test files"):
                report = _boot_and_test(ctx, built, spec, mode, accel, ssh_timeout, work, key,
                                        public, suite, target, source if seeded else None,
                                        while_up)
            reports.append(report)
    checks = tuple(c for r in reports for c in r.checks)
    # the first boot that did not come up or did not pass says why
    reason = next((why for why in map(_why_not, reports) if why), "")
    record = testsuite.record(target, suite, started, not reason, checks=checks,
                              seconds=time.monotonic() - t0, reason=reason,
                              extra={**disk_facts, "boots": [r.to_json() for r in reports]})
    records.save(project.root, record)
    if reason:
        failed = [c for c in checks if c.outcome in ("failed", "error")]
        raise VerifyError(_failure_message(prepared.plan.image.path, name, reports, failed))
    return VmVerification(record, reports)


def _why_not(report: BootReport) -> str:
    """Why a boot did not pass ("" when it did), in the words a container's record uses."""
    if report.error:
        return report.error.splitlines()[0]
    return testsuite.failure_reason(report.checks, report.exitstatus)


def _source(built: DiskResult, disk_format: str, seeded: bool,
            image_path: str) -> tuple[Path, str]:
    if disk_format == "raw":
        return built.raw, "raw"
    if disk_format == "qcow2":
        return built.qcow2, "qcow2"
    record = formats.load(built.folder)
    if disk_format not in formats.EXTRA:
        raise KilnError(f"--disk-format {disk_format}: use raw, qcow2, vmdk or vhd")
    if not seeded:
        raise KilnError(f"{image_path}: --disk-format {disk_format} needs the cloud-init "
                        "layer (without it the key is written into a raw copy)")
    entry = record.get(disk_format)
    current = record.get("raw_sha256") == built.manifest["sha256"]["raw"]
    if not (isinstance(entry, dict) and current and (built.folder / entry["file"]).exists()):
        raise KilnError(f"{image_path}: no {disk_format} of this disk (run `kiln build "
                        f"{built.image} --target vm --format {disk_format}` first)")
    return built.folder / entry["file"], disk_format


def _modes(boot: str, spec: DiskSpec) -> tuple[BootMode, ...]:
    modes = BOOT_CHOICES.get(boot)
    if modes is None or not set(modes) <= set(spec.boot):
        raise KilnError(f"--boot {boot}: the disk boots {'+'.join(spec.boot)} "
                        "(set the vm_boot param of the image to change that)")
    return modes


def _boot_and_test(ctx: Context, built: DiskResult, spec: DiskSpec, mode: BootMode,
                   accel: Literal["auto", "kvm", "tcg"], ssh_timeout: float | None, work: Path,
                   key: Path, public: str, suite: Suite, target: Target,
                   source: tuple[Path, str] | None, while_up: WhileUp | None) -> BootReport:
    """`source` (file, format): boot an overlay of it with a NoCloud seed; None: a raw copy
    with the key written in."""
    report = BootReport(mode, disk_format=source[1] if source else "raw")
    copy = work / (f"{mode}.qcow2" if source else f"{mode}.raw")
    cloud: dict[str, Any] | None = None
    iso: Path | None = None
    if source is not None:  # a new seed (instance) per boot: each boot is a first boot
        given = seed.make_seed(work / mode, spec.hostname, public)
        iso = given.iso
        cloud = {**given.facts(), **disk.image_identity(built.raw, spec),
                 "image_bytes": spec.size, "disk_bytes": spec.size + GROW}

    def make_spec(chosen: qemu.Accel) -> qemu.MachineSpec:
        # a fresh copy for every boot: a probe boot that hung may have written to the last one
        copy.unlink(missing_ok=True)
        if source is not None and cloud is not None:
            disk.overlay(source[0], "vpc" if source[1] == "vhd" else source[1], copy,
                         cloud["disk_bytes"])
        else:
            run(["cp", "--sparse=always", built.raw, copy])
            disk.inject_ssh_key(copy, spec, public, work)
        return qemu.MachineSpec(disk=copy, boot=mode, accel=chosen, ssh_port=qemu.free_port(),
                                console=work / f"console-{mode}.log", work=work,
                                seed=iso, disk_format="qcow2" if source else "raw",
                                user=seed.USER if source else "root")

    log: Callable[[str], None] = ctx.ui.step
    kernel = str(built.manifest["kernel"])
    try:
        with qemu.boot(make_spec, accel=accel, guest_kernel=kernel, log=log) as machine:
            report.accel = machine.spec.accel
            limit = ssh_timeout or SSH_TIMEOUT[machine.spec.accel]
            try:
                report.ssh_seconds = machine.wait_for_ssh(key, limit)
                report.ssh_cpu_seconds = machine.cpu_seconds()
                ctx.ui.step(f"SSH after {report.ssh_seconds:.1f}s ({report.accel})")
                state = machine.wait_until_booted(key, max(limit - machine.elapsed(), 60))
                report.booted_seconds = machine.elapsed()
                ctx.ui.step(f"boot finished ({state}) after {report.booted_seconds:.1f}s")
                t = time.monotonic()
                hosts = suite_hosts(work, machine.spec.ssh_port, key, machine.spec.user)
                try:
                    ran = testsuite.run(suite, target, hosts, cloud=cloud, timeout=SUITE_TIMEOUT)
                    report.checks, report.exitstatus = ran.checks, ran.exitstatus
                except VerifyError as exc:  # pytest never wrote its results: the boot failed
                    report.error = str(exc)
                if while_up is not None:
                    while_up(machine, key)
                report.test_seconds = time.monotonic() - t
                _analyze(report, machine, key)
                bad = [c for c in report.checks if c.outcome in ("failed", "error")]
                ctx.ui.step(f"{len(report.checks) - len(bad)}/{len(report.checks)} checks "
                            f"passed in {report.test_seconds:.1f}s")
                if bad:  # the checks say what failed; the console often says why
                    report.console = _keep_console(ctx, built, machine, mode)
                    report.tail = machine.failure(f"{len(bad)} checks failed", lines=25)
            except qemu.BootError as exc:
                report.console = _keep_console(ctx, built, machine, mode)
                report.error = str(exc)
    finally:
        copy.unlink(missing_ok=True)
    return report


def _analyze(report: BootReport, machine: qemu.Machine, key: Path) -> None:
    """Where the boot spent its time (systemd-analyze), kept in the record for bench/vm."""
    out = machine.ssh_output(key, "systemd-analyze time; systemd-analyze blame --no-pager")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    report.startup = next((line for line in lines if line.startswith("Startup finished")), "")
    report.blame = tuple(line for line in lines if not line.startswith(
        ("Startup finished", "graphical.target", "multi-user.target")))[:BLAME_UNITS]


def _keep_console(ctx: Context, built: DiskResult, machine: qemu.Machine, mode: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = built.folder / f"console-{mode}-{stamp}.log"
    shutil.copyfile(machine.spec.console, kept)
    return str(kept)


def _failure_message(image_path: str, name: str, reports: list[BootReport],
                     failed: list[CheckResult]) -> str:
    lines = [f"{image_path}: '{name}' failed verification as a VM"]
    for report in reports:
        if report.error:
            lines.append(f"  boot {report.mode}: {report.error}")
        if report.tail:
            lines.append(f"  boot {report.mode}: {report.tail}")
        if report.console:
            lines.append(f"  console log kept at {report.console}")
    for check in failed:
        message = check.message.strip().splitlines()
        lines.append(f"  FAILED {check.test}: {message[-1] if message else check.outcome}")
    return "\n".join(lines)
