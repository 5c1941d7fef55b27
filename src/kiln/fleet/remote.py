"""Drift of a VM built from a kiln disk, over SSH (paramiko): the same comparison, every file,
against the disk's own signed file manifest (kiln.vm.files: its root filesystem as made).

A disk has no `docker diff`, so the VM lists every path of its root filesystem (one `find`,
staying on that filesystem and pruning the mutable paths) and hashes every regular file (one
`sha256sum`), as root (`sudo -n` when the login is not root). GNU findutils and coreutils are
needed on the VM, as on any Debian.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable
from typing import Any

import paramiko

from kiln.context import Context
from kiln.fleet.attest import signed_manifest
from kiln.fleet.drift import Drift, DriftError, compare, compare_packages
from kiln.fleet.manifest import DPKG_STATUS, Entry, FileManifest, dpkg_packages
from kiln.registry import RegistryError
from kiln.release.errors import TrustError
from kiln.release.names import channel_tag, parse_spec
from kiln.release.trust import check_kind, check_trust

TYPES = {"f": "file", "d": "dir", "l": "symlink", "c": "char", "b": "block", "p": "fifo",
         "s": "socket"}
SEPARATOR = b"\0--kiln-hashes--\0"


def listing_command(root: str, mutable: Iterable[str]) -> str:
    """A shell command printing every path under `root` (NUL-separated records), then the
    sha256 of every regular file. `root` is "/" on a VM ("/some/dir" in tests)."""
    base = root.rstrip("/")
    prune = " -o ".join(f"-path {shlex.quote(base + m)}" for m in sorted(set(mutable)))
    select = f"\\( {prune} \\) -prune -o" if prune else ""
    top = shlex.quote(root)
    return (f"find {top} -xdev {select} -printf '%y %m %U %G %s %p\\0%l\\0' && "
            f"printf '\\0--kiln-hashes--\\0' && "
            f"find {top} -xdev {select} -type f -print0 | xargs -0 -r sha256sum -z")


def parse_listing(output: bytes, root: str) -> dict[str, Entry]:
    """Entries (paths relative to `root`, written absolute) from listing_command's output."""
    listing, sep, hashes = output.partition(SEPARATOR)
    if not sep:
        raise DriftError("the file listing from the VM is incomplete (find failed?)")
    base = root.rstrip("/")
    sums: dict[str, str] = {}
    for record in hashes.split(b"\0"):
        if record:
            digest, _, path = record.decode(errors="surrogateescape").partition("  ")
            sums[path] = digest
    fields = listing.split(b"\0")
    out: dict[str, Entry] = {}
    for head, link in zip(fields[0::2], fields[1::2], strict=False):
        parts = head.decode(errors="surrogateescape").split(" ", 5)
        if len(parts) < 6:
            continue
        kind, mode, uid, gid, size, full = parts
        path = full[len(base):] if base and full.startswith(base) else full
        if not path or path == "/":
            continue
        entry_type = TYPES.get(kind, "other")
        out[path] = Entry(path, entry_type, int(mode, 8), int(uid), int(gid),
                          int(size) if entry_type == "file" else 0,
                          sums.get(full, "") if entry_type == "file" else "",
                          link.decode(errors="surrogateescape") if entry_type == "symlink"
                          else "")
    return out


def judge_listing(manifest: FileManifest, output: bytes, root: str, instance: str,
                  repository: str, digest: str, status: str | None) -> Drift:
    drift = Drift(instance, repository, digest)
    observed: dict[str, Entry | None] = dict(parse_listing(output, root))
    drift.checked = len(observed)
    compare(manifest, observed, drift, complete=True)
    if status is not None:
        compare_packages(manifest, dpkg_packages(status), drift)
    return drift


def judge_ssh(manifest: FileManifest, target: str, repository: str, digest: str, *,
              key_file: str | None = None, known_hosts: str | None = None,
              accept_new_host: bool = False) -> Drift:
    """Drift of the VM at `user@host[:port]` against `manifest` (already verified)."""
    started = time.monotonic()
    user, _, hostport = target.rpartition("@")
    host, _, port = hostport.partition(":")
    user = user or "root"
    sudo = "" if user == "root" else "sudo -n "
    client = paramiko.SSHClient()
    client.load_system_host_keys(known_hosts)
    # An unknown host key is refused unless asked: a drift check must not trust a stranger.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if accept_new_host
                                       else paramiko.RejectPolicy())
    try:
        client.connect(host, port=int(port or 22), username=user, key_filename=key_file,
                       timeout=30)
        listing = _run(client, sudo + "sh -c " + shlex.quote(
            listing_command("/", manifest.mutable)))
        status = _run(client, f"{sudo}cat {DPKG_STATUS}", check=False)
    except (paramiko.SSHException, OSError) as exc:
        raise DriftError(f"{target}: cannot run the file listing over SSH: {exc}") from None
    finally:
        client.close()
    drift = judge_listing(manifest, listing, "/", target, repository, digest,
                          status.decode(errors="replace") if status else None)
    drift.seconds = time.monotonic() - started
    return drift


def _run(client: paramiko.SSHClient, command: str, check: bool = True) -> bytes:
    _, stdout, stderr = client.exec_command(command, timeout=600)
    data: bytes = stdout.read()
    code = stdout.channel.recv_exit_status()
    if check and code != 0:
        raise DriftError(f"`{command[:60]}...` failed on the VM (exit {code}): "
                         f"{stderr.read().decode(errors='replace').strip()[:200]}")
    return data if code == 0 else b""


def judge_vm(s: Context, target: str, spec: str, **ssh: Any) -> Drift:
    """Drift of the VM at `target` against the signed file manifest of the disk `spec` names:
    `image:<channel>` is the disk channel (`<channel>-vm`), or a disk's tag or @digest. The
    disk must pass the whole trust check (signed, verified, not revoked), as `kiln pull-disk`."""
    name, ref = parse_spec(spec)
    ref = ref or s.config.channels[0]
    if ref in s.config.channels:
        ref = channel_tag(ref, "vm")
    repo = s.config.repository(name)
    try:
        found = s.registry.resolve(repo, ref)
        if found is None:
            raise DriftError(f"refusing to judge {target}: {s.registry.host}/{repo}:{ref} does "
                             "not exist (publish the disk with `kiln publish <image> --target "
                             "vm`)")
        check_kind(check_trust(s, repo, found.digest), "vm")
        manifest = signed_manifest(s, repo, found.digest)
    except (RegistryError, TrustError) as exc:
        raise DriftError(f"refusing to judge {target}: {exc}") from None
    return judge_ssh(manifest, target, repo, found.digest, **ssh)
