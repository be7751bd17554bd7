"""The devnet's Net API (``/net-api/v1/net`` and ``/net-api/v2/vpn/net``): requestor VPNs.

Replies as measured on the daemon 0.17.6 (both prefixes serve the same networks):

* ``POST /net`` ``{"ip", "mask"?, "gateway"?}`` → 200 ``{"id", "ip": "<ip>/<prefix>", "mask",
  "gateway"}``: a new random id (an ``id`` sent is ignored), the prefix from ``mask``, else
  from ``ip``'s ``/N``, else 24; the gateway defaults to the network's first host and is the
  requestor's first address. A bad address → 400 ``{"message": "Invalid IP address: ..."}``;
  no ``ip`` → 400 plain text.
* ``GET /net`` → the list; ``GET`` / ``DELETE /net/{id}`` → the network / 200 ``null``; an
  unknown id (also one removed) → 404 ``{"message": "Network not found"}`` when it has the
  daemon's form (32 hex digits), else **403** with an empty body (for every path below too).
* ``GET`` / ``POST /net/{id}/addresses`` ``{"ip"}`` → ``[{"ip": "<ip>/<prefix>"}]`` / 200
  ``null`` (again: no-op); outside the network → 400 ``{"message": "Network not found for IP
  address: <ip>"}``.
* ``GET`` / ``POST /net/{id}/nodes`` ``{"id", "ip"}`` → ``[{"id", "ip"}]`` / 200 ``null``; an
  address already taken keeps its first node; outside the network → 400 ``{"message":
  "Invalid network IP address: <ip>"}``. ``DELETE /net/{id}/nodes/{nodeId}`` removes every
  address of that node → 200 ``null`` (also when there was none).
* ``GET /net/{id}/tcp/{ip}/{port}`` with a WebSocket upgrade → 101, then binary frames carry
  the raw bytes of a TCP connection to ``<port>`` of the activity deployed in that network at
  that address (its ``deploy`` command's ``net`` entry: ``{"id", "nodeIp", ...}``), opened inside
  the activity's sandbox (:meth:`golemsync.devnet.sandbox.Sandbox.connect`). The daemon
  answers 504 with an empty body when the node does not answer; the devnet does so at once
  when no live activity of that node is deployed at that address, and 504 with ``{"message"}``
  when nothing listens on the port (the daemon's reply there is a 504 after its timeout).
  The connection's end on either side closes the other: the provider's EOF closes the
  WebSocket (1000), the requestor's close or EOF closes the TCP connection.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

from golemsync.devnet.http import (
    TEXT,
    HttpError,
    Request,
    Response,
    Router,
    json_response,
    websocket_key,
)

logger = logging.getLogger(__name__)

PREFIXES = ("/net-api/v1/net", "/net-api/v2/vpn/net")
_NETWORK_ID = re.compile(r"[0-9a-fA-F]{32}")
READ_SIZE = 1 << 16
CONNECT_TIMEOUT = 5.0

# (network id, node id, node ip, port) -> a connected socket inside the provider, or raises
# LookupError (no such activity) / OSError (the connection failed).
Connector = Callable[[str, str, str, int], socket.socket]


class Empty(HttpError):
    """An error reply with no body and no content type (the daemon's 403 and 504 here)."""

    def __init__(self, status: int) -> None:
        super().__init__(status, None)

    def response(self) -> Response:
        return Response(self.status)


def activity_connector(activities: Any) -> Connector:
    """A :data:`Connector` over the devnet's activities: the live one of ``node`` whose
    ``deploy`` put it in ``network`` at ``ip`` (:meth:`ExeUnit.vpn_address`)."""
    def connect(network: str, node: str, ip: str, port: int) -> socket.socket:
        for activity in activities.snapshot():
            if activity.destroyed or activity.agreement.provider.node_id != node:
                continue
            address = getattr(activity.unit, "vpn_address", None)
            if address is not None and address(network) == ip:
                connector: Callable[[int, float], socket.socket] = activity.unit.connect
                return connector(port, CONNECT_TIMEOUT)
        raise LookupError(f"no activity of {node} at {ip} in network {network}")
    return connect


@dataclass
class Network:
    network_id: str
    net: ipaddress.IPv4Network
    ip: ipaddress.IPv4Address
    gateway: ipaddress.IPv4Address
    addresses: list[ipaddress.IPv4Address] = field(default_factory=list)
    nodes: dict[ipaddress.IPv4Address, str] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {"id": self.network_id, "ip": f"{self.ip}/{self.net.prefixlen}",
                "mask": str(self.net.netmask), "gateway": str(self.gateway)}


class NetApi:
    """The requestor's networks and the TCP tunnels into provider activities."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._lock = threading.Lock()  # guards _networks and every Network's lists
        self._networks: dict[str, Network] = {}

    def routes(self, router: Router) -> None:
        for prefix in PREFIXES:
            router.add("GET", prefix, self.list_networks)
            router.add("POST", prefix, self.create)
            router.add("GET", f"{prefix}/{{nid}}", self.get)
            router.add("DELETE", f"{prefix}/{{nid}}", self.remove)
            router.add("GET", f"{prefix}/{{nid}}/addresses", self.addresses)
            router.add("POST", f"{prefix}/{{nid}}/addresses", self.add_address)
            router.add("GET", f"{prefix}/{{nid}}/nodes", self.nodes)
            router.add("POST", f"{prefix}/{{nid}}/nodes", self.add_node)
            router.add("DELETE", f"{prefix}/{{nid}}/nodes/{{node}}", self.remove_node)
            router.add("GET", f"{prefix}/{{nid}}/tcp/{{ip}}/{{port}}", self.tcp)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every network with its nodes (for tests and the ledger)."""
        with self._lock:
            return [{**n.wire(), "nodes": {str(ip): node for ip, node in n.nodes.items()}}
                    for n in self._networks.values()]

    # -- networks ----------------------------------------------------------------------------
    def list_networks(self, request: Request) -> Response:
        with self._lock:
            return json_response(200, [n.wire() for n in self._networks.values()])

    def create(self, request: Request) -> Response:
        body = request.json_object(wrap=False)
        if "ip" not in body:
            raise HttpError(400, "Json deserialize error: missing field `ip`", TEXT)
        net, ip = _network_of(body.get("ip"), body.get("mask"))
        gateway = _address(body["gateway"]) if body.get("gateway") else \
            next(net.hosts(), net.network_address)
        network = Network(secrets.token_hex(16), net, ip, gateway, addresses=[gateway])
        with self._lock:
            self._networks[network.network_id] = network
        return json_response(200, network.wire())

    def get(self, request: Request) -> Response:
        network = self._network(request)
        with self._lock:
            return json_response(200, network.wire())

    def remove(self, request: Request) -> Response:
        with self._lock:
            if self._networks.pop(request.params["nid"], None) is None:
                raise _unknown(request.params["nid"])
        return json_response(200, None)

    # -- addresses and nodes -----------------------------------------------------------------
    def addresses(self, request: Request) -> Response:
        network = self._network(request)
        with self._lock:
            return json_response(200, [{"ip": f"{a}/{network.net.prefixlen}"}
                                       for a in network.addresses])

    def add_address(self, request: Request) -> Response:
        network = self._network(request)
        raw = request.json_object(wrap=False).get("ip")
        ip = _address(raw)
        if ip not in network.net:
            raise HttpError.message(400, f"Network not found for IP address: {raw}")
        with self._lock:
            if ip not in network.addresses:
                network.addresses.append(ip)
        return json_response(200, None)

    def nodes(self, request: Request) -> Response:
        network = self._network(request)
        with self._lock:
            return json_response(200, [{"id": node, "ip": str(ip)}
                                       for ip, node in network.nodes.items()])

    def add_node(self, request: Request) -> Response:
        network = self._network(request)
        body = request.json_object(wrap=False)
        node, raw = body.get("id"), body.get("ip")
        if not isinstance(node, str) or not isinstance(raw, str):
            raise HttpError(400, "Json deserialize error: missing field `id` or `ip`", TEXT)
        try:
            ip = ipaddress.IPv4Address(raw)
        except ValueError:
            raise HttpError.message(400, f"Invalid network IP address: {raw}") from None
        if ip not in network.net:
            raise HttpError.message(400, f"Invalid network IP address: {raw}")
        with self._lock:
            network.nodes.setdefault(ip, node)
        return json_response(200, None)

    def remove_node(self, request: Request) -> Response:
        network = self._network(request)
        node = request.params["node"]
        with self._lock:
            for ip in [ip for ip, owner in network.nodes.items() if owner == node]:
                del network.nodes[ip]
        return json_response(200, None)

    # -- the TCP WebSocket -------------------------------------------------------------------
    def tcp(self, request: Request) -> Response:
        network = self._network(request)
        try:
            ip = ipaddress.IPv4Address(request.params["ip"])
            port = int(request.params["port"])
        except ValueError:
            raise HttpError(400, "Path deserialize error: invalid ip or port", TEXT) from None
        if not 0 < port < 65536:
            raise HttpError(400, f"Path deserialize error: invalid port {port}", TEXT)
        key = websocket_key(request, no_connection="No WebSocket Upgrade header found")
        with self._lock:
            node = network.nodes.get(ip)
        if node is None:
            raise Empty(504)
        try:
            sock = self._connector(network.network_id, node, str(ip), port)
        except LookupError:
            raise Empty(504) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise HttpError.message(504, f"TCP connection to {ip}:{port} failed inside the "
                                         f"provider: {reason}") from None
        headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Accept": generate_accept_token(key.encode()).decode()}
        return Response(101, headers=headers, upgrade=_relay(sock))

    def _network(self, request: Request) -> Network:
        with self._lock:
            network = self._networks.get(request.params["nid"])
        if network is None:
            raise _unknown(request.params["nid"])
        return network


# -- helpers ---------------------------------------------------------------------------------

def _unknown(network_id: str) -> HttpError:
    """The daemon's reply for a network it does not have: 404 ``{"message": "Network not
    found"}`` for an id of its own form (32 hex digits: also one removed), else 403, empty."""
    if _NETWORK_ID.fullmatch(network_id):
        return HttpError.message(404, "Network not found")
    return Empty(403)


def _network_of(raw: Any, mask: Any) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    text = raw if isinstance(raw, str) else ""
    address, _, prefix = text.partition("/")
    ip = _address(address)
    try:
        if isinstance(mask, str) and mask:
            net = ipaddress.IPv4Network(f"{ip}/{mask}", strict=False)
        else:
            net = ipaddress.IPv4Network(f"{ip}/{prefix or 24}", strict=False)
    except ValueError:
        raise HttpError.message(400, "Invalid IP address: invalid network mask") from None
    return net, ip


def _address(raw: Any) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(raw).split("/")[0])
    except ValueError:
        raise HttpError.message(400, "Invalid IP address: invalid IP address syntax") from None


