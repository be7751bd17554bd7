"""The localnet's contracts and their bytecode.

* ``contracts/LocalToken.sol``: golemsync's test token, a minimal ERC-20;
* ``contracts/LocalMultiTransfer.sol``: the multi-transfer contract the daemon's erc20
  driver uses to pay several providers in one transaction.

The compiled bytecode ships beside each source (``contracts/*.bin``), so a localnet needs no
compiler. After changing a source, rebuild them with::

    npm install --prefix /tmp/solcjs solc       # solc-js: the compiler as wasm, works offline
    python -m golemsync.localnet.token --build /tmp/solcjs/node_modules/.bin/solcjs

The token's constructor takes no arguments and mints the whole supply (10^9 tokens, 18
decimals) to the deployer; the multi-transfer contract's takes the token's address.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

CONTRACTS = Path(__file__).resolve().parent / "contracts"
NAMES = ("LocalToken", "LocalMultiTransfer")

# ERC-20 function selectors (first four bytes of the keccak-256 of the signature).
BALANCE_OF = "0x70a08231"  # balanceOf(address)
TRANSFER = "0xa9059cbb"    # transfer(address,uint256)


def bytecode(name: str = "LocalToken") -> str:
    """A contract's deployable bytecode (constructor arguments not included), hex, no ``0x``."""
    return (CONTRACTS / f"{name}.bin").read_text(encoding="ascii").strip()


def build(solcjs: str) -> None:
    """Compile every source with solc-js (optimised) and write ``contracts/<name>.bin``."""
    for name in NAMES:
        with tempfile.TemporaryDirectory(prefix="golemsync-solc-") as out:
            subprocess.run([solcjs, "--bin", "--optimize", "-o", out, f"{name}.sol"],
                           cwd=CONTRACTS, check=True)
            (built,) = Path(out).glob(f"*_{name}.bin")
            (CONTRACTS / f"{name}.bin").write_text(
                built.read_text(encoding="ascii").strip() + "\n", encoding="ascii")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="rebuild the localnet test token's bytecode")
    parser.add_argument("--build", metavar="SOLCJS", required=True,
                        help="path of solc-js's `solcjs` (npm install solc)")
    args = parser.parse_args(argv)
    build(args.build)
    print(f"wrote {', '.join(f'{n}.bin' for n in NAMES)} in {CONTRACTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
