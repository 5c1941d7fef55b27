"""VM images for real: the sample base-vm disk is built from the Debian mirror (with its vmdk and
vhd), booted under qemu through its own bootloader the way a cloud boots it (the vmdk, enlarged,
with a NoCloud seed), and tested over SSH. One disk is shared by the module's tests, and one boot
checks the suite, cloud-init, the vmdk, drift over SSH against the disk's file manifest and
root's refusal together (CI time).

Nothing may remain: no qemu process, no throwaway disk, pass, fail or signal.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from test_vm_publish import vm_record

from kiln import records
from kiln.context import Context, prepare
from kiln.engine import Engine
from kiln.fleet.drift import Drift
from kiln.fleet.remote import judge_ssh
from kiln.load import Project
from kiln.testsuite import VerifyError, collect
from kiln.ui import UI
from kiln.vm import files as vm_files
from kiln.vm import qemu, seed
from kiln.vm.build import DiskResult, build_disk, build_disks
from kiln.vm.verify import verify_vm

pytestmark = [pytest.mark.slow, pytest.mark.keep_images]

REPO = Path(__file__).resolve().parents[2]
BROKEN = {
    "layers/broken-service/layer.yaml": """\
description: a service that cannot start, so that verification must fail
files:
  - src: kiln-broken.service
    dest: /etc/systemd/system/kiln-broken.service
run:
  - systemctl enable kiln-broken.service
""",
    "layers/broken-service/files/kiln-broken.service": """\
[Unit]
Description=kiln test service that always fails

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo kiln-broken is failing on purpose; exit 3'

[Install]
WantedBy=multi-user.target
""",
    "images/broken-vm.yaml": """\
description: base-vm with a service that fails to start
base:
  image: base-vm
layers: [broken-service]
targets: [vm]
""",
}
# One suite runner (kiln.testsuite): a layer test using the `image` fixture, and the image's own
# tests/, run on the booted disk as in a container (the build's gate runs them there first).
# Test files do not change the fingerprint: the disk is the same one.
SHARED_SUITE = {
    "layers/vm-kernel/tests/test_image_fixture.py": """\
def test_the_image_fixture_describes_what_runs(image, params, root_host):
    assert image.name in ("base-vm", "broken-vm") and "vm-kernel" in image.layers
    assert image.params == params and image.image_id.startswith("sha256:")
    assert image.target in ("container", "vm") and not image.service
    assert (image.container == "") == (image.target == "vm")
    assert root_host.check_output("id -u") == "0"
""",
    "images/base-vm/tests/test_base_vm.py": """\
def test_the_images_own_tests_run(host, image):
    assert image.name == "base-vm" and host.file("/etc/os-release").exists
""",
}


def _qemu_processes(marker: str) -> list[int]:
    """qemu processes whose command line mentions `marker` (our project's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-system" in cmdline and marker in cmdline:
            found.append(int(entry.name))
    return found


def _console_of(pids: list[int]) -> Path | None:
    """The serial console file of the (one) qemu in `pids`: `-serial file:<path>`."""
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        for flag, value in itertools.pairwise(argv):
            if flag == "-serial" and value.startswith("file:"):
                return Path(value.removeprefix("file:"))
    return None


def _shape(value: object) -> object:
    """A JSON value's keys and types, not its values: what two records must share."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value and isinstance(value[0], dict) else "list"
    return type(value).__name__


def _leftovers(project: Project) -> list[str]:
    tmp = records.state_dir(project.root) / "tmp"
    return sorted(str(p) for p in tmp.rglob("*")) if tmp.exists() else []


@pytest.fixture(scope="module")
def vm_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of this repository's definitions, plus an image whose service fails."""
    if not shutil.which("qemu-system-x86_64") or not shutil.which("grub-mkimage"):
        pytest.skip("qemu and grub are not installed (scripts/setup installs them)")
    root = tmp_path_factory.mktemp("vm") / "project"
    for folder in ("layers", "images"):
        shutil.copytree(REPO / folder, root / folder)
    for rel, text in {**BROKEN, **SHARED_SUITE}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return Project(root)


def _ctx(project: Project, engine: Engine, **options: bool) -> Context:
    return Context(project=project, engine=engine, ui=UI(verbose=False), **options)


@pytest.fixture(scope="module")
def vm_disk(vm_project: Project, engine: Engine) -> DiskResult:
    [disk] = build_disks(_ctx(vm_project, engine), ["base-vm"], "vm", explicit=True,
                         formats="vmdk,vhd")
    return disk


CLOUD_CHECKS = ("finished_from_the_nocloud_seed", "ssh_key_came_from_the_datasource",
                "hostname_came_from_the_datasource", "runcmd_ran",
                "root_file_system_fills_the_enlarged_disk",
                "no_machine_id_or_host_key_is_shared_with_the_image",
                "serial_console_has_a_login")


EDITED = "/etc/issue.net"  # the drift check edits it over SSH: a file the image ships


class DriftCheck:
    """Run in verify_vm's boot, after the suite: `kiln drift --ssh`'s judge against the disk's
    file manifest (files.json: what publish signs), clean, then after an edit over SSH; then
    root, with the verifier's own key, is refused (PermitRootLogin no)."""

    def __init__(self, disk: DiskResult) -> None:
        listed = vm_files.load(disk.folder)
        # the seed's account and its sudo are the verifier's doing, not the image's
        self.manifest = dataclasses.replace(listed, mutable=(*listed.mutable, *seed.GRANTED))
        self.reports: list[Drift] = []
        self.root_refused: str = ""

    def __call__(self, machine: qemu.Machine, key: Path) -> None:
        target = f"{seed.USER}@127.0.0.1:{machine.spec.ssh_port}"

        def judge() -> Drift:
            return judge_ssh(self.manifest, target, "kiln/base-vm", "sha256:" + "0" * 64,
                             key_file=str(key), accept_new_host=True)

        self.reports.append(judge())
        machine.ssh_output(key, f"echo drifted | sudo -n tee -a {EDITED}")
        self.reports.append(judge())
        machine.ssh_output(key, "sudo -n install -d -m 700 /root/.ssh && sudo -n install -m 600 "
                           f"/home/{seed.USER}/.ssh/authorized_keys /root/.ssh/")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=machine.spec.ssh_port, username="root",
                           key_filename=str(key), timeout=30, allow_agent=False,
                           look_for_keys=False)
            self.root_refused = "no: root logged in"
        except paramiko.AuthenticationException as exc:
            self.root_refused = f"yes: {exc}"
        finally:
            client.close()


