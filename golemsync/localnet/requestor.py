"""A requestor node for the real Golem network: ``golemsync yagna start|stop|status``.

The same launcher as the localnet's nodes (:mod:`golemsync.localnet.node`,
:mod:`golemsync.localnet.process`), without the offline settings: the daemon joins the Golem
network its environment points at (by default the public one) and pays on a real chain.

``start`` runs ``yagna service run`` in the background with a data dir of its own (default
``$XDG_DATA_HOME/golemsync/yagna``, i.e. ``~/.local/share/golemsync/yagna``), REST and GSB on
127.0.0.1 (7465 and 7464 when free), waits for its REST API, creates the ``golemsync`` app key
(the daemon gives the same key again on later starts), runs
``payment init --sender --network <network>`` and records PID, URLs, key and node id in
``golemsync-yagna.json`` (mode 0600) in the data dir. Its output is the same ``export`` lines
as ``golemsync devnet`` and ``golemsync localnet``, then how to fund the node.
``status`` reads the record, the process and the node's REST API (version, identity, payment
driver status) and the payment status from the node (``yagna payment status``); ``stop``
sends SIGINT to the recorded PID (only if that process is this data dir's daemon), waits,
then kills its process group, and removes the record.

Variables of the caller's environment pass through to the daemon (``YA_NET_RELAY_HOST``,
``<NETWORK>_GETH_ADDR``...), except those this module sets: ``YAGNA_DATADIR``, ``GSB_URL``,
``YAGNA_API_URL``, ``YA_PAYMENT_NETWORK``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import requests

from golemsync.localnet.node import NodeError, run_cli, wait_rest
from golemsync.localnet.process import MARK, Child, free_port
from golemsync.localnet.tools import find_yagna

RECORD = "golemsync-yagna.json"
LOG = "golemsync-yagna.log"
APP_KEY_NAME = "golemsync"
DEFAULT_NETWORK = "holesky"
TESTNETS = ("holesky", "hoodi", "sepolia", "goerli", "amoy", "mumbai", "rinkeby")
MAINNETS = ("polygon", "mainnet")
DEFAULT_API_PORT, DEFAULT_GSB_PORT = 7465, 7464
_OURS = ("YAGNA_DATADIR", "GSB_URL", "YAGNA_API_URL", "YA_PAYMENT_NETWORK", "YAGNA_APPKEY")


class RequestorNodeError(RuntimeError):
    """The node could not be started, found or stopped; the message says why and what to do."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "golemsync" / "yagna"


@dataclass
class NodeRecord:
    """What ``start`` wrote down about the running node."""

    pid: int
    api_url: str
    gsb_url: str
    network: str
    app_key: str
    node_id: str
    data_dir: str
    started: float

    def exports(self) -> dict[str, str]:
        return {"YAGNA_API_URL": self.api_url, "YAGNA_APPKEY": self.app_key,
                "YAGNA_PAYMENT_DRIVER": "erc20", "YAGNA_PAYMENT_NETWORK": self.network}


