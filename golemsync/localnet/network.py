"""``Localnet``: a real Golem network in miniature on loopback.

Real ``yagna`` nodes (a hub, a requestor node, N provider nodes on a central net), a real
chain (``anvil``) with golemsync's test token, and the project's provider program
(:mod:`golemsync.localnet.provider`) on each provider node. Startup:

1. anvil (chain id 17000, 2 s blocks) and the hub start together; the token is deployed;
2. the requestor and provider nodes start together (central net through the hub's GSB
   router), each gets an app key; ``payment init --sender`` on the requestor,
   ``--receiver`` on the providers (network holesky);
3. the requestor's address gets ETH (gas) and tokens;
4. the provider programs publish their offers, and the localnet waits until a market scan on
   the requestor node sees every one of them (offers published in a node's first seconds
   may take a re-broadcast to arrive).

Leaving the context (or :meth:`Localnet.stop`) stops the provider programs, then every
process it started, by PID (SIGINT for yagna), and removes its temporary state.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Optional

import requests

from golemsync.devnet.config import DevnetConfig
from golemsync.localnet.chain import Chain
from golemsync.localnet.node import PLATFORM, YagnaNode
from golemsync.localnet.process import free_port
from golemsync.localnet.provider import LocalProvider
from golemsync.localnet.tools import find_anvil, find_yagna

logger = logging.getLogger(__name__)

REQUESTOR_ETH = Decimal("10")
REQUESTOR_TOKENS = Decimal("1000")
REPUBLISH = 10.0
OFFERS_TIMEOUT = float(os.environ.get("GOLEMSYNC_LOCALNET_OFFERS_TIMEOUT", "120"))


class LocalnetError(RuntimeError):
    """The localnet could not start; the message carries the failing process's log tail."""


