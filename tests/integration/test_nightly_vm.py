"""The nightly makes VM disks too: the sample base-vm built from the Debian mirror, a package on
a loopback repository (aptrepo.py), a real registry process and real qemu (TCG in CI).

  base-vm     the sample's definition and lock, plus the loopback repository's sources (lock
              resolution runs in the base) and one boot mode, bios (CI time: a bios+uefi disk
              boots twice before it can be published)
  hello-vm    base-vm + kiln-hello from the repository; its disk boots normally, with the
              NoCloud seed, as a cloud boots it
  broken-vm   base-vm + a systemd generator that reboots the machine as soon as systemd starts
              (qemu runs with -no-reboot, so it stops): its disk's boot fails after about a
              minute of TCG, not after a full boot and suite; its container is fine

CI time is what this test is designed around: one night does it all, with two boots in all
(one full, one short failure). Before it, hello-vm was built by hand with kiln-hello 1.0 (no
disk, no boot); kiln-hello 1.1 then reaches the repository, and the night must rebuild
hello-vm for it, make its disk, boot it, publish it and move candidate-vm; broken-vm's
container is published but its disk fails its boot, which fails that disk only (not its image,
not hello-vm). A second night changes nothing and boots nothing. Images are kept for
test_vm.py (keep_images): `base` is the same image, and base-vm's steps are in the build cache.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aptrepo import AptRepo, repo_files

import kiln.release.lease as lease_mod
from kiln import aptlock, records
from kiln.config import load_config
from kiln.context import Context, prepare
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.nightly import Options, Result, run_nightly
from kiln.pipeline import build_image, ensure_base
from kiln.registry import Registry
from kiln.release.api import history, open_session
from kiln.release.trust import check_trust
from kiln.report import PackageChange
from kiln.signing import keygen
from kiln.ui import UI

pytestmark = [pytest.mark.slow, pytest.mark.keep_images]

REPO = Path(__file__).resolve().parents[2]


def vm_files(sources: str) -> dict[str, str]:
    return {
        **repo_files(sources, image=False),  # base-vm takes the layer
        "layers/broken-boot/layer.yaml": (
            "description: the machine reboots as soon as systemd starts, so the boot fails\n"
            "files:\n  - src: kiln-broken-boot\n"
            "    dest: /etc/systemd/system-generators/kiln-broken-boot\n    mode: '0755'\n"),
        "layers/broken-boot/files/kiln-broken-boot": (
            "#!/bin/sh\necho 'kiln-broken-boot: rebooting on purpose' > /dev/console\n"
            "echo b > /proc/sysrq-trigger\n"),
        "images/broken-vm.yaml": (
            "description: base-vm with the test repository; its disk cannot boot\n"
            'version: "1"\nbase:\n  image: base-vm\nlayers: [broken-boot]\n'
            "targets: [vm]\n"),
        "layers/hello/layer.yaml": "packages: [kiln-hello]\n",
        "layers/hello/tests/test_hello.py": (
            "def test_hello_installed(host):\n"
            "    assert host.package('kiln-hello').is_installed\n"),
        "images/hello-vm.yaml": (
            'version: "1"\nbase:\n  image: base-vm\nlayers: [hello]\ntargets: [vm]\n'),
    }


@pytest.fixture
def apt_repo(tmp_path: Path) -> Iterator[AptRepo]:
    repo = AptRepo(tmp_path / "apt")
    repo.add("kiln-hello", "1.0")
    with repo:
        yield repo


@pytest.fixture
def project(tmp_path: Path, apt_repo: AptRepo, registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The sample base and base-vm (definitions and locks as in this repository, so the
    engine's images are the very ones test_vm.py builds), and the two images above."""
    if not shutil.which("qemu-system-x86_64") or not shutil.which("grub-mkimage"):
        pytest.skip("qemu and grub are not installed (scripts/setup installs them)")
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    root = tmp_path / "project"
    shutil.copytree(REPO / "layers", root / "layers")
    (root / "images").mkdir()
    for name in ("base.yaml", "base.lock", "base-vm.yaml", "base-vm.lock"):
        shutil.copyfile(REPO / "images" / name, root / "images" / name)
    # One boot mode (a bios+uefi disk boots twice to publish) and the repository's sources
    # (lock resolution runs in the base): the engine's build cache has every step before
    # these from any earlier build of base-vm, so only the tail is built again.
    sample = (root / "images/base-vm.yaml").read_text()
    assert "params:" not in sample and "  - hardening-vm\n" in sample
    (root / "images/base-vm.yaml").write_text(
        sample.replace("  - hardening-vm\n", "  - hardening-vm\n  - testrepo\n")
        + "params:\n  vm_boot: bios\n")
    for rel, text in vm_files(apt_repo.sources_line).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    config = load_config(root)
    keygen(config.signing_key, config.public_key)
    yield Project(root)
    shutil.rmtree(records.state_dir(root) / "vm", ignore_errors=True)  # GiBs of disks


def night(kiln_ctx: Callable[..., Context], root: Path, *images: str,
          report: Path | None = None) -> Result:
    return run_nightly(kiln_ctx(Project(root)), Options(only=images, report_dir=report))


