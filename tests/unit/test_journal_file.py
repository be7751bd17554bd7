"""The journal file without a daemon: keys, results, codecs, durability across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from golemsync import ConfigurationError, Journal, Task
from golemsync.journal import task_key


def accepted(data: Any, result: Any, **kwargs: Any) -> Task[Any]:
    task: Task[Any] = Task(data, **kwargs)
    task._start_attempt("p", "provider", None)
    task.accept_result(result)
    return task


def test_keys_are_stable_and_explicit_keys_win() -> None:
    assert task_key(Task({"b": 1, "a": [1, 2]})) == task_key(Task({"a": [1, 2], "b": 1}))
    assert task_key(Task((1, 2))) == task_key(Task([1, 2]))
    assert task_key(Task(1)) != task_key(Task("1"))
    assert task_key(Task(object(), key="k")) == "key:k"
    with pytest.raises(ConfigurationError, match=r"task \{1\} cannot be journaled"):
        task_key(Task({1}))


def test_results_survive_a_reopen_and_resume_marks_tasks(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path)
    journal.open()
    journal.task_done(accepted("x", {"n": 1}))
    journal.task_done(accepted("x", {"n": 1}))  # once per session
    assert journal.recorded == 1
    with pytest.raises(ConfigurationError, match="codec"):
        journal.task_done(accepted("y", {1, 2}))
    journal.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    again = Journal(path)
    again.open()
    try:
        tasks = list(again.resume(["x", "y", Task("x")]))
    finally:
        again.close()
    assert [t.resumed for t in tasks] == [True, False, True]
    assert tasks[0].result == {"n": 1} and tasks[0].attempts == 0
    assert again.resumed == 2


def test_a_journal_must_be_open_to_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "closed")
    with pytest.raises(RuntimeError, match="not open"):
        list(journal.resume([1]))


def test_close_is_idempotent_and_the_journal_can_be_reopened(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "again")
    journal.open()
    assert not journal.attached  # open, but no Golem session records into it
    journal.close()
    journal.close()
    journal.open()
    journal.task_done(accepted("z", 1))
    journal.close()
    assert Journal(tmp_path / "again").codec.loads("1") == 1


def test_count_unfinished(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "count")
    journal.open()
    try:
        journal.task_done(accepted(1, "one"))
        journal.task_done(accepted(2, "two", key="second"))
        assert journal.count_unfinished([1, 2, Task(3, key="second"), 4]) == 2
    finally:
        journal.close()
