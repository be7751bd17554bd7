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
        ├── NoOffersError                    no offer matched the demand (the report says why)
        ├── ProvidersExhausted               offers matched, but no provider could be kept at work
        ├── BudgetExceeded                   the budget cannot cover more work
        ├── JobTimeout                       the job's deadline passed
        ├── WorkerFailed                     the worker function failed before taking a task
        ├── TaskFailed                       a task exhausted its retries
        ├── RepeatedFailure                  a task failed the same way on two providers
        ├── ProviderUnreliable               a provider failed several tasks in a row
        ├── CommandFailed                    one ExeScript command failed on the provider
        ├── ActivityTerminated               the provider's activity ended under us
        └── ServiceEnded                     a service instance ended: no more messages
            └── ServiceFailed                a service instance failed (``instance.error``)

An error that ends a job early (raised by the ``execute_tasks`` iterator) carries
``unfinished``: every task read from the caller's iterable that was not yielded, so that
``yielded + len(error.unfinished) == submitted`` always; a :class:`JobError` also carries
``report``, the job's diagnosis (offers seen and why refused, providers released and why).

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
    """The task engine could not finish a job.

    ``unfinished`` lists the job's tasks not yielded when the job ended by this error (empty
    when the error did not end a job); ``report`` is the job's diagnosis text ('' if none).
    """

    unfinished: list[Any]
    report: str

    def __init__(self, message: str = "", *, report: str = "") -> None:
        super().__init__(message)
        self.unfinished = []
        self.report = report

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.report}" if self.report else text


class NoOffersError(JobError):
    """No provider offer matched the demand (the report names the constraint or price cap)."""


class ProvidersExhausted(JobError):
    """Offers matched, but every provider refused, failed or crashed: none is left to hire."""


class WorkerFailed(JobError):
    """The worker function raised (or yielded something other than a script) before taking
    a task: a mistake in the requestor's code, not a provider's fault."""


class RepeatedFailure(JobError):
    """A task failed the same way on two providers, so it is the task that fails, not them.

    ``first_provider`` is the id of the first provider it failed on; ``__cause__`` the last
    failure.
    """

    def __init__(self, message: str, *, first_provider: str = "") -> None:
        super().__init__(message)
        self.first_provider = first_provider


class ProviderUnreliable(JobError):
    """A provider failed several tasks in a row and was released (the job goes on)."""


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
    exe-unit's text), ``exit_code`` (for ``run`` commands, when known), ``stdout``/``stderr``
    when captured, and ``provider``.
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
        exit_code: Optional[int] = None,
        reason: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.command = command
        self.stdout = stdout
        self.stderr = stderr
        self.provider = provider
        self.exit_code = exit_code
        self.message = reason if reason is not None else message


class ActivityTerminated(JobError):
    """The provider's activity ended (crash, provider termination) while work was in flight."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider


class ServiceEnded(JobError):
    """A service instance has ended: nothing more can be sent to it or received from it."""


class ServiceFailed(ServiceEnded):
    """A service instance failed (its provider failed and no respawn was asked or possible,
    or the service's own code raised); the cause is chained and in ``instance.error``."""
