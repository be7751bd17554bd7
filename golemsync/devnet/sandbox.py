"""Where a simulated provider runs commands: a per-activity sandbox with VM-like volumes.

A Golem VM image sees its volumes at ``/golem/input``, ``/golem/output``, ``/golem/resources``
and ``/golem/work``. Here they are real directories under the activity's workdir. Three modes,
chosen once per process (``GOLEMSYNC_DEVNET_SANDBOX=bwrap|plain|bare`` forces one):

**An activity is a VM.** Each sandbox runs one long-lived agent
(:mod:`golemsync.devnet.vmagent`), started on the first command, that spawns every command of
the activity: all of them share one set of namespaces, and what a command starts in the
background (``python3 -m http.server 8080 &``) keeps running after that command ended, until the
sandbox is killed (``terminate``, which restarts it on the next command, or destroying the
activity): then its whole tree dies, in every mode. A command is over when its own process
exits; output its background processes write later is not part of its result. The agent also
opens TCP connections to ``127.0.0.1:<port>`` inside the sandbox for the VPN
(:meth:`Sandbox.connect`). Spawning a command costs one message to the agent, about as much
as a bare ``subprocess.run``.

* **bwrap** (preferred; ``apt-get install bubblewrap``): the agent runs under bubblewrap in
  new user, pid, ipc, uts and network namespaces, with the host's ``/usr``, ``/bin``,
  ``/lib*`` and ``/etc`` read-only, a private ``/tmp``, ``/proc`` and ``/dev``, and the volumes
  bound read-write at their VM paths. The agent is the namespace's init (``--as-pid-1``): no
  command can signal it. ``--die-with-parent`` and the pid namespace mean killing the sandbox
  kills everything it started. A root devnet adds ``--cap-drop ALL``: bwrap run by
  root otherwise leaves the command every capability in its namespaces, enough to remount the
  read-only host folders read-write and write to them as root.
* **plain** (the fallback when bwrap is missing or unusable): the agent runs with the
  user's rights on the host's file system, but inside ``unshare --fork --pid --mount-proc
  --net --kill-child`` (plus ``--user --map-root-user`` when not root) when the machine
  allows it: its own pid namespace (the agent is its init; commands cannot see or signal the
  devnet or any other host process, and everything they start, ``setsid`` children included,
  dies with the sandbox), a private ``/proc`` and a network namespace of its own with only
  ``lo`` (brought up by the agent); util-linux ``setpriv --pdeathsig KILL`` in front kills it if the
  devnet dies without cleaning up. Volume paths (``/golem/input`` ...) written in arguments and
  environment values, also inside shell scripts, are rewritten to the volume directories; a
  volume path assembled at run time (``/golem/$DIR``) is not, and the working directory and
  ``HOME`` are the work volume's host directory.
* **bare** (plain mode where unshare cannot create namespaces): as plain, without the
  namespaces: the agent is a subprocess in its own session and the child subreaper of all it
  starts (orphans stay its descendants). Killing the sandbox kills the agent's session, group
  and every descendant; a process that daemonizes out of that tree before (possible only with
  a helper that changes its parent, not by ``setsid``/double fork) survives; a command can
  listen on the host's loopback (two activities cannot both use one port) and signal the devnet,
  read the ``/proc`` entries of the user's processes and (ptrace rules permitting) their
  memory. The devnet keeps its app key out of argv and its environment in every mode.

:func:`warn_unsandboxed` prints one warning on stderr when commands run without bwrap
(``golemsync devnet`` and :func:`golemsync.network` call it).

**Environment.** Commands never see the devnet's environment, in every mode: they get
``PATH`` (``/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin``), ``HOME`` (``/golem/work``),
``LANG=C.UTF-8`` and the ``deploy`` command's ``env``; nothing else (no ``TERM``).

**Limits.** Every command gets ``RLIMIT_FSIZE`` (:data:`MAX_FILE_BYTES` per file written) and,
for a non-root devnet, ``RLIMIT_NPROC`` (the user's processes at sandbox creation plus
:data:`MAX_PROCESSES`), set by util-linux ``prlimit`` exec'd in front of the sandbox (so
Python can spawn with ``vfork``/``posix_spawn``; without ``prlimit`` a slower ``preexec_fn``
sets them). ``RLIMIT_NPROC`` does not bind root, not even inside bwrap's user namespace, so a
root devnet instead counts the command's processes every :data:`WATCH_INTERVAL` seconds while
it runs (a listing of the sandbox's pid namespace's own ``/proc``, background processes
included; in bare mode, every :data:`BARE_WATCH_INTERVAL` seconds, a scan of ``/proc`` for the
agent's session, group and descendants) and kills the whole sandbox, failing the command with
``ExeScript command killed: more than 256 processes``, when there are more than
:data:`MAX_PROCESSES`. That is containment after the fact, not a fork that fails: a fast fork
bomb can briefly exceed the cap.

**Transfer paths** are resolved by :meth:`Sandbox.open_read` / :meth:`Sandbox.open_write` one
component at a time relative to an open directory descriptor with ``O_NOFOLLOW``, so nothing
a command plants can redirect the devnet: a symbolic link is followed only as the VM would
see it (its target read as a VM path, or a volume's host path in plain modes) and only while
it stays inside the volumes; anything else is :class:`OutsideSandbox`. Files are written to a
temporary name and renamed into place, so a planted hard link, FIFO or link is replaced, not
written through; only regular files are read.
"""