def test_sample_vm_boots_as_a_cloud_would_and_passes_its_suite(vm_project, vm_disk, engine):
    # One boot for all of it: the vmdk (through a qcow2 overlay grown by qemu-img resize),
    # with a NoCloud seed carrying the test account and key, a hostname and a runcmd marker;
    # then drift over SSH against the disk's manifest, and root's refusal, in the same boot.
    drift = DriftCheck(vm_disk)
    result = verify_vm(_ctx(vm_project, engine), "base-vm", boot="bios", disk_format="vmdk",
                       while_up=drift)
    record = result.record
    assert record.passed, record.reason
    assert record.target == "vm"
    names = [c.test for c in record.checks]
    # the container checks and the VM-only checks of the layers both ran, over SSH
    assert any("test_vm_kernel.py::test_root_is_mounted" in n for n in names)
    assert any("test_vm_systemd.py::test_the_system_is_running" in n for n in names)
    assert any("test_kernel.py::" in n for n in names)
    assert not any("test_container_" in n for n in names)
    # the suite is the container's (kiln.testsuite): the `image` fixture in a layer's test and
    # the image's own tests/ run on the disk too, and the suite's digest is the shared one
    shared = {(c.layer, c.test.split("::")[1].split("[")[0], c.outcome) for c in record.checks
              if c.test.split("::")[0] in SHARED_SUITE}
    assert shared == {("vm-kernel", "test_the_image_fixture_describes_what_runs", "passed"),
                      ("image:base-vm", "test_the_images_own_tests_run", "passed")}
    # ... and passed in the container the disk was made from, verified by the same runner
    in_container = records.load(vm_project.root, vm_disk.manifest["image_id"], "container")
    assert in_container is not None and in_container.passed
    assert {c.test.split("[")[0] for c in in_container.checks if c.outcome == "passed"} >= {
        c.test.split("[")[0] for c in record.checks if c.test.split("::")[0] in SHARED_SUITE}
    assert record.suite == collect(vm_project.root, prepare(vm_project, "base-vm").plan,
                                   "vm").digest
    # the cloud checks ran (the cloud fixture skips without a seed) and passed
    cloud = [c for c in record.checks if "test_vm_cloud_init.py::" in c.test]
    # test ids end in the host's parameter: ...::test_runcmd_ran[kiln-ssh://kiln-vm]
    outcomes = {name: [c.outcome for c in cloud if c.test.split("[")[0].endswith(name)]
                for name in CLOUD_CHECKS}
    assert outcomes == {name: ["passed"] for name in CLOUD_CHECKS}
    boot = record.extra["boots"][0]
    assert boot["disk_format"] == "vmdk"
    assert boot["startup"].startswith("Startup finished"), boot  # systemd-analyze, for bench/vm
    saved = records.load(vm_project.root, vm_disk.manifest["image_id"], "vm")
    assert saved is not None and saved.passed
    assert saved.extra["disk_sha256"] == vm_disk.manifest["sha256"]
    # test_vm_publish.py publishes disks with the record a boot would leave, without booting:
    # held here to the real one (the same fields, types and suite), it cannot drift from it
    stand_in = vm_record(vm_project.root, "base-vm", vm_disk, boots=("bios",)).to_json()
    assert _shape(stand_in) == _shape(saved.to_json())
    for key in ("image", "image_id", "fingerprint", "target", "suite", "passed", "reason"):
        assert stand_in[key] == saved.to_json()[key], key
    assert stand_in["extra"]["boots"][0]["mode"] == saved.extra["boots"][0]["mode"]
    assert {k: stand_in["extra"][k] for k in ("disk_sha256", "kernel")} == {
        k: saved.extra[k] for k in ("disk_sha256", "kernel")}
    assert _qemu_processes(str(vm_project.root)) == []
    assert _leftovers(vm_project) == []
    # drift over SSH: clean (exit 0) after boot and suite, then exactly the file edited
    clean, edited = drift.reports
    assert not clean.drifted, json.dumps(clean.to_json())
    # every path of the disk's root filesystem was read, but the mutable ones (pruned)
    assert clean.checked == sum(not drift.manifest.is_mutable(p) for p in drift.manifest.entries)
    assert edited.drifted, json.dumps(edited.to_json())
    assert (edited.added, edited.deleted) == ([], [])
    assert [path for path, _ in edited.changed] == [EDITED], json.dumps(edited.to_json())
    assert drift.root_refused.startswith("yes"), drift.root_refused


