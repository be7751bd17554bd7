"""The devnet's Net API against the real daemon: the same requests, the same replies.

Needs only ``yagna`` (one plain node, no chain); skips, saying what to install, without it.
The TCP WebSocket itself needs a provider with a VM runtime, which the localnet has not: here
only its refusal of an unknown network is compared.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from golemsync.config import Config
from golemsync.devnet import Devnet, DevnetConfig
from golemsync.localnet import LocalnetUnavailable, find_yagna
from golemsync.localnet.node import YagnaNode
from golemsync.rest import YagnaClient
from golemsync.rest.net_api import NetApi
from golemsync.vpn import Network, NetworkError

NODE_A = "0x" + "a" * 40
NODE_B = "0x" + "b" * 40


@pytest.fixture(scope="module")
def daemon() -> Iterator[YagnaNode]:
    try:
        yagna = find_yagna()
    except LocalnetUnavailable as exc:
        pytest.skip(f"the real daemon is unavailable: {exc}")
    with tempfile.TemporaryDirectory(prefix="golemsync-vpn-") as state:
        node = YagnaNode("vpn", yagna, Path(state))
        node.launch()
        try:
            node.wait_ready()
            node.setup_identity()
            yield node
        finally:
            node.stop()


def replies(base: str, key: str) -> list[Any]:
    """One fixed sequence of Net API requests; each reply as (status, body) with the
    network's id replaced, JSON parsed, text cut to its first words."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    seen: list[Any] = []
    nid = ""

    def call(method: str, path: str, **kwargs: Any) -> Any:
        reply = session.request(method, base + path.replace("{nid}", nid), timeout=30, **kwargs)
        body: Any
        if not reply.content:
            body = ""
        elif reply.headers.get("content-type", "").startswith("application/json"):
            body = reply.json()
        else:
            body = reply.text.split(" at line")[0]
        seen.append((method, path, reply.status_code, _anonymous(body, nid)))
        return body

    try:
        network = call("POST", "/net-api/v1/net", json={"ip": "192.168.0.0",
                                                        "mask": "255.255.255.0"})
        nid = network["id"]
        seen[-1] = seen[-1][:3] + (_anonymous(network, nid),)
        call("POST", "/net-api/v1/net", json={"ip": "garbage"})
        call("POST", "/net-api/v1/net", json={})
        call("GET", "/net-api/v1/net/{nid}")
        call("GET", "/net-api/v1/net/{nid}/addresses")
        call("POST", "/net-api/v1/net/{nid}/addresses", json={"ip": "192.168.0.5"})
        call("POST", "/net-api/v1/net/{nid}/addresses", json={"ip": "192.168.0.5"})
        call("POST", "/net-api/v1/net/{nid}/addresses", json={"ip": "10.1.1.1"})
        call("GET", "/net-api/v1/net/{nid}/addresses")
        for node, ip in ((NODE_A, "192.168.0.7"), (NODE_B, "192.168.0.7"),
                         (NODE_A, "192.168.0.8"), (NODE_B, "10.0.0.5")):
            call("POST", "/net-api/v1/net/{nid}/nodes", json={"id": node, "ip": ip})
        nodes = call("GET", "/net-api/v2/vpn/net/{nid}/nodes")
        seen[-1] = seen[-1][:3] + (sorted(nodes, key=lambda n: n["ip"]),)  # order: a hash map's
        call("DELETE", f"/net-api/v1/net/{{nid}}/nodes/{NODE_A}")
        call("DELETE", f"/net-api/v1/net/{{nid}}/nodes/{NODE_A}")
        call("GET", "/net-api/v1/net/{nid}/nodes")
        call("GET", "/net-api/v1/net/nosuch")
        call("GET", "/net-api/v1/net/nosuch/tcp/192.168.0.7/80",
             headers={"Connection": "Upgrade", "Upgrade": "websocket",
                      "Sec-WebSocket-Version": "13",
                      "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
        call("DELETE", "/net-api/v1/net/{nid}")
        call("DELETE", "/net-api/v1/net/{nid}")
        call("GET", "/net-api/v1/net/{nid}/nodes")
    finally:
        session.close()
    return seen


def _anonymous(body: Any, nid: str) -> Any:
    if isinstance(body, dict) and body.get("id") == nid:
        return {**body, "id": "<network>"}
    return body


def test_the_devnet_answers_the_net_api_as_the_daemon_does(daemon: YagnaNode) -> None:
    expected = replies(daemon.api_url, daemon.app_key)
    with Devnet(DevnetConfig.default(1, 3)) as devnet:
        got = replies(devnet.url, devnet.app_key)
    differences = [(mine, theirs) for mine, theirs in zip(got, expected) if mine != theirs]
    assert differences == [] and len(got) == len(expected)


def test_the_client_network_works_on_the_daemon(daemon: YagnaNode) -> None:
    config = Config.load(app_key=daemon.app_key, api_url=daemon.api_url)
    with YagnaClient(config) as yagna:
        api = NetApi(yagna.session)
        network = Network.create(api, daemon.app_key, daemon.node_id, "192.168.40.0/24",
                                 owner_ip="192.168.40.9")
        node = network.add_node(NODE_A)
        assert node.ip == "192.168.40.2"
        assert api.addresses(network.id) == [{"ip": "192.168.40.1/24"},
                                             {"ip": "192.168.40.9/24"}]
        assert api.nodes(network.id) == [{"id": NODE_A, "ip": "192.168.40.2"}]
        network.remove()
        network.remove()
        assert network.id not in [n["id"] for n in api.networks()]
        with pytest.raises(NetworkError, match="was removed"):
            network.add_node(NODE_B)
