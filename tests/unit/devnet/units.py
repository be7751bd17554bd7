"""Helpers for the exe-unit tests: ExeScript commands and running a batch to its end."""

from __future__ import annotations

from typing import Any, Optional

from golemsync.devnet.exeunit import ExeUnit

BOOT = [{"deploy": {}}, {"start": {}}]


def run(entry: str, *args: str, capture: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    body: dict[str, Any] = {"entry_point": entry, "args": list(args)}
    body["capture"] = {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}} if capture is None \
        else capture
    return {"run": body}


def sh(script: str, **kw: Any) -> dict[str, Any]:
    return run("/bin/sh", "-c", script, **kw)


def finish(unit: ExeUnit, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    batch = unit.exec(commands)
    return unit.results(batch, 60, None)
