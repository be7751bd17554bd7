"""The yagna REST layer: the only package of golemsync that speaks HTTP.

Layers, bottom up: :mod:`~golemsync.rest.transport` (the seam: ``Transport.send(Request) ->
Response``, with :class:`Urllib3Transport` as default, :class:`RequestsTransport` and
:class:`MockTransport` for tests),
:mod:`~golemsync.rest.session` (:class:`ApiSession`: auth, retries, error mapping), the API
areas (``*_api``) and :class:`YagnaClient`, which puts them together.
"""

from __future__ import annotations

from .activity_api import ActivityApi, RuntimeEventStream
from .identity_api import IdentityApi
from .market_api import MarketApi
from .mock import MockTransport
from .payment_api import PaymentApi
from .session import ApiSession, ClientOptions, RetryPolicy
from .transport import Request, RequestsTransport, Response, Transport, Urllib3Transport
from .wire import (
    Account,
    ActivityState,
    ActivityUsage,
    Agreement,
    AgreementEvent,
    Allocation,
    DebitNote,
    DebitNoteEvent,
    ExeScriptCommandResult,
    Identity,
    Invoice,
    InvoiceEvent,
    MarketDecoration,
    Proposal,
    ProposalEvent,
    ProposalRejectedEvent,
    RuntimeEvent,
    VersionInfo,
)
from .yagna import YagnaClient

__all__ = [
    "Account",
    "ActivityApi",
    "ApiSession",
    "ClientOptions",
    "ActivityState",
    "ActivityUsage",
    "Agreement",
    "AgreementEvent",
    "Allocation",
    "DebitNote",
    "DebitNoteEvent",
    "ExeScriptCommandResult",
    "IdentityApi",
    "Identity",
    "Invoice",
    "InvoiceEvent",
    "MarketApi",
    "MarketDecoration",
    "MockTransport",
    "PaymentApi",
    "Proposal",
    "ProposalEvent",
    "ProposalRejectedEvent",
    "Request",
    "RequestsTransport",
    "Urllib3Transport",
    "Response",
    "RetryPolicy",
    "RuntimeEvent",
    "RuntimeEventStream",
    "Transport",
    "VersionInfo",
    "YagnaClient",
]
