"""A NoCloud seed: how kiln's verifier hands a machine its SSH key, hostname and user data, the
way a cloud does, instead of editing the disk.

The seed is an ISO 9660 volume labelled `cidata` holding `meta-data` (instance-id,
local-hostname) and `user-data` (#cloud-config: the key and a runcmd marker), made with
genisoimage (what cloud-localds runs). It is attached as a second, read-only disk; cloud-init's
ds-identify finds it by its label. Every value is new for every run, so a check that sees it on
the machine knows it came from this seed and not from the image.
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
                "ssh_key": self.ssh_key, "marker": MARKER, "token": self.token}


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
    user_data = {"ssh_authorized_keys": [seed.ssh_key],
                 "runcmd": [["sh", "-c", f"mkdir -p {Path(MARKER).parent} && "
                             f"echo {seed.token} > {MARKER}"]]}
    (folder / "user-data").write_text("#cloud-config\n" + json.dumps(user_data, indent=1) + "\n")
    run([GENISOIMAGE, "-quiet", "-output", seed.iso, "-volid", "cidata", "-joliet", "-rock",
         folder / "user-data", folder / "meta-data"])
    return seed
