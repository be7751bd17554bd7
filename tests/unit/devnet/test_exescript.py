"""The daemon-side parse of ExeScript text: serde-like 400 messages."""

from __future__ import annotations

import json

import pytest

from golemsync.devnet.errors import ExeScriptError
from golemsync.devnet.exescript import parse


def test_valid_script_is_returned() -> None:
    script = [{"deploy": {}}, {"start": {}}, {"run": {"entry_point": "/bin/echo"}},
              {"transfer": {"from": "a", "to": "b"}}, {"terminate": {}}]
    assert parse(json.dumps(script)) == script


@pytest.mark.parametrize("text, fragment", [
    ("[{\"deploy\": {}", 'Bad request: Error("expecting'),
    ("{}", "invalid type: map, expected a sequence"),
    ("[{\"foo\": {}}]", "unknown variant `foo`, expected one of `sign`, `deploy`"),
    ("[{\"run\": {\"args\": []}}]", "missing field `entry_point`"),
    ("[{\"transfer\": {\"from\": \"x\"}}]", "missing field `to`"),
    ("[{\"deploy\": {}, \"start\": {}}]", "expected enum ExeScriptCommand"),
    ("[42]", "expected enum ExeScriptCommand"),
])
def test_bad_scripts(text: str, fragment: str) -> None:
    with pytest.raises(ExeScriptError) as caught:
        parse(text)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith('Bad request: Error("')
