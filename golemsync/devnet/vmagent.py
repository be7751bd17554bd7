"""The in-sandbox agent: what makes a devnet activity behave like one VM.

One agent runs per activity, started inside the activity's sandbox (bubblewrap, unshare or a
bare session; see :mod:`golemsync.devnet.sandbox`) by the host's ``python3 -I -S``, with this
file's source as its program. It serves the devnet over a ``SOCK_SEQPACKET`` unix socket
(its file descriptor is the program's only argument), one JSON message per packet:

* ``{"op": "spawn", "id", "argv", "env", "cwd"}`` with two descriptors attached (the write ends
  of the command's stdout and stderr pipes): the agent starts the command in a new session,
  stdin on ``/dev/null``, and answers ``{"id", "pid"}`` (or ``{"id", "error", "errno"}``); when
  the command exits, ``{"id", "exit": <wait status>, "cpu": <seconds>}``. Whatever the command
  started in the background keeps running: the agent is the reaper of everything orphaned in
  the sandbox (pid 1 or a child subreaper), until the sandbox is destroyed.
* ``{"op": "connect", "id", "port", "timeout"}``: the agent connects a TCP socket to
  ``127.0.0.1:<port>`` inside the sandbox's network namespace and hands the connected socket
  to the devnet (``{"id", "ok": true}`` with the descriptor attached), or ``{"id", "error",
  "errno"}``. The devnet then reads and writes that socket itself: no byte is copied here.

The agent exits when the devnet closes its end. Standard library only, Python 3.8+.
"""

from __future__ import annotations

import array
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
from typing import Any

MAX_MESSAGE = 1 << 20


def _subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _loopback_up() -> None:
    """Bring ``lo`` up (a fresh network namespace from unshare has it down)."""
    try:
        import fcntl

        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            request = struct.pack("16sH22x", b"lo", 0x1 | 0x8 | 0x40)  # UP|LOOPBACK|RUNNING
            fcntl.ioctl(probe.fileno(), 0x8914, request)  # SIOCSIFFLAGS
        finally:
            probe.close()
    except OSError:
        pass


def _send(ctl: socket.socket, message: dict[str, Any], fds: Any = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        ctl.send(data)


def _receive(ctl: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancillary, _flags, _addr = ctl.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(8))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    for fd in fds:
        os.set_inheritable(fd, False)
    return data, list(fds)


def _spawn(ctl: socket.socket, message: dict[str, Any], fds: list[int],
           running: dict[int, Any]) -> None:
    ident = message.get("id")
    try:
        if len(fds) != 2:
            raise OSError(errno.EINVAL, "spawn needs two descriptors")
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, fds[0], 1), (os.POSIX_SPAWN_DUP2, fds[1], 2)]
        argv = [str(a) for a in message["argv"]]
        env = {str(k): str(v) for k, v in message["env"].items()}
        cwd = message.get("cwd")
        if cwd:
            os.chdir(cwd)
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True,
                              setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD))
    except (OSError, KeyError, TypeError, IndexError, ValueError) as exc:
        code = exc.errno if isinstance(exc, OSError) else errno.EINVAL
        _send(ctl, {"id": ident, "error": str(exc), "errno": code or 0})
        return
    finally:
        for fd in fds:
            os.close(fd)
    running[pid] = ident
    _send(ctl, {"id": ident, "pid": pid})


def _connect(ctl: socket.socket, message: dict[str, Any]) -> None:
    ident = message.get("id")
    try:
        port = int(message["port"])
        sock = socket.create_connection(("127.0.0.1", port), float(message.get("timeout", 5)))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        code = exc.errno if isinstance(exc, OSError) else errno.EINVAL
        text = os.strerror(code) if isinstance(exc, OSError) and code else str(exc)
        _send(ctl, {"id": ident, "error": text, "errno": code or 0})
        return
    try:
        sock.setblocking(True)
        _send(ctl, {"id": ident, "ok": True}, [sock.fileno()])
    finally:
        sock.close()


def _reap(ctl: socket.socket, running: dict[int, Any], spare: float) -> float:
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return spare
        if pid == 0:
            return spare
        cpu = usage.ru_utime + usage.ru_stime
        ident = running.pop(pid, None)
        if ident is None:
            spare += cpu  # an orphan adopted by the agent: counted with the next command
            continue
        _send(ctl, {"id": ident, "exit": status, "cpu": cpu + spare})
        spare = 0.0


def main(argv: list[str]) -> None:
    ctl = socket.socket(fileno=int(argv[1]))
    os.set_inheritable(ctl.fileno(), False)
    _subreaper()
    _loopback_up()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running: dict[int, Any] = {}
    spare = 0.0
    while True:
        try:
            ready, _, _ = select.select([ctl, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            os.read(wake_r, 4096)
            spare = _reap(ctl, running, spare)
        if ctl in ready:
            data, fds = _receive(ctl)
            if not data:
                for fd in fds:
                    os.close(fd)
                os._exit(0)
            message = json.loads(data.decode())
            if message.get("op") == "spawn":
                _spawn(ctl, message, fds, running)
            else:
                for fd in fds:
                    os.close(fd)
                if message.get("op") == "connect":
                    _connect(ctl, message)
            spare = _reap(ctl, running, spare)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (BrokenPipeError, ConnectionResetError):
        os._exit(0)
