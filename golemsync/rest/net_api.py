"""The Net API (``/net-api/v1``): the requestor's virtual private networks.

The daemon 0.17.6 serves the same networks under ``/net-api/v1/net`` and
``/net-api/v2/vpn/net``; golemsync speaks v1, as golem-js 3.6 does. Shapes (measured):

* ``POST /net`` ``{"ip", "mask"?, "gateway"?}`` → ``{"id", "ip": "a.b.c.d/N", "mask", "gateway"}``
  (the daemon picks the id, and adds the gateway as the requestor's first address);
* ``POST /net/{id}/addresses`` ``{"ip"}``, ``POST /net/{id}/nodes`` ``{"id", "ip"}``,
  ``DELETE /net/{id}/nodes/{nodeId}``, ``DELETE /net/{id}`` → 200 ``null``;
* an unknown (or removed) network id → 404 ``{"message": "Network not found"}`` (403 with an
  empty body when the id is not even of the daemon's form); an address outside the network → 400;
* ``GET /net/{id}/tcp/{ip}/{port}`` upgraded to a WebSocket: binary frames carry the bytes of a
  TCP connection to that port of that node (:func:`tcp_url`); 504 when it does not answer.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from .session import ApiSession

NET_PREFIX = "/net-api/v1"


class NetApi:
    """Typed calls of the Net API; errors are the session's (:class:`~golemsync.errors.ApiError`
    subclasses: an unknown network is :class:`~golemsync.errors.NotFound` or
    :class:`~golemsync.errors.Forbidden`)."""

    def __init__(self, session: ApiSession) -> None:
        self._t = session
        self._base = f"{session.config.api_url}{NET_PREFIX}/net"

    def create_network(self, ip: str, *, mask: Optional[str] = None,
                       gateway: Optional[str] = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ip": ip}
        if mask is not None:
            body["mask"] = mask
        if gateway is not None:
            body["gateway"] = gateway
        reply: dict[str, Any] = self._t.call("POST", self._base, body=body, idempotent=False)
        return reply

    def networks(self) -> list[dict[str, Any]]:
        reply: list[dict[str, Any]] = self._t.call("GET", self._base)
        return reply

    def network(self, network_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = self._t.call("GET", self._url(network_id))
        return reply

    def remove_network(self, network_id: str) -> None:
        self._t.call("DELETE", self._url(network_id))

    def addresses(self, network_id: str) -> list[dict[str, Any]]:
        reply: list[dict[str, Any]] = self._t.call("GET", self._url(network_id, "addresses"))
        return reply

    def add_address(self, network_id: str, ip: str) -> None:
        self._t.call("POST", self._url(network_id, "addresses"), body={"ip": ip},
                     idempotent=True)

    def nodes(self, network_id: str) -> list[dict[str, Any]]:
        reply: list[dict[str, Any]] = self._t.call("GET", self._url(network_id, "nodes"))
        return reply

    def add_node(self, network_id: str, node_id: str, ip: str) -> None:
        self._t.call("POST", self._url(network_id, "nodes"), body={"id": node_id, "ip": ip},
                     idempotent=True)

    def remove_node(self, network_id: str, node_id: str) -> None:
        self._t.call("DELETE", self._url(network_id, "nodes", node_id))

    def tcp_url(self, network_id: str, ip: str, port: int) -> str:
        """The ``ws://`` (or ``wss://``) URL of a TCP connection to ``ip:port``."""
        return websocket_url(self._url(network_id, "tcp", ip, str(port)))

    def _url(self, network_id: str, *parts: str) -> str:
        return "/".join([self._base, *(quote(p, safe="") for p in (network_id, *parts))])


def websocket_url(http_url: str) -> str:
    """``http(s)://`` → ``ws(s)://``, the rest of the URL unchanged."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))
