"""Normalisation drops what a later layer of the same image deletes or replaces (kiln.normalize)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from kiln.normalize import rewrite_layer, shadowed

Entry = tuple[str, str, bytes]  # name, kind (file, dir, link: data is the target), data


def layer(path: Path, entries: list[Entry]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, data.decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def read(path: Path) -> dict[str, tuple[bytes, str]]:
    out = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = (f.read() if f else b"", m.linkname)
    return out


def test_files_a_later_layer_deletes_or_replaces_are_shadowed(tmp_path: Path) -> None:
    install = layer(tmp_path / "1.tar", [
        ("etc", "dir", b""), ("etc/ssh", "dir", b""),
        ("etc/ssh/ssh_host_ed25519_key", "file", b"PRIVATE"),
        ("etc/ssh/sshd_config", "file", b"config"),
        ("boot", "dir", b""), ("boot/initrd.img", "file", b"made at install"),
        ("usr/share/doc/pkg/README", "file", b"doc"),
        ("var/cache/app/a", "file", b"a"),
    ])
    cleanup = layer(tmp_path / "2.tar", [
        ("etc/ssh/.wh.ssh_host_ed25519_key", "file", b""),
        ("usr/share/doc/.wh.pkg", "file", b""),  # a folder deleted whole
        ("var/cache/app/.wh..wh..opq", "file", b""),  # a folder emptied (opaque)
    ])
    again = layer(tmp_path / "3.tar", [("boot/initrd.img", "file", b"made reproducibly")])
    hidden = shadowed([install, cleanup, again])
    assert hidden[0] == {"etc/ssh/ssh_host_ed25519_key", "boot/initrd.img",
                         "usr/share/doc/pkg/README", "var/cache/app/a"}
    assert hidden[1] == frozenset()  # whiteouts are always kept
    assert hidden[2] == frozenset()

    rewrite_layer(install, tmp_path / "out.tar", 315532800, (), hidden[0])
    assert set(read(tmp_path / "out.tar")) == {"etc", "etc/ssh", "etc/ssh/sshd_config", "boot"}


def test_a_shadowed_name_of_a_hard_link_set_hands_its_data_to_the_others(tmp_path: Path) -> None:
    first = layer(tmp_path / "1.tar", [
        ("usr/bin/a", "file", b"binary"), ("usr/bin/b", "link", b"usr/bin/a")])
    later = layer(tmp_path / "2.tar", [("usr/bin/a", "file", b"replaced")])
    hidden = shadowed([first, later])
    assert hidden[0] == {"usr/bin/a"}
    rewrite_layer(first, tmp_path / "out.tar", 315532800, (), hidden[0])
    assert read(tmp_path / "out.tar") == {"usr/bin/b": (b"binary", "")}


def test_a_file_a_later_hard_link_names_is_kept(tmp_path: Path) -> None:
    first = layer(tmp_path / "1.tar", [("data/f", "file", b"x")])
    linking = layer(tmp_path / "2.tar", [("data/g", "link", b"data/f")])
    replacing = layer(tmp_path / "3.tar", [("data/f", "file", b"y")])
    assert shadowed([first, linking, replacing])[0] == frozenset()


def test_nothing_is_shadowed_by_an_earlier_layer(tmp_path: Path) -> None:
    first = layer(tmp_path / "1.tar", [("etc/.wh.motd", "file", b"")])
    later = layer(tmp_path / "2.tar", [("etc/motd", "file", b"new")])
    assert shadowed([first, later]) == [frozenset(), frozenset()]
