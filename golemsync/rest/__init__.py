"""The yagna REST layer: the only package of golemsync that speaks HTTP."""

from __future__ import annotations

from .activity_api import ActivityApi, RuntimeEventStream
from .identity_api import IdentityApi
from .market_api import MarketApi
from .payment_api import PaymentApi
from .session import RetryPolicy, Transport
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
    "PaymentApi",
    "Proposal",
    "ProposalEvent",
    "ProposalRejectedEvent",
    "RetryPolicy",
    "RuntimeEvent",
    "RuntimeEventStream",
    "Transport",
    "VersionInfo",
    "YagnaClient",
]
