"""golemsync's exception tree.

Every error golemsync raises on purpose derives from :class:`GolemError`::

    GolemError
    ├── ConfigurationError (ValueError)      bad arguments or settings: fix the call or env
    ├── TransportError                       the HTTP exchange itself failed
    │   ├── DaemonUnreachable                nothing listens at the API URL
    │   └── RequestTimeout                   the daemon did not answer in time
    ├── ApiError                             the daemon answered with an error status
    │   ├── BadRequest (400)
    │   ├── AuthenticationError (401)
    │   ├── Forbidden (403)
    │   ├── NotFound (404)
    │   ├── PollTimeout (408)                a long-poll or wait ran out; calling again is normal
    │   ├── Conflict (409)
    │   ├── Gone (410)
    │   ├── NotImplementedByDaemon (501)
    │   └── ServerError (5xx)
    ├── ProtocolError                        a reply that does not parse as the protocol says
    ├── StorageError                         file transfer helper (gftp) problems
    └── JobError                             the task engine could not finish a job
        ├── NoOffersError                    no provider matched the demand in time
        ├── BudgetExceeded                   the budget cannot cover more work
        ├── JobTimeout                       the job's deadline passed
        ├── TaskFailed                       a task exhausted its retries
        ├── CommandFailed                    one ExeScript command failed on the provider
        └── ActivityTerminated               the provider's activity ended under us

Errors carry their context as attributes (``status``, ``method``, ``url``, ``provider`` ...)
so callers can branch on them without parsing messages. The app key never appears in any of them.
"""

from __future__ import annotations

from typing import Any, Optional


class GolemError(Exception):
    """Root of every error golemsync raises on purpose."""


class ConfigurationError(GolemError, ValueError):
    """A setting or argument is invalid; the message says which and how to fix it."""


class TransportError(GolemError):
    """The HTTP exchange with the daemon failed before a status code was received."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class DaemonUnreachable(TransportError):
    """No daemon answers at the configured API URL."""


class RequestTimeout(TransportError):
    """The daemon accepted the connection but did not answer within the read timeout."""


class ApiError(GolemError):
    """The daemon answered with an error status.

    Attributes: ``status`` (int), ``method``, ``url``, ``server_message`` (the daemon's own text,
    from ``message``/``detail`` of a JSON body or the plain-text body) and ``body`` (parsed JSON
    or text, for problem details such as ``requestedFunds``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        url: str = "",
        server_message: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.server_message = server_message
        self.body = body


class BadRequest(ApiError):
    """HTTP 400: the daemon refused the request as malformed or not allowed in this state."""


class AuthenticationError(ApiError):
    """HTTP 401: the app key is missing or unknown to the daemon."""


class Forbidden(ApiError):
    """HTTP 403: the object belongs to another identity."""


class NotFound(ApiError):
    """HTTP 404: the object does not exist (or no longer does)."""


class PollTimeout(ApiError):
    """HTTP 408: a long-poll or wait ran out before anything happened; calling again is normal."""


class Conflict(ApiError):
    """HTTP 409: the object is in a state that does not allow the call."""


class Gone(ApiError):
    """HTTP 410: the object was released, expired, rejected or already used."""


class NotImplementedByDaemon(ApiError):
    """HTTP 501: the daemon does not implement this call."""


class ServerError(ApiError):
    """HTTP 5xx: the daemon failed internally."""


class ProtocolError(GolemError):
    """The daemon's reply does not have the shape the protocol describes."""


class StorageError(GolemError):
    """The file transfer helper is missing, died, or refused a request."""


class JobError(GolemError):
    """The task engine could not finish a job."""


class NoOffersError(JobError):
    """No provider offer matched the demand within the deadline."""


class BudgetExceeded(JobError):
    """The remaining budget cannot pay for more work."""


class JobTimeout(JobError):
    """The job's overall deadline passed before every task was done."""


class TaskFailed(JobError):
    """A task failed on every attempt it was allowed."""

    def __init__(self, message: str, *, task: Any = None) -> None:
        super().__init__(message)
        self.task = task


class CommandFailed(JobError):
    """An ExeScript command failed on the provider.

    Attributes: ``index`` (position in its batch), ``command`` (its name), ``message`` (the
    exe-unit's text), ``stdout``/``stderr`` when captured, and ``provider``.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int = -1,
        command: str = "",
        stdout: Any = None,
        stderr: Any = None,
        provider: str = "",
    ) -> None:
        super().__init__(message)
        self.index = index
        self.command = command
        self.stdout = stdout
        self.stderr = stderr
        self.provider = provider


class ActivityTerminated(JobError):
    """The provider's activity ended (crash, provider termination) while work was in flight."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider
