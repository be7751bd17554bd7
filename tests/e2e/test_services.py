"""The service model end to end: clusters of service instances on a real devnet over HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, assert_all_settled, echo_worker, golem_for

from golemsync import (
    Script,
    Service,
    ServiceEnded,
    ServiceFailed,
    ServiceState,
)
from golemsync.devnet import Devnet, DevnetConfig
from golemsync.devnet.node import default_exeunit_factory
from golemsync.events import (
    AgreementTerminated,
    Event,
    JobFinished,
    JobStarted,
    ServiceStateChanged,
)

pytestmark = pytest.mark.e2e

SEED = 777
WAIT = 60.0  # generous bounds for blocking waits; never a timing assertion


class Units:
    """An exe-unit factory for the devnet that keeps every unit (by provider name) and every
    batch sent to it, so a test can crash a provider's activity and read what was deployed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards both dicts (devnet handler threads)
        self.by_provider: dict[str, list[Any]] = {}
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, activity_id: str, **kwargs: Any) -> Any:
        unit = _Recorded(default_exeunit_factory(activity_id, **kwargs), self)
        with self._lock:
            self.by_provider.setdefault(kwargs["provider"].name, []).append(unit)
        return unit

    def record(self, commands: list[dict[str, Any]]) -> None:
        with self._lock:
            self.batches.append(commands)

    def deploys(self) -> list[dict[str, Any]]:
        with self._lock:
            return [c["deploy"] for batch in self.batches for c in batch if "deploy" in c]

    def crash(self, provider_name: str) -> None:
        with self._lock:
            unit = self.by_provider[provider_name][-1]
        unit.crash("the test crashed the provider")


class _Recorded:
    def __init__(self, unit: Any, units: Units) -> None:
        self._unit = unit
        self._units = units

    def exec(self, commands: Any) -> str:
        self._units.record(list(commands))
        return str(self._unit.exec(commands))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unit, name)


