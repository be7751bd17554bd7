"""VPN networks between the requestor and its providers, and TCP tunnels into them.

``golem.create_network("192.168.0.0/24")`` (:meth:`golemsync.Golem.create_network`) creates a
:class:`Network` through the daemon's Net API; the requestor takes the first host address
(``owner_ip``). :meth:`Network.add_node` gives a provider an address (the next free one unless
asked) and returns a :class:`NetworkNode`, whose :meth:`~NetworkNode.deploy_args` the activity's
``deploy`` command must carry (``script.deploy(**node.deploy_args())``): the provider's
runtime then puts the activity in the network at that address. Then:

* :meth:`NetworkNode.connect` opens a TCP connection to a port of the activity, through the
  daemon's WebSocket (``/net-api/v1/net/{id}/tcp/{ip}/{port}``; binary frames carry the raw
  bytes): a blocking, socket-like :class:`Tunnel` (``send``/``sendall``/``recv``/``close``, a
  context manager);
* :meth:`NetworkNode.forward` listens on ``127.0.0.1`` (a free port unless given) and tunnels
  every connection accepted there to the port; ``with node.forward(8080) as port:
  requests.get(f"http://127.0.0.1:{port}/")``. Two threads per connection (one per
  direction) and one accepting thread, all joined when the ``with`` block ends.

Errors are :class:`NetworkError` (a :class:`~golemsync.errors.GolemError`): an unknown or
removed network, an address outside the network or already taken, no address left;
:class:`TunnelError` when a connection cannot be opened (nothing listens on the port inside
the provider, or the node does not answer). Memory is bounded: a tunnel holds at most one
WebSocket frame beyond what the caller read; a forwarder holds one chunk per direction.

Networks are removed (``DELETE``) by :meth:`Network.remove` (idempotent) and when the
:class:`~golemsync.Golem` that created them closes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import select
import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Optional

import websocket

from .errors import Forbidden, GolemError, NotFound
from .rest.net_api import NetApi

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_FORWARDED = 64  # connections a forwarder tunnels at once; more wait in its backlog


class NetworkError(GolemError):
    """A VPN network operation that cannot be done (the message says why and what to do)."""


class TunnelError(NetworkError):
    """A TCP connection through the VPN that could not be opened."""


class Network:
    """A requestor's VPN (see the module docstring). Thread-safe."""

    def __init__(self, api: NetApi, app_key: str, reply: dict[str, Any], owner_id: str,
                 owner_ip: Optional[str] = None) -> None:
        self._api = api
        self._app_key = app_key
        self.id: str = str(reply["id"])
        self._net = ipaddress.IPv4Network(str(reply["ip"]), strict=False)
        self.ip: str = str(self._net.network_address)
        self.mask: str = str(reply.get("mask") or self._net.netmask)
        self.gateway: Optional[str] = str(reply["gateway"]) if reply.get("gateway") else None
        self.owner_id = owner_id
        self._lock = threading.Lock()  # guards _nodes, _taken, _removed
        self._nodes: dict[str, NetworkNode] = {}  # ip -> node
        self._taken: set[ipaddress.IPv4Address] = set()
        self._removed = False
        if self.gateway is not None:  # the daemon gives the gateway to the requestor
            self._taken.add(ipaddress.IPv4Address(self.gateway))
        owner = self.gateway if owner_ip is None and self.gateway is not None else owner_ip
        chosen = ipaddress.IPv4Address(owner) if owner == self.gateway and owner else \
            self._choose(owner)
        self.owner_ip: str = str(chosen)
        self._taken.add(chosen)

    @classmethod
    def create(cls, api: NetApi, app_key: str, owner_id: str, ip: str, *,
               owner_ip: Optional[str] = None, mask: Optional[str] = None,
               gateway: Optional[str] = None) -> Network:
        """Create a network ``ip`` (``"192.168.0.0/24"``, or an address with ``mask``)."""
        try:
            if mask is not None:
                net = ipaddress.IPv4Network(f"{ip.split('/')[0]}/{mask}", strict=False)
            else:
                net = ipaddress.IPv4Network(ip if "/" in ip else f"{ip}/24", strict=False)
        except ValueError as exc:
            raise NetworkError(f"invalid network {ip!r}{f' with mask {mask!r}' if mask else ''}"
                               f": {exc} (give an IPv4 range such as '192.168.0.0/24')") from None
        if net.num_addresses < 4:
            raise NetworkError(f"network {net} is too small: it needs room for the requestor "
                               "and at least one provider")
        for name, value in (("owner_ip", owner_ip), ("gateway", gateway)):
            if value is not None:
                _host_of(net, value, name)
        reply = api.create_network(str(net.network_address), mask=str(net.netmask),
                                   gateway=gateway)
        try:
            network = cls(api, app_key, reply, owner_id, owner_ip)
            if network.owner_ip != network.gateway:  # the daemon already gave it the gateway
                api.add_address(network.id, network.owner_ip)
        except BaseException:
            with contextlib.suppress(GolemError):
                api.remove_network(str(reply["id"]))
            raise
        logger.info("created network %s (%s/%d), requestor at %s", network.id, network.ip,
                    network._net.prefixlen, network.owner_ip)
        return network

    def __repr__(self) -> str:
        return (f"Network(id={self.id!r}, ip={self.ip!r}, mask={self.mask!r}, "
                f"owner_ip={self.owner_ip!r})")

    @property
    def removed(self) -> bool:
        with self._lock:
            return self._removed

    @property
    def nodes(self) -> list[NetworkNode]:
        """The providers' nodes added so far."""
        with self._lock:
            return list(self._nodes.values())

    def add_node(self, node_id: str, ip: Optional[str] = None) -> NetworkNode:
        """Give provider ``node_id`` an address (``ip``, else the next free one)."""
        with self._lock:
            if self._removed:
                raise NetworkError(f"network {self.id} was removed: create a new one")
            address = self._choose(ip)
            self._taken.add(address)
        try:
            self._api.add_node(self.id, node_id, str(address))
        except BaseException as exc:
            with self._lock:
                self._taken.discard(address)
            if isinstance(exc, (Forbidden, NotFound)):
                raise NetworkError(f"the daemon does not know network {self.id} (removed?): "
                                   "create a new one") from exc
            raise
        node = NetworkNode(self, node_id, str(address))
        with self._lock:
            self._nodes[node.ip] = node
        return node

    def remove(self) -> None:
        """Remove the network from the daemon. Idempotent; tunnels already open may end."""
        with self._lock:
            if self._removed:
                return
            self._removed = True
        try:
            self._api.remove_network(self.id)
        except (Forbidden, NotFound):
            pass  # already gone
        except GolemError as exc:
            logger.warning("could not remove network %s: %s", self.id, exc)

    def _choose(self, ip: Optional[str]) -> ipaddress.IPv4Address:
        """An address for a new member (caller holds ``_lock`` or is the constructor)."""
        if ip is not None:
            address = _host_of(self._net, ip, "address")
            if address in self._taken:
                raise NetworkError(f"address {ip} is already taken in network {self.id}: "
                                   "leave ip unset to get a free one")
            return address
        for address in self._net.hosts():
            if address not in self._taken:
                return address
        raise NetworkError(f"no free address left in network {self._net} ({self.id})")

    def _deploy_entry(self, node_ip: str) -> dict[str, Any]:
        with self._lock:
            nodes = {ip: n.node_id for ip, n in self._nodes.items()}
        nodes[self.owner_ip] = self.owner_id
        entry: dict[str, Any] = {"id": self.id, "ip": self.ip, "mask": self.mask,
                                 "nodeIp": node_ip, "nodes": nodes}
        if self.gateway is not None:
            entry["gateway"] = self.gateway
        return entry


