"""WorkContext: what a worker function sees of the provider it runs on."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Optional

from .script import Script

if TYPE_CHECKING:
    from .market import LinearPricing
    from .storage.base import StorageProvider

USAGE_DURATION = "golem.usage.duration_sec"
USAGE_CPU = "golem.usage.cpu_sec"


@dataclass(frozen=True)
class Usage:
    """An activity's usage counters as its provider reports them now.

    ``counters`` maps each name of the agreement's usage vector (``golem.usage.duration_sec``,
    ``golem.usage.cpu_sec``, ...) to its value; ``duration`` and ``cpu`` are the two that the
    linear price uses (seconds; None when the provider does not count them).
    """

    counters: dict[str, float]

    @property
    def duration(self) -> Optional[float]:
        return self.counters.get(USAGE_DURATION)

    @property
    def cpu(self) -> Optional[float]:
        return self.counters.get(USAGE_CPU)


@dataclass
class WorkContext:
    """One hired provider, as a worker sees it.

    ``new_script()`` starts a batch; yield it from the worker (the engine runs it and resumes the
    generator when it is done) or call :meth:`run` to execute it right away and block.

    The engine builds it with ``_execute`` (runs a script to its end and returns the first
    command error, or None) and ``_storage`` (gives the shared file-transfer storage).
    """

    provider_id: str
    provider_name: str
    agreement_id: str
    activity_id: str
    _execute: Callable[[Script], Optional[BaseException]] = field(repr=False)
    _storage: Callable[[], StorageProvider] = field(repr=False)
    _default_timeout: Optional[float] = field(default=None, repr=False)
    _usage: Optional[Callable[[], Usage]] = field(default=None, repr=False)
    _pricing: Optional[LinearPricing] = field(default=None, repr=False)

    def new_script(self, *, timeout: Optional[float] = None) -> Script:
        """A new, empty script for this provider (``timeout`` in seconds bounds its batch)."""
        return Script(self, timeout=timeout if timeout is not None else self._default_timeout)

    def run(self, script: Script) -> Script:
        """Execute ``script`` now and block until every command is settled.

        Returns the script; its command Futures are done (or cancelled). A failed command
        raises :class:`~golemsync.errors.CommandFailed` here, as it would inside a yielding
        worker; a script timeout or a lost activity raises what the engine raised.
        """
        if script.ctx is not self:
            raise ValueError("this script belongs to another provider's context")
        error = self._execute(script)
        if error is not None:
            raise error
        return script

    def usage(self) -> Usage:
        """This activity's usage now, read from the provider (``GET .../usage``; one request).

        Raises :class:`~golemsync.errors.GolemError` when the daemon cannot give it.
        """
        if self._usage is None:
            raise RuntimeError("this context has no activity usage to read")
        return self._usage()

    def cost(self) -> Optional[Decimal]:
        """What this activity has cost so far, in GLM: the agreed linear price applied to
        :meth:`usage` (one request). None when the agreement's price is not linear.

        It is the provider's due for this activity at the agreed price (its debit notes say
        the same); what is actually paid is decided by the payment checks (see the guide).
        """
        if self._pricing is None:
            return None
        used = self.usage()
        return self._pricing.cost(used.duration or 0.0, used.cpu or 0.0)

    @property
    def storage(self) -> Any:
        """The file-transfer storage used by ``send_*``/``download_*`` (started on first use)."""
        return self._storage()
