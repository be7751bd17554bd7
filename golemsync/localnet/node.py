"""One yagna node of the localnet: its own data directory, ports, environment and app key.

The environment follows what the daemon needs offline (LOCALNET.md §2-§4): a relay host that
nothing listens on (without it the daemon spends ~75 s on DNS look-ups before serving REST),
a short net session timeout, loopback-only net binding, and the erc20 driver's holesky
settings pointed at the local chain. A hub is a plain node whose GSB router the others use as
their central net (``YA_NET_TYPE=central``, ``CENTRAL_NET_HOST``).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import requests

from golemsync.localnet.chain import ZERO_ADDRESS
from golemsync.localnet.process import MARK, Child, free_port

NETWORK = "holesky"
PLATFORM = "erc20-holesky-tglm"
REBROADCAST = "30s"  # MEAN_CYCLIC_BCAST_INTERVAL: offers re-broadcast (default 4 min)

# Variables of the caller's environment that would point a node (or its CLI) elsewhere.
_FOREIGN = ("YAGNA_", "GSB_", "YA_", "CENTRAL_NET_", "HOLESKY_", "ERC20_")


class NodeError(RuntimeError):
    """A node did not start, or one of its CLI calls failed; carries the log's tail."""


class YagnaNode:
    """A ``yagna service run`` in a private data dir. ``start`` blocks until REST answers."""

    def __init__(self, name: str, yagna: Path, state_dir: Path, *,
                 hub: Optional[str] = None, gsb_port: Optional[int] = None,
                 chain_url: str = "", token: str = "", multi_transfer: str = "") -> None:
        self.name = name
        self._yagna = yagna
        self.data_dir = state_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = state_dir / f"{name}.log"
        self.gsb_port = gsb_port or free_port()
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.gsb_url = f"tcp://127.0.0.1:{self.gsb_port}"
        self.hub = hub
        self.env = self._environment(chain_url, token, multi_transfer)
        self.app_key = ""
        self.node_id = ""
        self._child: Optional[Child] = None

    def _environment(self, chain_url: str, token: str, multi: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env.update({
            MARK: str(self.data_dir.parent),
            "YAGNA_DATADIR": str(self.data_dir),
            "GSB_URL": self.gsb_url,
            "YAGNA_API_URL": self.api_url,
            "YA_NET_BIND_URL": f"udp://127.0.0.1:{free_port()}",
            "YA_NET_SESSION_REQUEST_TIMEOUT": "500ms",
            "MEAN_CYCLIC_BCAST_INTERVAL": REBROADCAST,
            "YA_PAYMENT_NETWORK": NETWORK,
            "HOLESKY_WRAPPER_CONTRACT_ADDRESS": ZERO_ADDRESS,
            # Payments go out and are confirmed quickly: anvil mines a block every 2 s.
            "ERC20_SENDOUT_INTERVAL_SECS": "5",
            "ERC20_HOLESKY_REQUIRED_CONFIRMATIONS": "1",
            "ERC20_CONFIRMATION_INTERVAL_SECS": "2",
            "RUST_LOG": os.environ.get("GOLEMSYNC_LOCALNET_RUST_LOG", "info"),
        })
        if chain_url:
            env["HOLESKY_GETH_ADDR"] = chain_url
        if token:
            env["HOLESKY_TGLM_CONTRACT_ADDRESS"] = token
        if multi:
            env["HOLESKY_MULTI_PAYMENT_CONTRACT_ADDRESS"] = multi
        if self.hub is None:
            env["YA_NET_TYPE"] = "hybrid"
            env["YA_NET_RELAY_HOST"] = f"127.0.0.1:{free_port()}"  # nothing listens there
        else:
            env["YA_NET_TYPE"] = "central"
            env["CENTRAL_NET_HOST"] = self.hub
        return env

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid if self._child is not None else None

    def launch(self) -> None:
        """Start the daemon (returns at once; :meth:`wait_ready` waits for REST)."""
        self._child = Child(f"yagna {self.name}", [str(self._yagna), "service", "run"],
                            env=self.env, log=self._log, cwd=self.data_dir)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the REST server answers (401 without a key is an answer)."""
        assert self._child is not None
        wait_rest(self.api_url, self._child, f"yagna {self.name}", timeout)

    def cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``yagna <args>`` against this node; its stdout, or :class:`NodeError`."""
        return run_cli(self._yagna, self.env, args, where=self.name, timeout=timeout)

    def setup_identity(self) -> None:
        """Create this node's app key and read its node id (its payment address)."""
        self.app_key = self.cli("app-key", "create", f"golemsync-{self.name}").strip()
        shown = json.loads(self.cli("id", "show", "--json"))
        self.node_id = str(shown["Ok"]["nodeId"])

    def payment_init(self, role: str) -> None:
        """``yagna payment init --sender|--receiver --network holesky``."""
        self.cli("payment", "init", f"--{role}", "--network", NETWORK)

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.app_key}"}

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None


def wait_rest(api_url: str, child: Child, label: str, timeout: float) -> None:
    """Wait until a starting daemon's REST server answers; :class:`NodeError` (with its log's
    tail) when it exits first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if not child.alive():
            raise NodeError(f"{label} exited at start:\n{child.tail()}")
        try:
            requests.get(f"{api_url}/version-api/v1/version", timeout=2)
            return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise NodeError(f"{label}: REST not up within {timeout:.0f} s:\n{child.tail()}")
        pause.wait(0.05)  # polling another process's readiness: there is nothing to wait on


def run_cli(yagna: Path, env: Mapping[str, str], args: Sequence[str], *, where: str,
            timeout: float = 60.0) -> str:
    """Run ``yagna <args>`` with a node's environment; its stdout, or :class:`NodeError`."""
    try:
        done = subprocess.run([str(yagna), *args], env=dict(env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise NodeError(f"yagna {' '.join(args)} on {where}: no answer within "
                        f"{timeout:.0f} s") from None
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        # The CLI prints a stack backtrace after its error: keep the error's own line.
        first = next((line for line in detail if line.startswith("Error:")),
                     next((line for line in detail if line.strip()), ""))
        raise NodeError(f"yagna {' '.join(args)} on {where} failed ({done.returncode}): "
                        f"{first}")
    return done.stdout
