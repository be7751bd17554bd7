"""``golemsync status`` and ``golemsync offers``: look at a daemon (or devnet) from the shell.

``status`` answers "can my code talk to Golem?": is the daemon reachable, does it accept the
app key, which identity, payment account and allocations. Each failure comes with what to do.
Exit code 0 when everything needed works, 1 otherwise (2 for bad usage).

``offers`` lists the providers whose offers meet a VM image's requirements, with their prices,
as a table or as JSON (``--json``, errors too): from a market scan (``POST
/market-api/v1/scan``) when the daemon has one, else by publishing a demand for a few seconds.
Exit code 1 when no offer matched.

``estimate`` publishes a demand and plans a job over the offers (:mod:`golemsync.estimate`):
low / likely / high cost and wall time, the providers it would hire, and whether ``--budget``
covers it. Exit code 0 when it does (or no budget was given), 1 when it does not or no offer
matched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

logger = logging.getLogger(__name__)

PLACEHOLDER_HASH = "ab" * 28
PLACEHOLDER_URL = "http://registry.invalid/image.gvmi"


def register_status(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="check the connection to the daemon: identity, account, allocations")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_status)


def _image_arguments(parser: Any) -> None:
    parser.add_argument("--image-hash", default=PLACEHOLDER_HASH, help="SHA3-224 of the image")
    parser.add_argument("--image-url", default=PLACEHOLDER_URL, help="download URL of the image")
    parser.add_argument("--min-mem-gib", type=float, default=0.5)
    parser.add_argument("--min-storage-gib", type=float, default=2.0)
    parser.add_argument("--min-cpu-threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to listen (5)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register_offers(subparsers: Any) -> None:
    parser = subparsers.add_parser("offers", help="scan the market for an image's providers")
    _image_arguments(parser)
    parser.set_defaults(func=run_offers)


def register_estimate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "estimate", help="what a job would cost and take, from the offers on the market now")
    parser.add_argument("--tasks", type=int, required=True, help="number of tasks")
    parser.add_argument("--seconds-per-task", type=float, default=60.0,
                        help="expected seconds of work per task (60)")
    parser.add_argument("--max-workers", type=int, default=4, help="providers to hire (4)")
    parser.add_argument("--startup-seconds", type=float, default=0.0,
                        help="each provider's time before its first task (image download)")
    parser.add_argument("--budget", type=str, default=None, help="GLM available")
    _image_arguments(parser)
    parser.set_defaults(func=run_estimate)


# -- status ----------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    report, ok = diagnose()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            print(f"{key:<14}{value}")
    return 0 if ok else 1


def diagnose() -> tuple[dict[str, Any], bool]:
    """Check each step a requestor needs; returns the findings and whether all is well."""
    from .config import Config
    from .errors import ConfigurationError, GolemError
    from .rest import YagnaClient

    report: dict[str, Any] = {}
    try:
        config = Config.load()
    except ConfigurationError as exc:
        report["problem"] = str(exc)
        return report, False
    report["daemon"] = config.api_url
    with YagnaClient(config) as client:
        try:
            version = client.identity.version()
            report["version"] = version.current.version if version.current else "unknown"
            if version.current and "golemsync-devnet" in version.current.name:
                report["network"] = "golemsync devnet (simulated providers, test currency)"
            report["identity"] = client.identity.me().identity
        except GolemError as exc:
            report["problem"] = str(exc)
            return report, False
        return _payment_status(client, config, report)


def _payment_status(
    client: Any, config: Any, report: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    from .errors import GolemError

    try:
        accounts = client.payment.requestor_accounts()
        allocations = client.payment.list_allocations()
    except GolemError as exc:
        report["problem"] = f"payment API: {exc}"
        return report, False
    platform = config.payment_platform
    mine = [a for a in accounts if a.platform == platform]
    report["platform"] = platform
    report["account"] = mine[0].address if mine else "none"
    report["allocations"] = (f"{len(allocations)} open, "
                             f"{sum((a.remaining_amount for a in allocations), Decimal(0))} "
                             "GLM remaining")
    if not mine:
        report["problem"] = (f"no requestor account on {platform}: run `yagna payment init "
                             f"--sender --network {config.payment_network}` or set "
                             "YAGNA_PAYMENT_NETWORK to a network you have funds on")
        return report, False
    return report, True


# -- offers -------------------------------------------------------------------------------------
def _fail(args: argparse.Namespace, message: str) -> int:
    """Report an error on stderr, or as JSON on stdout with ``--json``; exit code 1."""
    if getattr(args, "json", False):
        print(json.dumps({"error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return 1


def run_offers(args: argparse.Namespace) -> int:
    from .errors import GolemError

    if not args.timeout > 0:
        return _fail(args, f"--timeout must be positive (got {args.timeout})")
    try:
        offers = scan(args)
    except GolemError as exc:
        return _fail(args, str(exc))
    if args.json:
        print(json.dumps(offers, indent=2, default=str))
    else:
        print(_table(offers))
    return 0 if offers else 1


def run_estimate(args: argparse.Namespace) -> int:
    from .errors import ConfigurationError, GolemError
    from .estimate import collect_offers, plan
    from .market import Demand
    from .money import to_decimal

    try:
        budget = None if args.budget is None else to_decimal(args.budget)
    except ValueError:
        return _fail(args, f"--budget must be a number of GLM, got {args.budget!r}")
    problem = _estimate_problem(args)
    if problem is not None:  # before listening to the market for --timeout seconds
        return _fail(args, problem)
    try:
        with _market(args) as (client, config, properties, constraints):
            offers, seen, refused = collect_offers(
                client.market, Demand(properties, constraints),
                platform=config.payment_platform, window=args.timeout,
                poll_timeout=min(args.timeout, 2.0))
        estimate = plan(offers, tasks=args.tasks, seconds_per_task=args.seconds_per_task,
                        max_workers=args.max_workers, budget=budget,
                        startup_seconds=args.startup_seconds, offers_seen=seen,
                        refused=refused)
    except (ConfigurationError, GolemError) as exc:
        return _fail(args, str(exc))
    if not estimate.providers:
        return _fail(args, f"no usable offer matched the demand ({seen} offers seen; check "
                           "the --min-* requirements and YAGNA_SUBNET)")
    print(json.dumps(estimate.to_dict(), indent=2) if args.json else str(estimate))
    return 0 if estimate.covered else 1


def _estimate_problem(args: argparse.Namespace) -> Optional[str]:
    if args.tasks < 1:
        return f"--tasks must be at least 1 (got {args.tasks})"
    if args.max_workers < 1:
        return f"--max-workers must be at least 1 (got {args.max_workers})"
    if not args.seconds_per_task > 0:
        return f"--seconds-per-task must be positive (got {args.seconds_per_task})"
    if args.startup_seconds < 0:
        return f"--startup-seconds must be 0 or more (got {args.startup_seconds})"
    if not args.timeout > 0:
        return f"--timeout must be positive (got {args.timeout})"
    return None


@contextlib.contextmanager
def _market(args: argparse.Namespace) -> Iterator[tuple[Any, Any, dict[str, Any], str]]:
    """A client, the config and the demand (properties, constraints) for the image args."""
    from . import timestamps
    from .config import Config
    from .market import PLATFORM_PREFIX
    from .payload import vm
    from .rest import YagnaClient

    config = Config.load()
    payload = vm.repo(image_hash=args.image_hash, image_url=args.image_url,
                      min_mem_gib=args.min_mem_gib, min_storage_gib=args.min_storage_gib,
                      min_cpu_threads=args.min_cpu_threads)
    platform_key = f"{PLATFORM_PREFIX}{config.payment_platform}.address"
    clauses = [*payload.constraints, f"(golem.node.debug.subnet={config.subnet})",
               f"({platform_key}=*)"]
    with YagnaClient(config) as client:
        identity = client.identity.me().identity
        properties = {**payload.properties, "golem.node.debug.subnet": config.subnet,
                      platform_key: identity, "golem.com.payment.protocol.version": "3",
                      "golem.srv.comp.expiration":
                          int(timestamps.now().timestamp() * 1000) + 15 * 60 * 1000}
        yield client, config, properties, "(&" + "".join(clauses) + ")"


def scan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The providers whose offers meet the requirements: from a market scan when the daemon
    has one, else from a demand subscribed for ``args.timeout`` seconds."""
    from .errors import ApiError
    from .market import LinearPricing

    with _market(args) as (client, _, properties, constraints):
        try:  # a market scan, where the daemon has it: no demand is published
            proposals = _scan_offers(client, constraints, args.timeout)
        except ApiError as exc:
            logger.info("market scan unavailable (%s); publishing a demand", exc)
            subscription = client.market.subscribe_demand(properties, constraints)
            try:
                proposals = _collect(client, subscription, args.timeout)
            finally:
                client.market.unsubscribe_demand(subscription)
    rows = []
    for proposal in proposals.values():
        price = LinearPricing.from_properties(proposal.properties)
        rows.append(_row(proposal, price))
    return sorted(rows, key=lambda r: (r["start_price"] is None, r["price_per_hour"] or 0))