class Echo(Service):
    """Replies to every message with ``<prefix><message> from <provider>``, run on the provider;
    says "ready" when started, "bye" in shutdown(); ``quit`` ends run() by itself."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def start(self) -> Iterator[Script]:
        script = self.new_script(timeout=30)
        script.run("/bin/sh", "-c", "echo ready > /golem/work/state")
        yield script
        self.send_message("ready")

    def run(self) -> Iterator[Script]:
        while not self.stopping:
            request = self.receive_message(timeout=5.0)
            if request is None:
                continue
            if request == "quit":
                return
            script = self.new_script(timeout=30)
            out = script.run("/bin/sh", "-c", 'printf "%s%s from %s" "$1" "$2" "$3"', "sh",
                             self.prefix, str(request), str(self.provider_name))
            yield script
            self.send_message(out.result().text)

    def shutdown(self) -> Iterator[Script]:
        script = self.new_script(timeout=30)
        bye = script.run("/bin/sh", "-c", "cat /golem/work/state; echo bye")
        yield script
        self.send_message(bye.result().text.split())


def providers(count: int) -> list[Any]:
    return list(DevnetConfig.default(count, SEED).providers)


def states(instance: Any) -> list[str]:
    return [change.state.value for change in instance.history]


def test_lifecycle_start_run_stop_with_messages(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    events: list[Event] = []
    with golem_for(net, on_event=events.append) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, instance_params=[{"prefix": "> "}])
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "ready"
        assert instance.wait_for(ServiceState.RUNNING, timeout=WAIT)
        for word in ("one", "two", "three"):
            instance.send(word)
        replies = [instance.receive(timeout=WAIT) for _ in range(3)]
        provider = instance.provider_name
        assert replies == [f"> {w} from {provider}" for w in ("one", "two", "three")]
        assert cluster.state == {"running": 1}
        cluster.stop()
        assert instance.state is ServiceState.TERMINATED
        assert instance.receive(timeout=WAIT) == ["ready", "bye"]  # shutdown() ran there
        with pytest.raises(ServiceEnded):
            instance.receive(timeout=WAIT)
        with pytest.raises(ServiceEnded):
            instance.send("too late")
    assert states(instance) == ["pending", "starting", "running", "stopping", "terminated"]
    assert instance.history[-2].reason == "stop requested"
    changes = [e for e in events if isinstance(e, ServiceStateChanged)]
    assert [e.state for e in changes] == ["starting", "running", "stopping", "terminated"]
    assert {e.job_id for e in changes} == {cluster.id}
    assert golem.spent > 0
    assert_all_settled(net, golem)


def test_run_ending_by_itself_shuts_the_instance_down(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3)
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, num_instances=2)
        first, second = cluster.instances
        assert cluster.wait_for(ServiceState.RUNNING, timeout=WAIT)
        assert first.provider_id != second.provider_id
        first.send("quit")
        assert first.wait_for(ServiceState.TERMINATED, timeout=WAIT)
        assert [first.receive(timeout=WAIT) for _ in range(2)] == ["ready", ["ready", "bye"]]
        assert second.state is ServiceState.RUNNING
        second.send("still here")
        assert second.receive(timeout=WAIT) == "ready"
        assert second.receive(timeout=WAIT).startswith("still here from ")
    # leaving the Golem stopped the second instance (its shutdown ran) and joined every thread
    assert second.state is ServiceState.TERMINATED
    assert states(first)[-2:] == ["stopping", "terminated"]
    assert first.history[-2].reason is None  # run() ended by itself, not by a stop
    assert_all_settled(net, golem)


def test_respawn_after_a_provider_crash(make_devnet: Callable[..., Devnet]) -> None:
    units = Units()
    net = make_devnet(providers=providers(3), exeunit_factory=units)
    events: list[Event] = []
    with golem_for(net, on_event=events.append) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, respawn=True)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "ready"
        crashed = instance.provider_name
        assert crashed is not None
        units.crash(crashed)
        instance.send("lost")  # run() meets the dead activity with this one
        assert instance.receive(timeout=WAIT) == "ready"  # started again, elsewhere
        assert instance.wait_for(ServiceState.RUNNING, timeout=WAIT)
        assert instance.provider_name not in (None, crashed)
        instance.send("again")
        assert instance.receive(timeout=WAIT) == f"again from {instance.provider_name}"
        cluster.stop()
    assert states(instance) == ["pending", "starting", "running", "pending", "starting",
                                "running", "stopping", "terminated"]
    respawned = instance.history[3]
    assert respawned.reason is not None and crashed in respawned.reason
    ended = [e for e in events if isinstance(e, AgreementTerminated)]
    assert [(e.provider_name, e.failed) for e in ended] == [
        (crashed, True), (instance.provider_name, False)]
    assert_all_settled(net, golem)


def test_without_respawn_a_crash_fails_the_instance(make_devnet: Callable[..., Devnet]) -> None:
    units = Units()
    net = make_devnet(providers=providers(2), exeunit_factory=units)
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "ready"
        assert instance.provider_name is not None
        units.crash(instance.provider_name)
        instance.send("lost")
        with pytest.raises(ServiceFailed, match="failed"):
            instance.wait_for(ServiceState.TERMINATED, timeout=WAIT)
        assert instance.state is ServiceState.FAILED and instance.error is not None
        cluster.stop()
    assert states(instance) == ["pending", "starting", "running", "failed"]
    assert_all_settled(net, golem)


class SlowStart(Service):
    """Its start() never ends by itself; says when the long command has been sent."""

    shutdowns = 0

    def start(self) -> Iterator[Script]:
        script = self.new_script()
        script.run("/bin/sh", "-c", "sleep 60")
        self.send_message("starting")
        yield script

    def shutdown(self) -> Iterator[Script]:
        SlowStart.shutdowns += 1
        return iter(())


def test_stop_during_start(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    with golem_for(net) as golem:
        cluster = golem.run_service(SlowStart, payload=PAYLOAD)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "starting"
        cluster.stop(timeout=30)
        assert instance.state is ServiceState.TERMINATED
    assert states(instance) == ["pending", "starting", "stopping", "terminated"]
    assert SlowStart.shutdowns == 0  # never running: nothing to shut down
    assert_all_settled(net, golem)


def test_a_service_and_a_task_job_share_one_golem(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=4)
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "ready"
        done = list(golem.execute_tasks(echo_worker, range(8), PAYLOAD, max_workers=3))
        instance.send("after the job")
        reply = instance.receive(timeout=WAIT)
    assert sorted(int(t.result) for t in done) == list(range(8))
    assert instance.provider_name not in {t.provider_name for t in done}  # one job per provider
    assert reply == f"after the job from {instance.provider_name}"
    assert instance.state is ServiceState.TERMINATED
    ledger = net.ledger()
    assert len(ledger["allocations"]) == 1
    line = golem.summary().providers[instance.provider_id]
    assert line.agreements == 1 and line.cost > 0
    assert_all_settled(net, golem)


@dataclasses.dataclass
class _Node:
    ip: str

    def deploy_args(self) -> dict[str, Any]:
        return {"net": [{"id": "net-1", "ip": "10.0.0.0", "mask": "255.255.255.0",
                         "nodeIp": self.ip, "nodes": {"10.0.0.1": "requestor"}}]}

    def forward(self, port: int) -> AbstractContextManager[int]:
        return contextlib.nullcontext(port + 10000)  # where a real one would listen locally

    def connect(self, port: int) -> Any:
        return ("connected", self.ip, port)


class _Network:
    """Satisfies the network protocol only, to see its deploy arguments reach the provider."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}

    def add_node(self, node_id: str) -> _Node:
        node = self.nodes[node_id] = _Node(f"10.0.0.{len(self.nodes) + 2}")
        return node