def test_two_builds_give_identical_disk_bytes(vm_project, vm_disk, engine):
    made = {fmt: vm_disk.formats[fmt]["sha256"] for fmt in ("vmdk", "vhd")}
    [again] = build_disks(_ctx(vm_project, engine, force=True), ["base-vm"], "vm",
                          explicit=True, formats="vmdk,vhd")
    assert again.action == "built"
    assert again.manifest["sha256"] == vm_disk.manifest["sha256"]
    # vmdk and vhd too: qemu-img's random CID, vhd id and time stamp are pinned
    assert {fmt: again.formats[fmt]["sha256"] for fmt in ("vmdk", "vhd")} == made
    for name, driver in (("disk.vmdk", "vmdk"), ("disk.vhd", "vpc")):
        subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", driver, again.raw,
                        again.folder / name], check=True)
    subprocess.run(["qemu-img", "check", "-q", again.folder / "disk.vmdk"], check=True)
    # and the disk never carries a test key, even after verification booted copies of it
    assert "authorized_keys" not in subprocess.run(
        ["debugfs", "-R", "ls -l /root", f"{again.raw}?offset="
         f"{next(p['start'] for p in again.manifest['partitions'] if p['name'] == 'root')}"],
        capture_output=True, text=True).stdout


def test_failing_service_fails_verify_with_the_console_tail(vm_project, vm_disk, engine):
    ctx = _ctx(vm_project, engine)
    build_disk(ctx, "broken-vm")
    with pytest.raises(VerifyError) as err:
        verify_vm(ctx, "broken-vm", boot="bios")
    message = str(err.value)
    assert message.startswith("images/broken-vm.yaml: 'broken-vm' failed verification as a VM")
    assert "serial console, last" in message
    assert "kiln-broken" in message  # systemd's "Failed to start" line, from the console
    assert "test_the_system_is_running_with_no_failed_units" in message
    kept = next(line.split(" at ", 1)[1] for line in message.splitlines()
                if "console log kept at" in line)
    assert Path(kept).is_file()
    record = records.load(vm_project.root, ctx.results["broken-vm"].image_id, "vm")
    assert record is not None and not record.passed
    # the image fixture passed for this image too; the parent image's own tests/ are not its
    assert [c.outcome for c in record.checks if "test_the_image_fixture_" in c.test] == ["passed"]
    assert not any(c.layer == "image:base-vm" for c in record.checks)
    assert _qemu_processes(str(vm_project.root)) == []
    assert _leftovers(vm_project) == []
    engine.remove_image(ctx.results["broken-vm"].ref)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_kills_qemu_and_removes_the_throwaway_disk(vm_project, vm_disk, signum,
                                                            kiln_cli):
    proc = kiln_cli.start(vm_project.root, "verify", "base-vm", "--target", "vm", "--boot",
                          "bios", "--accel", "tcg", env={"KILN_PROJECT": str(vm_project.root)},
                          merged=True)
    try:
        # Signalled once the guest runs: the loader (GRUB, on the serial console) has written
        # to the console file. Polled, with a deadline: nothing announces it.
        deadline = time.monotonic() + 120
        console = None
        while console is None or console.stat().st_size == 0:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the guest never wrote to its serial console"
            time.sleep(0.2)
            console = console or _console_of(_qemu_processes(str(vm_project.root)))
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 or proc.returncode == 130, out
    assert "interrupted" in out
    assert _qemu_processes(str(vm_project.root)) == []
    assert _leftovers(vm_project) == []


@pytest.fixture(scope="module", autouse=True)
def _no_qemu_left(vm_project: Project) -> Iterator[None]:
    yield
    leaked = _qemu_processes(str(vm_project.root))
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"qemu processes left running: {leaked}"