class NetworkNode:
    """A provider's membership of a :class:`Network`."""

    def __init__(self, network: Network, node_id: str, ip: str) -> None:
        self.network = network
        self.node_id = node_id
        self.ip = ip

    def __repr__(self) -> str:
        return f"NetworkNode(node_id={self.node_id!r}, ip={self.ip!r}, network={self.network.id!r})"

    def deploy_args(self) -> dict[str, Any]:
        """What the activity's ``deploy`` command must carry: ``{"net": [{"id", "ip", "mask",
        "gateway", "nodeIp", "nodes": {ip: node id}}]}``."""
        return {"net": [self.network._deploy_entry(self.ip)]}

    def websocket_url(self, port: int) -> str:
        return self.network._api.tcp_url(self.network.id, self.ip, port)

    def connect(self, port: int, timeout: float = 30.0) -> Tunnel:
        """A TCP connection to ``port`` of this node's activity (see :class:`Tunnel`)."""
        if not 0 < port < 65536:
            raise TunnelError(f"invalid port {port}")
        if self.network.removed:
            raise NetworkError(f"network {self.network.id} was removed: create a new one")
        url = self.websocket_url(port)
        try:
            ws = websocket.create_connection(
                url, timeout=timeout, enable_multithread=True,
                header=[f"Authorization: Bearer {self.network._app_key}"])
        except websocket.WebSocketBadStatusException as exc:
            raise self._refused(port, exc) from None
        except (OSError, websocket.WebSocketException) as exc:
            raise TunnelError(f"could not open a tunnel to {self.ip}:{port} in network "
                              f"{self.network.id}: {exc}") from exc
        return Tunnel(ws, f"{self.ip}:{port}")

    def _refused(self, port: int, exc: websocket.WebSocketBadStatusException) -> NetworkError:
        status = exc.status_code
        where = f"{self.ip}:{port} in network {self.network.id}"
        detail = _message(exc.resp_body)
        if status in (403, 404):
            return NetworkError(f"the daemon does not know network {self.network.id} "
                                f"(HTTP {status}; removed?): create a new one")
        if status == 401:
            return NetworkError("the daemon refused the application key for the tunnel: "
                                "check YAGNA_APPKEY")
        if status == 504:
            return TunnelError(f"no TCP connection to {where}: "
                               f"{detail or 'the node did not answer'} (is the activity "
                               "deployed with node.deploy_args() and something listening "
                               "on that port?)")
        return TunnelError(f"no TCP connection to {where}: HTTP {status} {detail}".rstrip())

    @contextlib.contextmanager
    def forward(self, port: int, local_port: int = 0,
                timeout: float = 30.0) -> Iterator[int]:
        """Listen on ``127.0.0.1:<local_port>`` (a free port by default) and tunnel each
        connection accepted there to ``port``; yields the local port. Every thread started is
        joined and every connection closed when the block ends."""
        forwarder = _Forwarder(self, port, local_port, timeout)
        try:
            yield forwarder.port
        finally:
            forwarder.close()


