"""`kiln audit --target vm`: lynis against the booted VM disk.

A throwaway copy of the built disk boots under qemu the way `kiln verify --target vm` boots it:
with the cloud-init layer, a qcow2 overlay and a NoCloud seed whose account (kiln.vm.seed.USER)
logs in with a key made for this run and runs lynis through sudo (root may not log in over
SSH); without it, a raw copy with root's key written in. lynis is copied from the host into
that machine over SSH, at the host's paths, and run there; the copy of the disk is deleted
with the machine, so the disk that is published never holds lynis, the account or the key.

lynis's log comes back too: the record keeps the slowest tests (extra["slowest"]). Under TCG
lynis takes long because every program it runs costs an expensive exec, one per log line at
least, not because of a few tests that could be skipped (docs/hardening.md).
"""

from __future__ import annotations

import logging
import re
import shlex
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import paramiko

from kiln import records
from kiln.audit import LYNIS_PATHS, AuditError, AuditRecord, lynis_on_host, parse_report
from kiln.context import Context
from kiln.run import run
from kiln.vm import disk, qemu, seed
from kiln.vm.build import built_disk
from kiln.vm.spec import disk_spec
from kiln.vm.verify import CLOUD_INIT_LAYER, SSH_TIMEOUT, login_user, make_key

REMOTE = "/tmp/kiln-lynis"
# lynis took 43 minutes under TCG at load ~11 on 2 cores (docs/hardening.md): room for a
# busier host; under KVM it takes a minute or two
LYNIS_TIMEOUT = 5400.0
SLOWEST = 15
SEPARATOR = "--kiln-lynis-log--"
# At the paths the host has them, as the container audit mounts them: run from elsewhere,
# lynis 3.0.8 stopped after its report header. Only this boot's copy of the disk gets them.
SCRIPT = (f"tar -C / -xf {REMOTE}.tar && rm {REMOTE}.tar "
          f"&& /usr/sbin/lynis audit system --quick --no-colors "
          f"--logfile {REMOTE}.log --report-file {REMOTE}.dat >/dev/null 2>&1; "
          f"cat {REMOTE}.dat; echo {SEPARATOR}; cat {REMOTE}.log")
TEST_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) Performing test ID (\S+)")
STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ")
# lynis's AddHP logs every award: "Hardening: assigned maximum number of hardening points for
# this item (3). ..." or "... partial number of hardening points (1 of 3). ..."
POINTS_RE = re.compile(r"Hardening: assigned (?:maximum number of hardening points for this "
                       r"item \((\d+)\)|partial number of hardening points \((\d+) of (\d+)\))")


def audit_vm(ctx: Context, name: str, *, accel: Literal["auto", "kvm", "tcg"] = "auto",
             ssh_timeout: float | None = None) -> AuditRecord:
    lynis_on_host()
    prepared = ctx.prepared(name)
    spec = disk_spec(prepared.plan, prepared.fingerprint)
    built = built_disk(ctx.project.root, name, prepared.fingerprint)
    if built is None:
        raise AuditError(f"{prepared.plan.image.path}: no disk built for this definition "
                         f"(run `kiln build {name} --target vm` first)")
    mode = spec.boot[0]
    qemu.check_host((mode,))
    started, clock = datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()
    state = records.state_dir(ctx.project.root)
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"kiln-audit-{name}-", dir=state / "tmp") as tmp:
        work = Path(tmp)
        key, public = make_key(work)
        bundle = work / "lynis.tar"
        with tarfile.open(bundle, "w") as tar:
            for path in LYNIS_PATHS:
                tar.add(path, arcname=path.lstrip("/"))
        seeded = any(x.name == CLOUD_INIT_LAYER for x in prepared.plan.all_layers)
        user = login_user(prepared.plan, seeded)
        iso = None
        if seeded:
            seed.check_host()
            iso = seed.make_seed(work / "seed", spec.hostname, public).iso
        copy = work / ("audit.qcow2" if seeded else "audit.raw")

        def make_spec(chosen: qemu.Accel) -> qemu.MachineSpec:
            copy.unlink(missing_ok=True)
            if seeded:  # as the verifier boots it: root does not log in over SSH
                disk.overlay(built.raw, "raw", copy, spec.size)
            else:
                run(["cp", "--sparse=always", built.raw, copy])
                disk.inject_ssh_key(copy, spec, public, work)
            return qemu.MachineSpec(disk=copy, boot=mode, accel=chosen,
                                    ssh_port=qemu.free_port(), console=work / "console.log",
                                    work=work, seed=iso, disk_format="qcow2" if seeded else "raw",
                                    user=user)

        with qemu.boot(make_spec, accel=accel,
                       guest_kernel=str(built.manifest["kernel"]), log=ctx.ui.step) as machine:
            try:
                limit = ssh_timeout or SSH_TIMEOUT[machine.spec.accel]
                machine.wait_for_ssh(key, limit)
                machine.wait_until_booted(key, max(limit - machine.elapsed(), 60))
            except qemu.BootError as exc:
                raise AuditError(f"{prepared.plan.image.path}: the VM did not come up for "
                                 f"the audit: {exc}") from None
            ctx.ui.step(f"lynis audit system in the booted {name} ({machine.spec.accel})")
            accel, lynis_started = machine.spec.accel, time.monotonic()
            code, output = _lynis_over_ssh(machine.spec.ssh_port, key, bundle,
                                           machine.spec.user)
            lynis_seconds = time.monotonic() - lynis_started
    text, _, log = output.partition(SEPARATOR)
    if code != 0 or "hardening_index=" not in text:
        raise AuditError(f"{prepared.plan.image.path}: lynis did not run in the booted "
                         f"'{name}' (exit {code}): {text.strip()[-300:]}")
    report = parse_report(text)
    return AuditRecord(
        image=name, image_id=str(built.manifest["image_id"]), target="vm",
        index=int(report["hardening_index"]), warnings=tuple(report["warnings"]),
        suggestions=tuple(report["suggestions"]),
        tests_performed=len([t for t in str(report.get("tests_executed", "")).split("|") if t]),
        lynis=str(report.get("lynis_version", "")), started=started,
        seconds=round(time.monotonic() - clock, 3),
        extra={"disk_sha256": built.manifest["sha256"], "boot": mode, "accel": accel,
               "lynis_seconds": round(lynis_seconds, 1),
               "slowest": slowest_tests(log), "points": hardening_points(log)})


