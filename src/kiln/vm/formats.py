"""The disk in the formats clouds import, made from disk.raw with qemu-img.

| format | qemu-img | for |
| --- | --- | --- |
| raw | (disk.raw itself) | AWS import-snapshot, GCP (disk.raw in a tar.gz), OpenStack |
| qcow2 | (made with every disk) | OpenStack, KVM hosts, kiln's registry artifact |
| vmdk | `-O vmdk -o subformat=streamOptimized` | vSphere, OVA |
| vhd | `-O vpc -o subformat=fixed,force_size=on` | Azure (fixed VHD, size a whole MiB) |

Bytes. qemu-img writes two things that are not a function of the raw disk: the vmdk
descriptor's `CID` (a random content id, 8 hex digits in the plain-text descriptor) and the
vhd footer's `Unique Id` (a random UUID) and `Time Stamp` (seconds since 2000, now); the vhd
footer's checksum covers both. They are set here, in place, from the image's fingerprint (the
vhd time stamp to 0, 2000-01-01), so the same raw disk gives the same bytes in every format. The
vmdk descriptor also names the file, so it is always converted as `disk.vmdk`.

Extra formats are recorded in formats.json beside disk.json, not in it: disk.json is the disk's
identity (the published artifact's config), and asking for a vmdk must not change it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from kiln.errors import KilnError
from kiln.fingerprint import file_sha256
from kiln.run import run
from kiln.vm.spec import MIB, derived_uuid

FORMATS = ("raw", "qcow2", "vmdk", "vhd")
EXTRA = {"vmdk": ("disk.vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"]),
         "vhd": ("disk.vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"])}
RECORD = "formats.json"
CID_RE = re.compile(rb"\nCID=[0-9a-f]{1,8}\n")
DESCRIPTOR_BYTES = 64 * 1024  # the descriptor sits in the first sectors of the file
VHD_FOOTER = 512


def parse(text: str | None) -> tuple[str, ...]:
    """`--format vmdk,vhd` -> ("vmdk", "vhd"); raw and qcow2 are made with every disk."""
    if not text:
        return ()
    wanted = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise KilnError(f"--format {text}: unknown format {unknown[0]!r} "
                        f"(use {', '.join(FORMATS)}, several as vmdk,vhd)")
    return wanted


def load(folder: Path) -> dict[str, Any]:
    """formats.json of a disk folder ({} when no extra format was made)."""
    try:
        return dict(json.loads((folder / RECORD).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def make(folder: Path, manifest: dict[str, Any], wanted: tuple[str, ...]) -> dict[str, Any]:
    """Convert disk.raw into each wanted extra format that is not there yet for these bytes."""
    raw = folder / "disk.raw"
    record_path = folder / RECORD
    record = load(folder)
    if record.get("raw_sha256") != manifest["sha256"]["raw"]:
        record = {"raw_sha256": manifest["sha256"]["raw"]}
    for fmt in wanted:
        if fmt not in EXTRA:
            continue
        name, options = EXTRA[fmt]
        out = folder / name
        if fmt in record and out.exists() and out.stat().st_size == record[fmt]["bytes"]:
            continue
        staged = folder / ".formats" / name  # same file name: the vmdk descriptor holds it
        staged.parent.mkdir(exist_ok=True)
        run(["qemu-img", "convert", "-f", "raw", *options, raw, staged])
        fingerprint = str(manifest["fingerprint"])
        if fmt == "vmdk":
            pin_vmdk_cid(staged, fingerprint)
        else:
            pin_vhd_footer(staged, fingerprint, int(manifest["size"]))
        check(raw, staged, fmt)
        os.replace(staged, out)
        staged.parent.rmdir()
        record[fmt] = {"file": name, "sha256": file_sha256(out), "bytes": out.stat().st_size}
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def check(raw: Path, converted: Path, fmt: str) -> None:
    """qemu-img's own check where the format has one (vmdk; vpc has none), and for both a
    sector-by-sector comparison with the raw disk."""
    driver = "vpc" if fmt == "vhd" else fmt
    if fmt == "vmdk":
        run(["qemu-img", "check", "-q", "-f", driver, converted])
    run(["qemu-img", "compare", "-q", "-f", "raw", "-F", driver, raw, converted])


def pin_vmdk_cid(path: Path, fingerprint: str) -> None:
    """qemu-img writes `CID=%x` of a random number (1 to 8 digits) into the descriptor, a
    NUL-terminated text in the sectors the sparse header names (descriptor offset and size, in
    sectors, at bytes 28 and 36). qemu rewrites the CID once more on the first data write, which
    can leave a stale byte of the longer text after the NUL: the whole area is rewritten, the
    text with an 8-digit CID and zeros to its end."""
    with path.open("r+b") as f:
        header = f.read(512)
        offset, sectors = struct.unpack_from("<QQ", header, 28)
        if header[:4] != b"KDMV" or not 0 < sectors * 512 <= DESCRIPTOR_BYTES:
            raise KilnError(f"{path}: not a sparse vmdk with an embedded descriptor "
                            "(qemu-img changed its layout)")
        f.seek(offset * 512)
        area = f.read(sectors * 512)
        text = area.split(b"\0", 1)[0]
        cid = hashlib.sha256(f"kiln-vmdk-cid/{fingerprint}".encode()).hexdigest()[:8]
        pinned, count = CID_RE.subn(b"\nCID=" + cid.encode() + b"\n", text, count=1)
        if count != 1 or not text.startswith(b"# Disk DescriptorFile") or \
                len(pinned) >= len(area):
            raise KilnError(f"{path}: no CID in the vmdk descriptor, or no room after it "
                            "(qemu-img changed its layout)")
        f.seek(offset * 512)
        f.write(pinned.ljust(len(area), b"\0"))


def pin_vhd_footer(path: Path, fingerprint: str, size: int) -> None:
    """Fixed VHD: the raw disk then a 512-byte footer (VHD spec 1.0): cookie, ..., time stamp
    at 24, current size at 48, checksum at 64, unique id at 68."""
    if size % MIB:
        raise KilnError(f"{path}: {size} bytes is not a whole MiB (Azure requires it)")
    with path.open("r+b") as f:
        f.seek(-VHD_FOOTER, os.SEEK_END)
        footer = bytearray(f.read(VHD_FOOTER))
        if footer[:8] != b"conectix" or struct.unpack_from(">Q", footer, 48)[0] != size:
            raise KilnError(f"{path}: not a fixed VHD of {size} bytes")
        struct.pack_into(">I", footer, 24, 0)
        footer[68:84] = bytes.fromhex(derived_uuid(fingerprint, "vhd").replace("-", ""))
        struct.pack_into(">I", footer, 64, 0)
        struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
        f.seek(-VHD_FOOTER, os.SEEK_END)
        f.write(footer)