from __future__ import annotations

import array
import contextlib
import errno
import functools
import itertools
import json
import logging
import os
import re
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Optional, TextIO

logger = logging.getLogger(__name__)

VOLUMES = ("/golem/input", "/golem/output", "/golem/resources", "/golem/work")
WORKDIR = "/golem/work"
MODES = ("bwrap", "plain", "bare")
MAX_PROCESSES = 256  # per sandbox (beyond what the uid already runs, for a non-root devnet)
MAX_FILE_BYTES = 8 << 30  # 8 GiB per file written by a command
WATCH_INTERVAL = 0.05  # seconds between process counts of a root devnet's running command
BARE_WATCH_INTERVAL = 0.25  # the same in bare mode, where a count scans all of /proc
MAX_LINKS = 40  # symbolic links followed while resolving one transfer path (as Linux does)
BASE_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
_HOST_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
# A volume path anywhere in an argument (also inside a shell script), as a whole path segment.
_VOLUME_PATH = re.compile(r"(?<![\w./-])/golem/(?:input|output|resources|work)(?![\w.-])")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_warned = False
_warn_lock = threading.Lock()
_AGENT_SOURCE = (Path(__file__).parent / "vmagent.py").read_text()


class OutsideSandbox(OSError):
    """A transfer path that is in no volume, or leads out of them through a link."""


# -- choosing the mode -------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def bwrap_usable() -> bool:
    """Whether bubblewrap is installed and can create the namespaces (probed once)."""
    path = shutil.which("bwrap")
    if path is None:
        return False
    probe = [path, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "true"]
    return _probe(probe)


@functools.lru_cache(maxsize=1)
def unshare_prefix() -> Optional[tuple[str, ...]]:
    """The ``unshare`` command line plain mode runs commands under, or None (probed once)."""
    path = shutil.which("unshare")
    if path is None:
        return None
    base: tuple[str, ...] = (path, "--fork", "--pid", "--mount-proc", "--net", "--kill-child")
    options = [base] if os.geteuid() == 0 else []
    options.append((*base[:1], "--user", "--map-root-user", *base[1:]))
    for prefix in options:
        if _probe([*prefix, "--", "true"]):
            return prefix
    return None


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_SETPRIV: list[str] = []


@functools.lru_cache(maxsize=1)
def _pdeathsig_usable() -> bool:
    """Whether util-linux ``setpriv --pdeathsig`` works (then a plain command is killed when
    the devnet thread that started it dies, even by SIGKILL)."""
    path = shutil.which("setpriv")
    if path is None or not _probe([path, "--pdeathsig", "KILL", "--", "true"]):
        return False
    _SETPRIV[:] = [path]
    return True


