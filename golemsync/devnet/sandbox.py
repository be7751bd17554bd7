"""Where a simulated provider runs commands: a per-activity sandbox with VM-like volumes.

A Golem VM image sees its volumes at ``/golem/input``, ``/golem/output``, ``/golem/resources``
and ``/golem/work``. Here they are real directories under the activity's workdir, and commands
see them at those same paths, so scripts written for a real VM run unchanged:

* **bwrap mode** (preferred; ``apt-get install bubblewrap``): the command runs under
  bubblewrap in new user, pid, ipc, uts and network namespaces, with the host's ``/usr``,
  ``/bin``, ``/lib*`` and ``/etc`` read-only, a private ``/tmp``, ``/proc``, ``/dev`` and the
  volumes bound read-write. ``--die-with-parent`` and the pid namespace mean killing the
  sandbox kills everything it started.
* **plain mode** (fallback when bwrap is missing or unusable, or forced with
  ``GOLEMSYNC_DEVNET_SANDBOX=plain``): a plain subprocess in its own session with cwd the work
  volume; volume paths (``/golem/input`` ...) written in arguments and environment values,
  also inside shell scripts, are rewritten to the volume directories. Limits: the command sees
  the host's file system, a volume path assembled at run time (``/golem/$DIR``) is not
  rewritten, process limits do not bind root, and children that leave the session survive a
  kill.

In both modes the command gets resource limits: a cap on processes (so a fork bomb fails to
fork instead of exhausting the machine — effective for unprivileged processes, which is what
commands are inside bwrap's user namespace) and on the size of files it writes.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

VOLUMES = ("/golem/input", "/golem/output", "/golem/resources", "/golem/work")
WORKDIR = "/golem/work"
MAX_PROCESSES = 256  # per sandbox, beyond what the uid already runs
MAX_FILE_BYTES = 8 << 30  # 8 GiB per file written by a command
_HOST_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
# A volume path anywhere in an argument (also inside a shell script), as a whole path segment.
_VOLUME_PATH = re.compile(r"(?<![\w./-])/golem/(?:input|output|resources|work)(?![\w.-])")


@functools.lru_cache(maxsize=1)
def bwrap_usable() -> bool:
    """Whether bubblewrap is installed and can create the namespaces (probed once)."""
    if os.environ.get("GOLEMSYNC_DEVNET_SANDBOX", "").lower() == "plain":
        return False
    path = shutil.which("bwrap")
    if path is None:
        logger.warning("bwrap not found: the devnet runs commands without a sandbox "
                       "(apt-get install bubblewrap)")
        return False
    probe = [path, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        logger.warning("bwrap cannot create namespaces here: running commands unsandboxed")
    return ok


class Sandbox:
    """The volumes of one activity and the way to run a command inside them."""

    def __init__(self, root: Path, *, mode: Optional[str] = None) -> None:
        self.root = root
        self.mode = mode or ("bwrap" if bwrap_usable() else "plain")
        self.volumes = {vm: root / "volumes" / vm.rsplit("/", 1)[1] for vm in VOLUMES}
        for host in self.volumes.values():
            host.mkdir(parents=True, exist_ok=True)

    def host_path(self, vm_path: str) -> Path:
        """The host path of ``vm_path``; ``FileNotFoundError`` when it is in no volume."""
        clean = os.path.normpath("/" + vm_path.lstrip("/"))
        for vm, host in self.volumes.items():
            if clean == vm or clean.startswith(vm + "/"):
                return host / os.path.relpath(clean, vm)
        raise FileNotFoundError(f"path not found in container: {vm_path}")

    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the sandbox with stdout/stderr piped; returns the process."""
        base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": WORKDIR,
                    "LANG": "C.UTF-8"}
        if self.mode == "bwrap":
            full = self._bwrap_argv(argv)
            environment = {**base_env, **env}
            cwd: Optional[Path] = None
        else:
            full = [self._rewrite(a) for a in argv]
            environment = {**os.environ, **base_env,
                           **{k: self._rewrite(v) for k, v in env.items()}}
            environment["HOME"] = str(self.volumes[WORKDIR])
            cwd = self.volumes[WORKDIR]
        limit = _processes_of(os.getuid()) + MAX_PROCESSES
        return subprocess.Popen(full, env=environment, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True,
                                preexec_fn=functools.partial(_limits, limit))

    def _bwrap_argv(self, argv: Sequence[str]) -> list[str]:
        full = ["bwrap", "--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-net", "--hostname", "golem-provider",
                "--ro-bind", "/usr", "/usr"]
        for host_dir in _HOST_DIRS:
            full += ["--ro-bind-try", host_dir, host_dir]
        full += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for vm, host in self.volumes.items():
            full += ["--bind", str(host), vm]
        return [*full, "--chdir", WORKDIR, "--", *argv]

    def _rewrite(self, value: str) -> str:
        return _VOLUME_PATH.sub(lambda m: str(self.volumes[m.group(0)]), value)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _limits(processes: int) -> None:
    # Runs in the forked child before exec (only async-safe work here): the limits bind the
    # command and everything it starts.
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count