def test_network_deploy_args_reach_the_providers_deploy(
        make_devnet: Callable[..., Devnet]) -> None:
    units = Units()
    net = make_devnet(providers=3, exeunit_factory=units)
    network = _Network()
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, num_instances=2, network=network)
        assert cluster.wait_for(ServiceState.RUNNING, timeout=WAIT)
        nodes = {i.provider_id: i.network_node for i in cluster.instances}
        first = cluster.instances[0]
        with first.forward(80) as local_port:
            assert local_port == 10080
        assert first.connect(22) == ("connected", first.network_node.ip, 22)  # type: ignore
    assert nodes == network.nodes and len(nodes) == 2
    deployed = sorted(d["net"][0]["nodeIp"] for d in units.deploys())
    assert deployed == ["10.0.0.2", "10.0.0.3"]
    assert_all_settled(net, golem)


def test_no_provider_fails_the_instance_with_the_reason(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=1)
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, num_instances=2, offer_timeout=3)
        outcomes: list[Any] = []
        for instance in cluster.instances:
            try:
                outcomes.append(instance.wait_for(ServiceState.RUNNING, timeout=WAIT))
            except ServiceFailed as exc:
                outcomes.append(str(exc))
    assert True in outcomes
    (failure,) = [o for o in outcomes if o is not True]
    assert "no provider could be hired for the service within 3 s" in failure
    assert_all_settled(net, golem)


def test_bad_arguments_name_the_argument(devnet: Devnet) -> None:
    with golem_for(devnet) as golem:
        with pytest.raises(ValueError, match="Service subclass"):
            golem.run_service(object, payload=PAYLOAD)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="num_instances"):
            golem.run_service(Echo, payload=PAYLOAD, num_instances=0)
        with pytest.raises(ValueError, match="instance_params"):
            golem.run_service(Echo, payload=PAYLOAD, num_instances=2, instance_params=[{}])
        with pytest.raises(ValueError, match="instance_params"):
            golem.run_service(Echo, payload=PAYLOAD, instance_params=[{"nope": 1}])


class Busy(Service):
    """Says "busy" when its run() script is sent; the script takes a while to end."""

    def run(self) -> Iterator[Script]:
        script = self.new_script(timeout=60)
        out = script.run("/bin/sh", "-c", "sleep 1; echo finished")
        self.send_message("busy")
        yield script
        self.send_message(out.result().text.strip())
        while not self.stopping:
            self.wait_until_stopping(timeout=5.0)


