"""Choosing the network: the daemon named by the environment, or an embedded devnet.

Examples and first experiments should run anywhere, so :func:`network` starts a devnet on
loopback unless ``YAGNA_APPKEY`` is set, in which case it connects to that daemon as usual.
``YAGNA_API_URL`` set without ``YAGNA_APPKEY`` is refused (:class:`ConfigurationError`): the
daemon named was meant, and silently running on a devnet instead would hide the mistake.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Optional

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def network(*, providers: int = 4, seed: Optional[int] = None) -> Iterator[dict[str, Any]]:
    """Yield the keyword arguments that point :class:`~golemsync.Golem` at a network.

    With ``YAGNA_APPKEY`` set they are empty (``Golem`` reads the environment). Otherwise an
    in-process devnet with ``providers`` simulated providers is started for the duration of
    the ``with`` block and stopped after it; if its providers' commands cannot run under
    bubblewrap, one warning says so on stderr (see :mod:`golemsync.devnet.sandbox`).
    ``YAGNA_API_URL`` without ``YAGNA_APPKEY`` raises :class:`~golemsync.errors.ConfigurationError`.
    """
    if os.environ.get("YAGNA_API_URL") and not os.environ.get("YAGNA_APPKEY"):
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"YAGNA_API_URL is set ({os.environ['YAGNA_API_URL']}) but YAGNA_APPKEY is not: "
            "set YAGNA_APPKEY to use that daemon, or unset YAGNA_API_URL to run on an "
            "embedded devnet")
    if os.environ.get("YAGNA_APPKEY"):
        yield {}
        return
    from .devnet import Devnet  # local: the devnet is only loaded when it is used
    from .devnet.sandbox import warn_unsandboxed

    warn_unsandboxed()  # once per process, on stderr, when commands would run without bwrap
    with Devnet(providers=providers, seed=seed) as devnet:
        logger.info("running on an embedded devnet at %s", devnet.url)
        yield {"api_url": devnet.url, "app_key": devnet.app_key}
