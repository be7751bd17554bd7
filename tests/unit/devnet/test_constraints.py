"""The LDAP-style constraint parser and its three-valued evaluation."""

from __future__ import annotations

import pytest

from golemsync.devnet.constraints import ConstraintSyntaxError, Group, Leaf, matches, parse

OFFER = {
    "golem.runtime.name": "vm",
    "golem.inf.mem.gib": 8.0,
    "golem.inf.cpu.threads": 4,
    "golem.com.payment.protocol.version": "3",
    "golem.activity.caps.transfer.protocol": ["gftp", "http", "https"],
    "golem.srv.caps.multi-activity": True,
    "golem.node.id.name": "alpha-node",
}


def test_parse_builds_the_tree() -> None:
    node = parse("(&(a=1)\n\t(|(b>=2)(!(c=*))))")
    assert node == Group("&", (Leaf("a", "=", "1"), Group("|", (
        Leaf("b", ">=", "2"), Group("!", (Leaf("c", "=", "*"),))))))


@pytest.mark.parametrize("text", [
    "()", "(golem.runtime.name=vm)", "(golem.inf.mem.gib>=0.5)", "(golem.inf.mem.gib>7)",
    "(golem.inf.mem.gib<=8)", "(golem.inf.cpu.threads<5)", "(golem.inf.cpu.threads=4)",
    "(golem.inf.mem.gib=8)", "(golem.com.payment.protocol.version>1)",
    "(golem.com.payment.protocol.version>=3)", "(golem.activity.caps.transfer.protocol=http)",
    "(golem.srv.caps.multi-activity=true)", "(golem.node.id.name=alpha*)",
    "(golem.node.id.name=*node)", "(golem.runtime.name=*)",
    "(&(golem.runtime.name=vm)(golem.inf.mem.gib>=1))", "(|(golem.runtime.name=wasm)(x<1)()  )",
    "(!(golem.runtime.name=wasm))", "( & ( golem.runtime.name = vm ) )", "(&)",
])
def test_matching_expressions(text: str) -> None:
    assert matches(text, OFFER), text


@pytest.mark.parametrize("text", [
    "(golem.runtime.name=wasm)", "(golem.inf.mem.gib>8)", "(golem.inf.mem.gib<8)",
    "(golem.inf.cpu.threads>=5)", "(golem.com.payment.protocol.version>10)",
    "(golem.activity.caps.transfer.protocol=ftp)", "(golem.srv.caps.multi-activity=false)",
    "(golem.node.id.name=beta*)", "(missing.key=1)", "(missing.key=*)",
    "(!(missing.key=1))", "(&(golem.runtime.name=vm)(missing.key=1))",
    "(golem.inf.mem.gib>=lots)", "(|)",
])
def test_non_matching_expressions(text: str) -> None:
    assert not matches(text, OFFER), text


def test_or_with_a_true_branch_is_true_even_if_another_is_undefined() -> None:
    assert matches("(|(missing=1)(golem.runtime.name=vm))", OFFER)


@pytest.mark.parametrize("text", [
    "", "golem.runtime.name=vm", "(golem.runtime.name=vm", "(=vm)", "(golem.runtime.name=)",
    "(&(a=1)", "(a=1))", "(!(a=1)(b=2))", "(a b=1)", "(&(a=1)x)", "((a=1))",
])
def test_malformed_text_raises_and_never_matches(text: str) -> None:
    with pytest.raises(ConstraintSyntaxError):
        parse(text)
    assert not matches(text, OFFER)
