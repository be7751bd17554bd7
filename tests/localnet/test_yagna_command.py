"""``golemsync yagna start|status|stop`` on the real daemon, offline (no central net).

Only ``yagna`` is needed (no anvil): the node starts with its relay pointed at a port on
127.0.0.1 where nothing listens, so it runs on loopback without waiting for DNS
(LOCALNET.md §2); its payment status then says the chain is unreachable, which ``status``
reports rather than fails on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from golemsync.localnet import LocalnetUnavailable, find_yagna
from golemsync.localnet.process import free_port, marked
from golemsync.localnet.requestor import RECORD

pytestmark = pytest.mark.timeout(180)


def golemsync_yagna(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "golemsync", "yagna", *args], env=env,
                          capture_output=True, text=True, timeout=150,
                          stdin=subprocess.DEVNULL)


def test_start_status_stop_leaves_nothing_running(tmp_path: Path) -> None:
    try:
        find_yagna()
    except LocalnetUnavailable as exc:
        pytest.skip(f"yagna unavailable: {exc}")
    data = tmp_path / "node"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YAGNA_", "GSB_", "YA_"))}
    env.update({"YA_NET_RELAY_HOST": f"127.0.0.1:{free_port()}",  # nothing listens there
                "YA_NET_BIND_URL": f"udp://127.0.0.1:{free_port()}"})
    where = ["--data-dir", str(data)]
    try:
        started = golemsync_yagna("start", *where, "--api-port", str(free_port()), env=env)
        assert started.returncode == 0, started.stderr
        exports = dict(line[len("export "):].split("=", 1)
                       for line in started.stdout.splitlines() if line.startswith("export "))
        assert set(exports) == {"YAGNA_API_URL", "YAGNA_APPKEY", "YAGNA_PAYMENT_DRIVER",
                                "YAGNA_PAYMENT_NETWORK"}
        assert exports["YAGNA_PAYMENT_NETWORK"] == "holesky"
        assert "yagna payment fund --network holesky" in started.stderr
        me = requests.get(f"{exports['YAGNA_API_URL']}/me", timeout=10,
                          headers={"Authorization": f"Bearer {exports['YAGNA_APPKEY']}"})
        assert me.status_code == 200  # the printed key is the node's
        assert oct((data / RECORD).stat().st_mode & 0o777) == "0o600"
        (pid,) = marked(data)

        again = golemsync_yagna("start", *where, env=env)  # finds it, starts nothing new
        assert again.returncode == 0 and "already running" in again.stderr
        assert again.stdout == started.stdout and marked(data) == [pid]

        shown = golemsync_yagna("status", *where, "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert report["running"] and report["pid"] == pid
        assert report["identity"] == me.json()["identity"] == report["node_id"]
        assert report["version"].startswith("0.17.6")
        assert "payment" in report or "unreachable" in report["payment_error"]

        stopped = golemsync_yagna("stop", *where, env=env)
        assert stopped.returncode == 0 and f"stopped pid {pid}" in stopped.stdout
        assert marked(data) == []
        assert not (data / RECORD).exists()
        gone = golemsync_yagna("status", *where, env=env)
        assert gone.returncode == 1 and "not running" in gone.stdout
        assert golemsync_yagna("stop", *where, env=env).stdout.strip().endswith(
            "no node was running")
    finally:
        for leftover in marked(data):  # a failed assertion must not leave a daemon behind
            os.kill(leftover, 9)


def test_an_unknown_network_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = golemsync_yagna("start", "--data-dir", str(tmp_path), "--network", "nowhere",
                           env=dict(os.environ))
    assert done.returncode == 1 and "unknown payment network 'nowhere'" in done.stderr
    assert marked(tmp_path.resolve()) == []