class Tunnel:
    """A blocking, socket-like TCP connection carried by one WebSocket.

    ``recv`` returns ``b""`` once the provider's side closed; ``send``/``sendall`` send all the
    bytes (one binary frame); ``close`` is idempotent. ``recv`` and ``send`` may be called from
    two different threads at once.
    """

    def __init__(self, ws: websocket.WebSocket, where: str) -> None:
        self._ws = ws
        self.where = where
        self._pending = b""
        self._ended = False
        self._closed = False
        self._close_lock = threading.Lock()

    def send(self, data: bytes) -> int:
        if not data:
            return 0
        try:
            self._ws.send_bytes(bytes(data))
        except (OSError, websocket.WebSocketException) as exc:
            raise TunnelError(f"the tunnel to {self.where} is closed ({exc})") from exc
        return len(data)

    sendall = send

    def recv(self, bufsize: int = CHUNK) -> bytes:
        """Up to ``bufsize`` bytes; blocks until some arrive or the connection ends (``b""``).
        Raises :class:`TunnelError` on a timeout (see :meth:`settimeout`) or a broken tunnel."""
        while not self._pending and not self._ended:
            try:
                opcode, data = self._ws.recv_data(control_frame=False)
            except websocket.WebSocketConnectionClosedException:
                self._ended = True
                break
            except websocket.WebSocketTimeoutException as exc:
                raise TunnelError(f"no data from {self.where} in time") from exc
            except (OSError, websocket.WebSocketException) as exc:
                if self._closed:
                    self._ended = True
                    break
                raise TunnelError(f"the tunnel to {self.where} broke ({exc})") from exc
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._ended = True
            elif opcode in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT):
                self._pending = bytes(data)
        chunk, self._pending = self._pending[:bufsize], self._pending[bufsize:]
        return chunk

    def settimeout(self, timeout: Optional[float]) -> None:
        self._ws.settimeout(timeout)

    def close(self) -> None:
        """Send the WebSocket's Close and drop the connection (also wakes a blocked ``recv``
        on another thread). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass
        raw: Optional[socket.socket] = self._ws.sock
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            raw.close()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


class _Forwarder:
    """The listener and threads behind :meth:`NetworkNode.forward`."""

    def __init__(self, node: NetworkNode, port: int, local_port: int, timeout: float) -> None:
        self._node = node
        self._remote = port
        self._timeout = timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", local_port))
            self._listener.listen(MAX_FORWARDED)
        except OSError:
            self._listener.close()
            raise
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()  # guards _threads, _open, _closing
        self._threads: set[threading.Thread] = set()
        self._open: set[Any] = set()  # accepted sockets and tunnels, closed on exit
        self._closing = False
        self.errors: list[BaseException] = []
        self._acceptor = threading.Thread(target=self._accept,
                                          name=f"golemsync-forward-{self.port}")
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self._threads = {t for t in self._threads if t.is_alive()}
                if self._closing or len(self._threads) >= 2 * MAX_FORWARDED:
                    conn.close()
                    continue
                self._open.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,),
                                          name=f"golemsync-forward-{self.port}-in")
                self._threads.add(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        tunnel: Optional[Tunnel] = None
        try:
            tunnel = self._node.connect(self._remote, self._timeout)
            tunnel.settimeout(None)
            with self._lock:
                if self._closing:
                    return
                self._open.add(tunnel)
                back = threading.Thread(target=self._back, args=(tunnel, conn),
                                        name=f"golemsync-forward-{self.port}-out")
                self._threads.add(back)
            back.start()
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break  # the local side is done sending (the replies may still come)
                tunnel.sendall(data)
        except (OSError, GolemError) as exc:
            if not self._closing:
                logger.warning("forwarding to %s:%d failed: %s", self._node.ip,
                               self._remote, exc)
                with self._lock:
                    self.errors = [*self.errors[-15:], exc]  # the last 16
            if tunnel is not None:
                tunnel.close()
            self._done(conn, tunnel)

    def _back(self, tunnel: Tunnel, conn: socket.socket) -> None:
        try:
            while True:
                data = tunnel.recv(CHUNK)
                if not data:
                    break
                conn.sendall(data)
        except (OSError, GolemError):
            pass
        finally:
            tunnel.close()
            self._done(conn, tunnel)

    def _done(self, conn: socket.socket, tunnel: Optional[Tunnel]) -> None:
        _shutdown(conn)
        with self._lock:
            self._open.discard(conn)
            self._open.discard(tunnel)
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake_w.send(b"x")
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            opened = list(self._open)
            threads = list(self._threads)
        for item in opened:
            if isinstance(item, Tunnel):
                item.close()
            else:
                _shutdown(item)
        for thread in threads:
            thread.join()
        for item in opened:
            if not isinstance(item, Tunnel):
                item.close()
        self._wake_r.close()
        self._wake_w.close()


def _host_of(net: ipaddress.IPv4Network, ip: str, what: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise NetworkError(f"invalid IPv4 {what} {ip!r}") from None
    if address not in net or address in (net.network_address, net.broadcast_address):
        raise NetworkError(f"{what} {ip} is not a host address of network {net}")
    return address


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        value = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])
    return body.strip()[:200]


__all__ = ["Network", "NetworkError", "NetworkNode", "Tunnel", "TunnelError"]
