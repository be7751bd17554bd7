"""Finding the localnet's two programs: ``yagna`` (PyPI ``golem-node``) and ``anvil`` (npm).

Each is looked up in its environment variable first (``GOLEMSYNC_YAGNA``,
``GOLEMSYNC_ANVIL``), then next to the running Python (a virtualenv's ``bin``, where
``pip install golemsync[localnet]`` puts ``yagna``), then on ``PATH``. A missing program raises
:class:`LocalnetUnavailable` whose message says how to install it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from golemsync.errors import GolemError

YAGNA_ENV = "GOLEMSYNC_YAGNA"
ANVIL_ENV = "GOLEMSYNC_ANVIL"

YAGNA_HINT = ("install the daemon with `pip install 'golemsync[localnet]'` (PyPI golem-node "
              f"0.17.6 ships the yagna binary) or set {YAGNA_ENV} to its path")
ANVIL_HINT = ("install Foundry's anvil with `npm install --prefix ~/.golemsync/anvil "
              "@foundry-rs/anvil-linux-amd64` and put ~/.golemsync/anvil/node_modules/.bin on "
              f"PATH, or set {ANVIL_ENV} to the binary")


class LocalnetUnavailable(GolemError):
    """A program the localnet needs is not installed; the message says how to install it."""


def _find(env: str, name: str, hint: str) -> Path:
    given = os.environ.get(env)
    if given:
        path = Path(given).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise LocalnetUnavailable(f"{env}={given} is not an executable file; {hint}")
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise LocalnetUnavailable(f"`{name}` not found; {hint}")


def find_yagna() -> Path:
    """The ``yagna`` binary, or :class:`LocalnetUnavailable`."""
    return _find(YAGNA_ENV, "yagna", YAGNA_HINT)


def find_anvil() -> Path:
    """The ``anvil`` binary, or :class:`LocalnetUnavailable`."""
    return _find(ANVIL_ENV, "anvil", ANVIL_HINT)


def missing() -> Optional[str]:
    """Why a localnet cannot start here (the first missing program's message), else None."""
    for finder in (find_yagna, find_anvil):
        try:
            finder()
        except LocalnetUnavailable as exc:
            return str(exc)
    return None