def build_by_hand(ctx: Context, name: str) -> None:
    """`kiln lock` and `kiln build --target container --no-verify`: the image's container at
    the repository's current packages, and the inputs a night compares against."""
    prepared = prepare(ctx.project, name)

    def base() -> str:
        ensure_base(ctx, prepared)
        return prepared.base_ref

    aptlock.update(ctx.engine, prepared.plan, base, ctx.project.root, refresh=True)
    build_image(ctx, name)


def writes(registry: LocalRegistry) -> int:
    return sum(bool(re.search(r'"(PUT|POST|PATCH|DELETE) ', line))
               for line in registry.log.read_text().splitlines() if line.startswith("127.0.0.1"))


def test_a_changed_package_rebuilds_boots_and_publishes_the_disk_and_a_failed_boot_fails_only_it(
        project: Project, kiln_ctx: Callable[..., Context], engine: Any, apt_repo: AptRepo,
        registry: LocalRegistry, tmp_path: Path) -> None:
    root = project.root
    build_by_hand(kiln_ctx(project, verify=False), "hello-vm")
    assert '"kiln-hello", version: "1.0"' in (root / "images/hello-vm.lock").read_text()

    apt_repo.add("kiln-hello", "1.1")
    result = night(kiln_ctx, root, "broken-vm", "hello-vm", report=tmp_path / "report")
    report = result.report
    images = {o.image: o for o in report.outcomes}
    disks = {d.image: d for d in report.disks}
    md = report.to_markdown()
    assert {n: o.status for n, o in images.items()} == {"broken-vm": "rebuilt",
                                                         "hello-vm": "rebuilt"}, md
    assert {n: d.status for n, d in disks.items()} == {"broken-vm": "failed",
                                                        "hello-vm": "rebuilt"}, md
    assert report.failed  # the night's exit code says a disk failed

    # hello-vm: rebuilt for the package; its disk made from that container, booted, published
    hello, disk = images["hello-vm"], disks["hello-vm"]
    assert hello.packages == (PackageChange("kiln-hello", "1.0", "1.1"),)
    assert disk.reason.startswith("its container image was rebuilt; booted bios ("), disk
    assert disk.tag == hello.tag + "-vm" and disk.channels == ("candidate-vm",)
    reg = Registry(str(registry.address))
    assert reg.resolve("kiln/hello-vm", "candidate-vm").digest == disk.digest
    assert reg.resolve("kiln/hello-vm", "candidate").digest == hello.digest
    s = open_session(Project(root), UI(quiet=True), engine)
    assert [(e["action"], e["digest"]) for e in history(s, "kiln/hello-vm", "candidate-vm")] \
        == [("promote", disk.digest)]
    trust = check_trust(s, "kiln/hello-vm", disk.digest)  # signed, with its VM record
    container_id = engine.image_id(prepare(Project(root), "hello-vm").ref)
    assert trust.provenance["container_image_id"] == container_id
    assert reg.manifest("kiln/hello-vm", disk.digest).json["subject"]["digest"] == hello.digest
    record = records.load(root, container_id, "vm")
    assert record is not None and record.passed
    # the suite ran over SSH in the booted disk: the new package is in it
    assert any("test_hello.py::test_hello_installed" in c.test and c.outcome == "passed"
               for c in record.checks)

    # broken-vm: its container is published, its disk failed its boot and went nowhere
    broken = disks["broken-vm"]
    assert "failed verification as a VM; boot bios: qemu exited before SSH answered" in \
        broken.reason, broken
    failed = records.load(root, engine.image_id(prepare(Project(root), "broken-vm").ref), "vm")
    assert failed is not None and not failed.passed
    console = Path(failed.extra["boots"][0]["console"])  # kept beside the disk
    assert "kiln-broken-boot: rebooting on purpose" in console.read_text(errors="replace")
    assert images["broken-vm"].channels == ("candidate",)
    assert reg.resolve("kiln/broken-vm", "candidate").digest == images["broken-vm"].digest
    assert reg.resolve("kiln/broken-vm", "candidate-vm") is None
    assert not [t for t in reg.tags("kiln/broken-vm") if t.endswith("-vm")]

    # the report lists each disk right after its image, in all three renderings
    assert "| broken-vm (vm disk) | failed | - | - | - |" in md
    assert f"| hello-vm (vm disk) | rebuilt | {disk.tag} |" in md
    assert [row[0] for row in report.rows()] == ["broken-vm", "broken-vm (vm disk)", "hello-vm",
                                                 "hello-vm (vm disk)"]
    assert (tmp_path / "report/nightly.md").read_text() == md
    assert '"image": "hello-vm"' in (tmp_path / "report/nightly.json").read_text()

    # The next night, nothing changed: no boot, no build, not one registry write.
    before, record_file = writes(registry), records.path(root, container_id, "vm")
    stamp = record_file.stat().st_mtime_ns
    quiet = night(kiln_ctx, root, "hello-vm")
    assert [(d.image, d.status) for d in quiet.report.disks] == [("hello-vm", "unchanged")]
    assert not quiet.report.changed, quiet.report.to_markdown()
    assert quiet.report.headline().startswith("nothing changed: 1 image unchanged (and 1 disk)")
    assert writes(registry) == before
    assert record_file.stat().st_mtime_ns == stamp
    assert not list((records.state_dir(root) / "tmp").rglob("*"))  # no throwaway disk left
