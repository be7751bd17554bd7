"""``golemsync`` command line: one argparse subcommand per verb.

Other modules add verbs by appending a ``(name, register)`` pair to :data:`COMMANDS`, where
``register(subparsers)`` adds a parser whose ``func`` default returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from golemsync.cli_client import register_estimate, register_offers, register_status


def _register_devnet(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devnet", help="run a local yagna-compatible network on 127.0.0.1 (foreground)")
    parser.add_argument("--providers", type=int, default=None, help="simulated providers (4)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--app-key", default=None,
                        help="application key (default: random); visible to every local "
                             "user in the process list: prefer --app-key-fd")
    parser.add_argument("--app-key-fd", type=int, default=None, metavar="FD",
                        help="read the application key from this inherited file descriptor")
    parser.add_argument("--seed", type=int, default=None, help="seed for ids and faults")
    parser.add_argument("--config", default=None, help="DevnetConfig JSON file")
    parser.set_defaults(func=_run_devnet)


def _load_config(args: argparse.Namespace) -> Any:
    from golemsync.devnet.config import DevnetConfig

    if args.config:
        config = DevnetConfig.from_file(args.config)
        if args.seed is not None:
            config = DevnetConfig.from_dict({**config.to_dict(), "seed": args.seed})
        return config
    providers = 4 if args.providers is None else args.providers
    return DevnetConfig.default(providers, args.seed)


def _app_key(args: argparse.Namespace) -> Optional[str]:
    if args.app_key_fd is None:
        return args.app_key  # type: ignore[no-any-return]
    with open(args.app_key_fd, encoding="utf-8") as source:
        return source.read().strip() or None


def _run_devnet(args: argparse.Namespace) -> int:
    from golemsync.devnet.network import Devnet
    from golemsync.devnet.sandbox import warn_unsandboxed

    if args.providers is not None and args.providers < 1:
        print(f"error: --providers must be at least 1 (got {args.providers})", file=sys.stderr)
        return 2
    app_key = _app_key(args)
    warn_unsandboxed()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Devnet(_load_config(args), app_key=app_key, port=args.port) as net:
            print(f"export YAGNA_API_URL={net.url}", flush=True)
            print(f"export YAGNA_APPKEY={net.app_key}", flush=True)
            print(f"# golemsync devnet: {len(net.config.providers)} providers, seed "
                  f"{net.config.seed}; Ctrl-C to stop", file=sys.stderr, flush=True)
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


BALANCE_CHECK_SECONDS = 5.0


def _watch_balances(net: Any, stop: threading.Event) -> None:
    """Until ``stop``: have the requestor node send what it owes, print each provider's
    test-token balance on the chain when it changes (the payments settling), and all of them
    once more at the end."""
    from golemsync.money import to_wire

    def balances() -> dict[str, Any]:
        return {p.name: net.chain.token_balance(p.node_id) for p in net.providers}

    def show(label: str, now: dict[str, Any], before: dict[str, Any]) -> None:
        for provider in net.providers:
            change = now[provider.name] - before.get(provider.name, 0)
            if label == "balance" or change:
                print(f"# {label}: {provider.name} {provider.node_id} holds "
                      f"{to_wire(now[provider.name])} tGLM"
                      + (f" (+{to_wire(change)})" if change else ""),
                      file=sys.stderr, flush=True)

    last = balances()
    show("balance", last, {})
    while not stop.wait(BALANCE_CHECK_SECONDS):
        try:
            # The requestor node pays in batches every 5 minutes; on a localnet there is no
            # gas to save, so ask for the batch now: accepted invoices land within seconds.
            net.hurry_payments()
            now = balances()
        except Exception as exc:  # the chain is gone: say so once, stop watching
            print(f"# balances unavailable: {exc}", file=sys.stderr, flush=True)
            stop.wait()
            return
        show("paid", now, last)
        last = now
    try:
        show("balance", balances(), last)
    except Exception as exc:
        print(f"# balances unavailable: {exc}", file=sys.stderr, flush=True)


def _register_localnet(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "localnet", help="run real yagna nodes, a local chain and provider programs on "
                         "127.0.0.1 (foreground; needs golemsync[localnet] and anvil)")
    parser.add_argument("--providers", type=int, default=2, help="provider nodes (2)")
    parser.add_argument("--seed", type=int, default=None, help="seed for provider specs")
    parser.add_argument("--config", default=None,
                        help="DevnetConfig JSON file: the providers' names, prices and faults "
                             "(as for `golemsync devnet --config`)")
    parser.set_defaults(func=_run_localnet)


def _run_localnet(args: argparse.Namespace) -> int:
    from golemsync.localnet import Localnet, LocalnetUnavailable

    if args.providers < 1:
        print(f"error: --providers must be at least 1 (got {args.providers})", file=sys.stderr)
        return 2

    try:
        config = _load_config(args)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"error: --config {args.config}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Localnet(len(config.providers), config=config) as net:
            for name, value in net.env.items():
                print(f"export {name}={value}", flush=True)
            print(f"# golemsync localnet: {len(net.providers)} provider nodes, chain "
                  f"{net.chain.url}, token {net.chain.token}; started in "
                  f"{net.startup_seconds:.1f} s; state in {net.state_dir}; Ctrl-C to stop",
                  file=sys.stderr, flush=True)
            _watch_balances(net, stop)
    except LocalnetUnavailable as exc:
        print(f"golemsync localnet: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _register_yagna(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "yagna", help="run a requestor yagna node for the real Golem network "
                      "(start | stop | status; needs golemsync[localnet])")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, text in (("start", "start the node in the background and print export lines"),
                       ("stop", "stop the node started by `golemsync yagna start`"),
                       ("status", "the node's process, REST API and payment status")):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("--data-dir", type=Path, default=None,
                         help="the node's data dir (default ~/.local/share/golemsync/yagna)")
        if verb == "start":
            sub.add_argument("--network", default=None,
                             help="payment network (default holesky, a testnet; polygon "
                                  "for real GLM)")
            sub.add_argument("--api-port", type=int, default=None,
                             help="REST port on 127.0.0.1 (default 7465 if free)")
            sub.add_argument("--gsb-port", type=int, default=None,
                             help="service bus port on 127.0.0.1 (default 7464 if free)")
        if verb == "status":
            sub.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run_yagna)


def _run_yagna(args: argparse.Namespace) -> int:
    from golemsync.localnet import LocalnetUnavailable, find_yagna
    from golemsync.localnet import requestor as node

    verb = getattr(args, "verb", None)
    if verb is None:
        print("usage: golemsync yagna start|stop|status [--data-dir DIR]", file=sys.stderr)
        return 2
    try:
        if verb == "start":
            record, fresh = node.start(args.data_dir, network=args.network or
                                       node.DEFAULT_NETWORK, api_port=args.api_port,
                                       gsb_port=args.gsb_port)
            for name, value in record.exports().items():
                print(f"export {name}={value}", flush=True)
            state = "started" if fresh else "already running"
            print(f"# golemsync yagna: {state} (pid {record.pid}) in {record.data_dir}; "
                  f"node {record.node_id} pays on {record.network}", file=sys.stderr)
            print(node.funding_instructions(record, str(find_yagna())), file=sys.stderr)
            print("# stop it with: golemsync yagna stop", file=sys.stderr)
            return 0
        if verb == "stop":
            pid = node.stop(args.data_dir)
            print(f"golemsync yagna: stopped pid {pid}" if pid is not None
                  else "golemsync yagna: no node was running")
            return 0
        report = node.status(args.data_dir)
    except (node.RequestorNodeError, LocalnetUnavailable) as exc:
        print(f"golemsync yagna {verb}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_node_status(report)
    return 0 if report.get("running") else 1


def _print_node_status(report: dict[str, Any]) -> None:
    if not report["running"]:
        where = report["data_dir"]
        print(f"not running (data dir {where}); start it with `golemsync yagna start`"
              if "pid" not in report else
              f"not running: pid {report['pid']} of {where} is gone; `golemsync yagna "
              f"start` starts it again")
        return
    print(f"running: pid {report['pid']}, yagna {report.get('version', '?')}, "
          f"REST {report['api_url']}")
    print(f"node:    {report.get('identity', report['node_id'])} on {report['network']}")
    if "rest_error" in report:
        print(f"REST:    {report['rest_error']}")
    problems = report.get("driver_problems")
    if problems:
        print(f"driver:  {problems}")
    if "payment" in report:
        print(f"payment: {json.dumps(report['payment'])}")
    else:
        print(f"payment: unknown: {report.get('payment_error')} (is the chain reachable?)")


COMMANDS: list[tuple[str, Callable[[Any], None]]] = [
    ("devnet", _register_devnet),
    ("localnet", _register_localnet),
    ("yagna", _register_yagna),
    ("status", register_status),
    ("offers", register_offers),
    ("estimate", register_estimate),
]


DESCRIPTION = """\
golemsync: rent computers on the Golem Network from plain Python.

Without a daemon, `golemsync devnet` runs a local test network; the two `export` lines it
prints point any Golem client (and the other commands here) at it. With a yagna daemon, set
YAGNA_APPKEY (and YAGNA_API_URL when it is not http://127.0.0.1:7465), then check the
connection with `golemsync status`.
"""

EPILOG = """\
examples:
  golemsync devnet                        # a local network in the foreground (Ctrl-C stops)
  golemsync status                        # is the daemon reachable, is the key right?
  golemsync offers --min-mem-gib 2        # providers that would take the job, with prices
  golemsync estimate --tasks 100 --seconds-per-task 30 --budget 1

`golemsync COMMAND --help` describes each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="golemsync", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``golemsync`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))