def test_stop_lets_the_script_in_flight_finish(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    with golem_for(net) as golem:
        cluster = golem.run_service(Busy, payload=PAYLOAD)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "busy"
        cluster.stop()
        assert instance.receive(timeout=WAIT) == "finished"  # not abandoned by the stop
    assert states(instance) == ["pending", "starting", "running", "stopping", "terminated"]
    assert_all_settled(net, golem)


CTRL_C_PROGRAM = """
import sys
from golemsync import Golem, Service, ServiceState, vm

class Idle(Service):
    def shutdown(self):
        script = self.new_script()
        script.run("/bin/echo", "shutdown ran")
        yield script
        print("shutdown ran", flush=True)

payload = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")
try:
    with Golem(budget=1, poll_timeout=1.0, invoice_timeout=15) as golem:
        cluster = golem.run_service(Idle, payload=payload)
        assert cluster.wait_for(ServiceState.RUNNING, timeout=60)
        print("running", flush=True)
        cluster.instances[0].receive()  # blocks until Ctrl-C
except KeyboardInterrupt:
    print("states:", [c.state.value for c in cluster.instances[0].history], flush=True)
    sys.exit(130)
"""


def test_ctrl_c_shuts_the_service_down_pays_and_releases(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    env.update(net.env)
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_PROGRAM], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "shutdown ran" in stdout
    assert "'running', 'stopping', 'terminated']" in stdout
    ledger = net.ledger()
    (agreement,) = ledger["agreements"]
    assert agreement["state"] == "Terminated" and agreement["invoice_status"] == "ACCEPTED"
    assert all(allocation["released"] for allocation in ledger["allocations"])


def test_a_provider_crashing_at_deploy_is_replaced(make_devnet: Callable[..., Devnet]) -> None:
    specs = providers(3)
    cheapest = dataclasses.replace(specs[0], crash_rate=1.0, price_cpu_sec=0.0,
                                   price_duration_sec=0.0, price_start=0.0)
    net = make_devnet(providers=[cheapest, *specs[1:]])
    with golem_for(net) as golem:
        cluster = golem.run_service(Echo, payload=PAYLOAD, respawn=True)
        (instance,) = cluster.instances
        assert instance.receive(timeout=WAIT) == "ready"
        assert instance.provider_name != cheapest.name
    history = instance.history
    assert [c.state.value for c in history] == ["pending", "starting", "pending", "starting",
                                                "running", "stopping", "terminated"]
    assert history[1].provider_name == cheapest.name
    assert history[2].reason is not None and cheapest.name in history[2].reason
    assert_all_settled(net, golem)


def test_spawn_instances_adds_to_a_running_cluster(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3)
    with golem_for(net) as golem:
        with golem.run_service(Echo, payload=PAYLOAD) as cluster:
            (added,) = cluster.spawn_instances(instance_params=[{"prefix": "2: "}])
            assert cluster.instances[1] is added
            assert cluster.wait_for(ServiceState.RUNNING, timeout=WAIT)
            assert added.receive(timeout=WAIT) == "ready"
            added.send("hi")
            assert added.receive(timeout=WAIT) == f"2: hi from {added.provider_name}"
            assert len({i.provider_id for i in cluster.instances}) == 2
        assert cluster.state == {"terminated": 2}  # leaving the cluster's block stopped it
        with pytest.raises(RuntimeError, match="stopping"):
            cluster.spawn_instances(1)
    assert_all_settled(net, golem)


class Idle(Service):
    """Starts, says so, then waits for the stop (the default run()): it never runs a script
    while it waits, so only the liveness check can notice its provider die."""

    def start(self) -> Iterator[Script]:
        script = self.new_script(timeout=30)
        script.run("/bin/true")
        yield script
        self.send_message(f"ready on {self.provider_name}")


def test_a_crash_is_noticed_while_the_service_waits(make_devnet: Callable[..., Devnet]) -> None:
    units = Units()
    net = make_devnet(providers=providers(3), exeunit_factory=units)
    with golem_for(net) as golem:
        cluster = golem.run_service(Idle, payload=PAYLOAD, respawn=True, liveness_interval=0.2)
        (instance,) = cluster.instances
        first = instance.receive(timeout=WAIT)
        crashed = instance.provider_name
        assert crashed is not None and first == f"ready on {crashed}"
        units.crash(crashed)
        again = instance.receive(timeout=WAIT)  # no message sent: the check found the crash
        assert again == f"ready on {instance.provider_name}" and crashed not in again
    assert states(instance) == ["pending", "starting", "running", "pending", "starting",
                                "running", "stopping", "terminated"]
    assert "terminated the activity" in str(instance.history[3].reason)
    assert_all_settled(net, golem)


def test_stop_while_pending_terminates_without_a_provider(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=1)
    one_running = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, ServiceStateChanged) and event.state == "running":
            one_running.set()

    with golem_for(net, on_event=on_event) as golem:
        cluster = golem.run_service(Idle, payload=PAYLOAD, num_instances=2)
        assert one_running.wait(WAIT)
        (running,) = [i for i in cluster.instances if i.state is ServiceState.RUNNING]
        (waiting,) = [i for i in cluster.instances if i is not running]
        assert waiting.state is ServiceState.PENDING  # the only provider is taken
        cluster.stop()
    assert states(waiting) == ["pending", "terminated"]
    assert waiting.history[-1].reason == "stopped before a provider was hired"
    assert states(running)[-2:] == ["stopping", "terminated"]
    assert_all_settled(net, golem)


