"""One devnet "machine": every service wired together behind one HTTP server.

Service threads: ``golemsync-devnet-http`` (accept loop), ``golemsync-devnet-conn-N`` (one per
connection), ``golemsync-devnet-agent`` (the providers' side: approvals, debit notes,
crash handling, invoices), plus whatever the exe-units start.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

from golemsync.devnet import gftpstore
from golemsync.devnet.activities import Activities, Activity, ExeUnitFactory, ExeUnitLike
from golemsync.devnet.agent import ProviderAgent
from golemsync.devnet.agreements import Agreement, Agreements
from golemsync.devnet.config import USAGE_VECTOR, DevnetConfig
from golemsync.devnet.events import UniqueClock
from golemsync.devnet.faults import HttpFaults
from golemsync.devnet.gsb import GsbServices
from golemsync.devnet.gsbapi import GsbApi
from golemsync.devnet.http import Router
from golemsync.devnet.identity import identity_routes
from golemsync.devnet.invoicing import Invoicing
from golemsync.devnet.market import Market
from golemsync.devnet.netapi import NetApi, activity_connector
from golemsync.devnet.payments import Payments
from golemsync.devnet.providers import build_providers, node_id
from golemsync.devnet.sandbox import remove_tree
from golemsync.devnet.server import Application, DevnetHTTPServer

logger = logging.getLogger(__name__)


def default_exeunit_factory(activity_id: str, **kwargs: Any) -> ExeUnitLike:
    """Build the real exe-unit (``golemsync.devnet.exeunit.ExeUnit``)."""
    from golemsync.devnet.exeunit import ExeUnit  # loaded with the first activity

    unit: ExeUnitLike = ExeUnit(activity_id, **kwargs)
    return unit


class DevnetNode:
    """All devnet services and the HTTP server, started and stopped together."""

    def __init__(self, config: DevnetConfig, app_key: str, port: int = 0,
                 exeunit_factory: Optional[ExeUnitFactory] = None) -> None:
        self.config = config
        self.node_id = node_id(config.seed, "requestor")
        self.closing = threading.Event()
        self._own_workdir = config.workdir is None
        self.workdir = Path(config.workdir or tempfile.mkdtemp(prefix="golemsync-devnet-"))
        clock = UniqueClock()
        self.gsb = GsbServices(self.node_id)  # services the requestor binds (GSB API)
        self.agent = ProviderAgent(self._tick, min(1.0, config.debit_note_interval / 4))
        self.market = Market(config, self.node_id, build_providers(config))
        self.agreements = Agreements(self.market, self.agent, clock)
        self.activities = Activities(
            self.agreements, exeunit_factory or default_exeunit_factory, self.workdir,
            gftpstore.store_root(self.node_id), USAGE_VECTOR, config.seed,
            config.sse_ping_interval, self.closing, self.gsb,
            quick_failed_poll=config.quick_failed_batch_poll)
        self.net = NetApi(activity_connector(self.activities))
        self.payments = Payments(config, self.node_id)
        self.invoicing = Invoicing(config, self.payments, clock)
        self.agreements.on_terminated = self._agreement_ended
        self.activities.on_crash = self._activity_crashed
        faults = HttpFaults(config.seed, config.http_error_rate, config.http_latency)
        self.server = DevnetHTTPServer(port, Application(self._router(), app_key, faults,
                                                         self.closing))
        self._stopped = False

    def _router(self) -> Router:
        router = Router()
        identity_routes(router, self.node_id)
        self.market.routes(router)
        self.agreements.routes(router)
        self.activities.routes(router)
        self.payments.routes(router)
        self.invoicing.routes(router)
        GsbApi(self.gsb).routes(router)
        self.net.routes(router)
        return router

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.agent.start()
        self.server.start()
        logger.info("devnet listening on 127.0.0.1:%d with %d providers (seed %d)",
                    self.port, len(self.config.providers), self.config.seed)

    def stop(self) -> None:
        """Stop serving, destroy every exe-unit, finish provider work, join every thread."""
        if self._stopped:
            return
        self._stopped = True
        self.closing.set()
        self.server.stop(self._wake_waiters)
        self.agent.stop()
        if self._own_workdir:
            remove_tree(self.workdir)

    def _wake_waiters(self) -> None:
        self.gsb.close()  # first: exe-units waiting on a GSB call are released at once
        self.market.close()
        self.agreements.close()
        self.invoicing.close()
        self.activities.finish_all()

    # -- provider side (agent thread) ------------------------------------------------------

    def _tick(self) -> None:
        self.invoicing.debit_notes_due(self.activities.snapshot())

    def _agreement_ended(self, agreement: Agreement) -> None:
        activities = self.activities.of_agreement(agreement.agreement_id)
        for activity in activities:
            self.activities.finish(activity)
        self.invoicing.issue_invoice(agreement, activities)

    def _activity_crashed(self, activity: Activity, reason: str) -> None:
        agreement_id = activity.agreement.agreement_id
        message = {"message": f"Activity {activity.activity_id} crashed: {reason}",
                   "golem.provider.code": "ExeUnitCrashed"}

        def terminate() -> None:
            self.agreements.terminate_by_provider(agreement_id, message)

        self.agent.submit(terminate)

    # -- ledger ----------------------------------------------------------------------------

    def ledger(self) -> dict[str, Any]:
        """See :meth:`golemsync.devnet.network.Devnet.ledger` for the shape."""
        docs = self.invoicing.snapshot()
        return {"agreements": [self._agreement_entry(a, docs)
                               for a in self.agreements.snapshot()],
                "allocations": [{"id": a.allocation_id, "total": a.total, "spent": a.spent,
                                 "remaining": a.remaining, "released": a.released}
                                for a in self.payments.snapshot()]}

    def _agreement_entry(self, agreement: Agreement, docs: dict[str, list[Any]]) -> dict[str, Any]:
        invoice = next((i for i in docs["Invoice"] if i.agreement is agreement), None)
        notes = [(n.doc_id, n.amount, n.status) for n in docs["DebitNote"]
                 if n.agreement is agreement]
        return {
            "agreement_id": agreement.agreement_id,
            "provider_id": agreement.provider.node_id,
            "provider_name": agreement.provider.spec.name,
            "state": agreement.state,
            "terminator": (agreement.termination or {}).get("terminator"),
            "activities": [a.activity_id for a in self.activities.of_agreement(
                agreement.agreement_id)],
            "invoice_id": invoice.doc_id if invoice else None,
            "invoice_amount": invoice.amount if invoice else None,
            "invoice_status": invoice.status if invoice else None,
            "debit_notes": notes,
            "accepted_total": self.invoicing.accepted_total(agreement),
        }

