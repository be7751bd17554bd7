"""What a provider command can and cannot reach, in every sandbox mode (see conftest)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from units import BOOT, finish, run, sh

from golemsync.devnet import gftpstore
from golemsync.devnet.capture import MAX_KEPT
from golemsync.devnet.exeunit import ExeUnit
from golemsync.script import result_from_wire

NODE = "0xrequestor"
MakeUnit = Callable[..., ExeUnit]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "gftp"
    for sub in ("published", "receive"):
        (root / sub).mkdir(parents=True)
    return root


@pytest.fixture
def unit(make_unit: MakeUnit, sandbox_mode: str, store: Path) -> ExeUnit:
    made = make_unit(mode=sandbox_mode)
    made._gftp_root = store
    assert [r["result"] for r in finish(made, BOOT)] == ["Ok", "Ok"]
    return made


def send(unit: ExeUnit, store: Path, data: bytes, to: str, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / f"send-{time.monotonic_ns()}"
    source.write_bytes(data)
    url = gftpstore.publish(store, NODE, source)
    (result,) = finish(unit, [{"transfer": {"from": url, "to": f"container:{to}"}}])
    return result


def download(unit: ExeUnit, store: Path, path: str, tmp_path: Path) -> tuple[dict[str, Any],
                                                                           bytes]:
    target = tmp_path / f"got-{time.monotonic_ns()}"
    slot = gftpstore.receive(store, NODE, target)
    (result,) = finish(unit, [{"transfer": {"from": f"container:{path}", "to": slot}}])
    return result, target.read_bytes()


# -- 1. planted symbolic links ---------------------------------------------------------------

def test_a_link_planted_in_input_is_not_written_through(unit: ExeUnit, store: Path,
                                                        tmp_path: Path) -> None:
    victim = tmp_path / "host-file"
    victim.write_bytes(b"host data")
    (planted,) = finish(unit, [sh(f"ln -s {victim} /golem/input/data.txt")])
    assert planted["result"] == "Ok"
    result = send(unit, store, b"overwritten", "/golem/input/data.txt", tmp_path)
    assert result["result"] == "Error"
    assert result["message"].startswith("Transfer error: ")
    assert "outside the container" in result["message"]
    assert victim.read_bytes() == b"host data"


def test_a_link_planted_in_output_is_not_read(unit: ExeUnit, store: Path,
                                              tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host secret")
    finish(unit, [sh(f"ln -s {secret} /golem/output/result; ln -s /etc/hostname "
                     "/golem/output/hostname")])
    for name in ("result", "hostname"):
        result, got = download(unit, store, f"/golem/output/{name}", tmp_path)
        assert result["result"] == "Error" and "outside the container" in result["message"]
        assert got == b""


def test_a_linked_directory_is_not_followed_out(unit: ExeUnit, store: Path,
                                                tmp_path: Path) -> None:
    outside = tmp_path / "host-dir"
    outside.mkdir()
    (outside / "f").write_bytes(b"host")
    finish(unit, [sh(f"ln -s {outside} /golem/output/dir; ln -s {outside} /golem/input/dir")])
    result, got = download(unit, store, "/golem/output/dir/f", tmp_path)
    assert result["result"] == "Error" and got == b""
    written = send(unit, store, b"planted", "/golem/input/dir/new", tmp_path)
    assert written["result"] == "Error"
    assert sorted(p.name for p in outside.iterdir()) == ["f"]
    assert (outside / "f").read_bytes() == b"host"


def test_links_that_stay_inside_the_volumes_work(unit: ExeUnit, store: Path,
                                                 tmp_path: Path) -> None:
    finish(unit, [sh("echo real > /golem/work/real; ln -s /golem/work/real /golem/output/abs; "
                     "ln -s ../work/real /golem/output/rel; mkdir /golem/work/d; "
                     "ln -s /golem/work/d /golem/input/d")])
    for name in ("abs", "rel"):
        result, got = download(unit, store, f"/golem/output/{name}", tmp_path)
        assert result["result"] == "Ok" and got == b"real\n"
    assert send(unit, store, b"in", "/golem/input/d/x", tmp_path)["result"] == "Ok"
    (seen,) = finish(unit, [sh("cat /golem/work/d/x")])
    assert seen["stdout"] == "in"


def test_a_sent_file_replaces_a_planted_hard_link(unit: ExeUnit, store: Path,
                                                  tmp_path: Path) -> None:
    finish(unit, [sh("echo keep > /golem/work/orig; ln /golem/work/orig /golem/input/f")])
    assert send(unit, store, b"new", "/golem/input/f", tmp_path)["result"] == "Ok"
    (seen,) = finish(unit, [sh("cat /golem/work/orig /golem/input/f")])
    assert seen["stdout"] == "keep\nnew"


def test_a_planted_fifo_neither_blocks_nor_is_read(unit: ExeUnit, store: Path,
                                                   tmp_path: Path) -> None:
    finish(unit, [sh("mkfifo /golem/output/pipe")])
    result, _ = download(unit, store, "/golem/output/pipe", tmp_path)
    assert result["result"] == "Error" and "not a regular file" in result["message"]


# -- 2. what a command sees of the devnet --------------------------------------------------

def test_commands_get_a_minimal_environment(make_unit: MakeUnit, sandbox_mode: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLEMSYNC_TEST_CANARY", "devnet-secret-value")
    monkeypatch.setenv("TERM", "xterm")
    unit = make_unit(mode=sandbox_mode)
    finish(unit, [{"deploy": {"env": {"GREETING": "hi"}}}, {"start": {}}])
    (result,) = finish(unit, [sh("env")])
    env = dict(line.split("=", 1) for line in result["stdout"].splitlines())
    assert "devnet-secret-value" not in result["stdout"]
    assert env["GREETING"] == "hi" and env["LANG"] == "C.UTF-8"
    assert "TERM" not in env and env["PATH"]
    home = "/golem/work" if sandbox_mode == "bwrap" else str(unit.sandbox.volumes["/golem/work"])
    assert env["HOME"] == home
    assert set(env) - {"GREETING", "LANG", "PATH", "HOME", "PWD", "SHLVL", "_"} == set()


def test_a_command_cannot_kill_the_devnet(make_unit: MakeUnit, sandbox_mode: str) -> None:
    if sandbox_mode == "bare":
        pytest.skip("bare mode shares the devnet's pid namespace and user: documented limit")
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    # The devnet is this test process: neither its pid nor $PPID reaches it from inside the
    # command's pid namespace ($PPID is 0 there under unshare: that would be kill(0), the
    # command's own process group, so it is left out).
    script = (f"echo $PPID; kill -9 {os.getpid()} 2>/dev/null; "
              "[ \"$PPID\" = 0 ] || kill -9 $PPID 2>/dev/null; echo alive")
    (result,) = finish(unit, [sh(script)])
    assert result["stdout"].splitlines()[-1] == "alive"
    assert result["stdout"].splitlines()[0] != str(os.getpid())


def marked_processes(marker: str) -> list[int]:
    """Host pids of processes with ``marker`` as one of their arguments."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_setsid_child_dies_with_its_activity(make_unit: MakeUnit, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    marker = f"{os.getpid() % 1000}.{time.monotonic_ns() % 100000}"
    # The marker comes by the environment so that only the setsid child's `sleep` has it as
    # an argument; the command says "started" once that sleep runs.
    finish(unit, [{"deploy": {"env": {"MARK": marker}}}, {"start": {}}])
    script = ("setsid sh -c 'exec sleep \"$MARK\"' </dev/null >/dev/null 2>&1 & "
              "echo \"$MARK\" > /golem/work/pattern; "
              "until grep -qszxF -f /golem/work/pattern /proc/[0-9]*/cmdline; do :; done; "
              "echo started; exec sleep 1000")
    batch = unit.exec([sh(script, capture={"stdout": {"stream": {}}})])
    subscription = unit.subscribe(batch)
    while True:
        event = subscription.get(20)
        assert event is not None
        if "stdout" in event["kind"]:
            break
    subscription.close()
    assert marked_processes(marker), "the setsid child should be running by now"
    unit.destroy()
    assert marked_processes(marker) == []


