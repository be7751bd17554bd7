"""Which storage a session gets: explicit gftp, GOLEMSYNC_STORAGE, the devnet, PATH."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import pytest

from golemsync.config import Config
from golemsync.errors import ConfigurationError, DaemonUnreachable
from golemsync.storage import GftpStorage, GsbStorage
from golemsync.storage.factory import STANDIN, choose, create_storage

DEVNET = "golemsync-devnet (yagna-compatible loopback network)"


class Daemon:
    """Answers /version/get with ``name`` (None: the daemon cannot be reached)."""

    def __init__(self, name: Optional[str]) -> None:
        self.name = name
        self.config = Config(app_key="k", api_url="http://127.0.0.1:9")
        self.identity = self

    def version(self) -> Any:
        if self.name is None:
            raise DaemonUnreachable("no daemon")
        return SimpleNamespace(current=SimpleNamespace(name=self.name))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOLEMSYNC_GFTP", raising=False)
    monkeypatch.delenv("GOLEMSYNC_STORAGE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def put_gftp_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "gftp"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_an_explicit_program_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLEMSYNC_STORAGE", "gsb")
    monkeypatch.setenv("GOLEMSYNC_GFTP", "/opt/env-gftp")
    assert choose(Daemon(DEVNET), "/opt/my-gftp") == ("gftp", "/opt/my-gftp")
    assert choose(Daemon(DEVNET), None) == ("gftp", "/opt/env-gftp")


def test_the_devnet_gets_the_gsb_api_and_the_stand_in_on_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose(Daemon(DEVNET), None) == ("gsb", None)
    monkeypatch.setenv("GOLEMSYNC_STORAGE", "gftp")
    assert choose(Daemon(DEVNET), None) == ("gftp", STANDIN)
    assert STANDIN[0] == sys.executable


def test_a_daemon_uses_gftp_from_path_else_the_gsb_api(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    assert choose(Daemon("yagna"), None) == ("gsb", None)
    assert choose(Daemon(None), None) == ("gsb", None)  # unknown daemon, no gftp
    put_gftp_on_path(monkeypatch, tmp_path)
    assert choose(Daemon("yagna"), None) == ("gftp", "gftp")
    monkeypatch.setenv("GOLEMSYNC_STORAGE", "GSB")
    assert choose(Daemon("yagna"), None) == ("gsb", None)


def test_an_unknown_kind_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLEMSYNC_STORAGE", "ftp")
    with pytest.raises(ConfigurationError, match="GOLEMSYNC_STORAGE must be one of gsb, gftp"):
        choose(Daemon(DEVNET), None)


def test_create_storage_builds_the_chosen_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = Daemon(DEVNET)
    gsb = create_storage(daemon, daemon.config, None)
    gftp = create_storage(daemon, daemon.config, "/opt/gftp")
    try:
        assert isinstance(gsb, GsbStorage) and isinstance(gftp, GftpStorage)
    finally:
        gsb.close()
        gftp.close()