def slowest_tests(log: str, count: int = SLOWEST) -> list[dict[str, object]]:
    """lynis's tests by the seconds its log spent on each (whole seconds), slowest first."""
    spent: dict[str, float] = {}
    current, since = "", 0.0
    for line in log.splitlines():
        stamp = STAMP_RE.match(line)
        if stamp is None:
            continue
        at = datetime.fromisoformat(stamp.group(1)).timestamp()
        if current:
            spent[current] = spent.get(current, 0.0) + at - since
        since = at
        test = TEST_RE.match(line)
        if test is not None:
            current = test.group(2)
    ranked = sorted(spent.items(), key=lambda item: -item[1])[:count]
    return [{"test": name, "seconds": round(seconds)} for name, seconds in ranked]


def hardening_points(log: str) -> dict[str, object]:
    """The points behind the index (index = got * 100 // of), and every test that missed some:
    where the next points are. From lynis's log, which the report file does not summarise."""
    got = of = 0
    missed: dict[str, int] = {}
    current = ""
    for line in log.splitlines():
        test = TEST_RE.match(line)
        if test is not None:
            current = test.group(2)
        award = POINTS_RE.search(line)
        if award is None:
            continue
        full, part, most = award.groups()
        gained, possible = (int(full), int(full)) if full else (int(part), int(most))
        got, of = got + gained, of + possible
        if gained < possible:
            missed[current] = missed.get(current, 0) + possible - gained
    ranked = sorted(missed.items(), key=lambda item: (-item[1], item[0]))
    return {"got": got, "of": of, "missed": [{"test": t, "points": n} for t, n in ranked]}


def _lynis_over_ssh(port: int, key: Path, bundle: Path, user: str) -> tuple[int, str]:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect("127.0.0.1", port=port, username=user,
                       pkey=paramiko.Ed25519Key.from_private_key_file(str(key)), timeout=10,
                       allow_agent=False, look_for_keys=False)
        # through a plain exec's stdin: the image need not have an SFTP server
        stdin, stdout, _ = client.exec_command(f"cat > {REMOTE}.tar", timeout=300)
        stdin.write(bundle.read_bytes())
        stdin.channel.shutdown_write()
        if stdout.channel.recv_exit_status() != 0:
            raise AuditError(f"could not copy lynis into the VM's {REMOTE}.tar")
        # the report comes at the end: under TCG on a busy host lynis took over 15 minutes
        sudo = "" if user == "root" else "sudo -n "
        _, stdout, _ = client.exec_command(f"{sudo}sh -c {shlex.quote(SCRIPT)}",
                                           timeout=LYNIS_TIMEOUT)
        text = stdout.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), text
    except TimeoutError:
        raise AuditError(f"lynis did not finish in the VM within {LYNIS_TIMEOUT:.0f}s (under "
                         "TCG it is slow: use a host where KVM works)") from None
    except (paramiko.SSHException, OSError) as exc:
        raise AuditError(f"the audit's SSH session to the VM failed: {exc!r}") from None
    finally:
        client.close()


__all__ = ["audit_vm", "hardening_points"]