def await_marker(marker: str) -> str:
    """Shell text that waits until a process has ``marker`` as an argument (the pattern comes
    from a file, so that grep's own arguments do not match)."""
    return (f"echo {marker} > /golem/work/pattern; "
            "until grep -qszxF -f /golem/work/pattern /proc/[0-9]*/cmdline; do :; done")


def test_background_processes_outlive_their_command_until_destroy(make_unit: MakeUnit,
                                                                  sandbox_mode: str) -> None:
    # An activity is a VM: what a command leaves running in the background (here holding the
    # command's stdout open) keeps running after the command ended, and later commands see it.
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    marker = f"{os.getpid() % 1000}.{time.monotonic_ns() % 100000 + 1}"
    (result,) = finish(unit, [sh(f"sleep {marker} & {await_marker(marker)}; echo done")])
    assert result["result"] == "Ok" and result["stdout"] == "done\n", result
    assert len(marked_processes(marker)) == 1
    (seen,) = finish(unit, [sh(f"{await_marker(marker)}; echo seen")])
    assert seen["stdout"] == "seen\n", seen
    unit.destroy()
    assert marked_processes(marker) == []


def test_terminate_stops_the_background_processes(make_unit: MakeUnit, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    marker = f"{os.getpid() % 1000}.{time.monotonic_ns() % 100000 + 2}"
    finish(unit, [sh(f"sleep {marker} >/dev/null 2>&1 & {await_marker(marker)}")])
    assert len(marked_processes(marker)) == 1
    (ended,) = finish(unit, [{"terminate": {}}])
    assert ended["result"] == "Ok"
    assert marked_processes(marker) == []


def test_a_fork_bomb_is_contained(make_unit: MakeUnit, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    bomb = sh("i=0; while [ $i -lt 1500 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i")
    begun = time.monotonic()
    (result,) = finish(unit, [bomb])
    assert result["result"] == "Error", result
    assert "spawned" not in (result["stdout"] or "")
    assert time.monotonic() - begun < 30
    (still_serving,) = finish(make_unit(mode=sandbox_mode), BOOT[:1])
    assert still_serving["result"] == "Ok"


# -- 4. output beyond the capture limit ----------------------------------------------------

def test_output_cut_at_the_capture_limit_says_so(make_unit: MakeUnit) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    big = f"head -c {MAX_KEPT + 5000} /dev/zero | tr '\\0' x"
    (cut,) = finish(unit, [sh(f"{big}; {big} >&2")])
    assert cut["result"] == "Ok" and len(cut["stdout"]) == MAX_KEPT
    assert cut["message"] == "stdout truncated at 16 MiB; stderr truncated at 16 MiB"
    (whole,) = finish(unit, [sh("head -c 1000 /dev/zero")])
    assert whole["message"] is None
    (asked,) = finish(unit, [sh(big, capture={"stdout": {"atEnd": {"head": 10}}})])
    assert asked["message"] is None  # a head the caller asked for is not a surprise
    (failed,) = finish(unit, [sh(f"{big}; exit 3")])
    assert failed["message"] == "ExeScript command exited with code 3; stdout truncated at 16 MiB"
    client = result_from_wire("run", 0, failed["result"] == "Ok", failed["stdout"], None,
                              failed["message"])
    assert client.truncated and client.exit_code == 3
    plain = result_from_wire("run", 0, True, "x", None, None)
    assert not plain.truncated


# -- 5. the volumes ---------------------------------------------------------------------------

def test_volumes_persist_and_commands_start_in_the_work_volume(make_unit: MakeUnit,
                                                               sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    finish(unit, [sh("echo ok > /golem/output/f; pwd > /golem/work/where")])
    (result,) = finish(unit, [sh("cat /golem/output/f /golem/work/where")])
    where = "/golem/work" if sandbox_mode == "bwrap" else str(unit.sandbox.volumes["/golem/work"])
    assert result["stdout"] == f"ok\n{where}\n"
    assert (unit.sandbox.volumes["/golem/output"] / "f").read_text() == "ok\n"


# -- 6. nothing left behind ------------------------------------------------------------------

def test_destroy_removes_even_locked_folders(make_unit: MakeUnit, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    finish(unit, [sh("mkdir -p /golem/work/d/e; touch /golem/work/d/e/f; chmod 0 /golem/work/d")])
    unit.destroy()
    assert not unit.sandbox.root.exists()



def test_a_file_failing_its_hash_never_appears(unit: ExeUnit, store: Path,
                                               tmp_path: Path) -> None:
    source = tmp_path / "payload"
    source.write_bytes(b"payload")
    url = gftpstore.publish(store, NODE, source)
    wrong = "0" * 64
    (result,) = finish(unit, [{"transfer": {"from": f"hash:sha3:{wrong}:{url}",
                                            "to": "container:/golem/input/p"}}])
    assert result["result"] == "Error" and "hash mismatch" in result["message"]
    assert list(unit.sandbox.volumes["/golem/input"].iterdir()) == []


def test_bwrap_keeps_the_host_folders_read_only(make_unit: MakeUnit, sandbox_mode: str) -> None:
    if sandbox_mode != "bwrap":
        pytest.skip("the plain modes run with the user's rights on the host's files")
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    target = Path(f"/etc/golemsync-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        (result,) = finish(unit, [sh(f"grep CapEff /proc/self/status; "
                                     f"mount -o remount,rw,bind /etc 2>/dev/null; "
                                     f"touch {target} 2>/dev/null; true")])
        assert not target.exists()
        assert result["stdout"].split()[-1] == "0000000000000000"
    finally:
        target.unlink(missing_ok=True)


def test_sends_create_folders_and_refuse_files_as_folders(unit: ExeUnit, store: Path,
                                                          tmp_path: Path) -> None:
    assert send(unit, store, b"deep", "/golem/input/a/b/c.txt", tmp_path)["result"] == "Ok"
    (seen,) = finish(unit, [sh("cat /golem/input/a/b/c.txt; touch /golem/work/file")])
    assert seen["stdout"] == "deep"
    through_a_file = send(unit, store, b"x", "/golem/work/file/x", tmp_path)
    assert through_a_file["result"] == "Error"
    assert "not a directory in container: /golem/work/file/x" in through_a_file["message"]
    missing, _ = download(unit, store, "/golem/work/none/x", tmp_path)
    assert missing["message"] == "Transfer error: path not found in container: /golem/work/none/x"


# -- 7. the VPN's way in ---------------------------------------------------------------------

ECHO_ONCE = ("import socket\n"
             "server = socket.create_server(('127.0.0.1', 7300))\n"
             "print('listening', flush=True)\n"
             "while True:\n"
             "    conn, _ = server.accept()\n"
             "    conn.sendall(conn.recv(100).upper())\n"
             "    conn.close()\n")


def test_connect_reaches_a_server_inside_the_sandbox(make_unit: MakeUnit,
                                                     sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    net = [{"id": "net-1", "ip": "192.168.0.0", "mask": "255.255.255.0", "nodeIp": "192.168.0.2",
            "nodes": {"192.168.0.1": "0xrequestor"}}]
    assert unit.vpn_address("net-1") is None
    (deployed, started) = finish(unit, [{"deploy": {"net": net}}, {"start": {}}])
    assert deployed["result"] == started["result"] == "Ok"
    assert unit.vpn_address("net-1") == "192.168.0.2" and unit.vpn_address("net-2") is None
    with pytest.raises(OSError) as refused:
        unit.connect(7300, 5)
    assert refused.value.errno == errno.ECONNREFUSED
    # The server prints once it listens; the command ends when it has (the server stays).
    (result,) = finish(unit, [run("/bin/sh", "-c",
                                  "python3 -c \"$0\" > /golem/work/log 2>&1 & "
                                  "until grep -q listening /golem/work/log; do :; done",
                                  ECHO_ONCE)])
    assert result["result"] == "Ok", result
    with unit.connect(7300, 5) as conn:
        conn.sendall(b"through the sandbox")
        assert conn.recv(100) == b"THROUGH THE SANDBOX"
    if sandbox_mode != "bare":  # another activity has its own network: nothing listens there
        other = make_unit(mode=sandbox_mode)
        finish(other, BOOT)
        with pytest.raises(OSError):
            other.connect(7300, 5)


def test_a_malformed_net_fails_the_deploy(make_unit: MakeUnit) -> None:
    unit = make_unit()
    (result,) = finish(unit, [{"deploy": {"net": [{"id": "net-1", "ip": "192.168.0.0"}]}}])
    assert result["result"] == "Error"
    assert "nodeIp" in result["message"] and result["message"].startswith("Deploy error:")
