"""Child processes of the localnet: started in their own process group, stopped by PID.

Every child writes its output to a log file in the localnet's state directory (kept only for
the duration of the run; :meth:`Child.tail` shows its end in error messages). Stopping sends
one signal (SIGINT for yagna, which may ignore SIGTERM for a while), waits, then SIGKILLs the
process group if it is still there.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Optional

logger = logging.getLogger(__name__)

# Every child gets this variable, set to its localnet's state directory: how a check (or a
# person with `grep -l` on /proc/*/environ) finds what a localnet left running.
MARK = "GOLEMSYNC_LOCALNET_STATE"


class Child:
    """One running program; ``stop`` is idempotent."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log: Path,
                 cwd: Optional[Path] = None, stop_signal: int = signal.SIGINT) -> None:
        self.name = name
        self.log = log
        self._stop_signal = stop_signal
        self._handle: IO[bytes] = open(log, "ab")
        try:
            self.process = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True)
        except BaseException:
            self._handle.close()
            raise
        self.pid = self.process.pid

    def detach(self) -> None:
        """Leave the process running past this object (it is in a session of its own and
        writes to its log); it is then stopped by PID, not by :meth:`stop`."""
        self._handle.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Signal the process, wait up to ``timeout``, then kill its whole group."""
        if self.process.poll() is None:
            try:
                os.kill(self.pid, self._stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("localnet: %s (pid %d) ignored the stop signal; killing it",
                               self.name, self.pid)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # leftovers of the group, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        self._handle.close()


def marked(state_dir: Path) -> list[int]:
    """PIDs of live processes (not zombies) that carry ``state_dir``'s mark (Linux /proc)."""
    wanted = f"{MARK}={state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def free_port(low: int = 1024, high: int = 65535, rng: Optional[random.Random] = None) -> int:
    """A TCP (and UDP) port on 127.0.0.1 nothing listens on now, in ``[low, high]``.

    ``high`` below 10000 gives the hub's port (the daemon's host pattern takes at most four
    digits); otherwise the kernel picks one.
    """
    if low <= 1024 and high >= 65535:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    draw = rng or random.SystemRandom()
    for _ in range(200):
        port = draw.randint(low, high)
        if _free(port):
            return port
    raise OSError(f"no free port on 127.0.0.1 in {low}..{high}")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
