"""Where a simulated provider runs commands: a per-activity sandbox with VM-like volumes.

A Golem VM image sees its volumes at ``/golem/input``, ``/golem/output``, ``/golem/resources``
and ``/golem/work``. Here they are real directories under the activity's workdir. Three modes,
chosen once per process (``GOLEMSYNC_DEVNET_SANDBOX=bwrap|plain|bare`` forces one):

* **bwrap** (preferred; ``apt-get install bubblewrap``): the command runs under bubblewrap in
  new user, pid, ipc, uts and network namespaces, with the host's ``/usr``, ``/bin``,
  ``/lib*`` and ``/etc`` read-only, a private ``/tmp``, ``/proc`` and ``/dev``, and the volumes
  bound read-write at their VM paths. ``--die-with-parent`` and the pid namespace mean killing
  the sandbox kills everything it started. A root devnet adds ``--cap-drop ALL``: bwrap run by
  root otherwise leaves the command every capability in its namespaces, enough to remount the
  read-only host folders read-write and write to them as root.
* **plain** (the fallback when bwrap is missing or unusable): the command runs with the
  user's rights on the host's file system, but inside ``unshare --fork --pid --mount-proc
  --net --kill-child`` (plus ``--user --map-root-user`` when not root) when the machine
  allows it: its own pid namespace (it cannot see or signal the devnet or any other host
  process, and everything it starts, ``setsid`` children included, dies with it), a private
  ``/proc`` and no network; util-linux ``setpriv --pdeathsig KILL`` in front kills it if the
  devnet dies without cleaning up. Volume paths (``/golem/input`` ...) written in arguments and
  environment values, also inside shell scripts, are rewritten to the volume directories; a
  volume path assembled at run time (``/golem/$DIR``) is not, and the working directory and
  ``HOME`` are the work volume's host directory.
* **bare** (plain mode where unshare cannot create namespaces): as plain, without the
  namespaces: a subprocess in its own session. Destroying the activity kills its session, its
  process group and every descendant still linked to it; a child that both leaves the
  session and loses its parent before that survives, and a command can signal the devnet,
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
it runs (a listing of its pid namespace's own ``/proc``; in bare mode, every
:data:`BARE_WATCH_INTERVAL` seconds, a scan of ``/proc`` for its session, group and
descendants) and kills the whole sandbox, failing the command with ``ExeScript command killed:
more than 256 processes``, when there are more than :data:`MAX_PROCESSES`. That is containment
after the fact, not a fork that fails: a fast fork bomb can briefly exceed the cap.

**Transfer paths** are resolved by :meth:`Sandbox.open_read` / :meth:`Sandbox.open_write` one
component at a time relative to an open directory descriptor with ``O_NOFOLLOW``, so nothing
a command plants can redirect the devnet: a symbolic link is followed only as the VM would
see it (its target read as a VM path, or a volume's host path in plain modes) and only while
it stays inside the volumes; anything else is :class:`OutsideSandbox`. Files are written to a
temporary name and renamed into place, so a planted hard link, FIFO or link is replaced, not
written through; only regular files are read.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import re
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Optional, TextIO

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

class Sandbox:
    """The volumes of one activity and the way to run a command inside them."""

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
        # A root devnet's bwrap processes: read end of the --info-fd pipe, what was read of
        # it, and the inner pid it names (guarded by the GIL: one exe-unit thread per pid).
        self._info: dict[int, int] = {}
        self._info_data: dict[int, bytes] = {}
        self._children: dict[int, int] = {}

    # -- running commands ----------------------------------------------------------------------
    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the sandbox with stdout/stderr piped; returns the process."""
        environment = {"PATH": BASE_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8"}
        info: Optional[tuple[int, int]] = None
        cwd: Optional[Path] = None
        if self.mode == "bwrap":
            environment.update(env)
            if self._root_user:
                info = os.pipe()
            full = self._bwrap_argv(argv, info[1] if info else None)
        else:
            environment.update({k: self._rewrite(v) for k, v in env.items()})
            environment["HOME"] = str(self.volumes[WORKDIR])
            full = [self._rewrite(a) for a in argv]
            if self.mode == "plain":
                full = [*(unshare_prefix() or ()), "--", *full]
            cwd = self.volumes[WORKDIR]
        environment.pop("TERM", None)
        extra = {} if self._wrapper is not None else {"preexec_fn": self._preexec_limits}
        try:
            process = subprocess.Popen(
                [*(self._wrapper or ()), *full], env=environment, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, pass_fds=(info[1],) if info else (),
                **extra)  # type: ignore[call-overload]
        except BaseException:
            if info:
                os.close(info[0])
            raise
        finally:
            if info:
                os.close(info[1])
        if info:
            self._info[process.pid] = info[0]
        return process  # type: ignore[no-any-return]

    def wait(self, process: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage, bool]:
        """Reap ``process``: (exit code, rusage, whether it was killed for too many processes).

        A root devnet counts the sandbox's processes while it runs (see the module docstring);
        in bare mode the command's remaining process group is killed once it has exited, as
        the pid namespace does in the other modes.
        """
        exceeded = False
        try:
            if self._root_user:
                exceeded = self._watch(process)
            _, status, rusage = os.wait4(process.pid, 0)
        finally:
            info = self._info.pop(process.pid, None)
            self._info_data.pop(process.pid, None)
            self._children.pop(process.pid, None)
            if info is not None:
                os.close(info)
        process.returncode = os.waitstatus_to_exitcode(status)
        if self.mode == "bare":
            _signal_group(process.pid)
        return process.returncode, rusage, exceeded

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the command and everything it started (see the module docstring per mode)."""
        if self.mode == "bare":  # first: killing the leader would orphan its children
            _kill_bare_tree(process.pid)
        _signal_group(process.pid)

    def _watch(self, process: subprocess.Popen[bytes]) -> bool:
        try:
            handle = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            return False  # no pidfd (old kernel): no process count
        try:
            poller = select.poll()
            poller.register(handle, select.POLLIN)
            exceeded = False
            interval = BARE_WATCH_INTERVAL if self.mode == "bare" else WATCH_INTERVAL
            while not poller.poll(interval * 1000):
                if not exceeded and self._count(process) > MAX_PROCESSES:
                    logger.warning("devnet sandbox: command exceeded %d processes, killed",
                                   MAX_PROCESSES)
                    exceeded = True
                    self.kill(process)
            return exceeded
        finally:
            os.close(handle)

    def _count(self, process: subprocess.Popen[bytes]) -> int:
        if self.mode == "bare":
            return len(_bare_members(process.pid))
        inside = process.pid
        if self.mode == "bwrap":
            inside = self._bwrap_child(process.pid) or 0
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

    def _bwrap_child(self, pid: int) -> Optional[int]:
        """The host pid of bwrap's process inside the namespaces, from its ``--info-fd``."""
        if pid in self._children:
            return self._children[pid]
        handle = self._info.get(pid)
        if handle is None:
            return None
        os.set_blocking(handle, False)
        with contextlib.suppress(BlockingIOError):
            self._info_data[pid] = self._info_data.get(pid, b"") + os.read(handle, 4096)
        try:
            child = int(json.loads(self._info_data[pid].decode())["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None
        self._children[pid] = child
        return child

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
        full = ["bwrap", "--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-net", "--hostname", "golem-provider",
                "--ro-bind", "/usr", "/usr"]
        if self._root_user:  # else root keeps every capability inside: it could remount rw
            full += ["--cap-drop", "ALL"]
        for host_dir in _HOST_DIRS:
            full += ["--ro-bind-try", host_dir, host_dir]
        full += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
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