@functools.lru_cache(maxsize=1)
def _python() -> tuple[str, Optional[str]]:
    """(interpreter, folder to bind read-only in bwrap mode or None) for the agent: the host's
    ``python3`` under ``/usr`` (which a bwrap sandbox sees anyway), else this interpreter's
    base installation (commands then see that folder too)."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if found is not None:
        return found, None
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base, sys.base_prefix


def default_mode() -> str:
    """The mode sandboxes use unless told: forced by the environment, else the best usable."""
    forced = os.environ.get("GOLEMSYNC_DEVNET_SANDBOX", "").strip().lower()
    if forced == "bwrap":
        return "bwrap"
    if forced in ("plain", "bare"):
        return _plain(forced)
    return "bwrap" if bwrap_usable() else _plain("plain")


def _plain(mode: str) -> str:
    return "plain" if mode == "plain" and unshare_prefix() is not None else "bare"


def unsandboxed_warning(mode: Optional[str] = None) -> Optional[str]:
    """The warning for commands run without bwrap in ``mode`` (default mode); None if bwrap."""
    mode = mode or default_mode()
    if mode == "bwrap":
        return None
    how = ("in their own pid and network namespaces (unshare)" if mode == "plain"
           else "in plain subprocesses that can see and signal every process of yours")
    return (f"WARNING: golemsync devnet: provider commands run without bubblewrap, with your "
            f"user's rights on your files, {how}. Install bubblewrap to sandbox them: "
            f"apt-get install bubblewrap")


def warn_unsandboxed(stream: Optional[TextIO] = None) -> None:
    """Print :func:`unsandboxed_warning` on stderr, once per process, if there is one."""
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    text = unsandboxed_warning()
    if text is not None:
        print(text, file=stream or sys.stderr, flush=True)


# -- the sandbox -------------------------------------------------------------------------------

def _notify(fd: Optional[int]) -> None:
    """Make the read end of an exit notice readable (``fd`` is its write end)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, b"x")


class SandboxError(OSError):
    """A request the sandbox's agent refused or could not carry out (``errno`` set)."""


@dataclass
class Command:
    """A command running in a sandbox: the read ends of its output pipes and its exit."""

    ident: int
    argv: list[str]
    stdout: IO[bytes]
    stderr: IO[bytes]
    agent: _Agent
    pid: int = 0  # in the sandbox's pid namespace
    status: Optional[int] = None  # the wait status, once it exited
    cpu: float = 0.0
    returncode: Optional[int] = None
    exceeded: bool = False  # killed for running too many processes


