"""WorkContext: what a worker function sees of the provider it runs on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from .script import Script

if TYPE_CHECKING:
    from .storage.base import StorageProvider


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

    @property
    def storage(self) -> Any:
        """The file-transfer storage used by ``send_*``/``download_*`` (started on first use)."""
        return self._storage()
