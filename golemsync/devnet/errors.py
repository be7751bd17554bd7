"""Errors raised inside the devnet and translated into HTTP replies by its routes.

The exe-unit raises the first three; the HTTP layer maps them onto the daemon's replies:

* :class:`ExeScriptError` → 400 ``{"message": <its message>}`` (exec of a bad script)
* :class:`BatchNotFound` → 404 ``{"message": "Not found: batch_id = <bid>"}``
* :class:`ResultsTimeout` → 408 ``{"message": "Timeout"}``
"""

from __future__ import annotations


class DevnetError(Exception):
    """Root of the devnet's internal errors."""


class ExeScriptError(DevnetError):
    """The ExeScript text is not a valid list of commands; the message is the client's 400 text."""


class BatchNotFound(DevnetError):
    """No batch with this id exists in the activity."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"Not found: batch_id = {batch_id}")
        self.batch_id = batch_id


class ResultsTimeout(DevnetError):
    """A results poll with ``commandIndex`` ran out of time before that command finished."""

    def __init__(self) -> None:
        super().__init__("Timeout")
