"""The gftp store lives in a private per-user folder, never a shared predictable one."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from golemsync.devnet import gftpstore


def private(path: Path) -> bool:
    info = os.lstat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
        and stat.S_IMODE(info.st_mode) & 0o077 == 0


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return base


def test_the_store_is_private_to_the_user(temp: Path) -> None:
    root = gftpstore.store_root("0xAbC")
    assert root.name == "0xabc"
    assert root.is_relative_to(temp / f"golemsync-{os.getuid()}")
    node = root
    while node != temp:
        assert private(node), node
        node = node.parent


def test_the_runtime_dir_is_preferred(temp: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    root = gftpstore.store_root("0xabc")
    assert root.is_relative_to(runtime) and private(root)
    assert list(temp.iterdir()) == []


def test_a_folder_planted_by_someone_else_is_refused(temp: Path) -> None:
    planted = temp / f"golemsync-{os.getuid()}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    if os.getuid() == 0:
        os.chown(planted, 65534, 65534)
        with pytest.raises(PermissionError, match="not owned by"):
            gftpstore.store_root("0xabc")
        os.chown(planted, 0, 0)
    root = gftpstore.store_root("0xabc")  # our own but too open: tightened
    assert private(planted) and private(root)


def test_a_planted_link_is_refused(temp: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temp / f"golemsync-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="symbolic link"):
        gftpstore.store_root("0xabc")
