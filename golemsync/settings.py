"""Settings: every timing and policy knob of a ``Golem`` session, in one frozen object.

::

    from golemsync import Golem, Settings

    settings = Settings(poll_timeout=1.0, expected_task_seconds=600)
    with Golem(budget=5, settings=settings) as golem:
        ...

Connection settings (URL, app key, subnet, payment platform) stay in
:class:`~golemsync.config.Config`; this object holds how the engine behaves. Model: httpx's
``Timeout`` — one immutable value, passed once, shared by everything it configures; change a
field with ``dataclasses.replace(settings, poll_timeout=1.0)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigurationError
from .rest import RetryPolicy


@dataclass(frozen=True)
class Settings:
    """How a ``Golem`` session waits, retries and judges (all durations in seconds).

    * ``poll_timeout`` — the server-side wait of every long-poll (results, offers, payments);
    * ``activity_timeout`` — how long creating a provider's activity may take;
    * ``approval_timeout`` — how long a provider may take to approve an agreement;
    * ``resubscribe_after`` — with no new offer for this long while providers are wanted, the
      demand is subscribed again (the market sends each offer once per subscription);
    * ``probe_after`` — stuck this long with no usable offer and nobody at work, the engine
      looks at every offer on the subnet to name the requirement none of them meets;
    * ``invoice_timeout`` — how long leaving ``with Golem`` waits for the invoices owed;
    * ``connect_timeout``/``read_timeout`` — HTTP timeouts of ordinary calls (a long-poll's
      read timeout is its ``timeout`` plus a margin);
    * ``retry`` — the :class:`~golemsync.rest.RetryPolicy` of transient HTTP failures;
    * ``expected_task_seconds`` — the duration one task is expected to keep a provider busy:
      the default strategy scores offers by their price for it, and a provider is hired (or
      given another task) only while the budget left covers it;
    * ``max_task_failures`` — task failures in a row (with no accepted task between) after
      which a provider is released as unreliable;
    * ``agreement_lifetime`` — the expiration proposed for each agreement.
    """

    poll_timeout: float = 3.0
    activity_timeout: float = 60.0
    approval_timeout: float = 30.0
    resubscribe_after: float = 10.0
    probe_after: float = 1.0
    invoice_timeout: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    expected_task_seconds: float = 60.0
    max_task_failures: int = 3
    agreement_lifetime: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("poll_timeout", "activity_timeout", "approval_timeout", "invoice_timeout",
                     "connect_timeout", "read_timeout", "expected_task_seconds",
                     "agreement_lifetime"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"Settings.{name} must be a positive number of "
                                         f"seconds, got {value!r}")
        for name in ("resubscribe_after", "probe_after"):
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"Settings.{name} must be 0 or more seconds")
        if not isinstance(self.max_task_failures, int) or self.max_task_failures < 1:
            raise ConfigurationError("Settings.max_task_failures must be a whole number, "
                                     "at least 1")
