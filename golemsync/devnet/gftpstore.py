"""Where the devnet's gftp stand-in and its exe-units meet: a directory of links.

The real ``gftp`` moves bytes over the Golem network through the daemon's service bus, which
the devnet does not have. Instead, the stand-in program (run by the requestor, like ``gftp``)
and the devnet's exe-units (the simulated providers) share one directory per requestor
identity, in a folder private to the user (:func:`private_dir`)::

    <private dir>/devnet-gftp/<node-id>/
        published/<sha3-256 hex>   symlink to the absolute path of a published file
        receive/<token>            symlink to the absolute path a provider may upload into

The private dir is ``$XDG_RUNTIME_DIR/golemsync`` when that runtime dir exists, is ours and is
closed to others, else ``<tempdir>/golemsync-<uid>``; every folder on the way is created with
mode 0700 and checked with ``lstat``: a symbolic link or a folder owned by another user is
refused (``PermissionError``), one of ours left open to others is closed (chmod 0700). So no
other user can read what is published, plant a link to redirect an upload, or pre-create the
folders. The folders stay after a devnet stops (the stand-in and several devnets of one
identity share them); the links in them are removed by ``close``.

URLs keep the real syntax: ``gftp://<node-id>/<sha3-256 hex>`` for a published file and
``gftp://<node-id>/<65 alphanumerics>`` for a receive slot, so the client code path is the
one it takes against yagna.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import string
import tempfile
from pathlib import Path

SCHEME = "gftp://"
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_CHUNK = 1 << 20


def private_dir() -> Path:
    """This user's private golemsync folder (created 0700 on demand; see the module doc)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            info = os.lstat(runtime)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
                and not stat.S_IMODE(info.st_mode) & 0o077:
            return _private(Path(runtime) / "golemsync")
    return _private(Path(tempfile.gettempdir()) / f"golemsync-{os.getuid()}")


def store_root(node_id: str) -> Path:
    """The store directory for one requestor identity (created on demand, private)."""
    root = _private(_private(private_dir() / "devnet-gftp") / node_id.lower())
    for sub in ("published", "receive"):
        _private(root / sub)
    return root


def _private(path: Path) -> Path:
    """Make sure ``path`` is a real folder of ours that only we can use; returns it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(f"refusing {path}: it is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"refusing {path}: not a folder")
    if info.st_uid != os.getuid():
        raise PermissionError(f"refusing {path}: not owned by uid {os.getuid()}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def sha3_file(path: Path) -> str:
    """SHA3-256 hex digest of a file, read in chunks (memory stays bounded)."""
    digest = hashlib.sha3_256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_url(url: str) -> tuple[str, str]:
    """``gftp://node/name`` → ``(node, name)``; ``ValueError`` for anything else."""
    if not url.startswith(SCHEME):
        raise ValueError(f"not a gftp URL: {url!r}")
    node, _, name = url[len(SCHEME):].partition("/")
    if not node or not name or "/" in name:
        raise ValueError(f"malformed gftp URL: {url!r}")
    return node, name


def publish(root: Path, node_id: str, path: Path) -> str:
    """Serve ``path`` under its content hash; publishing the same content twice gives one URL."""
    source = Path(path).resolve(strict=True)
    name = sha3_file(source)
    _replace_link(root / "published" / name, source)
    return f"{SCHEME}{node_id}/{name}"


def receive(root: Path, node_id: str, output: Path) -> str:
    """Create (or truncate) ``output`` and open an upload slot that writes into it."""
    target = Path(output).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"")
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(65))
    _replace_link(root / "receive" / token, target)
    return f"{SCHEME}{node_id}/{token}"


def close(root: Path, url: str) -> bool:
    """Stop serving ``url`` (by its last path segment); False when it was not being served."""
    _, name = split_url(url)
    for sub in ("published", "receive"):
        link = root / sub / name
        if link.is_symlink():
            link.unlink()
            return True
    return False


def resolve_published(root: Path, url: str) -> Path:
    """The local file behind a published URL; ``FileNotFoundError`` when not served."""
    _, name = split_url(url)
    link = root / "published" / name
    if not link.is_symlink():
        raise FileNotFoundError(f"gftp: {url} is not published")
    return Path(os.readlink(link))


def resolve_receive(root: Path, url: str) -> Path:
    """The local file an upload to ``url`` must be written to; ``FileNotFoundError`` if none."""
    _, name = split_url(url)
    link = root / "receive" / name
    if not link.is_symlink():
        raise FileNotFoundError(f"gftp: {url} is not a receive slot")
    return Path(os.readlink(link))


def _replace_link(link: Path, target: Path) -> None:
    # Write the link beside its final name and rename it into place: readers never see a
    # half-made link, and re-publishing the same content just repoints it.
    temp = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
    temp.symlink_to(target)
    os.replace(temp, link)
