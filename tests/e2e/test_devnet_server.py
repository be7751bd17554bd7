"""The HTTP server: hundreds of concurrent long-polls, clean stop, child process, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

import pytest
import requests
from devnet_http import MARKET, PAYMENT, Client

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e
POLLERS = 200
POLL_SECONDS = 3.0


def test_two_hundred_concurrent_long_polls(devnet: Devnet) -> None:
    """200 polls of 3 s each finish in about 3 s only if the server holds them all at once."""
    with Client(devnet) as client:
        demand = client.demand(client.allocation(), "(golem.inf.mem.gib>=1000)")
        sub = client.subscribe(demand)
    ready = threading.Barrier(POLLERS + 1)
    replies: list[tuple[int, object]] = []
    lock = threading.Lock()

    def poll() -> None:
        with requests.Session() as session:
            ready.wait(30)
            reply = session.get(f"{devnet.url}{MARKET}/demands/{sub}/events",
                                params={"timeout": POLL_SECONDS}, timeout=60,
                                headers={"Authorization": f"Bearer {devnet.app_key}"})
        with lock:
            replies.append((reply.status_code, reply.json()))

    threads = [threading.Thread(target=poll, name=f"test-poller-{i}") for i in range(POLLERS)]
    for thread in threads:
        thread.start()
    ready.wait(30)
    started = time.monotonic()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert replies == [(200, [])] * POLLERS
    assert POLL_SECONDS * 0.9 <= elapsed < POLL_SECONDS * 4


def test_stop_closes_idle_keep_alive_connections(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet()
    client = Client(net)
    assert client.get("/me").status_code == 200  # leaves an idle keep-alive connection
    waiting: list[int] = []

    def poll() -> None:
        with Client(net) as other:
            try:
                reply = other.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 60})
                waiting.append(reply.status_code)
            except requests.ConnectionError:
                waiting.append(-1)

    poller = threading.Thread(target=poll, name="test-stop-poller")
    poller.start()
    started = time.monotonic()
    net.stop()
    poller.join(10)
    client.close()
    assert time.monotonic() - started < 10 and waiting in ([200], [-1])
    assert not [t for t in threading.enumerate() if t.name.startswith("golemsync-devnet")]


def test_subprocess_devnet(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(subprocess=True, app_key="child-key")
    assert net.app_key == "child-key"
    with Client(net) as client:
        assert client.get("/me").json()["identity"] == net.node_id
    with pytest.raises(RuntimeError):
        net.ledger()
    net.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{net.url}/version/get", timeout=5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_exports_and_exits_cleanly(sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "golemsync", "devnet", "--providers", "2", "--seed", "9",
               "--app-key", "cli-key"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert process.stdout is not None
        url_line = process.stdout.readline()
        key_line = process.stdout.readline()
        assert url_line.startswith("export YAGNA_API_URL=http://127.0.0.1:")
        assert key_line.strip() == "export YAGNA_APPKEY=cli-key"
        url = url_line.strip().split("=", 1)[1]
        reply = requests.get(f"{url}/me", headers={"Authorization": "Bearer cli-key"},
                             timeout=10)
        assert reply.status_code == 200
        process.send_signal(sig)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
