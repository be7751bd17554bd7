"""Amounts of GLM are ``decimal.Decimal``; on the wire they are decimal strings."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Union

Amount = Union[Decimal, int, str]


def to_decimal(value: object) -> Decimal:
    """Convert a wire value (string, int, or a float the daemon may send) into a Decimal.

    Floats go through ``repr`` so ``0.1`` becomes ``Decimal('0.1')``, not its binary expansion.
    Raises ``ValueError`` for anything that is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def to_wire(value: Amount) -> str:
    """Serialize an amount as the plain decimal string the daemon expects (no exponent)."""
    amount = to_decimal(value)
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
