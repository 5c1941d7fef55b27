"""`kiln audit`: a standard auditor's view of an image, lynis's hardening index.

lynis (Debian's package: shell scripts under /usr/share/lynis, /usr/sbin/lynis, /etc/lynis)
comes from the host, bind-mounted read-only into a throwaway container of the image: it is
never installed into the image, so the image audited is the image published. The container
runs as root (an auditor reads what only root can) with the image's own filesystem; lynis
needs /bin/sh and the usual coreutils, grep, sed and awk in the image.

The result (index, warnings, suggestions) is recorded beside the verification record, keyed
by the image ID. An image with `audit_min_index` cannot be published (audit_gate) unless an
audit of exactly these bytes reached it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.model import Plan
from kiln.records import state_dir, write_json
from kiln.testsuite import Target
from kiln.ui import UI
from kiln.verify import KEEP_ALIVE, PURPOSE_LABEL, require_shell

# host path -> where it is mounted in the container (the same: lynis finds its include dir
# and profiles by these paths)
LYNIS_PATHS = ("/usr/share/lynis", "/usr/sbin/lynis", "/etc/lynis")
REPORT = "/tmp/kiln-lynis-report.dat"
# --quick: no pauses; the log goes to the container's /tmp, which is thrown away with it.
LYNIS_ARGV = ["/usr/sbin/lynis", "audit", "system", "--quick", "--no-colors",
              "--logfile", "/tmp/kiln-lynis.log", "--report-file", REPORT]


class AuditError(KilnError):
    """The image could not be audited, or its audit does not allow publishing it."""


@dataclass(frozen=True)
class Finding:
    test: str  # lynis test id, e.g. AUTH-9230
    text: str
    details: str = ""


@dataclass(frozen=True)
class AuditRecord:
    image: str
    image_id: str
    target: str  # container or vm
    index: int  # lynis's hardening index, 0-100
    warnings: tuple[Finding, ...] = ()
    suggestions: tuple[Finding, ...] = ()
    tests_performed: int = 0
    lynis: str = ""  # lynis's version
    started: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditRecord:
        data = dict(data)
        warnings = tuple(Finding(**f) for f in data.pop("warnings", ()))
        suggestions = tuple(Finding(**f) for f in data.pop("suggestions", ()))
        return cls(warnings=warnings, suggestions=suggestions, **data)


def parse_report(text: str) -> dict[str, Any]:
    """lynis's report file (key=value, `key[]=` for lists; findings are `ID|text|details|`)."""
    out: dict[str, Any] = {"warnings": [], "suggestions": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key in ("warning[]", "suggestion[]"):
            test, _, rest = value.partition("|")
            text_, _, details = rest.partition("|")
            details = details.rstrip("|").strip()
            finding = Finding(test, text_, "" if details in ("-", "-|-") else details)
            out["warnings" if key == "warning[]" else "suggestions"].append(finding)
        elif key in ("hardening_index", "tests_executed", "lynis_version"):
            out[key] = value.strip()
    if not str(out.get("hardening_index", "")).isdigit():
        raise AuditError("lynis wrote no hardening index (its report is incomplete: did it "
                         "run to the end?)")
    return out


def lynis_on_host() -> list[str]:
    missing = [p for p in LYNIS_PATHS if not os.path.exists(p)]
    if missing:
        raise AuditError(f"lynis is not installed on this machine ({', '.join(missing)} "
                         "missing): apt-get install lynis (scripts/setup does it)")
    return [f"{p}:{p}:ro" for p in LYNIS_PATHS]


def audit_container(engine: Engine, target: Target, ui: UI) -> AuditRecord:
    """lynis in a throwaway container of the image, lynis mounted from the host; the record."""
    binds = lynis_on_host()
    started, clock = _now(), time.monotonic()
    name = f"kiln-audit-{target.name}-{secrets.token_hex(4)}"
    try:
        engine.create_container(target.ref, name, entrypoint=KEEP_ALIVE, user="0:0",
                                labels={PURPOSE_LABEL: "audit", "dev.kiln.image": target.name},
                                healthcheck={"test": ["NONE"]}, host={"binds": binds})
        require_shell(engine, name, target)
        engine.start_container(name)
        ui.info(f"  lynis audit system in {name} (lynis from the host, read-only)")
        result = engine.exec(name, ["/bin/sh", "-c", " ".join(LYNIS_ARGV) + " >/dev/null 2>&1; "
                                    f"cat {REPORT}"], user="0:0")
    finally:
        engine.remove_container(name)
    if result.exit_code != 0:
        raise AuditError(f"{target.plan.image.path}: lynis did not run in a container of "
                         f"'{target.name}' (exit {result.exit_code}): "
                         f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    report = parse_report(result.stdout.decode(errors="replace"))
    return AuditRecord(
        image=target.name, image_id=target.image_id, target="container",
        index=int(report["hardening_index"]), warnings=tuple(report["warnings"]),
        suggestions=tuple(report["suggestions"]),
        tests_performed=len([t for t in str(report.get("tests_executed", "")).split("|") if t]),
        lynis=str(report.get("lynis_version", "")), started=started,
        seconds=round(time.monotonic() - clock, 3))


# records -------------------------------------------------------------------------------------
def _path(root: Path, image_id: str, target: str) -> Path:
    return state_dir(root) / "audit" / target / f"{image_id.removeprefix('sha256:')}.json"


def save(root: Path, record: AuditRecord) -> Path:
    path = _path(root, record.image_id, record.target)
    write_json(path, record.to_json())
    return path


def load(root: Path, image_id: str, target: str = "container") -> AuditRecord | None:
    path = _path(root, image_id, target)
    try:
        return AuditRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{path}: unreadable audit record ({exc}); delete it and run "
                         "`kiln audit` again") from None


def audit_gate(root: Path, plan: Plan, image_id: str, engine: Engine | None = None,
               ref: str = "", ui: UI | None = None, target: str = "container"
               ) -> AuditRecord | None:
    """Publishing's check: an image with `audit_min_index` needs an audit at or above it.

    Given an engine (and the image's ref), an image never audited is audited now, so that
    publishing (by hand, the quickstart, nightly) needs no extra step; without one, it is
    refused until `kiln audit` has run.
    """
    minimum = plan.image.audit_min_index
    if minimum is None:
        return None
    name = plan.image.name
    where = plan.image.where("audit_min_index")
    record = load(root, image_id, target)
    if record is None and engine is not None and ref and target == "container":
        ui = ui or UI()
        ui.info(f"{name}: audit_min_index {minimum}, never audited: auditing it now")
        record = audit_container(engine, Target(plan, ref, image_id, ""), ui)
        save(root, record)
    if record is None:
        raise AuditError(f"{where}: {name} ({image_id[:19]}) must reach lynis hardening index "
                         f"{minimum} and was never audited (run `kiln audit {name}`"
                         + (" --target vm" if target == "vm" else "") + ")")
    if record.index < minimum:
        raise AuditError(f"{where}: {name} ({image_id[:19]}) has lynis hardening index "
                         f"{record.index}, below its audit_min_index {minimum} (audited "
                         f"{record.started}; `kiln audit {name}` lists the warnings and "
                         "suggestions)")
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


__all__ = ["AuditError", "AuditRecord", "Finding", "audit_container", "audit_gate", "load",
           "parse_report", "save"]
