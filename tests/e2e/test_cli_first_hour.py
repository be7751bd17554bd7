"""The command line as a newcomer meets it: help for users, bad arguments refused before
anything is contacted (a dead daemon URL proves nothing was)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

DEAD = {"YAGNA_API_URL": "http://127.0.0.1:9", "YAGNA_APPKEY": "k"}  # nothing listens there


def golemsync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "golemsync", *args], env=full,
                          capture_output=True, text=True, timeout=60)


def test_help_is_written_for_users() -> None:
    result = golemsync("--help", env={})
    assert result.returncode == 0
    text = result.stdout
    assert "golemsync devnet" in text and "YAGNA_APPKEY" in text and "examples:" in text
    for developer_words in ("argparse", ":data:", "register(", "``"):
        assert developer_words not in text
    for command in ("devnet", "localnet", "status", "offers", "estimate"):
        assert command in text


@pytest.mark.parametrize(("args", "message"), [
    (("estimate", "--tasks", "0"), "--tasks must be at least 1"),
    (("estimate", "--tasks", "5", "--max-workers", "0"), "--max-workers must be at least 1"),
    (("estimate", "--tasks", "5", "--seconds-per-task", "0"), "--seconds-per-task must be"),
    (("estimate", "--tasks", "5", "--budget", "lots"), "--budget must be a number"),
    (("offers", "--timeout", "0"), "--timeout must be positive"),
])
def test_bad_arguments_are_refused_before_the_daemon_is_asked(args: tuple[str, ...],
                                                              message: str) -> None:
    plain = golemsync(*args, env=DEAD)
    assert plain.returncode == 1 and message in plain.stderr, plain.stderr
    as_json = golemsync(*args, "--json", env=DEAD)
    assert as_json.returncode == 1 and message in json.loads(as_json.stdout)["error"]


def test_localnet_refuses_zero_providers_before_looking_for_yagna() -> None:
    result = golemsync("localnet", "--providers", "0", env={"GOLEMSYNC_YAGNA": "/nonexistent"})
    assert result.returncode == 2 and "--providers must be at least 1" in result.stderr
