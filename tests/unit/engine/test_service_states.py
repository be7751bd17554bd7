"""The service model's pieces without a network: the instance state machine, its blocking
``wait_for``, the message queues, and the checks of ``run_service``'s arguments."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golemsync.errors import ConfigurationError, ServiceEnded, ServiceFailed
from golemsync.events import Event, ServiceStateChanged
from golemsync.script import Script
from golemsync.services import (
    ALLOWED,
    Service,
    ServiceInstance,
    ServiceState,
    _Channel,
    lifetime_of,
)

S = ServiceState


class FakeCluster:
    """What an instance asks of its cluster, recorded."""

    id = "cluster-test"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.woken = 0

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def _wake(self) -> None:
        self.woken += 1


def make_instance(max_messages: int = 2) -> tuple[ServiceInstance, FakeCluster]:
    cluster = FakeCluster()
    return ServiceInstance(cast(Any, cluster), 0, Service(), max_messages), cluster


# -- the state machine ---------------------------------------------------------------------------
def test_failed_is_reachable_from_every_live_state_and_final_states_are_final() -> None:
    for state in ServiceState:
        if state.final:
            assert not ALLOWED[state]
        else:
            assert S.FAILED in ALLOWED[state]
    assert {s for s in ServiceState if S.TERMINATED in ALLOWED[s]} == {S.PENDING, S.STOPPING}
    assert {s for s in ServiceState if S.PENDING in ALLOWED[s]} == {S.STARTING, S.RUNNING}


@given(st.lists(st.sampled_from(list(ServiceState)), max_size=30))
def test_any_sequence_of_moves_leaves_a_legal_history(moves: list[ServiceState]) -> None:
    instance, cluster = make_instance()
    for move in moves:
        before = instance.state
        try:
            instance._enter(move)
        except RuntimeError as exc:
            assert move not in ALLOWED[before] and "not a valid transition" in str(exc)
            assert instance.state is before
    history = [change.state for change in instance.history]
    assert history[0] is S.PENDING
    assert all(b in ALLOWED[a] for a, b in zip(history, history[1:]))
    assert all(not s.final for s in history[:-1])
    changes = [e for e in cluster.events if isinstance(e, ServiceStateChanged)]
    assert [e.state for e in changes] == [s.value for s in history[1:]]
    assert [e.previous for e in changes] == [s.value for s in history[:-1]]


def test_wait_for_blocks_until_another_thread_moves_the_instance() -> None:
    instance, _ = make_instance()
    reached = threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        results.append(instance.wait_for(S.RUNNING, timeout=30))
        reached.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    instance._enter(S.STARTING)
    assert instance.wait_for(S.RUNNING, timeout=0) is False  # starting is not running
    instance._enter(S.RUNNING)
    thread.join(30)
    assert results == [True]


def test_wait_for_times_out_or_sees_the_state_is_out_of_reach() -> None:
    instance, _ = make_instance()
    assert instance.wait_for(S.RUNNING, timeout=0) is False
    instance._enter(S.TERMINATED, "stopped before a provider was hired")
    assert instance.wait_for(S.RUNNING, timeout=30) is False  # at once: it can never get there
    assert instance.wait_for(S.TERMINATED, timeout=0) is True


def test_wait_for_raises_when_the_instance_failed() -> None:
    instance, _ = make_instance()
    cause = RuntimeError("provider on fire")
    instance._enter(S.STARTING)
    instance._enter(S.FAILED, "on fire", cause)
    with pytest.raises(ServiceFailed, match="provider on fire") as caught:
        instance.wait_for(S.RUNNING, timeout=30)
    assert caught.value.__cause__ is cause and instance.error is cause
    assert instance.wait_for(S.FAILED, timeout=0) is True


def test_stop_before_running_interrupts_at_once_but_not_while_running() -> None:
    starting, _ = make_instance()
    starting._enter(S.STARTING)
    starting.stop()
    assert starting._stop_requested.is_set() and starting._interrupt.is_set()
    running, cluster = make_instance()
    running._enter(S.STARTING)
    running._enter(S.RUNNING)
    running.stop()
    assert running._stop_requested.is_set() and not running._interrupt.is_set()
    assert cluster.woken == 1


# -- messages ------------------------------------------------------------------------------------
def test_the_channel_is_fifo_and_bounded() -> None:
    channel = _Channel(2)
    channel.put("a", None)
    channel.put("b", None)
    with pytest.raises(TimeoutError, match="stayed full"):
        channel.put("c", 0.01)
    assert [channel.get(None), channel.get(None)] == ["a", "b"]
    with pytest.raises(TimeoutError, match="no message"):
        channel.get(0)


def test_a_full_channel_unblocks_when_read() -> None:
    channel = _Channel(1)
    channel.put(1, None)
    done = threading.Event()

    def writer() -> None:
        channel.put(2, 30)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert channel.get(30) == 1
    thread.join(30)
    assert done.is_set() and channel.get(0) == 2


def test_a_closed_channel_drains_then_says_the_instance_ended() -> None:
    channel = _Channel(5)
    channel.put("last words", None)
    channel.close()
    with pytest.raises(ServiceEnded, match="takes no more"):
        channel.put("late", None)
    assert channel.get(None) == "last words"
    with pytest.raises(ServiceEnded, match="no more messages"):
        channel.get(None)


def test_a_waiting_reader_is_woken_by_an_abort() -> None:
    channel = _Channel(5)
    stop = threading.Event()
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            channel.get(None, abort=stop.is_set)
        except ServiceEnded as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    stop.set()
    channel.wake()
    thread.join(30)
    assert len(outcome) == 1 and "stopping" in str(outcome[0])


def test_service_side_messages_and_the_end_of_the_instance() -> None:
    instance, _ = make_instance()
    service = instance.service
    assert service.receive_message() is None  # nothing sent: the default, at once
    instance.send({"n": 1})
    assert service.receive_message(timeout=30) == {"n": 1}
    service.send_message("reply")
    assert instance.receive(timeout=30) == "reply"
    instance._enter(S.STARTING)
    instance._enter(S.FAILED, "gone")
    with pytest.raises(ServiceEnded):
        instance.send("to nobody")
    with pytest.raises(ServiceEnded):
        instance.receive(timeout=30)


def test_receive_message_returns_the_default_once_stopping() -> None:
    instance, _ = make_instance()
    instance.stop()
    assert instance.service.stopping
    assert instance.service.receive_message(timeout=None, default="none") == "none"


def test_forwarding_without_a_network_says_what_to_pass() -> None:
    instance, _ = make_instance()
    with pytest.raises(RuntimeError, match="network=golem.create_network"):
        instance.forward(80)
    with pytest.raises(RuntimeError, match="no network node"):
        instance.connect(22)


def test_a_service_outside_a_cluster_says_how_to_run_it() -> None:
    with pytest.raises(RuntimeError, match="run_service"):
        Service().new_script()


def test_the_default_run_waits_for_the_stop() -> None:
    instance, _ = make_instance()
    instance.stop()
    scripts: Iterator[Script] = instance.service.run()
    assert list(scripts) == []


# -- arguments -----------------------------------------------------------------------------------
def test_expiration_is_a_datetime_a_timedelta_or_seconds() -> None:
    assert lifetime_of(None, 3600.0) == 3600.0
    assert lifetime_of(timedelta(hours=2), 0) == 7200.0
    assert lifetime_of(120, 0) == 120.0
    ahead = lifetime_of(datetime.now(timezone.utc) + timedelta(hours=1), 0)
    assert 3500 < ahead <= 3600
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        lifetime_of(datetime.now() + timedelta(hours=1), 0)
    with pytest.raises(ConfigurationError, match="at least a minute"):
        lifetime_of(5, 0)
    with pytest.raises(ConfigurationError, match="a datetime, a timedelta or seconds"):
        lifetime_of("tomorrow", 0)  # type: ignore[arg-type]