class _Agent:
    """One running agent (:mod:`golemsync.devnet.vmagent`) and its reader thread."""

    def __init__(self, launch: Callable[[], subprocess.Popen[bytes]], ctl: socket.socket,
                 info: Optional[int], name: str) -> None:
        self.ctl = ctl
        self.info = info  # a root bwrap's --info-fd read end
        self.info_data = b""
        self.child: Optional[int] = None  # bwrap's host pid inside the namespaces
        self.cond = threading.Condition()
        self.replies: dict[int, tuple[dict[str, Any], list[int]]] = {}
        self.exits: dict[int, dict[str, Any]] = {}
        # command id -> write end of a pipe made readable when its exit message arrives (or
        # the agent dies): lets one thread poll a command's output and its exit together
        self.notices: dict[int, int] = {}
        self.alive = True
        self.send_lock = threading.Lock()
        self._launched: list[Any] = []
        # The reader thread starts the agent itself: the agent's parent-death signal (bwrap
        # --die-with-parent, setpriv --pdeathsig) follows the thread that forked it, and this
        # one lives exactly as long as the agent.
        self.reader = threading.Thread(target=self._run, args=(launch,), name=name,
                                       daemon=True)
        self.reader.start()
        with self.cond:
            self.cond.wait_for(lambda: bool(self._launched))
        launched = self._launched[0]
        if isinstance(launched, BaseException):
            self.reader.join()
            raise launched
        self.process: subprocess.Popen[bytes] = launched

    def _run(self, launch: Callable[[], subprocess.Popen[bytes]]) -> None:
        try:
            process: Any = launch()
        except BaseException as exc:  # handed to the thread that asked for the agent
            process = exc
        with self.cond:
            self._launched.append(process)
            self.cond.notify_all()
        if not isinstance(process, BaseException):
            self._read()

    def _read(self) -> None:
        try:
            while True:
                fds: list[int] = []
                try:
                    data, ancillary, _, _ = self.ctl.recvmsg(1 << 20, socket.CMSG_SPACE(8))
                except OSError:
                    break
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        got = array.array("i")
                        got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                        fds.extend(got)
                if not data:
                    break
                message = json.loads(data.decode())
                with self.cond:
                    if "exit" in message:
                        ident = int(message["id"])
                        self.exits[ident] = message
                        _notify(self.notices.pop(ident, None))
                    else:
                        self.replies[int(message["id"])] = (message, fds)
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.alive = False
                for fd in self.notices.values():
                    _notify(fd)
                self.notices.clear()
                self.cond.notify_all()

    def request(self, message: dict[str, Any], fds: Sequence[int] = (),
                timeout: Optional[float] = None) -> tuple[dict[str, Any], list[int]]:
        ident = int(message["id"])
        data = json.dumps(message).encode()
        with self.send_lock:
            try:
                if fds:
                    self.ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", fds))])
                else:
                    self.ctl.send(data)
            except OSError as exc:
                raise SandboxError(errno.ESRCH, f"the sandbox is gone ({exc})") from None
        with self.cond:
            if not self.cond.wait_for(lambda: ident in self.replies or not self.alive,
                                      timeout):
                raise SandboxError(errno.ETIMEDOUT, "the sandbox did not answer in time")
            if ident not in self.replies:
                raise SandboxError(errno.ESRCH, "the sandbox is gone")
            return self.replies.pop(ident)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.ctl.shutdown(socket.SHUT_RDWR)
        if self.reader is not threading.current_thread():
            self.reader.join()
        self.ctl.close()
        if self.info is not None:
            os.close(self.info)
            self.info = None


