"""Hostile and honest archives, and the real PyPI fetch of a small sdist."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from codemill.core.errors import SourceError
from codemill.core.records import SourceKind
from codemill.repos.archives import extract_archive
from codemill.repos.sources import snapshot_source


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _outside_untouched(tmp_path: Path) -> None:
    assert not (tmp_path / "evil").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "proj-1.0/../../evil.txt", "/tmp/evil.txt"])
def test_traversal_and_absolute_paths_refuse_the_archive(tmp_path: Path, name: str):
    archive = _tar(tmp_path / "bad.tar.gz", [(_file("proj-1.0/ok.py"), b"ok\n"),
                                             (_file(name), b"pwned\n")])
    dest = tmp_path / "box" / "dest"
    with pytest.raises(SourceError, match="refused") as info:
        extract_archive(archive, dest)
    assert "\n" not in str(info.value)
    _outside_untouched(tmp_path)
    _outside_untouched(tmp_path / "box")


def test_links_out_are_left_out_and_never_written_through(tmp_path: Path):
    members = [
        (_file("proj-1.0/pkg/__init__.py"), b""),
        (_file("proj-1.0/run.sh", 0o755), b"#!/bin/sh\n"),
        (_link("proj-1.0/out", "../../.."), b""),
        (_link("proj-1.0/abs", "/etc/passwd"), b""),
        (_link("proj-1.0/ok", "pkg/__init__.py"), b""),
        (_link("proj-1.0/hard", "proj-1.0/run.sh", tarfile.LNKTYPE), b""),
        (_link("proj-1.0/hard_out", "/etc/passwd", tarfile.LNKTYPE), b""),
        # A file "through" the link that points outside: must land inside, as a file.
        (_file("proj-1.0/out/evil.txt"), b"pwned\n"),
    ]
    dev = tarfile.TarInfo("proj-1.0/null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    members.append((dev, b""))
    archive = _tar(tmp_path / "links.tar.gz", members)
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(SourceError, match="refused"):  # absolute hard link target
        extract_archive(archive, dest)
    archive = _tar(tmp_path / "links2.tar.gz", [m for m in members
                                                if m[0].name != "proj-1.0/hard_out"])
    dest = tmp_path / "a" / "b" / "dest2"
    skipped = extract_archive(archive, dest)
    assert skipped == 3  # out, abs, the device
    assert sorted(os.listdir(dest)) == ["hard", "ok", "out", "pkg", "run.sh"]
    assert (dest / "out").is_dir() and not (dest / "out").is_symlink()
    assert (dest / "out/evil.txt").read_bytes() == b"pwned\n"
    assert os.readlink(dest / "ok") == "pkg/__init__.py"
    assert (dest / "hard").read_bytes() == b"#!/bin/sh\n" and os.access(dest / "hard", os.X_OK)
    _outside_untouched(tmp_path)


def test_zip_sdists_extract_and_zip_bombs_stop(tmp_path: Path):
    path = tmp_path / "proj-2.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("proj-2.0/setup.py", "from setuptools import setup\nsetup()\n")
        zf.writestr("proj-2.0/tests/test_x.py", "def test_x():\n    pass\n")
        zf.writestr("proj-2.0/big.txt", b"\0" * (4 << 20))
    snap = snapshot_source(str(path), tmp_path / "home")
    assert snap.name == "proj-2.0" and snap.n_files == 3
    assert (Path(snap.path) / "tests/test_x.py").is_file()
    with pytest.raises(SourceError, match="size cap"):
        extract_archive(path, tmp_path / "bomb", max_bytes=1 << 20)
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../evil.txt", "pwned")
    with pytest.raises(SourceError, match="refused"):
        extract_archive(tmp_path / "evil.zip", tmp_path / "z")
    _outside_untouched(tmp_path)


@pytest.mark.network
def test_real_pypi_sdist(tmp_path: Path):
    home = tmp_path / "home"
    snap = snapshot_source("pypi:iniconfig==1.1.1", home)
    assert snap.source_kind == SourceKind.PYPI and snap.source == "pypi:iniconfig==1.1.1"
    assert snap.name == "iniconfig" and snap.created_at.startswith("2020-10-14")
    root = Path(snap.path)
    assert (root / "setup.py").is_file() and (root / "testing/test_iniconfig.py").is_file()
    cached = list((home / "cache" / "sdists").iterdir())
    assert [p.name for p in cached] == ["iniconfig-1.1.1.tar.gz"]
    again = snapshot_source("pypi:iniconfig==1.1.1", home)  # from the cache
    assert again.snapshot_id == snap.snapshot_id
    latest = snapshot_source("pypi:iniconfig", home)
    assert latest.source.startswith("pypi:iniconfig==") and latest.source != snap.source
    assert (Path(latest.path) / "pyproject.toml").is_file()
    with pytest.raises(SourceError, match="no such project"):
        snapshot_source("pypi:codemill-no-such-project-x7q", home)