def read_record(data_dir: Path) -> Optional[NodeRecord]:
    path = data_dir / RECORD
    try:
        raw = json.loads(path.read_text())
        return NodeRecord(**{k: raw[k] for k in NodeRecord.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RequestorNodeError(f"{path} is unreadable ({exc}); stop the daemon by hand "
                                 f"and delete the file") from None


def _write_record(data_dir: Path, record: NodeRecord) -> None:
    path = data_dir / RECORD
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the app key
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(record), out, indent=2)
    os.replace(temp, path)


def is_our_daemon(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is alive (not a zombie) and carries this data dir's mark."""
    proc = Path("/proc") / str(pid)
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and f"{MARK}={data_dir}".encode() in environ


def _port(preferred: Optional[int], default: int) -> int:
    if preferred:
        return preferred
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", default))
            return default
        except OSError:
            return free_port()


def environment(data_dir: Path, api_url: str, gsb_url: str, network: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OURS}
    env.update({MARK: str(data_dir), "YAGNA_DATADIR": str(data_dir), "GSB_URL": gsb_url,
                "YAGNA_API_URL": api_url, "YA_PAYMENT_NETWORK": network})
    return env


def start(data_dir: Optional[Path] = None, *, network: str = DEFAULT_NETWORK,
          api_port: Optional[int] = None, gsb_port: Optional[int] = None,
          timeout: float = 120.0) -> tuple[NodeRecord, bool]:
    """Start the node (or find it running); ``(record, started_now)``."""
    if network not in TESTNETS + MAINNETS:
        raise RequestorNodeError(f"unknown payment network {network!r}; one of "
                                 f"{', '.join(TESTNETS + MAINNETS)}")
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    record = read_record(data_dir)
    if record is not None:
        if is_our_daemon(record.pid, data_dir):
            if record.network != network:
                raise RequestorNodeError(
                    f"the node in {data_dir} runs on {record.network}, not {network}; "
                    f"`golemsync yagna stop` it first")
            return record, False
        (data_dir / RECORD).unlink()  # a stale record: that daemon is gone
    yagna = find_yagna()
    api_url = f"http://127.0.0.1:{_port(api_port, DEFAULT_API_PORT)}"
    gsb_url = f"tcp://127.0.0.1:{_port(gsb_port, DEFAULT_GSB_PORT)}"
    env = environment(data_dir, api_url, gsb_url, network)
    child = Child("yagna requestor", [str(yagna), "service", "run"], env=env,
                  log=data_dir / LOG, cwd=data_dir)
    try:
        wait_rest(api_url, child, "yagna", timeout)
        app_key = run_cli(yagna, env, ["app-key", "create", APP_KEY_NAME], where=str(data_dir))
        shown = json.loads(run_cli(yagna, env, ["id", "show", "--json"], where=str(data_dir)))
        node_id = str(shown["Ok"]["nodeId"])
        run_cli(yagna, env, ["payment", "init", "--sender", "--network", network],
                where=str(data_dir), timeout=120)
    except BaseException as exc:
        child.stop()
        if isinstance(exc, (NodeError, ValueError, KeyError)):
            raise RequestorNodeError(f"starting yagna in {data_dir}: {exc}\n(log: "
                                     f"{data_dir / LOG})") from None
        raise
    child.detach()  # it runs on after this process; `stop` ends it by PID
    record = NodeRecord(pid=child.pid, api_url=api_url, gsb_url=gsb_url, network=network,
                        app_key=app_key.strip(), node_id=node_id, data_dir=str(data_dir),
                        started=time.time())
    _write_record(data_dir, record)
    return record, True


def funding_instructions(record: NodeRecord, yagna: str = "yagna") -> str:
    if record.network in TESTNETS:
        return (f"# fund it with test GLM and test ETH (free; needs the network):\n"
                f"#   GSB_URL={record.gsb_url} {yagna} payment fund --network {record.network}\n"
                f"# then check: golemsync yagna status")
    return (f"# fund it: send GLM and gas tokens on {record.network} to {record.node_id}\n"
            f"# then check: golemsync yagna status")


def status(data_dir: Optional[Path] = None, *, timeout: float = 30.0) -> dict[str, Any]:
    """What is known about the node: record, process, REST answers, payment status."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    record = read_record(data_dir)
    report: dict[str, Any] = {"data_dir": str(data_dir), "running": False}
    if record is None:
        return report
    report.update({"pid": record.pid, "api_url": record.api_url, "network": record.network,
                   "node_id": record.node_id})
    report["running"] = is_our_daemon(record.pid, data_dir)
    if not report["running"]:
        return report
    headers = {"Authorization": f"Bearer {record.app_key}"}
    try:
        version = requests.get(f"{record.api_url}/version/get", headers=headers,
                               timeout=timeout)
        report["version"] = version.json().get("current", {}).get("version") \
            if version.ok else f"HTTP {version.status_code}"
        me = requests.get(f"{record.api_url}/me", headers=headers, timeout=timeout)
        report["identity"] = me.json().get("identity") if me.ok else f"HTTP {me.status_code}"
        drivers = requests.get(f"{record.api_url}/payment-api/v1/payments/status",
                               headers=headers, params={"network": record.network},
                               timeout=timeout)
        report["driver_problems"] = drivers.json() if drivers.ok \
            else f"HTTP {drivers.status_code}"
    except (requests.RequestException, ValueError) as exc:
        report["rest_error"] = str(exc)
    env = environment(data_dir, record.api_url, record.gsb_url, record.network)
    try:
        paid = json.loads(run_cli(find_yagna(), env,
                                  ["payment", "status", "--network", record.network, "--json"],
                                  where=str(data_dir), timeout=timeout))
        report["payment"] = paid
    except (NodeError, ValueError) as exc:
        report["payment_error"] = str(exc)
    return report


def stop(data_dir: Optional[Path] = None, *, timeout: float = 30.0) -> Optional[int]:
    """Stop the node by its recorded PID; the PID, or None when none was running."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    record = read_record(data_dir)
    if record is None:
        return None
    pid = record.pid
    running = is_our_daemon(pid, data_dir)
    if running:
        os.kill(pid, signal.SIGINT)  # yagna may ignore SIGTERM for a while
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while is_our_daemon(pid, data_dir) and time.monotonic() < deadline:
            pause.wait(0.1)  # not our child: nothing to wait on but its /proc entry
        if is_our_daemon(pid, data_dir):
            try:
                os.killpg(pid, signal.SIGKILL)  # it started its own session: pgid == pid
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        except ChildProcessError:
            pass
    (data_dir / RECORD).unlink(missing_ok=True)
    return pid if running else None
