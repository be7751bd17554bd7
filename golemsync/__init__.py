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
    BudgetExceeded,
    CommandFailed,
    ConfigurationError,
    DaemonUnreachable,
    GolemError,
    JobError,
    JobTimeout,
    NoOffersError,
    ProtocolError,
    StorageError,
    TaskFailed,
)
from .market import LeastExpensive, LinearPricing, Offer, Strategy
from .payload import Payload, vm
from .script import CommandResult, Script
from .summary import Summary
from .tasks import Task, TaskStatus

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ActivityTerminated",
    "ApiError",
    "AuthenticationError",
    "BudgetExceeded",
    "CommandFailed",
    "CommandResult",
    "Config",
    "ConfigurationError",
    "DaemonUnreachable",
    "Golem",
    "GolemError",
    "JobError",
    "JobTimeout",
    "LeastExpensive",
    "LinearPricing",
    "NoOffersError",
    "Offer",
    "Payload",
    "ProtocolError",
    "Script",
    "StorageError",
    "Strategy",
    "Summary",
    "Task",
    "TaskFailed",
    "TaskStatus",
    "WorkContext",
    "__version__",
    "network",
    "vm",
]
