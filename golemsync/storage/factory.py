"""Which gftp program a session uses: the real one, or the devnet's stand-in.

The choice, first match wins: the ``gftp_program`` argument of ``Golem``; the ``GOLEMSYNC_GFTP``
environment variable; the devnet's stand-in when the daemon says it is a golemsync devnet
(its ``/version/get`` name); otherwise ``gftp`` from PATH, as shipped with yagna.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional, Union

from ..config import Config
from ..errors import GolemError
from .gftp import GftpStorage

logger = logging.getLogger(__name__)

STANDIN = [sys.executable, "-m", "golemsync.devnet.gftp_standin"]


def choose_program(client: Any, program: Optional[str]) -> Union[str, list[str]]:
    """The gftp command for this session (see the module docstring)."""
    chosen = program or os.environ.get("GOLEMSYNC_GFTP")
    if chosen:
        return chosen
    try:
        current = client.identity.version().current
    except GolemError as exc:
        logger.debug("version check failed (%s); using gftp", exc)
        return "gftp"
    if current is not None and "golemsync-devnet" in current.name:
        return list(STANDIN)
    return "gftp"


def create_storage(client: Any, config: Config, program: Optional[str]) -> GftpStorage:
    """A storage for a session; its program starts on the first transfer."""
    env = dict(os.environ)
    env.update({"YAGNA_API_URL": config.api_url, "YAGNA_APPKEY": config.app_key})
    return GftpStorage(choose_program(client, program), env=env)