class Faulty(Service):
    """run() raises the service's own error: a bug in the service, not the provider's fault."""

    def run(self) -> Iterator[Script]:
        script = self.new_script(timeout=30)
        script.run("/bin/true")
        yield script
        raise LookupError("the service's own bug")


def test_the_services_own_error_fails_it_without_respawn(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    with golem_for(net) as golem:
        cluster = golem.run_service(Faulty, payload=PAYLOAD, respawn=True)
        (instance,) = cluster.instances
        with pytest.raises(ServiceFailed, match="the service's own bug"):
            instance.wait_for(ServiceState.TERMINATED, timeout=WAIT)
    assert isinstance(instance.error, LookupError)
    assert states(instance) == ["pending", "starting", "running", "failed"]
    assert_all_settled(net, golem)


class SlowShutdown(Service):
    def shutdown(self) -> Iterator[Script]:
        script = self.new_script()
        script.run("/bin/sh", "-c", "sleep 60")
        self.send_message("shutting down")
        yield script
        self.send_message("never reached: the shutdown is bounded")


def test_shutdown_is_bounded_by_shutdown_timeout(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    with golem_for(net) as golem:
        cluster = golem.run_service(SlowShutdown, payload=PAYLOAD, shutdown_timeout=2)
        (instance,) = cluster.instances
        assert instance.wait_for(ServiceState.RUNNING, timeout=WAIT)
        cluster.stop(timeout=30)
        assert instance.receive(timeout=WAIT) == "shutting down"
        with pytest.raises(ServiceEnded):
            instance.receive(timeout=WAIT)  # the rest of shutdown() never ran
    assert states(instance)[-2:] == ["stopping", "terminated"]
    assert_all_settled(net, golem)


def test_leaving_golem_stops_every_cluster(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3)
    events: list[Event] = []
    with golem_for(net, on_event=events.append) as golem:
        clusters = [golem.run_service(Idle, payload=PAYLOAD) for _ in range(2)]
        for cluster in clusters:
            assert cluster.wait_for(ServiceState.RUNNING, timeout=WAIT)
    assert all(c.state == {"terminated": 1} for c in clusters)
    ids = sorted(c.id for c in clusters)
    assert sorted(e.job_id for e in events if isinstance(e, JobStarted)) == ids
    finished = [e for e in events if isinstance(e, JobFinished)]
    assert sorted(e.job_id for e in finished) == ids and all(e.error is None for e in finished)
    assert_all_settled(net, golem)
