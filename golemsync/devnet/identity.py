"""Identity and version routes: ``GET /me`` and the open ``GET /version/get``."""

from __future__ import annotations

from golemsync.devnet.http import Request, Response, Router, json_response

DAEMON_VERSION = "0.17.6"
DEVNET_NAME = "golemsync-devnet (yagna-compatible loopback network)"


def identity_routes(router: Router, node_id: str, key_name: str = "requestor") -> None:
    """Register ``/me`` (the requestor's identity) and ``/version/get``."""

    def me(request: Request) -> Response:
        return json_response(200, {"identity": node_id, "name": key_name, "role": "manager"})

    def version(request: Request) -> Response:
        return json_response(200, {"current": {
            "version": DAEMON_VERSION, "name": DEVNET_NAME, "seen": True,
            "releaseTs": "2026-03-28T00:00:00", "insertionTs": None, "updateTs": None},
            "pending": None})

    router.add("GET", "/me", me)
    router.add("GET", "/version/get", version)
