"""VM disks as signed OCI artifacts, against a real registry process (per test).

The fast path, on purpose: the "disk" is a small qcow2 made here with qemu-img, with a disk.json
in the layout kiln.vm.build writes, in the folder it writes it to; the VM verification record is
simulated with records.save, as test_publish.py does for containers. What is under test is
publishing, pulling, trust and channels, not booting (test_vm.py boots the real base-vm disk).
The blob is a few MiB of random data and MONOLITHIC_MAX is lowered to 1 MiB, so the chunked
(PATCH) upload path runs as it does for a real ~320 MiB disk.

Only the round-trip test builds the container for real (the busybox test image, seconds), to
publish it beside the disk and check the link between them. The others stand in a tiny fake
for the engine (a disk needs from it only its container's build time), so they never touch the
shared Docker engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import kiln.registry as registry_mod
import kiln.release.lease as lease_mod
from kiln import records
from kiln.config import load_config
from kiln.context import BuildResult, prepare
from kiln.embedded import LocalRegistry
from kiln.errors import KilnError
from kiln.fingerprint import file_sha256
from kiln.fleet.attest import signed_manifest
from kiln.fleet.drift import DriftError
from kiln.fleet.manifest import DEFAULT_MUTABLE, PREDICATE_TYPE
from kiln.fleet.remote import judge_vm
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.registry import OCI_MANIFEST, Registry, sha256_digest
from kiln.release import cosign
from kiln.release.api import (
    PublishResult,
    Session,
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
from kiln.verify import find_suite
from kiln.vm import files as vm_files
from kiln.vm.build import disk_folder

REPO = "kiln/small"
CREATED = "2026-11-29T10:00:00.123456789Z"
pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is not installed")


def files(text: str = "one") -> dict[str, str]:
    return {
        "layers/hello/layer.yaml": f"run:\n  - echo {text} > /hello\n",
        "images/small.yaml": '{busybox}\nversion: "1.0"\nlayers: [hello]\n',
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


class NoEngine:
    """What a disk's publish asks the engine: its container's build time."""

    def inspect_image(self, ref: str) -> dict[str, str]:
        return {"Created": CREATED}

    def image_id(self, ref: str) -> None:
        return None  # the base is not here: the provenance names no base digest

    def containers(self) -> list[object]:
        return []  # nothing for publish's sweep of killed runs' leftovers


@dataclass(frozen=True)
class Container:
    image_id: str
    fingerprint: str
    ref: str


def publish_disk(s: Session, name: str, tag: str | None = None) -> PublishResult:
    return publish(s, name, tag, "vm")


def session(root: Path, engine: object | None = None) -> Session:
    return open_session(Project(root), UI(quiet=True), engine or NoEngine())  # type: ignore[arg-type]


def fake_container(root: Path, text: str) -> Container:
    """The definition as if built: its fingerprint is real, its image ID made up."""
    (root / "layers/hello/layer.yaml").write_text(f"run:\n  - echo {text} > /hello\n")
    fp = prepare(Project(root), "small").fingerprint
    return Container("sha256:" + hashlib.sha256(fp.encode()).hexdigest(), fp, f"kiln/small:{fp}")


def build_container(root: Path, kiln_ctx: Callable[..., object], text: str) -> BuildResult:
    (root / "layers/hello/layer.yaml").write_text(f"run:\n  - echo {text} > /hello\n")
    result = build_image(kiln_ctx(Project(root), verify=False), "small")  # type: ignore[arg-type]
    suite = find_suite(root, prepare(Project(root), "small").plan).digest  # the current suite
    records.save(root, records.VerifyRecord(
        image="small", image_id=result.image_id, fingerprint=result.fingerprint,
        target="container", suite=suite, passed=True, started="2026-01-01T00:00:00Z",
        checks=(records.CheckResult("hello", "test_hello.py::test_it", "passed"),)))
    return result


def make_disk(root: Path, built: BuildResult | Container, boot: tuple[str, ...] = ("bios", "uefi"),
              mib: int = 3) -> Path:
    """A small real qcow2 (random content: incompressible, several upload chunks) and a
    disk.json where kiln.vm.build puts them."""
    folder = disk_folder(root, "small", built.fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    raw, qcow2 = folder / "disk.raw", folder / "disk.qcow2"
    with raw.open("wb") as f:
        f.write(os.urandom(mib << 20))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True)
    manifest = {
        "image": "small", "version": "1.0", "fingerprint": built.fingerprint,
        "image_id": built.image_id, "ref": built.ref, "recipe": "r" * 64, "disk_version": 1,
        "boot": list(boot), "filesystem": "ext4", "size": mib << 20, "kernel": "6.1.0-test",
        "cmdline": "root=UUID=x console=ttyS0", "partitions": [], "root_fs_uuid": "x",
        "sha256": {"raw": file_sha256(raw), "qcow2": file_sha256(qcow2)},
        "bytes": {"raw": mib << 20, "qcow2": qcow2.stat().st_size},
        "qcow2_compressed": False,
    }
    (folder / "disk.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tree = folder / "tree"  # the disk's root filesystem, as kiln.vm.build lists it
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc/hello").write_text(f"{mib}\n")
    (tree / "etc/alias").unlink(missing_ok=True)
    (tree / "etc/alias").symlink_to("hello")
    vm_files.write(folder, vm_files.of_tree(tree, built.image_id, DEFAULT_MUTABLE))
    shutil.rmtree(tree)
    return folder


def verify_disk(root: Path, built: BuildResult | Container, folder: Path, *, passed: bool = True,
                boots: tuple[str, ...] = ("bios", "uefi")) -> None:
    disk = json.loads((folder / "disk.json").read_text())
    records.save(root, records.VerifyRecord(
        image="small", image_id=built.image_id, fingerprint=built.fingerprint, target="vm",
        suite="1" * 64, passed=passed, started="2026-01-02T00:00:00Z", seconds=61.0,
        checks=(records.CheckResult("vm", "test_vm_kernel.py::test_kernel", "passed"),),
        reason="" if passed else "1 of 1 checks failed",
        extra={"disk_sha256": disk["sha256"], "kernel": disk["kernel"],
               "boots": [{"mode": m, "accel": "tcg", "error": ""} for m in boots]}))


def uploads(local: LocalRegistry) -> int:
    return sum("/blobs/uploads/" in line for line in local.log.read_text().splitlines()
               if line.startswith("127.0.0.1 - "))


def verified_disk(root: Path, text: str = "one") -> tuple[Container, Path]:
    built = fake_container(root, text)
    folder = make_disk(root, built)
    verify_disk(root, built, folder)
    return built, folder


# publish -----------------------------------------------------------------------------------
def test_publish_refuses_a_disk_that_did_not_pass_boot_verification(project, registry):
    built = fake_container(project.root, "one")
    with pytest.raises(KilnError, match="no disk built"):
        publish_disk(session(project.root), "small")
    folder = make_disk(project.root, built)
    with pytest.raises(KilnError, match="never verified"):
        publish_disk(session(project.root), "small")
    verify_disk(project.root, built, folder, passed=False)
    with pytest.raises(KilnError, match="failed verification"):
        publish_disk(session(project.root), "small")
    verify_disk(project.root, built, folder, boots=("bios",))  # --boot bios only
    with pytest.raises(PublishError, match=r"boot mode\(s\) uefi of the disk were not verified"):
        publish_disk(session(project.root), "small")
    verify_disk(project.root, built, folder)
    (folder / "files.json").rename(folder / "files.json.kept")  # an older disk
    with pytest.raises(KilnError, match=r"the disk has no files\.json"):
        publish_disk(session(project.root), "small")
    (folder / "files.json.kept").rename(folder / "files.json")
    make_disk(project.root, built)  # remade after verification: other bytes
    with pytest.raises(PublishError, match="remade after it was verified"):
        publish_disk(session(project.root), "small")
    assert Registry(str(registry.address)).tags(REPO) == []


def test_publish_pull_round_trip_signed_and_republish_uploads_nothing(project, kiln_ctx, engine,
                                                                      registry, tmp_path):
    built = build_container(project.root, kiln_ctx, "one")
    folder = make_disk(project.root, built)
    verify_disk(project.root, built, folder)
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
    assert trust.provenance["container_image_id"] == built.image_id
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
    assert listed.entries["/etc/hello"].sha256 == hashlib.sha256(b"3\n").hexdigest()
    assert listed.entries["/etc/alias"].link == "hello"
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
    assert got.boot == ("bios", "uefi") and got.kernel == "6.1.0-test"
    assert pull_disk(session(project.root, engine), f"small@{first.digest}",
                     out).action == "up to date"
    assert not list(out.glob("*.part"))
    # a disk is not a container, and a container tag is not a disk
    with pytest.raises(WrongKind, match="is a VM disk"):
        pull(session(project.root, engine), f"small:{first.tag}")
    with pytest.raises(TrustError, match="is a container image"):
        pull_disk(session(project.root, engine), f"small:{container.tag}", out)
    # the tag is immutable: another disk of the same container is refused, tag untouched
    make_disk(project.root, built)
    verify_disk(project.root, built, folder)
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


def test_pull_refuses_tampered_unsigned_and_revoked_disks(project, registry, tmp_path):
    _, folder = verified_disk(project.root)
    published = publish_disk(session(project.root), "small")
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
        pull_disk(session(project.root), f"small:{published.tag}", out)
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
        pull_disk(session(project.root), "small@" + published.digest, out)
    with pytest.raises(SignatureRefused):
        promote(session(project.root), f"small:{published.tag}", "stable", "vm")
    reg.put_manifest(REPO, sig, sig_manifest.body, OCI_MANIFEST)

    # the qcow2 blob changed on the registry's disk: the download is checked, nothing is kept
    qcow2_hex = json.loads((folder / "disk.json").read_text())["sha256"]["qcow2"]
    stored = next(registry.data.rglob(f"blobs/sha256/{qcow2_hex[:2]}/{qcow2_hex}/data"))
    data = bytearray(stored.read_bytes())
    data[12345] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="not the signed one"):
        pull_disk(session(project.root), f"small:{published.tag}", out)
    assert not (out / "small.qcow2").exists() and not list(out.glob("*.part"))
    data[12345] ^= 0xFF
    stored.write_bytes(bytes(data))
    assert pull_disk(session(project.root), f"small:{published.tag}", out).action == \
        "downloaded"

    revoke(session(project.root), f"small@{published.digest}", "CVE-2026-0001")
    with pytest.raises(Revoked, match=r"revoked on .*CVE-2026-0001"):
        pull_disk(session(project.root), f"small:{published.tag}", out)


# channels ----------------------------------------------------------------------------------
def test_promote_and_rollback_on_the_vm_channel(project, registry, tmp_path):
    verified_disk(project.root, "one")
    a = publish_disk(session(project.root), "small")
    move = promote(session(project.root), "small", "stable", "vm")  # the local disk
    assert (move.channel, move.digest, move.tag) == ("stable-vm", a.digest, a.tag)
    verified_disk(project.root, "two")
    b = publish_disk(session(project.root), "small")
    assert b.tag != a.tag
    assert promote(session(project.root), f"small:{b.tag}", "stable", "vm").previous == \
        a.digest
    reg = Registry(str(registry.address))
    assert reg.resolve(REPO, "stable") is None  # the container channel is another tag
    promote(session(project.root), f"small:{a.tag}", "candidate", "vm")
    # a disk channel can be promoted from another disk channel, by its name
    assert promote(session(project.root), "small:stable", "candidate",
                   "vm").digest == b.digest
    got = pull_disk(session(project.root), "small", tmp_path / "out")  # stable-vm
    assert got.digest == b.digest

    s = session(project.root)
    back = rollback(s, "small", "stable", "vm")
    assert (back.channel, back.previous, back.digest) == ("stable-vm", b.digest, a.digest)
    assert reg.resolve(REPO, "stable-vm").digest == a.digest
    assert [(e["action"], e["digest"]) for e in history(s, REPO, "stable-vm")] == [
        ("promote", a.digest), ("promote", b.digest), ("rollback", a.digest)]
    assert pull_disk(session(project.root), "small:stable", tmp_path / "o2").digest == \
        a.digest

    # revoking a digest rolls back the disk channels naming it
    moves = revoke(session(project.root), f"small@{b.digest}", "bad disk")
    assert [(m.channel, m.digest) for m in moves] == [("candidate-vm", a.digest)]

    rows = {r["tag"]: r for r in catalog(session(project.root))}
    assert set(rows) == {a.tag, b.tag}
    assert (rows[a.tag]["target"], rows[a.tag]["channels"]) == ("vm", ["candidate-vm",
                                                                        "stable-vm"])
    assert rows[b.tag]["revoked"] == "yes"
