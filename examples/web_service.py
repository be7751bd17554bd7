#!/usr/bin/env python3
"""An HTTP server running as a service on a provider, fetched through the VPN.

The requestor creates a VPN network, starts one service instance attached to it, and the
service's start() writes a page and starts ``python3 -m http.server`` in the background on the
provider (it keeps running after its command ends, as on a VM). The requestor then opens a
local port that tunnels to the provider's port 8080 through the daemon's net API, fetches the
page with ``requests`` and prints it. Leaving the ``with`` block stops the service, removes the
network, pays and releases everything. Runs on an embedded devnet by default; set YAGNA_APPKEY
(and YAGNA_API_URL) to use a real yagna daemon instead.

    python examples/web_service.py
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import requests

from golemsync import Golem, GolemError, Script, Service, ServiceState, network, vm

IMAGE_HASH = "d646d7b93083d817846c2ae5c62c72ca0507782385a2e29291a3d376"
IMAGE_URL = f"https://registry.golem.network/v1/image/download?hash={IMAGE_HASH}"
PORT = 8080
SITE = "/golem/work/site"


class WebServer(Service):
    """A static site served by the provider's Python on PORT."""

    def start(self) -> Iterator[Script]:
        node = self.network_node
        address = node.ip if node is not None else "?"
        script = self.new_script(timeout=60)
        script.run("/bin/sh", "-c", f"mkdir -p {SITE} && printf '%s\\n' "
                   f"'<h1>Hello from a Golem provider</h1>' "
                   f"'<p>served by {self.provider_name} at {address}:{PORT}</p>' "
                   f"> {SITE}/index.html")
        # in the background: the server outlives this command, like a daemon on a VM
        script.run("/bin/sh", "-c", f"cd {SITE} && nohup python3 -m http.server {PORT} "
                   f"--bind 0.0.0.0 >/dev/null 2>&1 &")
        # ready when it accepts connections
        script.run("/bin/sh", "-c", "for i in $(seq 100); do python3 -c \"import socket; "
                   f"socket.create_connection(('127.0.0.1', {PORT}), 1)\" 2>/dev/null "
                   "&& exit 0; sleep 0.1; done; exit 1")
        yield script

    def run(self) -> Iterator[Script]:
        self.wait_until_stopping()  # nothing to drive: the server runs until the stop
        return
        yield  # a generator that yields no script


def main() -> int:
    payload = vm.repo(image_hash=IMAGE_HASH, image_url=IMAGE_URL, capabilities=["vpn"])
    try:
        with network() as connection, Golem(budget=1.0, **connection) as golem:
            vpn = golem.create_network("192.168.0.0/24")
            cluster = golem.run_service(WebServer, payload=payload, network=vpn)
            (server,) = cluster.instances
            if not server.wait_for(ServiceState.RUNNING, timeout=300):
                print(f"error: the service did not start ({server.state.value}: "
                      f"{server.error})", file=sys.stderr)
                return 1
            node = server.network_node
            assert node is not None
            print(f"web service running on provider {server.provider_name} at {node.ip}")
            with server.forward(PORT) as local_port:
                reply = requests.get(f"http://127.0.0.1:{local_port}/", timeout=30)
                reply.raise_for_status()
                print(f"GET / through the VPN (local port {local_port}) -> {reply.status_code}")
                print(reply.text.strip())
            cluster.stop()
            print("states: " + " -> ".join(change.state.value for change in server.history))
        print(f"cost: {format(golem.spent, 'f')} GLM")
    except KeyboardInterrupt:
        print("interrupted; every agreement was closed and paid", file=sys.stderr)
        return 130
    except (GolemError, requests.RequestException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
