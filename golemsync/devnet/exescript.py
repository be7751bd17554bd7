"""The daemon's first check of an ExeScript: serde's parse of the command list.

yagna deserialises ``exec``'s ``text`` into its command enum before any exe-unit sees it, so
a wrong shape, an unknown command or a missing required field is a 400 from the daemon
itself, with serde's error in the message. The exe-unit validates the rest.
"""

from __future__ import annotations

import json
from typing import Any

from golemsync.devnet.errors import ExeScriptError

COMMANDS = ("sign", "deploy", "start", "run", "transfer", "terminate")  # the daemon's order
_REQUIRED = {"run": ("entry_point",), "transfer": ("from", "to")}


def parse(text: str) -> list[dict[str, Any]]:
    """Parse ``exec``'s ``text``; :class:`ExeScriptError` carries the daemon's 400 message."""
    try:
        commands = json.loads(text)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        reason = getattr(exc, "msg", str(exc)).lower()
        raise ExeScriptError(_serde(reason, line, column)) from None
    if not isinstance(commands, list):
        raise ExeScriptError(_serde(f"invalid type: {_kind(commands)}, expected a sequence"))
    for command in commands:
        _check(command)
    return commands


def _check(command: Any) -> None:
    if not isinstance(command, dict) or len(command) != 1:
        raise ExeScriptError(_serde(f"invalid type: {_kind(command)}, expected enum "
                                    "ExeScriptCommand"))
    name, args = next(iter(command.items()))
    if name not in COMMANDS:
        expected = ", ".join(f"`{c}`" for c in COMMANDS)
        raise ExeScriptError(_serde(f"unknown variant `{name}`, expected one of {expected}"))
    for field in _REQUIRED.get(name, ()):
        if not isinstance(args, dict) or field not in args:
            raise ExeScriptError(_serde(f"missing field `{field}`"))


def _serde(reason: str, line: int = 1, column: int = 1) -> str:
    return f'Bad request: Error("{reason}", line: {line}, column: {column})'


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, str):
        return f'string "{value}"'
    return "null" if value is None else f"{type(value).__name__} `{value}`"