class Sandbox:
    """The volumes of one activity and the one agent its commands run under (a VM)."""

    def __init__(self, root: Path, *, mode: Optional[str] = None) -> None:
        self.root = root
        wanted = mode or default_mode()
        if wanted not in MODES:
            raise ValueError(f"unknown sandbox mode {wanted!r} (one of {', '.join(MODES)})")
        self.mode = _plain(wanted) if wanted != "bwrap" else "bwrap"
        self.volumes = {vm: root / "volumes" / vm.rsplit("/", 1)[1] for vm in VOLUMES}
        for host in self.volumes.values():
            host.mkdir(parents=True, exist_ok=True)
        self._root_user = os.geteuid() == 0
        self._nproc = None if self._root_user else _processes_of(os.getuid()) + MAX_PROCESSES
        self._wrapper = self._limit_wrapper()
        self._lock = threading.Lock()  # guards _agent and _closed
        self._agent: Optional[_Agent] = None
        self._closed = False
        self._ids = itertools.count(1)

    # -- the agent -----------------------------------------------------------------------------
    def _running_agent(self) -> _Agent:
        """The sandbox's agent, started on first use (and again after :meth:`kill_all`)."""
        with self._lock:
            if self._closed:
                raise SandboxError(errno.ESRCH, "the sandbox was destroyed")
            if self._agent is None or not self._agent.alive:
                if self._agent is not None:
                    self._reap(self._agent)
                self._agent = self._start_agent()
            return self._agent

    def _start_agent(self) -> _Agent:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        environment = {"PATH": BASE_PATH, "LANG": "C.UTF-8"}
        info: Optional[tuple[int, int]] = None
        agent = [_python()[0], "-I", "-S", "-c", _AGENT_SOURCE, str(theirs.fileno())]
        cwd: Optional[Path] = None
        if self.mode == "bwrap":
            if self._root_user:
                info = os.pipe()
            full = self._bwrap_argv(agent, info[1] if info else None)
        else:
            full = agent
            if self.mode == "plain":
                full = [*(unshare_prefix() or ()), "--", *full]
            cwd = self.volumes[WORKDIR]
        extra = {} if self._wrapper is not None else {"preexec_fn": self._preexec_limits}
        passed = (theirs.fileno(), *((info[1],) if info else ()))

        def launch() -> subprocess.Popen[bytes]:
            return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
                [*(self._wrapper or ()), *full], env=environment, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, pass_fds=passed, **extra)

        name = f"golemsync-devnet-vm-{self.root.parent.name[-8:]}"
        try:
            return _Agent(launch, ours, info[0] if info else None, name)
        except BaseException:
            ours.close()
            if info:
                os.close(info[0])
            raise
        finally:
            theirs.close()
            if info:
                os.close(info[1])

    def _reap(self, agent: _Agent) -> None:
        """Kill an agent's whole sandbox and wait until every process of it is gone."""
        if self.mode == "bare":  # first: killing the leader would orphan its children
            _kill_bare_tree(agent.process.pid)
        init = None
        if self.mode != "bare":  # the namespace's init: it exits once its namespace is empty
            with contextlib.suppress(OSError):
                init = os.pidfd_open(_first_child(agent.process.pid) or 0)
        try:
            _signal_group(agent.process.pid)
            with contextlib.suppress(ChildProcessError):
                agent.process.wait()
            if init is not None:
                select.select([init], [], [], 10)
        finally:
            if init is not None:
                os.close(init)
        agent.stop()

    def kill_all(self) -> None:
        """Kill every process of the sandbox (the VM stops); the next command restarts it."""
        with self._lock:
            agent, self._agent = self._agent, None
        if agent is not None:
            self._reap(agent)

    def close(self) -> None:
        """Kill everything and refuse further commands (the activity is destroyed)."""
        with self._lock:
            self._closed = True
        self.kill_all()

    # -- running commands ----------------------------------------------------------------------
    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> Command:
        """Start ``argv`` in the sandbox with stdout/stderr piped (:class:`SandboxError` when
        it cannot start: ``errno`` says why, e.g. ``ENOENT``)."""
        environment = {"PATH": BASE_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8"}
        if self.mode == "bwrap":
            environment.update(env)
            full, cwd = list(argv), WORKDIR
        else:
            environment.update({k: self._rewrite(v) for k, v in env.items()})
            environment["HOME"] = str(self.volumes[WORKDIR])
            full, cwd = [self._rewrite(a) for a in argv], str(self.volumes[WORKDIR])
        environment.pop("TERM", None)
        agent = self._running_agent()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ident = next(self._ids)
        try:
            reply, _ = agent.request({"op": "spawn", "id": ident, "argv": full,
                                      "env": environment, "cwd": cwd}, (out_w, err_w))
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        if "error" in reply:
            os.close(out_r)
            os.close(err_r)
            raise SandboxError(int(reply.get("errno") or errno.EINVAL), str(reply["error"]))
        return Command(ident, full, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"), agent,
                       int(reply["pid"]))

    def exit_notice(self, command: Command) -> tuple[int, int]:
        """A pipe ``(read end, write end)`` whose read end becomes readable once ``command``
        has exited (or the sandbox died): poll it beside the command's output pipes. Close
        both with :meth:`close_notice` once done."""
        agent = command.agent
        read, write = os.pipe()
        with agent.cond:
            if command.ident in agent.exits or not agent.alive:
                _notify(write)
            else:
                agent.notices[command.ident] = write
        return read, write

    def close_notice(self, command: Command, notice: tuple[int, int]) -> None:
        with command.agent.cond:
            command.agent.notices.pop(command.ident, None)
        for fd in notice:
            os.close(fd)

    def watch_interval(self) -> Optional[float]:
        """How often a root devnet counts a running command's processes (None: never)."""
        if not self._root_user:
            return None
        return BARE_WATCH_INTERVAL if self.mode == "bare" else WATCH_INTERVAL

    def check_processes(self, command: Command) -> None:
        """Kill everything when a root devnet's sandbox runs too many processes (then
        :meth:`wait` reports ``command`` as killed for it)."""
        if command.exceeded or self._count(command.agent) <= MAX_PROCESSES:
            return
        logger.warning("devnet sandbox: more than %d processes, killed", MAX_PROCESSES)
        command.exceeded = True
        self.kill_all()

    def wait(self, command: Command) -> tuple[int, float, bool]:
        """Wait for ``command`` to exit: (exit code, CPU seconds, whether it was killed for
        too many processes). Its background processes keep running (see the module docstring);
        a root devnet counts the sandbox's processes meanwhile."""
        agent = command.agent
        interval = self.watch_interval()
        with agent.cond:
            while command.ident not in agent.exits and agent.alive:
                agent.cond.wait(interval)
                if interval is None or command.exceeded or command.ident in agent.exits:
                    continue
                agent.cond.release()
                try:
                    self.check_processes(command)
                finally:
                    agent.cond.acquire()
            message = agent.exits.pop(command.ident, None)
        if message is None:  # the sandbox was killed under it
            command.returncode = -signal.SIGKILL
        else:
            command.status = int(message["exit"])
            command.cpu = float(message.get("cpu") or 0.0)
            command.returncode = os.waitstatus_to_exitcode(command.status)
        return command.returncode, command.cpu, command.exceeded

    def connect(self, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection to ``127.0.0.1:<port>`` inside the sandbox's network namespace
        (:class:`SandboxError` with ``ECONNREFUSED`` when nothing listens there)."""
        if not 0 < port < 65536:
            raise SandboxError(errno.EINVAL, f"invalid port {port}")
        agent = self._running_agent()
        reply, fds = agent.request({"op": "connect", "id": next(self._ids), "port": port,
                                    "timeout": timeout}, timeout=timeout + 5)
        if "error" in reply or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise SandboxError(int(reply.get("errno") or errno.EIO),
                               str(reply.get("error") or "no socket"))
        return socket.socket(fileno=fds[0])

    def _count(self, agent: _Agent) -> int:
        if self.mode == "bare":
            return len(_bare_members(agent.process.pid))
        inside = agent.process.pid
        if self.mode == "bwrap":
            inside = self._bwrap_child(agent) or 0
            if not inside:
                return 0
        proc = f"/proc/{inside}/root/proc"
        try:
            # Until the sandbox has mounted its own /proc, this is a copy of the host's (the
            # same file system): do not count the whole machine.
            if os.stat(proc).st_dev == os.stat("/proc").st_dev:
                return 0
            return sum(1 for e in os.listdir(proc) if e.isdigit())
        except OSError:
            return 0

    def _bwrap_child(self, agent: _Agent) -> Optional[int]:
        """The host pid of bwrap's process inside the namespaces, from its ``--info-fd``."""
        if agent.child is not None or agent.info is None:
            return agent.child
        os.set_blocking(agent.info, False)
        with contextlib.suppress(BlockingIOError):
            agent.info_data += os.read(agent.info, 4096)
        try:
            agent.child = int(json.loads(agent.info_data.decode())["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None
        return agent.child

    def _limit_wrapper(self) -> Optional[tuple[str, ...]]:
        path = shutil.which("prlimit")
        if path is None:
            return None
        wrapper = [path, f"--fsize={MAX_FILE_BYTES}"]
        if self._nproc is not None:
            wrapper.append(f"--nproc={self._nproc}")
        wrapper.append("--")
        if self.mode != "bwrap" and _pdeathsig_usable():  # bwrap has --die-with-parent
            wrapper += [*_SETPRIV, "--pdeathsig", "KILL", "--"]
        return tuple(wrapper)

    def _preexec_limits(self) -> None:
        # Only without prlimit (slow path: rules out vfork). Runs in the child before exec.
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        if self._nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (self._nproc, self._nproc))

    def _bwrap_argv(self, argv: Sequence[str], info_fd: Optional[int]) -> list[str]:
        # --as-pid-1: the agent is the namespace's init, which no process inside can signal.
        full = ["bwrap", "--die-with-parent", "--as-pid-1", "--unshare-user", "--unshare-pid",
                "--unshare-ipc", "--unshare-uts", "--unshare-net", "--hostname", "golem-provider",
                "--ro-bind", "/usr", "/usr"]
        if self._root_user:  # else root keeps every capability inside: it could remount rw
            full += ["--cap-drop", "ALL"]
        for host_dir in _HOST_DIRS:
            full += ["--ro-bind-try", host_dir, host_dir]
        full += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        prefix = _python()[1]
        if prefix is not None and not prefix.startswith("/usr/"):  # the agent's interpreter
            full += ["--ro-bind", prefix, prefix]
        for vm, host in self.volumes.items():
            full += ["--bind", str(host), vm]
        if info_fd is not None:
            full += ["--info-fd", str(info_fd)]
        return [*full, "--chdir", WORKDIR, "--", *argv]

    def _rewrite(self, value: str) -> str:
        return _VOLUME_PATH.sub(lambda m: str(self.volumes[m.group(0)]), value)

    # -- transfer paths ------------------------------------------------------------------------
    def open_read(self, vm_path: str) -> IO[bytes]:
        """Open a regular file of the volumes for reading (see the module docstring)."""
        parent, name, shown = self._resolve(vm_path, create=False)
        try:
            try:
                handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                 | os.O_CLOEXEC, dir_fd=parent)
            except FileNotFoundError:
                raise FileNotFoundError(f"path not found in container: {shown}") from None
        finally:
            os.close(parent)
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise OutsideSandbox(f"not a regular file in container: {shown}")
        os.set_blocking(handle, True)
        return os.fdopen(handle, "rb")

    @contextlib.contextmanager
    def open_write(self, vm_path: str) -> Iterator[IO[bytes]]:
        """Write a file of the volumes: a temporary file renamed over ``vm_path`` on success."""
        parent, name, shown = self._resolve(vm_path, create=True)
        temp = f".{name}.golemsync-{os.urandom(4).hex()}"
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent)
            try:
                with os.fdopen(handle, "wb") as out:
                    yield out
                os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=parent)
                raise
        except IsADirectoryError:
            raise IsADirectoryError(f"is a directory in container: {shown}") from None
        finally:
            os.close(parent)

    def host_path(self, vm_path: str) -> Path:
        """The host path of ``vm_path`` as text only (no links resolved); for display/tests."""
        volume, parts = self._split(vm_path)
        return self.volumes[volume].joinpath(*parts)

    def _split(self, vm_path: str, from_link: bool = False) -> tuple[str, list[str]]:
        """(volume, components below it) of a VM path; a link's target in plain modes may
        also name a volume by its host directory (commands there see host paths)."""
        clean = os.path.normpath("/" + vm_path.lstrip("/"))
        prefixes = [(vm, vm) for vm in self.volumes]
        if from_link and self.mode != "bwrap":
            prefixes += [(str(host), vm) for vm, host in self.volumes.items()]
        for prefix, volume in prefixes:
            if clean == prefix or clean.startswith(prefix + "/"):
                rest = os.path.relpath(clean, prefix)
                return volume, [] if rest == "." else rest.split("/")
        raise OutsideSandbox(f"path not found in container: {vm_path}")

    def _resolve(self, vm_path: str, create: bool) -> tuple[int, str, str]:
        """(open parent directory fd, final name, path shown in errors) of ``vm_path``.

        Walks component by component from the volume's directory with ``O_NOFOLLOW``; a
        symbolic link restarts the walk at its target, read as a VM path.
        """
        shown = vm_path
        links = 0
        path = vm_path
        while True:
            try:
                volume, parts = self._split(path, from_link=path is not vm_path)
            except OutsideSandbox:
                if path is vm_path:
                    raise
                raise OutsideSandbox(f"{shown} leads outside the container "
                                     f"(link to {path})") from None
            if not parts:
                raise IsADirectoryError(f"is a directory in container: {shown}")
            fd = os.open(self.volumes[volume], _DIR_FLAGS)
            walked = [volume]
            try:
                for index, part in enumerate(parts):
                    last = index == len(parts) - 1
                    target = _link_target(fd, part)
                    if target is not None:
                        links += 1
                        if links > MAX_LINKS:
                            raise OutsideSandbox(f"too many links in container: {shown}")
                        rest = "/".join(parts[index + 1:])
                        base = target if target.startswith("/") else "/".join(walked) + "/" + \
                            target
                        path = base + ("/" + rest if rest else "")
                        break
                    if last:
                        return fd, part, shown
                    child = _enter(fd, part, create, shown)
                    os.close(fd)
                    fd = child
                    walked.append(part)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def remove(self) -> None:
        remove_tree(self.root)


