"""What the verifying process and its pytest plugin (kiln.testing) share.

Kept apart from the plugin so that the process that builds and verifies never imports pytest or
testinfra itself: the suite runs in a pytest subprocess, which loads the plugin.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kiln.model import RuntimeConfig

INFO_ENV = "KILN_VERIFY_INFO"  # names the JSON file that tells the plugin what is under test
SCHEME = "kiln"  # testinfra's backend scheme for kiln's containers: --hosts=kiln://<id>
SSH_SCHEME = "kiln-ssh"  # and for a booted VM: --hosts=kiln-ssh://<ssh-config host>


def config_to_json(config: RuntimeConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