def _relay(tcp: socket.socket) -> Callable[[Any, Any], None]:
    def run(sock: socket.socket, rfile: IO[bytes]) -> None:
        Tunnel(sock, rfile, tcp).run()
    return run


class Tunnel:
    """One WebSocket (the requestor's) carrying one TCP connection (inside the provider).

    The HTTP connection's thread reads the WebSocket and writes the TCP socket; a second
    thread, joined before :meth:`run` returns, reads the TCP socket and sends binary frames.
    """

    def __init__(self, ws: socket.socket, rfile: IO[bytes], tcp: socket.socket) -> None:
        self._ws = ws
        self._rfile = rfile
        self._tcp = tcp
        self._conn = Connection(ConnectionType.SERVER)
        self._state_lock = threading.Lock()  # guards _conn (wsproto is not thread-safe)
        self._write_lock = threading.Lock()  # one frame on the wire at a time, in order

    def run(self) -> None:
        upstream = threading.Thread(target=self._from_provider,
                                    name=f"golemsync-devnet-tunnel-{self._tcp.fileno()}")
        upstream.start()
        try:
            self._from_requestor()
        except OSError:
            pass
        finally:
            _shutdown(self._tcp)  # wakes the other thread if the provider side still runs
            upstream.join()
            self._tcp.close()

    def _from_requestor(self) -> None:
        while True:
            data = self._rfile.read1(READ_SIZE)  # type: ignore[attr-defined]
            with self._state_lock:
                self._conn.receive_data(data or None)
                events = list(self._conn.events())
            for event in events:
                if not self._handle(event):
                    return
            if not data:
                return

    def _handle(self, event: Event) -> bool:
        if isinstance(event, (BytesMessage, TextMessage)):
            payload = event.data if isinstance(event, BytesMessage) else event.data.encode()
            self._tcp.sendall(payload)
        elif isinstance(event, Ping):
            self._send(event.response())
        elif isinstance(event, CloseConnection):
            with self._state_lock:
                answer = self._conn.state is ConnectionState.REMOTE_CLOSING
            if answer:
                self._send(event.response())
            return False
        return True

    def _from_provider(self) -> None:
        try:
            while True:
                chunk = self._tcp.recv(READ_SIZE)
                if not chunk:
                    break
                self._send(BytesMessage(data=chunk))
            self._send(CloseConnection(code=1000, reason="connection closed by the provider"))
        except OSError:
            self._send(CloseConnection(code=1011, reason="connection to the provider lost"))
        finally:
            # The provider is done: the requestor's side ends too (once its Close arrives or
            # the socket closes).
            _shutdown(self._ws, socket.SHUT_WR)

    def _send(self, event: Event) -> None:
        with self._write_lock:
            with self._state_lock:
                try:
                    data = self._conn.send(event)
                except LocalProtocolError:
                    return  # already closing or closed
            try:
                self._ws.sendall(data)
            except OSError:
                pass


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
