"""A NoCloud seed: how kiln's verifier hands a machine its SSH key, hostname and user data, the
way a cloud does, instead of editing the disk.

The seed is an ISO 9660 volume labelled `cidata` holding `meta-data` (instance-id,
local-hostname) and `user-data` (#cloud-config: the verifier's account and a runcmd marker),
made with genisoimage (what cloud-localds runs).

Root never logs in over SSH (hardening-ssh: PermitRootLogin no). The seed makes an account,
USER, that logs in with the run's key and may run anything as root through sudo without a
password: cloud-init writes its sudoers entry, and a bootcmd sets sudo's setuid bit, which the
disk does not have (the hardening layers remove every setuid bit; the image keeps the sudo
program for datasources that grant it). Both are per boot, in this machine's throwaway disk
only; the seed names what it granted (`facts()["granted"]`) so that the checks and the drift
check on the booted machine can tell the verifier's own access from the image.

It is attached as a second, read-only disk; cloud-init's ds-identify finds it by its label.
Every value is new for every run, so a check that sees it on the machine knows it came from
this seed and not from the image.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import KilnError
from kiln.run import run

MARKER = "/var/lib/kiln-verify/runcmd-marker"
USER = "kiln-verify"  # the account the verifier logs in as (a throwaway machine's only)
SUDO = "/usr/bin/sudo"
# What the seed changes on the machine (its account, the account's sudo, runcmd's marker):
# the verifier's own doing, which the boot test's drift check forgives and nothing else.
ACCOUNTS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid",
            "/etc/subgid")
GRANTED = (*ACCOUNTS, *(f"{p}-" for p in ACCOUNTS), "/etc/.pwd.lock", f"/home/{USER}",
           "/etc/sudoers.d", SUDO, str(Path(MARKER).parent))  # cloud-init sets sudoers.d 0750
GENISOIMAGE = "genisoimage"


@dataclass(frozen=True)
class Seed:
    iso: Path
    instance_id: str
    hostname: str
    ssh_key: str
    token: str  # runcmd writes it to MARKER

    def facts(self) -> dict[str, Any]:
        """What the seed gave, for the checks on the booted machine (the `cloud` fixture)."""
        return {"instance_id": self.instance_id, "hostname": self.hostname,
                "ssh_key": self.ssh_key, "marker": MARKER, "token": self.token, "user": USER,
                "granted": list(GRANTED)}


def check_host() -> None:
    if not shutil.which(GENISOIMAGE):
        raise KilnError(f"{GENISOIMAGE}: not found; verifying an image with cloud-init boots it "
                        "with a NoCloud seed (apt-get install genisoimage; scripts/setup does)")


def make_seed(work: Path, image: str, public_key: str) -> Seed:
    tag = secrets.token_hex(4)
    seed = Seed(iso=work / "seed.iso", instance_id=f"kiln-verify-{secrets.token_hex(8)}",
                hostname=f"{image}-{tag}"[:63], ssh_key=public_key.strip(),
                token=secrets.token_hex(16))
    folder = work / "seed"
    folder.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: no quoting surprises from a key comment or a hostname.
    (folder / "meta-data").write_text(json.dumps(
        {"instance-id": seed.instance_id, "local-hostname": seed.hostname}, indent=1) + "\n")
    account = {"name": USER, "gecos": "kiln verification (this boot only)",
               "shell": "/bin/sh", "lock_passwd": True, "ssh_authorized_keys": [seed.ssh_key],
               "sudo": "ALL=(ALL) NOPASSWD:ALL"}
    user_data = {"users": [account],
                 # bootcmd runs before sshd lets anyone in, on every boot of this disk copy
                 "bootcmd": [["chmod", "4755", SUDO]],
                 "runcmd": [["sh", "-c", f"mkdir -p {Path(MARKER).parent} && "
                             f"echo {seed.token} > {MARKER}"]]}
    (folder / "user-data").write_text("#cloud-config\n" + json.dumps(user_data, indent=1) + "\n")
    run([GENISOIMAGE, "-quiet", "-output", seed.iso, "-volid", "cidata", "-joliet", "-rock",
         folder / "user-data", folder / "meta-data"])
    return seed
