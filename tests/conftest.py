"""Suite-wide guards: no test may leave a thread or a child process behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LEAK_GRACE_SECONDS = 5.0


def _children() -> set[int]:
    """Direct child processes of this process (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    task_dir = Path(f"/proc/{os.getpid()}/task")
    if not task_dir.exists():
        return found
    for task in task_dir.iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        found.update(int(pid) for pid in text.split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves threads running or child processes alive after it ends.

    Threads and processes owned by wider-scoped fixtures exist before this fixture runs and
    are not counted. Stopping threads get a grace period, waited for by joining them.
    """
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    leaked_threads = []
    for thread in threading.enumerate():
        if thread in threads_before or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked_threads.append(thread.name)
    leaked_children = []
    for pid in _children() - children_before:
        if _alive(pid):
            leaked_children.append(pid)
    problems = []
    if leaked_threads:
        problems.append(f"threads still running: {sorted(leaked_threads)}")
    if leaked_children:
        problems.append(f"child processes still alive: {sorted(leaked_children)}")
    if problems:
        pytest.fail("test leaked resources: " + "; ".join(problems), pytrace=False)
