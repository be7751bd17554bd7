"""Which file transfer a session uses: the daemon's GSB API, or a ``gftp`` program.

The choice, first match wins:

1. the ``gftp_program`` argument of ``Golem``, else ``GOLEMSYNC_GFTP``: that gftp program;
2. ``GOLEMSYNC_STORAGE=gsb`` or ``=gftp``: that kind (gftp means the devnet's stand-in on a
   golemsync devnet, ``gftp`` from PATH elsewhere);
3. a golemsync devnet (its ``/version/get`` name): the GSB API, which it serves like the
   daemon;
4. ``gftp`` on PATH (it ships with yagna's release archives): gftp;
5. otherwise the GSB API: the daemon on PyPI ships no gftp, and golemsync needs none.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any, Optional, Union

from ..config import Config
from ..errors import ConfigurationError, GolemError
from .base import StorageProvider
from .gftp import GftpStorage
from .gsb import GsbStorage

logger = logging.getLogger(__name__)

STANDIN = [sys.executable, "-m", "golemsync.devnet.gftp_standin"]
KINDS = ("gsb", "gftp")


def choose(client: Any, program: Optional[str]) -> tuple[str, Union[str, list[str], None]]:
    """``("gsb", None)`` or ``("gftp", command)`` for this session (see the module docstring)."""
    explicit = program or os.environ.get("GOLEMSYNC_GFTP")
    if explicit:
        return "gftp", explicit
    kind = os.environ.get("GOLEMSYNC_STORAGE", "").strip().lower()
    if kind and kind not in KINDS:
        raise ConfigurationError(f"GOLEMSYNC_STORAGE must be one of {', '.join(KINDS)}, "
                                 f"not {kind!r}")
    if kind == "gsb":
        return "gsb", None
    devnet = _is_devnet(client)
    if kind == "gftp":
        return "gftp", list(STANDIN) if devnet else "gftp"
    if devnet:
        return "gsb", None
    if shutil.which("gftp"):
        return "gftp", "gftp"
    return "gsb", None


def create_storage(client: Any, config: Config, program: Optional[str]) -> StorageProvider:
    """The storage for a session; nothing starts until the first transfer."""
    kind, command = choose(client, program)
    logger.info("file transfer: %s", "GSB API" if kind == "gsb" else f"gftp ({command!r})")
    if kind == "gsb":
        return GsbStorage(client)
    env = dict(os.environ)
    env.update({"YAGNA_API_URL": config.api_url, "YAGNA_APPKEY": config.app_key})
    assert command is not None
    return GftpStorage(command, env=env)


def _is_devnet(client: Any) -> bool:
    try:
        current = client.identity.version().current
    except GolemError as exc:
        logger.debug("version check failed (%s); not a golemsync devnet", exc)
        return False
    return current is not None and "golemsync-devnet" in current.name
