"""The event bus delivers each event to the subscribers that want its kind, and says which
kinds anyone wants (the engine builds no per-command event nobody takes)."""

from __future__ import annotations

import threading

from golemsync.events import CommandFinished, Event, EventBus, JobFinished, TaskAccepted
from golemsync.summary import Summary


def test_subscribers_get_the_kinds_they_asked_for_and_unwanted_kinds_are_dropped() -> None:
    bus = EventBus()
    summary_like: list[Event] = []
    everything: list[Event] = []
    done = threading.Event()

    def take_all(event: Event) -> None:
        everything.append(event)
        if isinstance(event, JobFinished):
            done.set()

    bus.subscribe(summary_like.append, (TaskAccepted, JobFinished))
    assert bus.wants(TaskAccepted) and not bus.wants(CommandFinished)
    bus.emit(CommandFinished())  # nobody wants it: dropped
    unsubscribe = bus.subscribe(take_all)
    assert bus.wants(CommandFinished)  # now somebody does
    bus.emit(CommandFinished())
    bus.emit(TaskAccepted())
    bus.emit(JobFinished())
    assert done.wait(10)
    unsubscribe()
    assert not bus.wants(CommandFinished)
    bus.close()
    assert [type(e) for e in summary_like] == [TaskAccepted, JobFinished]
    assert [type(e) for e in everything] == [CommandFinished, TaskAccepted, JobFinished]
    assert not bus.wants(TaskAccepted)  # closed


def _kinds(base: type[Event]) -> list[type[Event]]:
    found = []
    for kind in base.__subclasses__():
        found += [kind, *_kinds(kind)]
    return found


def test_the_summary_subscribes_to_every_kind_it_reads() -> None:
    """An event kind left out of Summary.KINDS never reaches it: each such kind must leave a
    summary unchanged (the per-command ones the bus then drops)."""
    left_out = [k for k in _kinds(Event) if not issubclass(k, Summary.KINDS)]
    assert CommandFinished in left_out
    for kind in left_out:
        summary = Summary()
        before = repr(vars(summary))
        summary(kind())
        assert repr(vars(summary)) == before, kind.__name__
