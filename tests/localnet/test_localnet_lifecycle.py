"""Starting and stopping: nothing a localnet started outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from localnet_helpers import PAYLOAD, echo_worker, require_localnet

from golemsync import Golem
from golemsync.devnet import DevnetConfig
from golemsync.localnet import Localnet
from golemsync.localnet.process import marked
from golemsync.money import to_wire

pytestmark = pytest.mark.timeout(180)


def test_leaving_the_context_stops_every_process_and_removes_the_state() -> None:
    require_localnet()
    with Localnet(1, seed=3) as net:
        state = net.state_dir
        pids = net.pids()
        assert len(pids) == 4  # anvil, hub, requestor, one provider node
        assert sorted(marked(state)) == sorted(pids)
    assert marked(state) == []
    assert not state.exists()


def test_ctrl_c_on_the_command_stops_everything(tmp_path: Path) -> None:
    """The command takes its providers from --config, shows their balances, and Ctrl-C stops
    every process it started."""
    require_localnet()
    config = DevnetConfig.default(1, 4).to_dict()
    config["providers"][0]["name"] = "custom-node"
    (tmp_path / "net.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "golemsync", "localnet", "--config", str(tmp_path / "net.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert process.stderr is not None and process.stdout is not None
        banner = ""
        for line in process.stderr:  # the banner comes once the localnet is ready
            if "Ctrl-C to stop" in line:
                banner = line
                break
        assert banner, "the command ended before the localnet was ready"
        assert "1 provider nodes" in banner
        balance = process.stderr.readline()
        assert balance.startswith("# balance: custom-node 0x") and " holds 0 tGLM" in balance
        state = Path(banner.split("state in ", 1)[1].split(";", 1)[0])
        assert len(marked(state)) == 4
        exports = dict(process.stdout.readline().split()[1].split("=", 1) for _ in range(4))
        assert exports["YAGNA_API_URL"].startswith("http://127.0.0.1:")
        with Golem(api_url=exports["YAGNA_API_URL"], app_key=exports["YAGNA_APPKEY"],
                   budget=5, poll_timeout=1.0, invoice_timeout=30) as golem:
            (task,) = golem.execute_tasks(echo_worker, ["paid"], PAYLOAD, max_workers=1)
        assert task.result == "paid" and golem.spent > 0
        # the command asks the node to pay now, and prints the balance once the tokens land
        paid = next(line for line in process.stderr if line.startswith("# paid: custom-node"))
        assert f"holds {to_wire(golem.spent)} tGLM" in paid, (paid, golem.spent)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        assert "# balance: custom-node" in process.stderr.read()  # once more at the end
        assert marked(state) == []
        assert not state.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
