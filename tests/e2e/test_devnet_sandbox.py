"""The devnet as a whole keeps provider commands away from its secrets and cleans up."""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from devnet_http import Client
from jobs import PAYLOAD, golem_for

from golemsync import Script, Task, WorkContext, network
from golemsync.devnet import Devnet, sandbox
from golemsync.devnet.capture import MAX_KEPT

pytestmark = pytest.mark.e2e
BOOT = [{"deploy": {}}, {"start": {}}]
SNOOP = ("cat /proc/$PPID/cmdline; env; "
         "for f in /proc/*/cmdline /proc/*/environ; do cat $f; done 2>/dev/null; true")


def usable(mode: str) -> bool:
    if mode == "bwrap":
        return sandbox.bwrap_usable()
    return mode == "bare" or sandbox.unshare_prefix() is not None


@pytest.mark.parametrize("mode", ["bwrap", "plain", "bare"])
def test_the_app_key_is_out_of_the_commands_reach(make_devnet: Callable[..., Devnet],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  mode: str) -> None:
    if not usable(mode):
        pytest.skip(f"{mode} mode cannot run on this machine")
    monkeypatch.setenv("GOLEMSYNC_DEVNET_SANDBOX", mode)
    key = "key" + secrets.token_hex(20)
    net = make_devnet(subprocess=True, app_key=key)
    assert net._process is not None
    with open(f"/proc/{net._process.pid}/cmdline", "rb") as handle:
        assert key.encode() not in handle.read()
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        activity = client.activity(client.approved_agreement(sub, demand, offers[0]))
        command = {"run": {"entry_point": "/bin/sh", "args": ["-c", SNOOP],
                           "capture": {"stdout": {"atEnd": {}}}}}
        batch = client.exec(activity, [*BOOT, command]).json()
        results = client.batch_results(activity, batch)
    assert results[-1]["result"] == "Ok" and "PATH=" in results[-1]["stdout"]
    assert key not in results[-1]["stdout"]


def test_golemsync_devnet_warns_once_without_bwrap() -> None:
    env = {**os.environ, "GOLEMSYNC_DEVNET_SANDBOX": "plain", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "golemsync", "devnet", "--providers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("export YAGNA_API_URL=")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert err.count("WARNING") == 1, err
    assert "without bubblewrap" in err and "apt-get install bubblewrap" in err


def test_network_warns_once_without_bwrap(monkeypatch: pytest.MonkeyPatch,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("YAGNA_APPKEY", raising=False)
    monkeypatch.setenv("GOLEMSYNC_DEVNET_SANDBOX", "plain")
    monkeypatch.setattr(sandbox, "_warned", False, raising=False)
    with network(providers=1):
        pass
    with network(providers=1):
        pass
    err = capfd.readouterr().err
    assert err.count("apt-get install bubblewrap") == 1, err


def test_a_killed_child_devnet_leaves_no_temp_folder(make_devnet: Callable[..., Devnet],
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    net = make_devnet(subprocess=True)
    assert net._process is not None
    net._process.kill()
    net.stop()
    in_process = make_devnet()
    in_process.stop()
    assert [p.name for p in temp.iterdir() if p.name.startswith("golemsync-devnet")] == []


def marked(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def gone(pids: list[int], timeout: float) -> bool:
    """Wait (on pidfds) until every pid has exited; False on timeout."""
    handles = []
    try:
        for pid in pids:
            try:
                handles.append(os.pidfd_open(pid))
            except ProcessLookupError:
                continue
        poller = select.poll()
        for handle in handles:
            poller.register(handle, select.POLLIN)
        deadline = time.monotonic() + timeout
        pending = len(handles)
        while pending:
            ready = poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
            if not ready:
                return False
            for handle, _ in ready:
                poller.unregister(handle)
                pending -= 1
        return True
    finally:
        for handle in handles:
            os.close(handle)


@pytest.mark.parametrize("mode", ["bwrap", "plain"])
def test_commands_die_with_a_killed_devnet(make_devnet: Callable[..., Devnet],
                                           monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    if not usable(mode):
        pytest.skip(f"{mode} mode cannot run on this machine")
    monkeypatch.setenv("GOLEMSYNC_DEVNET_SANDBOX", mode)
    net = make_devnet(subprocess=True)
    marker = f"{os.getpid() % 997}.{time.monotonic_ns() % 99991}"
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        activity = client.activity(client.approved_agreement(sub, demand, offers[0]))
        command = {"run": {"entry_point": "/bin/sh",
                           "args": ["-c", f"echo go; exec sleep {marker}"],
                           "capture": {"stdout": {"stream": {}}}}}
        batch = client.exec(activity, [*BOOT, command]).json()
        events = client.get(f"/activity-api/v1/activity/{activity}/exec/{batch}",
                            headers={"Accept": "text/event-stream"}, stream=True)
        with events:
            for line in events.iter_lines(decode_unicode=True):
                if line and "go" in line and "stdout" in line:
                    break
    pids = marked(marker)
    assert pids, "the command should be running"
    assert net._process is not None
    net._process.kill()
    net._process.wait(30)
    assert gone(pids, 10)


def test_the_client_sees_output_cut_at_the_capture_limit(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            big = script.run("/bin/sh", "-c", f"head -c {MAX_KEPT + 1} /dev/zero")
            small = script.run("/bin/sh", "-c", "echo hi")
            yield script
            task.accept_result((big.result(), small.result()))

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1)
    big, small = task.result
    assert big.success and big.truncated and len(big.stdout) == MAX_KEPT
    assert small.success and not small.truncated
