"""Identity and version: ``GET /me`` and ``GET /version/get``."""

from __future__ import annotations

from .session import ApiSession
from .wire import Identity, VersionInfo


class IdentityApi:
    """Who this app key acts as, and which daemon answers."""

    def __init__(self, session: ApiSession) -> None:
        self._t = session
        self._base = session.config.identity_url
        self._root = session.config.api_url

    def me(self) -> Identity:
        """The node id (payment address) and app-key name. One short request."""
        return Identity.parse(self._t.call("GET", f"{self._base}/me"))

    def version(self) -> VersionInfo:
        """The daemon's version (``current.name`` identifies a golemsync devnet)."""
        return VersionInfo.parse(self._t.call("GET", f"{self._root}/version/get"))
