"""Ctrl-C: SIGINT to a running example ends it cleanly, with everything paid and released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hashcrack.py"


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Re-check ``condition`` until it holds or ``timeout`` passes (an event-style wait)."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        tick.wait(0.05)
    return condition()


def start_example(net: Devnet) -> subprocess.Popen[str]:
    """hashcrack on ``net``, returned once one of its agreements is approved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    env.update(net.env)
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "zzzzzz", "--slices", "400", "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert "cracking" in process.stdout.readline()
    assert wait_until(lambda: any(a["state"] == "Approved"
                                  for a in net.ledger()["agreements"]), 30)
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_terminates_pays_and_releases(make_devnet: Callable[..., Devnet],
                                               signum: int) -> None:
    net = make_devnet(providers=3, debit_note_interval=0.5)
    process = start_example(net)
    try:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=45)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    ledger = net.ledger()
    assert ledger["agreements"]
    for agreement in ledger["agreements"]:
        if agreement["state"] in ("Cancelled", "Rejected"):
            continue
        assert agreement["state"] == "Terminated", agreement
        assert agreement["invoice_status"] == "ACCEPTED", agreement  # paid before exiting
    assert all(allocation["released"] for allocation in ledger["allocations"])


def test_a_second_signal_exits_at_once(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3, debit_note_interval=0.5)
    process = start_example(net)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        assert "SIGTERM received" in process.stderr.readline() + process.stderr.readline()
        process.send_signal(signal.SIGINT)  # while it is shutting down
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert "interrupted again" in stderr
