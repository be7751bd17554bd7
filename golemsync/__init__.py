"""golemsync: a synchronous requestor library for the Golem Network.

Blocking calls, real threads and standard ``concurrent.futures.Future`` objects; no event loop.
See the README for a quick start and ``docs/guide.md`` for the task model.
"""

from __future__ import annotations

import logging

from .config import Config
from .connection import network
from .context import WorkContext
from .engine import Golem
from .errors import (
    ActivityTerminated,
    ApiError,
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    CommandFailed,
    ConfigurationError,
    Conflict,
    DaemonUnreachable,
    Forbidden,
    GolemError,
    Gone,
    JobError,
    JobTimeout,
    NoOffersError,
    NotFound,
    NotImplementedByDaemon,
    PollTimeout,
    ProtocolError,
    ProvidersExhausted,
    ProviderUnreliable,
    RepeatedFailure,
    RequestTimeout,
    ServerError,
    StorageError,
    TaskFailed,
    TransportError,
    WorkerFailed,
)
from .market import LeastExpensive, LinearPricing, Offer, Strategy
from .payload import Payload, Requirement, vm
from .script import CommandResult, Script
from .settings import Settings
from .summary import Summary
from .tasks import Task, TaskStatus

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ActivityTerminated",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "CommandFailed",
    "CommandResult",
    "Config",
    "ConfigurationError",
    "Conflict",
    "DaemonUnreachable",
    "Forbidden",
    "Golem",
    "GolemError",
    "Gone",
    "JobError",
    "JobTimeout",
    "LeastExpensive",
    "LinearPricing",
    "NoOffersError",
    "NotFound",
    "NotImplementedByDaemon",
    "Offer",
    "Payload",
    "PollTimeout",
    "ProtocolError",
    "ProviderUnreliable",
    "ProvidersExhausted",
    "RepeatedFailure",
    "RequestTimeout",
    "Requirement",
    "Script",
    "ServerError",
    "Settings",
    "StorageError",
    "Strategy",
    "Summary",
    "Task",
    "TaskFailed",
    "TaskStatus",
    "TransportError",
    "WorkContext",
    "WorkerFailed",
    "__version__",
    "network",
    "vm",
]
