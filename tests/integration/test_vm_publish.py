"""VM disks as signed OCI artifacts, against a real registry process (per test).

The disks are real and small: kiln.vm.build makes them (partitions, ext4, grub for BIOS and
UEFI, files.json, disk.json) from the busybox test image, whose `vm` layer stands in for the
sample's: the sample's params, and a kernel and initramfs in /boot that are a few bytes each.
Such a disk cannot boot, and a TCG boot costs minutes: its VM verification record is the one
kiln.vm.verify writes for a boot whose suite passed (the real suite's digest, the disk's real
checksums and kernel, kiln.vm.verify.BootReport per boot mode), saved by kiln.records. What is
under test is publishing, pulling, trust and channels, not booting (test_vm.py boots the real
base-vm disk). MONOLITHIC_MAX is lowered to 1 MiB, so the chunked (PATCH) upload path runs as
it does for a real ~320 MiB disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import kiln.registry as registry_mod
import kiln.release.lease as lease_mod
from kiln import records, testsuite
from kiln.config import load_config
from kiln.context import Context, prepare
from kiln.embedded import LocalRegistry
from kiln.errors import KilnError
from kiln.fleet.attest import signed_manifest
from kiln.fleet.drift import DriftError
from kiln.fleet.manifest import PREDICATE_TYPE
from kiln.fleet.remote import judge_vm
from kiln.load import Project
from kiln.registry import OCI_MANIFEST, Registry, sha256_digest
from kiln.release import cosign
from kiln.release.api import (
    PublishResult,
    catalog,
    history,
    open_session,
    promote,
    publish,
    pull,
    pull_disk,
    revoke,
    rollback,
)
from kiln.release.errors import (
    DigestMismatch,
    ImmutableTagError,
    PublishError,
    Revoked,
    SignatureRefused,
    TrustError,
    Unsigned,
    WrongKind,
)
from kiln.release.names import sidecar
from kiln.release.trust import VM_ARTIFACT_TYPE, check_trust
from kiln.release.vmdisk import DISK_CONFIG_TYPE, QCOW2_TYPE, RECORD_TYPE
from kiln.signing import canonical_json, keygen
from kiln.ui import UI
from kiln.vm import build as vm_build
from kiln.vm import files as vm_files
from kiln.vm.build import DiskResult, build_disk, disk_folder
from kiln.vm.verify import BootReport

REPO = "kiln/small"
SAMPLES = Path(__file__).resolve().parents[2]
KERNEL = "6.1.0-test"
pytestmark = pytest.mark.skipif(not shutil.which("qemu-img") or not shutil.which("grub-mkimage"),
                                reason="qemu-img and grub are not installed (scripts/setup)")


def vm_layer() -> str:
    """The sample vm layer's params (what the disk recipe reads, with their defaults), and a
    kernel and initramfs of a few bytes in /boot."""
    sample = yaml.safe_load((SAMPLES / "layers/vm/layer.yaml").read_text())
    return yaml.safe_dump({
        "description": "stands in for the sample vm layer: a disk that is never booted",
        "params": sample["params"],
        "files": [{"src": "vmlinuz", "dest": f"/boot/vmlinuz-{KERNEL}"},
                  {"src": "initrd.img", "dest": f"/boot/initrd.img-{KERNEL}"}]})


def files(text: str = "one") -> dict[str, str]:
    return {
        "layers/hello/layer.yaml": f"run:\n  - echo {text} > /hello\n",
        "layers/hello/tests/test_hello.py": (  # containers' and VMs'
            "def test_hello(host):\n    assert host.file('/hello').is_file\n"),
        "layers/vm/layer.yaml": vm_layer(),
        "layers/vm/files/vmlinuz": "not a kernel\n",
        "layers/vm/files/initrd.img": "not an initramfs\n",
        "images/small.yaml": ('{busybox}\nversion: "1.0"\nlayers: [hello, vm]\n'
                              "targets: [container, vm]\nparams: {vm_disk_size: 256M}\n"),
    }


@pytest.fixture
def project(make_project: Callable[..., Project], registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    monkeypatch.setattr(registry_mod, "MONOLITHIC_MAX", 1 << 20)
    p = make_project(files())
    config = load_config(p.root)
    keygen(config.signing_key, config.public_key)
    return p


def publish_disk(s: Context, name: str, tag: str | None = None) -> PublishResult:
    return publish(s, name, tag, "vm")


def make_disk(root: Path, kiln_ctx: Callable[..., Context], text: str | None = None,
              *, container_verified: bool = False, again: bool = False) -> DiskResult:
    """small's disk (its hello layer writing `text`, when given), made by kiln.vm.build from
    its container, which is verified for real first if `container_verified` (the container is
    published beside the disk). `again`: the same definition's disk made again by a kiln that
    writes other bytes for it (here: compressed qcow2 clusters)."""
    if text is not None:
        (root / "layers/hello/layer.yaml").write_text(f"run:\n  - echo {text} > /hello\n")
    with pytest.MonkeyPatch.context() as mp:
        if again:
            convert = vm_build.disk.to_qcow2
            mp.setattr(vm_build.disk, "to_qcow2",
                       lambda raw, out, compress: convert(raw, out, compress=True))
            shutil.rmtree(disk_folder(root, "small", prepare(Project(root), "small").fingerprint))
        return build_disk(kiln_ctx(Project(root), verify=container_verified), "small")


def vm_record(root: Path, image: str, disk: DiskResult, *, passed: bool = True,
              boots: tuple[str, ...] = ("bios", "uefi")) -> records.VerifyRecord:
    """The record kiln.vm.verify saves after booting `disk` in `boots` (TCG) and running the
    image's VM suite in each (every test file's checks passed, or failed). test_vm.py holds
    it to the record of a real boot, field for field where they can agree, so it cannot drift
    from what the verifier writes."""
    prepared = prepare(Project(root), image)
    suite = testsuite.collect(root, prepared.plan, "vm")
    outcome = "passed" if passed else "failed"
    owner = {folder: name for name, folder in suite.parts}
    tests = [(owner[f.rsplit("/", 1)[0]], f) for f in suite.files
             if f.rsplit("/", 1)[-1].startswith("test_")]
    reports = [BootReport(mode, accel="tcg", ssh_seconds=40.0, test_seconds=2.0,
                          checks=tuple(records.CheckResult(layer, f"{path}::test_it", outcome)
                                       for layer, path in tests))
               for mode in boots]
    checks = tuple(c for r in reports for c in r.checks)
    target = testsuite.Target(prepared.plan, prepared.ref, str(disk.manifest["image_id"]),
                              prepared.fingerprint)
    return testsuite.record(
        target, suite, "2026-01-02T00:00:00+00:00", passed, checks=checks, seconds=91.0,
        reason="" if passed else f"{len(checks)} of {len(checks)} checks failed",
        extra={"disk_sha256": disk.manifest["sha256"], "kernel": disk.manifest["kernel"],
               "boots": [r.to_json() for r in reports]})


def verify_disk(root: Path, disk: DiskResult, *, passed: bool = True,
                boots: tuple[str, ...] = ("bios", "uefi")) -> None:
    records.save(root, vm_record(root, "small", disk, passed=passed, boots=boots))


def uploads(local: LocalRegistry) -> int:
    return sum("/blobs/uploads/" in line for line in local.log.read_text().splitlines()
               if line.startswith("127.0.0.1 - "))


def verified_disk(root: Path, kiln_ctx: Callable[..., Context], text: str = "one"
                  ) -> DiskResult:
    disk = make_disk(root, kiln_ctx, text)
    verify_disk(root, disk)
    return disk


def session(root: Path, engine: object) -> Context:
    return open_session(Project(root), UI(quiet=True), engine)  # type: ignore[arg-type]


# publish -----------------------------------------------------------------------------------
def test_publish_refuses_a_disk_that_did_not_pass_boot_verification(project, kiln_ctx, engine,
                                                                     registry):
    with pytest.raises(KilnError, match="no disk built"):
        publish_disk(session(project.root, engine), "small")
    disk = make_disk(project.root, kiln_ctx)
    with pytest.raises(KilnError, match="never verified"):
        publish_disk(session(project.root, engine), "small")
    verify_disk(project.root, disk, passed=False)
    with pytest.raises(KilnError, match="failed verification"):
        publish_disk(session(project.root, engine), "small")
    verify_disk(project.root, disk, boots=("bios",))  # --boot bios only
    with pytest.raises(PublishError, match=r"boot mode\(s\) uefi of the disk were not verified"):
        publish_disk(session(project.root, engine), "small")
    verify_disk(project.root, disk)
    (disk.folder / "files.json").rename(disk.folder / "files.json.kept")  # an older disk
    with pytest.raises(KilnError, match=r"the disk has no files\.json"):
        publish_disk(session(project.root, engine), "small")
    (disk.folder / "files.json.kept").rename(disk.folder / "files.json")
    # The same definition's disk made again, from another export of the container (other
    # creation times in docker's init layer), is the same bytes: the record still covers it.
    shutil.rmtree(disk.folder)
    assert make_disk(project.root, kiln_ctx).manifest["sha256"] == disk.manifest["sha256"]
    again = make_disk(project.root, kiln_ctx, again=True)  # remade by another kiln
    assert again.manifest["sha256"] != disk.manifest["sha256"]
    with pytest.raises(PublishError, match="remade after it was verified"):
        publish_disk(session(project.root, engine), "small")
    assert Registry(str(registry.address)).tags(REPO) == []


def test_publish_pull_round_trip_signed_and_republish_uploads_nothing(project, kiln_ctx, engine,
                                                                      registry, tmp_path):
    disk = make_disk(project.root, kiln_ctx, container_verified=True)
    verify_disk(project.root, disk)
    folder = disk.folder
    container = publish(session(project.root, engine), "small")
    s = session(project.root, engine)
    first = publish_disk(s, "small")
    assert first.action == "published"
    assert first.tag == container.tag + "-vm"
    assert first.bytes_uploaded >= (folder / "disk.qcow2").stat().st_size
    reg = Registry(str(registry.address))
    doc = reg.manifest(REPO, first.tag).json
    disk_json = (folder / "disk.json").read_bytes()
    assert doc["artifactType"] == VM_ARTIFACT_TYPE
    assert doc["config"] == {"mediaType": DISK_CONFIG_TYPE, "digest": sha256_digest(disk_json),
                             "size": len(disk_json)}
    assert [layer["mediaType"] for layer in doc["layers"]] == [QCOW2_TYPE, RECORD_TYPE]
    assert doc["subject"]["digest"] == container.digest  # linked to the container it came from
    assert doc["annotations"]["dev.kiln.vm.boot"] == "bios+uefi"
    trust = check_trust(s, REPO, first.digest)  # the same check_trust, the same cosign sidecar
    assert sidecar(first.digest, "sig") in reg.tags(REPO)
    assert trust.provenance["container_image_id"] == disk.manifest["image_id"]
    assert trust.provenance["verification"]["passed"] is True
    # the real cosign checks the disk's signature and attestations as kiln wrote them
    ref = f"{registry.address}/{REPO}@{first.digest}"
    pub = str(load_config(project.root).public_key)
    flags = ("--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry")
    for args in (("verify",), ("verify-attestation", "--type", "slsaprovenance1"),
                 ("verify-attestation", "--type", "cyclonedx"),
                 ("verify-attestation", "--type", PREDICATE_TYPE)):
        got = subprocess.run(["cosign", *args, *flags, ref], capture_output=True, text=True,
                             timeout=120, check=False)
        assert got.returncode == 0, (args, got.stderr)

    # the disk's file manifest, signed: what `kiln drift --ssh` judges its machines against
    listed = signed_manifest(s, REPO, first.digest)
    assert listed == vm_files.load(folder)
    assert listed.entries["/hello"].sha256 == hashlib.sha256(b"one\n").hexdigest()
    assert listed.entries["/bin/sh"].link == "/bin/busybox"
    assert listed.entries[f"/boot/vmlinuz-{KERNEL}"].sha256 == \
        hashlib.sha256(b"not a kernel\n").hexdigest()
    # `kiln drift --ssh` judges against the disk's manifest: a container tag is refused before
    # any SSH; the disk's tag passes the trust check and only then meets the (closed) port
    with pytest.raises(DriftError, match="is a container image"):
        judge_vm(s, "admin@127.0.0.1:1", f"small:{container.tag}")
    with pytest.raises(DriftError, match="cannot run the file listing over SSH"):
        judge_vm(s, "admin@127.0.0.1:1", f"small:{first.tag}", accept_new_host=True)

    before = uploads(registry)
    again = publish_disk(session(project.root, engine), "small")
    assert (again.action, again.digest, again.tag) == ("up to date", first.digest, first.tag)
    assert (again.bytes_uploaded, again.blobs_uploaded) == (0, 0)
    assert uploads(registry) == before  # not one upload started

    out = tmp_path / "pulled"
    got = pull_disk(session(project.root, engine), f"small:{first.tag}", out)
    assert (got.digest, got.action) == (first.digest, "downloaded")
    assert (out / "small.qcow2").read_bytes() == (folder / "disk.qcow2").read_bytes()
    assert (out / "small.disk.json").read_bytes() == disk_json
    assert got.boot == ("bios", "uefi") and got.kernel == KERNEL
    assert pull_disk(session(project.root, engine), f"small@{first.digest}",
                     out).action == "up to date"
    assert not list(out.glob("*.part"))
    # a disk is not a container, and a container tag is not a disk
    with pytest.raises(WrongKind, match="is a VM disk"):
        pull(session(project.root, engine), f"small:{first.tag}")
    with pytest.raises(TrustError, match="is a container image"):
        pull_disk(session(project.root, engine), f"small:{container.tag}", out)
    # the tag is immutable: another disk of the same container is refused, tag untouched
    verify_disk(project.root, make_disk(project.root, kiln_ctx, again=True))
    with pytest.raises(ImmutableTagError, match="already names " + first.digest):
        publish_disk(session(project.root, engine), "small")
    assert reg.resolve(REPO, first.tag).digest == first.digest
    with pytest.raises(PublishError, match="for VM disks"):
        publish(session(project.root, engine), "small", tag="mine-vm")
    # channels: a container channel never names a disk, nor a disk channel a container
    with pytest.raises(TrustError, match="is a container image"):
        promote(session(project.root, engine), f"small:{container.tag}", "stable", "vm")
    with pytest.raises(TrustError, match="is a VM disk"):
        promote(session(project.root, engine), f"small:{first.tag}", "stable")
    rows = {r["tag"]: r["target"] for r in catalog(session(project.root, engine))}
    assert rows == {first.tag: "vm", container.tag: "container"}


def _retag(reg: Registry, tag: str, change: Callable[[dict], None]) -> None:
    doc = reg.manifest(REPO, tag).json
    change(doc)
    reg.put_manifest(REPO, tag, canonical_json(doc), OCI_MANIFEST)


def test_pull_refuses_tampered_unsigned_and_revoked_disks(project, kiln_ctx, engine, registry,
                                                          tmp_path):
    folder = verified_disk(project.root, kiln_ctx).folder
    published = publish_disk(session(project.root, engine), "small")
    reg = Registry(str(registry.address))
    out = tmp_path / "out"

    # disk.json changed in the registry (a bigger disk, say): a new manifest under the tag
    original = reg.manifest(REPO, published.tag)
    disk = json.loads((folder / "disk.json").read_text())
    disk["size"] *= 2
    forged = canonical_json(disk)
    reg.upload_blob(REPO, sha256_digest(forged), forged)

    def new_config(doc: dict) -> None:
        doc["config"]["digest"], doc["config"]["size"] = sha256_digest(forged), len(forged)

    _retag(reg, published.tag, new_config)
    with pytest.raises(Unsigned, match="is unsigned"):
        pull_disk(session(project.root, engine), f"small:{published.tag}", out)
    assert not out.exists() or not list(out.iterdir())
    reg.put_manifest(REPO, published.tag, original.body, OCI_MANIFEST)

    # the signature changed
    sig = sidecar(published.digest, "sig")
    sig_manifest = reg.manifest(REPO, sig)

    def forge_signature(doc: dict) -> None:
        for layer in doc["layers"]:
            sig = layer["annotations"][cosign.SIGNATURE_NOTE]
            layer["annotations"][cosign.SIGNATURE_NOTE] = ("B" if sig[0] == "A" else "A") + \
                sig[1:]

    _retag(reg, sig, forge_signature)
    with pytest.raises(SignatureRefused, match="none of its 1 signature"):
        pull_disk(session(project.root, engine), "small@" + published.digest, out)
    with pytest.raises(SignatureRefused):
        promote(session(project.root, engine), f"small:{published.tag}", "stable", "vm")
    reg.put_manifest(REPO, sig, sig_manifest.body, OCI_MANIFEST)

    # the qcow2 blob changed on the registry's disk: the download is checked, nothing is kept
    qcow2_hex = json.loads((folder / "disk.json").read_text())["sha256"]["qcow2"]
    stored = next(registry.data.rglob(f"blobs/sha256/{qcow2_hex[:2]}/{qcow2_hex}/data"))
    data = bytearray(stored.read_bytes())
    data[12345] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="not the signed one"):
        pull_disk(session(project.root, engine), f"small:{published.tag}", out)
    assert not (out / "small.qcow2").exists() and not list(out.glob("*.part"))
    data[12345] ^= 0xFF
    stored.write_bytes(bytes(data))
    assert pull_disk(session(project.root, engine), f"small:{published.tag}", out).action == \
        "downloaded"

    revoke(session(project.root, engine), f"small@{published.digest}", "CVE-2026-0001")
    with pytest.raises(Revoked, match=r"revoked on .*CVE-2026-0001"):
        pull_disk(session(project.root, engine), f"small:{published.tag}", out)


# channels ----------------------------------------------------------------------------------
def test_promote_and_rollback_on_the_vm_channel(project, kiln_ctx, engine, registry, tmp_path):
    verified_disk(project.root, kiln_ctx, "one")
    a = publish_disk(session(project.root, engine), "small")
    move = promote(session(project.root, engine), "small", "stable", "vm")  # the local disk
    assert (move.channel, move.digest, move.tag) == ("stable-vm", a.digest, a.tag)
    verified_disk(project.root, kiln_ctx, "two")
    b = publish_disk(session(project.root, engine), "small")
    assert b.tag != a.tag
    assert promote(session(project.root, engine), f"small:{b.tag}", "stable", "vm").previous == \
        a.digest
    reg = Registry(str(registry.address))
    assert reg.resolve(REPO, "stable") is None  # the container channel is another tag
    promote(session(project.root, engine), f"small:{a.tag}", "candidate", "vm")
    # a disk channel can be promoted from another disk channel, by its name
    assert promote(session(project.root, engine), "small:stable", "candidate",
                   "vm").digest == b.digest
    got = pull_disk(session(project.root, engine), "small", tmp_path / "out")  # stable-vm
    assert got.digest == b.digest

    s = session(project.root, engine)
    back = rollback(s, "small", "stable", "vm")
    assert (back.channel, back.previous, back.digest) == ("stable-vm", b.digest, a.digest)
    assert reg.resolve(REPO, "stable-vm").digest == a.digest
    assert [(e["action"], e["digest"]) for e in history(s, REPO, "stable-vm")] == [
        ("promote", a.digest), ("promote", b.digest), ("rollback", a.digest)]
    assert pull_disk(session(project.root, engine), "small:stable", tmp_path / "o2").digest == \
        a.digest

    # revoking a digest rolls back the disk channels naming it
    moves = revoke(session(project.root, engine), f"small@{b.digest}", "bad disk")
    assert [(m.channel, m.digest) for m in moves] == [("candidate-vm", a.digest)]

    rows = {r["tag"]: r for r in catalog(session(project.root, engine))}
    assert set(rows) == {a.tag, b.tag}
    assert (rows[a.tag]["target"], rows[a.tag]["channels"]) == ("vm", ["candidate-vm",
                                                                        "stable-vm"])
    assert rows[b.tag]["revoked"] == "yes"
