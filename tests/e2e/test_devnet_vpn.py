"""The VPN end to end: the devnet's Net API, a task job reaching a provider's server through it.

Runs in whatever sandbox mode the devnet picks (``GOLEMSYNC_DEVNET_SANDBOX=plain`` forces the
fallback); the tunnel reaches a process that really listens inside the activity's sandbox.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from devnet_http import Client
from jobs import PAYLOAD, golem_for

from golemsync import Golem, Network, NetworkError, Script, Task, TaskStatus, TunnelError
from golemsync.context import WorkContext
from golemsync.devnet import Devnet
from golemsync.vpn import NetworkNode

pytestmark = pytest.mark.e2e

NET = "/net-api/v1/net"
NODE_A = "0x" + "a" * 40
NODE_B = "0x" + "b" * 40


def upgrade_headers() -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}


# -- the Net API's shapes and statuses --------------------------------------------------------

def test_networks_are_created_listed_and_removed(devnet: Devnet) -> None:
    with Client(devnet) as client:
        created = client.post(NET, json={"id": "ignored", "ip": "192.168.0.0",
                                         "mask": "255.255.255.0"})
        assert created.status_code == 200, created.text
        network = created.json()
        assert set(network) == {"id", "ip", "mask", "gateway"} and network["id"] != "ignored"
        assert (network["ip"], network["mask"], network["gateway"]) == \
            ("192.168.0.0/24", "255.255.255.0", "192.168.0.1")
        wide = client.post("/net-api/v2/vpn/net", json={"ip": "10.0.0.0/16"}).json()
        assert (wide["ip"], wide["mask"], wide["gateway"]) == \
            ("10.0.0.0/16", "255.255.0.0", "10.0.0.1")
        listed = client.get(NET).json()
        assert {n["id"] for n in listed} == {network["id"], wide["id"]}
        assert client.get(f"/net-api/v2/vpn/net/{network['id']}").json() == network
        bad = client.post(NET, json={"ip": "garbage"})
        assert bad.status_code == 400
        assert bad.json() == {"message": "Invalid IP address: invalid IP address syntax"}
        assert client.post(NET, json={}).status_code == 400
        removed = client.delete(f"{NET}/{network['id']}")
        assert removed.status_code == 200 and removed.json() is None
        for gone in (client.delete(f"{NET}/{network['id']}"), client.get(f"{NET}/{network['id']}"),
                     client.get(f"{NET}/{network['id']}/nodes")):
            assert gone.status_code == 404 and gone.json() == {"message": "Network not found"}
        never = client.get(f"{NET}/nosuch")
        assert never.status_code == 403 and never.content == b""


def test_addresses_and_nodes(devnet: Devnet) -> None:
    with Client(devnet) as client:
        nid = client.post(NET, json={"ip": "192.168.7.0/24"}).json()["id"]
        assert client.get(f"{NET}/{nid}/addresses").json() == [{"ip": "192.168.7.1/24"}]
        assert client.post(f"{NET}/{nid}/addresses", json={"ip": "192.168.7.5"}).json() is None
        client.post(f"{NET}/{nid}/addresses", json={"ip": "192.168.7.5"})
        assert client.get(f"{NET}/{nid}/addresses").json() == [{"ip": "192.168.7.1/24"},
                                                               {"ip": "192.168.7.5/24"}]
        outside = client.post(f"{NET}/{nid}/addresses", json={"ip": "10.1.1.1"})
        assert outside.status_code == 400
        assert outside.json() == {"message": "Network not found for IP address: 10.1.1.1"}
        for node, ip in ((NODE_A, "192.168.7.7"), (NODE_A, "192.168.7.8"),
                         (NODE_B, "192.168.7.7"), (NODE_B, "192.168.7.9")):
            added = client.post(f"{NET}/{nid}/nodes", json={"id": node, "ip": ip})
            assert added.status_code == 200 and added.json() is None
        nodes = sorted((n["ip"], n["id"]) for n in client.get(f"{NET}/{nid}/nodes").json())
        assert nodes == [("192.168.7.7", NODE_A), ("192.168.7.8", NODE_A),
                         ("192.168.7.9", NODE_B)]  # a taken address keeps its first node
        outside = client.post(f"{NET}/{nid}/nodes", json={"id": NODE_B, "ip": "10.0.0.5"})
        assert outside.json() == {"message": "Invalid network IP address: 10.0.0.5"}
        assert client.delete(f"{NET}/{nid}/nodes/{NODE_A}").status_code == 200
        assert client.delete(f"{NET}/{nid}/nodes/{NODE_A}").status_code == 200
        assert client.get(f"{NET}/{nid}/nodes").json() == [{"id": NODE_B, "ip": "192.168.7.9"}]
        assert client.post(f"{NET}/nosuch/nodes", json={"id": NODE_A,
                                                        "ip": "192.168.7.3"}).status_code == 403


def test_the_tcp_websocket_refuses_what_it_cannot_reach(devnet: Devnet) -> None:
    with Client(devnet) as client:
        nid = client.post(NET, json={"ip": "192.168.8.0/24"}).json()["id"]
        client.post(f"{NET}/{nid}/nodes", json={"id": NODE_A, "ip": "192.168.8.2"})
        unknown = client.get(f"{NET}/nosuch/tcp/192.168.8.2/80", headers=upgrade_headers())
        assert unknown.status_code == 403
        # A node with no activity deployed at that address: the daemon's "no answer".
        silent = client.get(f"{NET}/{nid}/tcp/192.168.8.2/80", headers=upgrade_headers())
        assert silent.status_code == 504 and silent.content == b""
        assert client.get(f"{NET}/{nid}/tcp/192.168.8.2/80").status_code == 400  # no upgrade
        assert client.get(f"{NET}/{nid}/tcp/192.168.8.2/0",
                          headers=upgrade_headers()).status_code == 400


# -- the client against the devnet ------------------------------------------------------------

def test_client_networks_hand_out_addresses_and_are_removed(devnet: Devnet) -> None:
    with golem_for(devnet) as golem:
        network = golem.create_network("192.168.3.0/29", owner_ip="192.168.3.6")
        assert (network.ip, network.mask, network.owner_ip) == \
            ("192.168.3.0", "255.255.255.248", "192.168.3.6")
        first = network.add_node(NODE_A)  # .1 is the gateway: the daemon's requestor address
        second = network.add_node(NODE_B, ip="192.168.3.4")
        assert (first.ip, second.ip) == ("192.168.3.2", "192.168.3.4")
        with pytest.raises(NetworkError, match="already taken"):
            network.add_node(NODE_B, ip="192.168.3.4")
        with pytest.raises(NetworkError, match="not a host address"):
            network.add_node(NODE_B, ip="192.168.4.1")
        assert [n.ip for n in (network.add_node(NODE_B), network.add_node(NODE_B))] == \
            ["192.168.3.3", "192.168.3.5"]
        with pytest.raises(NetworkError, match="no free address"):
            network.add_node(NODE_B)
        (entry,) = first.deploy_args()["net"]
        assert entry == {"id": network.id, "ip": "192.168.3.0", "mask": "255.255.255.248",
                         "gateway": "192.168.3.1", "nodeIp": "192.168.3.2",
                         "nodes": {"192.168.3.2": NODE_A, "192.168.3.4": NODE_B,
                                   "192.168.3.3": NODE_B, "192.168.3.5": NODE_B,
                                   "192.168.3.6": golem.identity}}
        with pytest.raises(NetworkError, match="owner_ip 10.0.0.1 is not a host address"):
            golem.create_network("192.168.9.0/24", owner_ip="10.0.0.1")
        with Client(devnet) as client:
            served = client.get(f"{NET}/{network.id}/addresses").json()
            assert {"ip": "192.168.3.6/29"} in served
            assert len(client.get(f"{NET}/{network.id}/nodes").json()) == 4
        kept = golem.create_network("10.9.0.0/24")
        network.remove()
        network.remove()  # idempotent
        with pytest.raises(NetworkError, match="was removed"):
            network.add_node(NODE_A)
        with pytest.raises(NetworkError, match="was removed"):
            first.connect(80)
        with pytest.raises(NetworkError, match="invalid network"):
            golem.create_network("192.168.300.0/24")
        with Client(devnet) as client:
            assert [n["id"] for n in client.get(NET).json()] == [kept.id]
    with Client(devnet) as client:
        assert client.get(NET).json() == []  # closing the Golem removed the rest


# An echo server: every byte it receives goes back, until the client closes.
ECHO = ("import socket\n"
        "server = socket.create_server(('127.0.0.1', 7000))\n"
        "while True:\n"
        "    conn, _ = server.accept()\n"
        "    with conn:\n"
        "        for data in iter(lambda: conn.recv(65536), b''):\n"
        "            conn.sendall(data)\n")
WAIT_FOR = ("until python3 -c \"import socket, sys; socket.create_connection(('127.0.0.1', "
            "int(sys.argv[1])))\" {port} 2>/dev/null; do sleep 0.02; done")


def serve_script(marker: str) -> str:
    """Shell text: start a web server and an echo server in the background, wait until both
    accept connections, end (the servers stay)."""
    return (f"mkdir -p /golem/work/{marker} && "
            f"printf 'served from the provider\\n' > /golem/work/{marker}/page.txt && "
            f"python3 -m http.server 8080 --bind 127.0.0.1 --directory /golem/work/{marker} "
            ">/dev/null 2>&1 & "
            f"printf %s \"$ECHO\" > /golem/work/echo.py && "
            f"python3 /golem/work/echo.py {marker} >/dev/null 2>&1 & "
            f"{WAIT_FOR.format(port=8080)}; {WAIT_FOR.format(port=7000)}; echo up")


def marked_processes(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if any(marker.encode() in arg for arg in handle.read().split(b"\0")):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def vpn_worker(network: Network, marker: str, seen: dict[str, Any]
               ) -> Callable[[WorkContext, Iterator[Task[Any]]], Iterator[Script]]:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            node = network.add_node(ctx.provider_id)
            script = ctx.new_script(timeout=60)
            script.add("terminate", {})  # the engine booted it plainly: boot again, in the VPN
            script.deploy(env={"ECHO": ECHO}, **node.deploy_args())
            script.start()
            up = script.run("/bin/sh", "-c", serve_script(marker))
            yield script
            assert up.result().text == "up\n"
            seen["alive_after_command"] = len(marked_processes(marker))
            task.accept_result(exchange(node))
    return worker


def exchange(node: NetworkNode) -> dict[str, Any]:
    """Fetch a page through a forwarder, echo bytes through a tunnel, try a closed port."""
    found: dict[str, Any] = {}
    with node.forward(8080) as port:
        with requests.Session() as session:
            page = session.get(f"http://127.0.0.1:{port}/page.txt", timeout=30)
            again = session.get(f"http://127.0.0.1:{port}/page.txt", timeout=30)
        found["page"] = (page.status_code, page.text, again.text)
        missing = requests.get(f"http://127.0.0.1:{port}/nope", timeout=30)
        found["missing"] = missing.status_code
    payload = os.urandom(300_000)  # several frames each way
    with node.connect(7000) as tunnel:
        tunnel.sendall(payload[:1])
        first = tunnel.recv(10)
        tunnel.sendall(payload[1:])
        echoed = bytearray(first)
        while len(echoed) < len(payload):
            chunk = tunnel.recv()
            assert chunk, "the echo server closed early"
            echoed += chunk
    found["echoed"] = bytes(echoed) == payload
    try:
        node.connect(9)
    except TunnelError as exc:
        found["refused"] = str(exc)
    return found


def test_a_task_reaches_a_server_in_its_provider_through_the_vpn(devnet: Devnet) -> None:
    marker = f"vpn{os.getpid()}x{time.monotonic_ns() % 1_000_000}"
    seen: dict[str, Any] = {}
    with golem_for(devnet) as golem:
        network = golem.create_network("192.168.0.0/24")
        done = list(golem.execute_tasks(vpn_worker(network, marker, seen), [Task("web")],
                                        PAYLOAD, max_workers=1))
        (task,) = done
        assert task.status is TaskStatus.DONE, task
        result = task.result
        assert result["page"] == (200, "served from the provider\n",
                                  "served from the provider\n")
        assert result["missing"] == 404
        assert result["echoed"] is True
        assert "Connection refused" in result["refused"] and ":9 " in result["refused"]
        assert seen["alive_after_command"] == 2  # both servers outlived their command
    # Leaving `with Golem` destroyed the activity: its servers died with it.
    assert marked_processes(marker) == []


def test_a_tunnel_ends_when_the_provider_closes(devnet: Devnet) -> None:
    marker = f"vpn{os.getpid()}y{time.monotonic_ns() % 1_000_000}"

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            node = network.add_node(ctx.provider_id)
            script = ctx.new_script(timeout=60)
            script.add("terminate", {})
            script.deploy(**node.deploy_args())
            script.start()
            # Each connection: answer what it says with hello, then close (the readiness
            # probe says nothing).
            once = ("import socket, sys\n"
                    "server = socket.create_server(('127.0.0.1', 7100))\n"
                    "while True:\n"
                    "    conn, _ = server.accept()\n"
                    "    data = conn.recv(100)\n"
                    "    if data:\n"
                    "        conn.sendall(b'hello ' + data)\n"
                    "    conn.close()\n")
            script.run("/bin/sh", "-c", f"python3 -c \"$0\" {marker} >/dev/null 2>&1 & "
                       f"{WAIT_FOR.format(port=7100)}", once)
            yield script
            with node.connect(7100) as tunnel:
                tunnel.sendall(b"requestor")
                got = b""
                while True:
                    chunk = tunnel.recv()
                    if not chunk:
                        break
                    got += chunk
            task.accept_result(got)

    with golem_for(devnet) as golem:
        network = golem.create_network("192.168.5.0/24")
        (task,) = list(golem.execute_tasks(worker, [Task("once")], PAYLOAD, max_workers=1))
    assert task.result == b"hello requestor"


def test_a_forwarder_reports_a_closed_port_and_joins_its_threads(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            node = network.add_node(ctx.provider_id)
            script = ctx.new_script(timeout=60)
            script.add("terminate", {})
            script.deploy(**node.deploy_args())
            script.start()
            yield script
            with node.forward(8081) as port:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    closed = conn.recv(100)  # the forwarder drops a connection it cannot tunnel
            task.accept_result(closed)

    with golem_for(devnet) as golem:
        network: Network = golem.create_network("192.168.6.0/24")
        (task,) = list(golem.execute_tasks(worker, [Task("closed")], PAYLOAD, max_workers=1))
    assert task.result == b""


def test_create_network_needs_a_running_golem(devnet: Devnet) -> None:
    golem = Golem(api_url=devnet.url, app_key=devnet.app_key, budget=1)
    with pytest.raises(RuntimeError, match="inside `with Golem"):
        golem.create_network()
