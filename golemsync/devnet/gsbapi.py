"""GSB API routes (``/gsb-api/v1``), with the daemon's replies (LOCALNET §5).

* ``POST /services`` ``{"listen": {"on", "components"}}`` → 201
  ``{"listen": {...}, "servicesId"}`` with ``Location: /<servicesId>``; a duplicate or empty
  prefix → 400 ``{"message"}``; a body that does not parse → 400 plain text.
* ``DELETE /services/{id}`` → 200 ``null``; unknown → 404 ``{"message"}``.
* ``GET /services/{id}`` with a WebSocket upgrade (subprotocol ``gsb+flexbuffers``) → 101, then
  the socket carries the service's calls (:mod:`golemsync.devnet.gsbsocket`); unknown → 404;
  no upgrade → 400. Authentication is the server's: a Bearer header or ``?authToken=``.
"""

from __future__ import annotations

from typing import IO, Any

from wsproto.utilities import generate_accept_token

from golemsync.devnet import gsbsocket
from golemsync.devnet.gsb import BindError, GsbService, GsbServices, address_of
from golemsync.devnet.gsbwire import SUBPROTOCOL
from golemsync.devnet.http import (
    TEXT,
    HttpError,
    Request,
    Response,
    Router,
    json_response,
    websocket_key,
)

PREFIX = "/gsb-api/v1"


class GsbApi:
    """The HTTP face of one node's :class:`~golemsync.devnet.gsb.GsbServices`."""

    def __init__(self, services: GsbServices) -> None:
        self.services = services

    def routes(self, router: Router) -> None:
        router.add("POST", f"{PREFIX}/services", self.bind)
        router.add("DELETE", f"{PREFIX}/services/{{sid}}", self.unbind)
        router.add("GET", f"{PREFIX}/services/{{sid}}", self.listen)

    def bind(self, request: Request) -> Response:
        on, components = _listen_body(request)
        try:
            service = self.services.bind(on, components)
        except BindError as exc:
            raise HttpError.message(exc.status, str(exc)) from None
        body = {"listen": {"on": on, "components": components},
                "servicesId": service.services_id}
        response = json_response(201, body)
        response.headers["Location"] = f"/{service.services_id}"
        return response

    def unbind(self, request: Request) -> Response:
        address = _address(request)
        if not self.services.unbind(address):
            raise HttpError.message(404, "Service prefix not found: Cannot find service: "
                                         f"{address}")
        return json_response(200, None)

    def listen(self, request: Request) -> Response:
        address = _address(request)
        service = self.services.find(address)
        if service is None:
            raise HttpError.message(404, f"Service prefix not found: {address}")
        key = websocket_key(request)
        headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Accept": generate_accept_token(key.encode()).decode()}
        offered = [p.strip() for p in (request.header("Sec-WebSocket-Protocol") or "").split(",")]
        if SUBPROTOCOL in offered:
            headers["Sec-WebSocket-Protocol"] = SUBPROTOCOL
        return Response(101, headers=headers, upgrade=_upgrade(service))


def _upgrade(service: GsbService) -> Any:
    def run(sock: Any, rfile: IO[bytes]) -> None:
        gsbsocket.serve(service, sock, rfile)
    return run


def _listen_body(request: Request) -> tuple[str, list[str]]:
    body = request.json_object(wrap=False)
    listen = body.get("listen")
    if not isinstance(listen, dict):
        raise HttpError(400, "Json deserialize error: missing field `listen`", TEXT)
    on, components = listen.get("on"), listen.get("components")
    if not isinstance(on, str):
        raise HttpError(400, "Json deserialize error: missing field `on`", TEXT)
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise HttpError(400, "Json deserialize error: invalid field `components`, "
                             "expected a sequence of strings", TEXT)
    return on, components


def _address(request: Request) -> str:
    try:
        return address_of(request.params["sid"])
    except ValueError as exc:
        raise HttpError.message(400, str(exc)) from None


