"""The localnet's chain: Foundry's ``anvil`` on loopback, with golemsync's test token on it.

Everything goes over plain JSON-RPC from anvil's first dev account, which anvil keeps
unlocked: ``eth_sendTransaction`` deploys the token and the multi-transfer contract (through
which the erc20 driver pays several providers at once) and funds addresses, ``evm_mine``
mines the pending transactions at once (so a receipt is there without waiting for the 2 s
block timer, which only keeps the head fresh for the payment driver), ``eth_call`` reads
balances.
"""

from __future__ import annotations

import itertools
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import requests

from golemsync.localnet.process import MARK, Child, free_port
from golemsync.localnet.token import BALANCE_OF, TRANSFER, bytecode

CHAIN_ID = 17000  # holesky's: the daemon's erc20 driver checks it
BLOCK_TIME = 2
WEI = Decimal(10) ** 18
ZERO_ADDRESS = "0x" + "0" * 40


class ChainError(RuntimeError):
    """A JSON-RPC call failed or a transaction reverted."""


class Chain:
    """A running anvil and the deployed token. Use :meth:`start`, then :meth:`stop`."""

    def __init__(self, anvil: Path, state_dir: Path) -> None:
        self._anvil = anvil
        self._state_dir = state_dir
        self.port = 0
        self.url = ""
        self.token = ""
        self.multi_transfer = ""
        self.dev_account = ""
        self._child: Optional[Child] = None
        self._ids = itertools.count(1)
        self._http = requests.Session()

    def start(self, timeout: float = 30.0) -> None:
        """Start anvil, wait for its RPC, deploy the token."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._child = Child("anvil", [str(self._anvil), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--chain-id", str(CHAIN_ID),
                                      "--block-time", str(BLOCK_TIME)],
                            env={"PATH": "/usr/bin:/bin", MARK: str(self._state_dir)},
                            log=self._state_dir / "anvil.log")
        self._wait_ready(timeout)
        self.dev_account = str(self.call("eth_accounts")[0])
        receipt = self.transact({"data": "0x" + bytecode()})
        address = receipt.get("contractAddress")
        if not isinstance(address, str):
            raise ChainError(f"token deployment gave no contract address: {receipt!r}")
        self.token = address
        multi = self.transact({"data": "0x" + bytecode("LocalMultiTransfer")
                               + _word_address(self.token)})
        self.multi_transfer = str(multi.get("contractAddress"))

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None
        self._http.close()

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid if self._child is not None else None

    # -- JSON-RPC ----------------------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                "params": list(params)}
        reply = self._http.post(self.url, json=body, timeout=30).json()
        if "error" in reply:
            raise ChainError(f"{method}: {reply['error']}")
        return reply.get("result")

    def transact(self, tx: dict[str, Any]) -> dict[str, Any]:
        """Send ``tx`` from the dev account, mine it, return its receipt (status checked)."""
        tx_hash = self.call("eth_sendTransaction", {"from": self.dev_account, **tx})
        self.call("evm_mine")
        receipt = self.call("eth_getTransactionReceipt", tx_hash)
        if not isinstance(receipt, dict) or receipt.get("status") != "0x1":
            raise ChainError(f"transaction {tx_hash} failed: {receipt!r}")
        return receipt

    # -- money -------------------------------------------------------------------------------
    def fund(self, address: str, *, eth: Decimal, tokens: Decimal) -> None:
        """Give ``address`` ``eth`` for gas and ``tokens`` of the test token."""
        self.transact({"to": address, "value": hex(int(eth * WEI))})
        data = TRANSFER + _word_address(address) + _word_int(int(tokens * WEI))
        self.transact({"to": self.token, "data": data})

    def token_balance(self, address: str) -> Decimal:
        """``address``'s test-token balance, in tokens (18 decimals)."""
        raw = self.call("eth_call", {"to": self.token,
                                     "data": BALANCE_OF + _word_address(address)}, "latest")
        return Decimal(int(str(raw), 16)) / WEI

    def eth_balance(self, address: str) -> Decimal:
        return Decimal(int(str(self.call("eth_getBalance", address, "latest")), 16)) / WEI

    def _wait_ready(self, timeout: float) -> None:
        assert self._child is not None
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            if not self._child.alive():
                raise ChainError(f"anvil exited at start:\n{self._child.tail()}")
            try:
                if int(str(self.call("eth_chainId")), 16) == CHAIN_ID:
                    return
            except (requests.ConnectionError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ChainError(f"anvil did not answer within {timeout:.0f} s:\n"
                                 f"{self._child.tail()}")
            pause.wait(0.05)  # polling another process's readiness: there is nothing to wait on


def _word_address(address: str) -> str:
    plain = address.lower()
    return (plain[2:] if plain.startswith("0x") else plain).rjust(64, "0")


def _word_int(value: int) -> str:
    return f"{value:064x}"
