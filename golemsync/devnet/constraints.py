"""LDAP-style constraint expressions, as the Golem market matches demands and offers.

Grammar (whitespace, including newlines and tabs, allowed between elements)::

    expr  := "(" ")"                       always true
           | "(" "&" expr* ")"             all of
           | "(" "|" expr* ")"             any of
           | "(" "!" expr ")"              not
           | "(" key op value ")"          op in = < <= > >= ; "=*" tests presence

Evaluation is three-valued like the market's resolver: a leaf whose property is missing is
*undefined*, and an expression that ends up undefined does not match. Numbers compare
numerically, strings lexically, booleans as ``true``/``false``; a list property matches when
any element does; ``*`` inside an ``=`` value is a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

_OPERATORS = ("<=", ">=", "=", "<", ">")


class ConstraintSyntaxError(ValueError):
    """The constraint text does not parse; ``position`` is where parsing stopped."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Leaf:
    key: str
    op: str
    value: str


@dataclass(frozen=True)
class Group:
    op: str  # "&", "|", "!"
    children: tuple[Node, ...]


Node = Union[Leaf, Group]
# Tri-state result: True, False, or None for "undefined" (a referenced property is missing).
Truth = Optional[bool]


def parse(text: str) -> Node:
    """Parse a constraint string; raises :class:`ConstraintSyntaxError` when malformed."""
    parser = _Parser(text)
    node = parser.expression()
    parser.skip_space()
    if parser.pos != len(text):
        raise ConstraintSyntaxError("trailing text", parser.pos)
    return node


def matches(constraints: str, properties: Mapping[str, Any]) -> bool:
    """True when ``constraints`` parses and evaluates to true; malformed text never matches."""
    try:
        node = parse(constraints)
    except ConstraintSyntaxError:
        return False
    return evaluate(node, properties) is True


def evaluate(node: Node, properties: Mapping[str, Any]) -> Truth:
    """Evaluate a parsed expression against flat properties (three-valued)."""
    if isinstance(node, Leaf):
        return _leaf(node, properties)
    results = [evaluate(child, properties) for child in node.children]
    if node.op == "!":
        return None if results[0] is None else not results[0]
    if node.op == "&":
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_space()
        if not self.text.startswith(char, self.pos):
            raise ConstraintSyntaxError(f"expected {char!r}", self.pos)
        self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expression(self) -> Node:
        self.expect("(")
        head = self.peek()
        if head == ")":
            self.pos += 1
            return Group("&", ())
        if head in ("&", "|", "!"):
            self.pos += 1
            return self.group(head)
        return self.leaf()

    def group(self, op: str) -> Group:
        children = []
        while self.peek() == "(":
            children.append(self.expression())
        self.expect(")")
        if op == "!" and len(children) != 1:
            raise ConstraintSyntaxError("'!' takes exactly one expression", self.pos)
        return Group(op, tuple(children))

    def leaf(self) -> Leaf:
        end = self.text.find(")", self.pos)
        if end < 0:
            raise ConstraintSyntaxError("unterminated expression", self.pos)
        body = self.text[self.pos:end]
        if "(" in body:
            raise ConstraintSyntaxError("unexpected '('", self.pos + body.index("("))
        key, op, value = _split_leaf(body, self.pos)
        self.pos = end + 1
        return Leaf(key, op, value)


def _split_leaf(body: str, position: int) -> tuple[str, str, str]:
    cut = min((i for i in (body.find(c) for c in "=<>") if i >= 0), default=-1)
    if cut <= 0:
        raise ConstraintSyntaxError("expected 'key<op>value'", position)
    op = next(o for o in _OPERATORS if body.startswith(o, cut))
    key = body[:cut].strip()
    value = body[cut + len(op):].strip()
    if not key or any(c.isspace() for c in key) or not value:
        raise ConstraintSyntaxError("expected 'key<op>value'", position)
    return key, op, value


def _leaf(leaf: Leaf, properties: Mapping[str, Any]) -> Truth:
    if leaf.key not in properties:
        return None
    actual = properties[leaf.key]
    if leaf.op == "=" and leaf.value == "*":
        return True
    candidates: Sequence[Any] = actual if isinstance(actual, list) else [actual]
    return any(_compare(item, leaf.op, leaf.value) for item in candidates)


def _compare(actual: Any, op: str, text: str) -> bool:
    if isinstance(actual, bool):
        return op == "=" and text.lower() == str(actual).lower()
    if isinstance(actual, (int, float)):
        try:
            expected: Any = float(text)
        except ValueError:
            return False
        return _ordered(float(actual), op, expected)
    if isinstance(actual, str):
        if op == "=":
            return _wildcard(actual, text) if "*" in text else actual == text
        numbers = _numbers(actual, text)
        if numbers is not None:
            return _ordered(numbers[0], op, numbers[1])
        return _ordered(actual, op, text)
    return op == "=" and str(actual) == text


def _ordered(actual: Any, op: str, expected: Any) -> bool:
    if op == "=":
        return bool(actual == expected)
    if op == "<":
        return bool(actual < expected)
    if op == "<=":
        return bool(actual <= expected)
    if op == ">":
        return bool(actual > expected)
    return bool(actual >= expected)


def _wildcard(actual: str, pattern: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, actual, re.DOTALL) is not None


def _numbers(left: str, right: str) -> tuple[float, float] | None:
    """Both sides as numbers when both parse (``"3" > "10"`` must compare numerically)."""
    try:
        return float(left), float(right)
    except ValueError:
        return None
