"""golemsync's test token: a minimal ERC-20 (``contracts/LocalToken.sol``) and its bytecode.

The compiled bytecode ships beside the source (``contracts/LocalToken.bin``), so a localnet
needs no compiler. After changing the source, rebuild it with::

    npm install --prefix /tmp/solcjs solc       # solc-js: the compiler as wasm, works offline
    python -m golemsync.localnet.token --build /tmp/solcjs/node_modules/.bin/solcjs

The constructor takes no arguments and mints the whole supply (10^9 tokens, 18 decimals) to
the deployer.
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
SOURCE = CONTRACTS / "LocalToken.sol"
BYTECODE = CONTRACTS / "LocalToken.bin"

# ERC-20 function selectors (first four bytes of the keccak-256 of the signature).
BALANCE_OF = "0x70a08231"  # balanceOf(address)
TRANSFER = "0xa9059cbb"    # transfer(address,uint256)


def bytecode() -> str:
    """The deployable bytecode, hex without ``0x``."""
    return BYTECODE.read_text(encoding="ascii").strip()


def build(solcjs: str) -> None:
    """Compile the source with solc-js (optimised) and write ``contracts/LocalToken.bin``."""
    with tempfile.TemporaryDirectory(prefix="golemsync-solc-") as out:
        subprocess.run([solcjs, "--bin", "--optimize", "-o", out, SOURCE.name],
                       cwd=CONTRACTS, check=True)
        (built,) = Path(out).glob("*LocalToken.bin")
        BYTECODE.write_text(built.read_text(encoding="ascii").strip() + "\n", encoding="ascii")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="rebuild the localnet test token's bytecode")
    parser.add_argument("--build", metavar="SOLCJS", required=True,
                        help="path of solc-js's `solcjs` (npm install solc)")
    args = parser.parse_args(argv)
    build(args.build)
    print(f"wrote {BYTECODE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
