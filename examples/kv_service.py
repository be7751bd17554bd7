#!/usr/bin/env python3
"""A key-value store running as a service on a provider, driven by messages.

The requestor sends requests (``set``, ``get``, ``keys``) to the running service; the service
runs each one on its provider as a command (every key is a file in the VM's work directory)
and sends the answer back. Leaving the ``with`` block stops the service: its shutdown() reports
what the store holds, then the provider is released and paid. Runs on an embedded devnet by
default; set YAGNA_APPKEY (and YAGNA_API_URL) to use a real yagna daemon instead.

    python examples/kv_service.py [--respawn]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from typing import Any

from golemsync import (
    Golem,
    GolemError,
    Script,
    Service,
    ServiceState,
    network,
    vm,
)

IMAGE_HASH = "d646d7b93083d817846c2ae5c62c72ca0507782385a2e29291a3d376"
IMAGE_URL = f"https://registry.golem.network/v1/image/download?hash={IMAGE_HASH}"
STORE = "/golem/work/kv"
KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# One shell program per request kind; the key and value arrive as arguments, never as code.
COMMANDS = {
    "set": 'printf "%s" "$2" > "$STORE/$1" && echo stored',
    "get": 'cat "$STORE/$1" 2>/dev/null || echo "(no such key)"',
    "keys": 'ls "$STORE" | tr "\\n" " "',
}


class KeyValue(Service):
    """The store: one file per key under /golem/work/kv on the provider."""

    def start(self) -> Iterator[Script]:
        script = self.new_script(timeout=60)
        script.run("/bin/sh", "-c", f"mkdir -p {STORE}")
        yield script

    def run(self) -> Iterator[Script]:
        while not self.stopping:
            request = self.receive_message(timeout=1.0)
            if request is None:
                continue
            kind, *args = request
            if kind not in COMMANDS or not all(KEY.match(a) for a in args[:1]):
                self.send_message(f"refused: {request!r}")
                continue
            script = self.new_script(timeout=60)
            program = f"STORE={STORE}; " + COMMANDS[kind]
            answer = script.run("/bin/sh", "-c", program, "kv", *args)
            yield script
            self.send_message(answer.result().text.strip())

    def shutdown(self) -> Iterator[Script]:
        script = self.new_script(timeout=30)
        count = script.run("/bin/sh", "-c", f"ls {STORE} | wc -l")
        yield script
        self.send_message(f"shutdown: the store held {count.result().text.strip()} keys")


def ask(instance: Any, *request: str) -> str:
    instance.send(request)
    answer = str(instance.receive(timeout=120))
    print(f"  {' '.join(request):<28} -> {answer}")
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--respawn", action="store_true",
                        help="restart the service on another provider if its provider fails")
    options = parser.parse_args()
    payload = vm.repo(image_hash=IMAGE_HASH, image_url=IMAGE_URL)
    try:
        with network() as connection, Golem(budget=1.0, **connection) as golem:
            cluster = golem.run_service(KeyValue, payload=payload, respawn=options.respawn)
            (store,) = cluster.instances
            if not store.wait_for(ServiceState.RUNNING, timeout=300):
                print(f"error: the service did not start ({store.state.value})", file=sys.stderr)
                return 1
            print(f"key-value service running on provider {store.provider_name}")
            ask(store, "set", "greeting", "hello from a provider")
            ask(store, "set", "answer", "42")
            ask(store, "get", "greeting")
            ask(store, "get", "missing")
            ask(store, "keys")
            cluster.stop()
            print(f"  {store.receive(timeout=60)}")
            print("states: " + " -> ".join(change.state.value for change in store.history))
        print(f"cost: {format(golem.spent, 'f')} GLM")
    except KeyboardInterrupt:
        print("interrupted; every agreement was closed and paid", file=sys.stderr)
        return 130
    except GolemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