def _link_target(dir_fd: int, name: str) -> Optional[str]:
    if name in (".", ".."):
        return None
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return None  # not a link / not there
        raise


def _enter(dir_fd: int, name: str, create: bool, shown: str) -> int:
    """Open subdirectory ``name`` of ``dir_fd`` without following a link (creating it if
    asked); the caller still owns ``dir_fd``."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise FileNotFoundError(f"path not found in container: {shown}") from None
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        return _enter(dir_fd, name, False, shown)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise NotADirectoryError(f"not a directory in container: {shown}") from None
        raise


# -- processes ---------------------------------------------------------------------------------

def _signal_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _first_child(pid: int) -> Optional[int]:
    """The first child of ``pid`` (bwrap's or unshare's: the sandbox's init), from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            children = handle.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _stat_fields(pid: str) -> Optional[tuple[int, int, int]]:
    """(ppid, process group, session) of ``pid`` from /proc, None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def _bare_members(leader: int) -> set[int]:
    """Processes of a bare command: its session and group, and their descendants (a scan)."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                table[int(entry)] = fields
    members = {pid for pid, (_, group, session) in table.items()
               if leader in (group, session)}
    grew = True
    while grew:
        more = {pid for pid, (parent, _, _) in table.items()
                if parent in members and pid not in members}
        members |= more
        grew = bool(more)
    members.discard(os.getpid())
    return members


def _kill_bare_tree(leader: int) -> None:
    """Freeze every process of a bare command (SIGSTOP, until no new one appears: a stopped
    process cannot fork, and its children stay linked to it), then SIGKILL them all and wait
    (bounded) until they are gone."""
    handles: dict[int, int] = {}
    try:
        for _ in range(50):
            fresh = _bare_members(leader) - set(handles)
            if not fresh:
                break
            for pid in fresh:
                try:
                    handles[pid] = os.pidfd_open(pid)
                except OSError:
                    continue
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(handles[pid], signal.SIGSTOP)
        poller = select.poll()
        for handle in handles.values():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(handle, signal.SIGKILL)
            poller.register(handle, select.POLLIN)
        pending = len(handles)
        while pending:
            ready = poller.poll(2000)
            if not ready:
                break
            for handle, _ in ready:
                poller.unregister(handle)
                pending -= 1
    finally:
        for handle in handles.values():
            os.close(handle)


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


def remove_tree(path: Path) -> None:
    """Remove ``path`` entirely, also folders a command made unreadable (chmod 0)."""
    tried: set[str] = set()

    def unlock(function: object, name: str, exc_info: object) -> None:
        if name in tried:  # not a permission problem (or not one chmod fixes): give up
            return
        tried.add(name)
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, onerror=unlock)
            else:
                os.unlink(name)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=unlock)