class Localnet:
    """A running localnet; construction blocks until it is ready. Use as a context manager.

    ``providers`` provider nodes (specs from ``DevnetConfig.default(providers, seed)``, i.e.
    the devnet's names and prices), or an explicit ``config``. After start:
    ``api_url``/``app_key`` are the requestor node's (also as :attr:`env`),
    ``requestor_address`` its payment address, ``chain`` the running chain (balances),
    ``providers`` the provider programs. ``startup_seconds`` is how long starting took.
    """

    def __init__(self, providers: int = 2, *, seed: Optional[int] = None,
                 config: Optional[DevnetConfig] = None,
                 state_dir: Optional[Path] = None) -> None:
        self.config = config or DevnetConfig.default(providers, seed)
        self._yagna = find_yagna()
        self._anvil = find_anvil()
        self._own_state = state_dir is None
        self.state_dir = Path(tempfile.mkdtemp(prefix="golemsync-localnet-")) \
            if state_dir is None else state_dir
        self.chain = Chain(self._anvil, self.state_dir)
        self.hub: Optional[YagnaNode] = None
        self.requestor: Optional[YagnaNode] = None
        self.provider_nodes: list[YagnaNode] = []
        self.providers: list[LocalProvider] = []
        self._lock = threading.Lock()  # guards stop()
        self._stopped = False
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    # -- what clients use ------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        assert self.requestor is not None
        return self.requestor.api_url

    @property
    def app_key(self) -> str:
        assert self.requestor is not None
        return self.requestor.app_key

    @property
    def requestor_address(self) -> str:
        assert self.requestor is not None
        return self.requestor.node_id

    @property
    def env(self) -> dict[str, str]:
        """``YAGNA_API_URL``, ``YAGNA_APPKEY`` and the payment network of the requestor node."""
        return {"YAGNA_API_URL": self.api_url, "YAGNA_APPKEY": self.app_key,
                "YAGNA_PAYMENT_DRIVER": "erc20", "YAGNA_PAYMENT_NETWORK": "holesky"}

    def pids(self) -> list[int]:
        """Every process this localnet started and has not stopped yet."""
        nodes = [self.hub, self.requestor, *self.provider_nodes]
        found = [n.pid for n in nodes if n is not None and n.pid is not None]
        if self.chain.pid is not None:
            found.append(self.chain.pid)
        return [pid for pid in found if pid is not None]

    def hurry_payments(self) -> None:
        """Ask the requestor node to send its pending payments now (a batch cycle)."""
        assert self.requestor is not None
        reply = requests.post(f"{self.api_url}/payment-api/v1/batchCycle/{PLATFORM}/now",
                              headers=dict(self.requestor.headers()), timeout=30)
        if reply.status_code >= 400:
            raise LocalnetError(f"batch cycle: HTTP {reply.status_code} {reply.text[:200]}")

    # -- start ---------------------------------------------------------------------------------
    def _start(self) -> None:
        hub_port = free_port(2000, 9999)  # the daemon's host pattern takes at most 4 digits
        self.hub = YagnaNode("hub", self._yagna, self.state_dir, gsb_port=hub_port)
        self.hub.launch()
        self.chain.start()
        self.hub.wait_ready()  # its router serves the central net: up before the others
        hub = f"127.0.0.1:{hub_port}"
        self.requestor = self._node("requestor", hub)
        for index, spec in enumerate(self.config.providers):
            self.provider_nodes.append(self._node(f"provider-{index}-{spec.name}", hub))
        nodes = [self.requestor, *self.provider_nodes]
        for node in nodes:
            node.launch()
        with ThreadPoolExecutor(max(1, len(nodes)), thread_name_prefix="golemsync-ln-init") \
                as pool:
            roles = ["sender"] + ["receiver"] * len(self.provider_nodes)
            for future in [pool.submit(self._init_node, n, r) for n, r in zip(nodes, roles)]:
                future.result()
        self.chain.fund(self.requestor.node_id, eth=REQUESTOR_ETH, tokens=REQUESTOR_TOKENS)
        for index, (spec, node) in enumerate(zip(self.config.providers, self.provider_nodes)):
            provider = LocalProvider(
                name=spec.name, api_url=node.api_url, app_key=node.app_key,
                node_id=node.node_id, spec=spec, config=self.config,
                workdir=self.state_dir / f"work-{index}", seed=self.config.seed,
                gsb_url=node.gsb_url)
            self.providers.append(provider)
            provider.start()
        self._wait_offers(OFFERS_TIMEOUT)

    def _node(self, name: str, hub: str) -> YagnaNode:
        return YagnaNode(name, self._yagna, self.state_dir, hub=hub,
                         chain_url=self.chain.url, token=self.chain.token,
                         multi_transfer=self.chain.multi_transfer)

    @staticmethod
    def _init_node(node: YagnaNode, role: str) -> None:
        node.wait_ready()
        node.setup_identity()
        node.payment_init(role)

    def _wait_offers(self, timeout: float) -> None:
        """Wait until a demand on the requestor node has a proposal from every provider.

        A throwaway demand (subnet and expiration only) is subscribed on the requestor node;
        a provider whose offer has not shown up after :data:`REPUBLISH` seconds publishes it
        again (offers published in a node's first seconds are sometimes never delivered).
        """
        assert self.requestor is not None
        if not self.providers:
            return
        base = f"{self.api_url}/market-api/v1/demands"
        expiration = int((time.time() + 600) * 1000)
        demand = {"properties": {"golem.srv.comp.expiration": expiration,
                                 "golem.node.debug.subnet": self.config.subnet},
                  "constraints": f"(golem.node.debug.subnet={self.config.subnet})"}
        seen: set[str] = set()
        began = time.monotonic()
        republished = began
        with requests.Session() as http:
            http.headers.update(dict(self.requestor.headers()))
            reply = http.post(base, json=demand, timeout=30)
            if reply.status_code >= 400:
                raise LocalnetError(f"demand: HTTP {reply.status_code} {reply.text[:200]}")
            subscription = reply.json()
            try:
                while True:
                    missing = [p for p in self.providers if p.node_id not in seen]
                    if not missing:
                        return
                    now = time.monotonic()
                    if now - began > timeout:
                        raise LocalnetError(
                            f"the requestor node saw {len(seen)} of {len(self.providers)} "
                            f"offers within {timeout:.0f} s")
                    if now - republished > REPUBLISH:
                        republished = now
                        for provider in missing:
                            logger.info("localnet: offer of %s not seen yet; publishing again",
                                        provider.name)
                            provider.republish()
                    events = http.get(f"{base}/{subscription}/events",
                                      params={"timeout": 2.0, "maxEvents": 50}, timeout=40)
                    if events.status_code == 408 or not events.content:
                        continue
                    if events.status_code >= 400:
                        raise LocalnetError(f"demand events: HTTP {events.status_code} "
                                            f"{events.text[:200]}")
                    for event in events.json() or []:
                        proposal = event.get("proposal") if isinstance(event, dict) else None
                        if isinstance(proposal, dict):
                            seen.add(str(proposal.get("issuerId")))
            finally:
                http.delete(f"{base}/{subscription}", timeout=10)

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the provider programs and every process, remove the state. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for provider in self.providers:
            try:
                provider.stop()
            except Exception:
                logger.exception("localnet: stopping provider %s", provider.name)
        nodes = [n for n in [self.requestor, *self.provider_nodes, self.hub] if n is not None]
        with ThreadPoolExecutor(max(1, len(nodes)), thread_name_prefix="golemsync-ln-stop") \
                as pool:
            list(pool.map(lambda n: n.stop(), nodes))
        self.chain.stop()
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Localnet:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()


