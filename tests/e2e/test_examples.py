"""The examples run as a user runs them: `python examples/X.py`, on an embedded devnet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=env,
                          capture_output=True, text=True, timeout=180)


def test_hello() -> None:
    result = run_example("hello.py")
    assert result.returncode == 0, result.stderr
    assert "says:" in result.stdout and "UTC" in result.stdout and "cost:" in result.stdout


def test_hashcrack_finds_the_word() -> None:
    result = run_example("hashcrack.py", "dog", "--slices", "8", "--workers", "3")
    assert result.returncode == 0, result.stderr
    assert "answer: dog" in result.stdout and "total" in result.stdout


def test_wordcount_ships_files_and_combines_counts() -> None:
    result = run_example("wordcount.py", "--chunks", "6", "--top", "3")
    assert result.returncode == 0, result.stderr
    assert "counting words in 6 chunks" in result.stdout
    assert "self" in result.stdout and "cost:" in result.stdout


def test_kv_service_answers_requests_and_shuts_down() -> None:
    result = run_example("kv_service.py")
    assert result.returncode == 0, result.stderr
    assert "key-value service running on provider" in result.stdout
    assert "get greeting                 -> hello from a provider" in result.stdout
    assert "keys                         -> answer greeting" in result.stdout
    assert "shutdown: the store held 2 keys" in result.stdout
    assert "pending -> starting -> running -> stopping -> terminated" in result.stdout
    assert "cost:" in result.stdout


def test_web_service_serves_a_page_through_the_vpn() -> None:
    result = run_example("web_service.py")
    assert result.returncode == 0, result.stderr
    assert "GET / through the VPN" in result.stdout and "-> 200" in result.stdout
    assert "<h1>Hello from a Golem provider</h1>" in result.stdout
    assert "at 192.168.0.2:8080" in result.stdout  # the page was made on the provider
    assert "pending -> starting -> running -> stopping -> terminated" in result.stdout