def _scan_offers(client: Any, constraints: str, seconds: float) -> dict[str, Any]:
    from .errors import ApiError

    scan_id = client.market.begin_scan(constraints, lifetime=max(60, int(seconds) + 30))
    found: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            offers = client.market.collect_scan(scan_id, timeout=min(remaining, 2.0))
            for offer in offers:
                found[offer.provider_id] = _ScannedProposal(offer.provider_id, offer.properties)
            if found and not offers:
                break  # the market's offers were all returned
    finally:
        try:
            client.market.end_scan(scan_id)
        except ApiError as exc:
            logger.debug("end scan %s: %s", scan_id, exc)
    return found


@dataclass(frozen=True)
class _ScannedProposal:
    issuer_id: str
    properties: dict[str, Any]


def _collect(client: Any, subscription: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    found: dict[str, Any] = {}
    while (remaining := deadline - time.monotonic()) > 0:
        for event in client.market.collect_offers(subscription, timeout=min(remaining, 2.0)):
            proposal = getattr(event, "proposal", None)
            if proposal is not None and proposal.state == "Initial":
                found[proposal.issuer_id] = proposal
    return found


def _row(proposal: Any, price: Optional[Any]) -> dict[str, Any]:
    props = proposal.properties
    return {
        "name": props.get("golem.node.id.name", ""),
        "provider_id": proposal.issuer_id,
        "cpu_threads": props.get("golem.inf.cpu.threads"),
        "mem_gib": props.get("golem.inf.mem.gib"),
        "storage_gib": props.get("golem.inf.storage.gib"),
        "start_price": None if price is None else price.start,
        "price_per_hour": None if price is None else price.per_second * 3600,
        "price_per_cpu_hour": None if price is None else price.per_cpu_second * 3600,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no offers matched the demand (check --min-* requirements and YAGNA_SUBNET)"
    head = (f"{'provider':<16}{'id':<14}{'threads':>8}{'mem GiB':>9}{'disk GiB':>10}"
            f"{'start GLM':>12}{'GLM/h':>12}{'GLM/cpu-h':>12}")
    lines = [head]
    for r in rows:
        lines.append(f"{str(r['name'])[:16]:<16}{r['provider_id'][:12]:<14}"
                     f"{r['cpu_threads'] or '-':>8}{r['mem_gib'] or '-':>9}"
                     f"{r['storage_gib'] or '-':>10}{_money(r['start_price']):>12}"
                     f"{_money(r['price_per_hour']):>12}{_money(r['price_per_cpu_hour']):>12}")
    return "\n".join(lines)


def _money(value: Optional[Decimal]) -> str:
    return "-" if value is None else f"{value:.6f}"
