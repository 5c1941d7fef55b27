"""kiln's settings for publishing: declared once in SETTINGS, read from a file and the environment.

Order, later wins: the defaults below, then `kiln.toml` (or `.kiln/config.toml`) at the project
root, table `[publish]`, then the environment (KILN_REGISTRY, ...). Unknown keys are errors.
docs/publishing.md documents every setting; it is written from this table.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import KilnError
from kiln.records import state_dir

CHANNEL_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
CONFIG_FILES = ("kiln.toml", ".kiln/config.toml")


@dataclass(frozen=True)
class Setting:
    key: str  # in the file's [publish] table
    env: str
    default: Any
    parse: Callable[[Any, str], Any]  # (raw value, where) -> value
    help: str


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise KilnError(f"{where}: expected a string, got {value!r}")
    return value.strip()


def _namespace(value: Any, where: str) -> str:
    text = _text(value, where).strip("/")
    if not NAMESPACE_RE.match(text):
        raise KilnError(f"{where}: {text!r} is not a repository namespace "
                        "(lowercase letters, digits, . _ - and /, e.g. 'kiln' or 'team/images')")
    return text


def _channels(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise KilnError(f"{where}: expected a list of channel names, got {value!r}")
    names = tuple(i.strip() for i in items if i.strip())
    for name in names:
        if not CHANNEL_RE.match(name):
            raise KilnError(f"{where}: channel {name!r} is not a valid name "
                            "(lowercase letters, digits and -, starting with a letter)")
    if not names:
        raise KilnError(f"{where}: at least one channel is needed (default: stable, candidate)")
    return names


def _auto_promote(value: Any, where: str) -> str:
    if value is False or value in ("", "0", "false", "no", "off"):
        return ""
    return _text(value, where)


SETTINGS: tuple[Setting, ...] = (
    Setting("registry", "KILN_REGISTRY", "", _text,
            "Registry to publish to: `host[:port]`, or a URL with `http://`/`https://`. HTTPS "
            "unless the host is loopback. Empty: kiln's embedded registry (see below)."),
    Setting("namespace", "KILN_NAMESPACE", "kiln", _namespace,
            "Repository prefix: image `base` is published as `<namespace>/base`."),
    Setting("channels", "KILN_CHANNELS", ("stable", "candidate"), _channels,
            "Moving tags that `invoke promote` may set (a list; comma-separated in the env)."),
    Setting("signing_key", "KILN_SIGNING_KEY", "", _text,
            "Private ed25519 key (PEM) that signs published images. Default: "
            "`<state dir>/signing.key` (.kiln/ or KILN_STATE_DIR): never commit it."),
    Setting("public_key", "KILN_PUBLIC_KEY", "kiln.pub", _text,
            "Public key (PEM) that pull, promote and catalog check signatures with; commit it."),
    Setting("key_id", "KILN_KEY_ID", "", _text,
            "The project key's id (`sha256:<16 hex>`, `kiln keygen` prints it and pins it "
            "here): pull refuses to check signatures with any other public key. Empty: unpinned."),
    Setting("auto_promote", "KILN_AUTO_PROMOTE", "", _auto_promote,
            "A channel every successful publish is promoted to (e.g. `candidate`); empty: none."),
)


@dataclass(frozen=True)
class Config:
    """The resolved publishing settings of one project."""

    root: Path
    registry: str
    namespace: str
    channels: tuple[str, ...]
    signing_key: Path
    public_key: Path
    auto_promote: str
    source: str  # where the registry setting came from, for messages
    key_id: str = ""  # the pinned project key id, or "" (unpinned)

    @property
    def embedded(self) -> bool:
        return not self.registry

    def repository(self, image: str) -> str:
        return f"{self.namespace}/{image}"

    def check_channel(self, channel: str) -> str:
        if channel not in self.channels:
            raise KilnError(f"'{channel}' is not a channel (channels: {', '.join(self.channels)}; "
                            "set [publish] channels in kiln.toml or KILN_CHANNELS)")
        return channel


def config_file(root: Path) -> Path | None:
    for name in CONFIG_FILES:
        if (root / name).is_file():
            return root / name
    return None


def load_config(root: Path, environ: dict[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {s.key: s.default for s in SETTINGS}
    sources: dict[str, str] = {s.key: "default" for s in SETTINGS}
    path = config_file(root)
    if path is not None:
        rel = path.relative_to(root)
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise KilnError(f"{rel}: not valid TOML ({exc})") from None
        unknown_tables = sorted(set(data) - {"publish"})
        if unknown_tables:
            raise KilnError(f"{rel}: unknown table(s) {', '.join(unknown_tables)} "
                            "(kiln reads only [publish])")
        table = data.get("publish", {})
        known = {s.key: s for s in SETTINGS}
        for key, raw in table.items():
            if key not in known:
                raise KilnError(f"{rel}: unknown key publish.{key} "
                                f"(known: {', '.join(known)})")
            values[key] = known[key].parse(raw, f"{rel}: publish.{key}")
            sources[key] = str(rel)
    for s in SETTINGS:
        if s.env in env:
            values[s.key] = s.parse(env[s.env], s.env)
            sources[s.key] = s.env
    signing = values["signing_key"]
    public = values["public_key"]
    auto = values["auto_promote"]
    channels = values["channels"]
    if auto and auto not in channels:
        raise KilnError(f"{sources['auto_promote']}: auto_promote names '{auto}', which is not "
                        f"a channel ({', '.join(channels)})")
    return Config(
        root=root,
        registry=values["registry"],
        namespace=values["namespace"],
        channels=channels,
        signing_key=(root / signing) if signing else state_dir(root) / "signing.key",
        public_key=root / public,
        auto_promote=auto,
        source=sources["registry"],
        key_id=values["key_id"],
    )


def settings_markdown() -> str:
    """The settings table of docs/publishing.md."""
    lines = ["| key (`[publish]`) | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = ", ".join(s.default) if isinstance(s.default, tuple) else s.default
        lines.append(f"| `{s.key}` | `{s.env}` | `{default or '(empty)'}` | {s.help} |")
    return "\n".join(lines) + "\n"
