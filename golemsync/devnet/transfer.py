"""The exe-unit's ``transfer`` command: move a file between URLs (PROTOCOL §6.2).

Sources and destinations: ``container:/path`` or a bare ``/path`` (inside a volume of the
activity's sandbox), ``gftp://node/name`` (a published file as the source, a receive slot as
the destination: through the service the requestor bound for it with the GSB API when there
is one, else the devnet's gftp store) and ``http(s)://`` (GET to download, PUT to upload).
Any URL may carry an integrity prefix ``hash:sha3:<hex>:`` (or ``hash://sha3:<hex>:``), checked
against what was copied (SHA3-224 or SHA3-256 by the length of the hex). Data moves in chunks,
so memory stays bounded for any size; a copy stops when ``abort`` is set.

Container paths go through :meth:`Sandbox.open_read` and :meth:`Sandbox.open_write`, never a
plain ``open`` of a host path: a link a command planted in a volume cannot make the devnet read
or overwrite a host file (the transfer fails with ``Transfer error: ...``), and a file sent into
a volume appears whole, by rename, once it has been copied and its hash (if any) checked.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Optional

from golemsync.devnet import gftpstore
from golemsync.devnet.gsb import GsbServices
from golemsync.devnet.gsbtransfer import GsbSource, GsbTransferError, upload
from golemsync.devnet.sandbox import OutsideSandbox, Sandbox

CHUNK = 1 << 20
HTTP_TIMEOUT = 60.0


class TransferError(Exception):
    """A transfer failed; the message becomes ``Transfer error: <message>``."""


Progress = Callable[[int, Optional[int]], None]


def transfer(source: str, destination: str, *, sandbox: Sandbox, gftp_root: Path,
             abort: threading.Event, format_: Any = None,
             on_progress: Optional[Progress] = None,
             gsb: Optional[GsbServices] = None) -> int:
    """Copy ``source`` to ``destination``; returns the bytes moved.

    ``on_progress(moved, total)`` is called after every chunk (``total`` None when unknown).
    ``gsb`` holds the services bound through the GSB API, tried first for gftp URLs.
    """
    try:
        return _transfer(source, destination, sandbox, gftp_root, abort, format_,
                         on_progress, gsb)
    except GsbTransferError as exc:
        raise TransferError(str(exc)) from None


def _transfer(source: str, destination: str, sandbox: Sandbox, gftp_root: Path,
              abort: threading.Event, format_: Any, on_progress: Optional[Progress],
              gsb: Optional[GsbServices]) -> int:
    if format_:
        raise TransferError(f"archive format {format_!r} is not supported by the devnet")
    src_hash, src_url = _split_hash(source)
    dst_hash, dst_url = _split_hash(destination)
    expected = src_hash or dst_hash
    digest = _hasher(expected)

    def check() -> None:
        if expected is not None and digest is not None and digest.hexdigest() != expected:
            raise TransferError(f"hash mismatch for {src_url}: expected {expected}, "
                                f"got {digest.hexdigest()}")

    reader = _open_source(src_url, sandbox, gftp_root, gsb, abort)
    try:
        progress = _Counter(reader, on_progress)
        moved = _write(dst_url, progress, digest, sandbox, gftp_root, abort, gsb, check)
    finally:
        reader.close()
    check()
    return moved


class _Counter:
    """Wraps a source to report bytes read so far."""

    def __init__(self, reader: IO[bytes], on_progress: Optional[Progress]) -> None:
        self._reader = reader
        self._on_progress = on_progress
        self._moved = 0
        try:
            self._total: Optional[int] = os.fstat(reader.fileno()).st_size
        except (OSError, ValueError, AttributeError):
            self._total = getattr(reader, "size", None)  # a GSB source knows its size

    def read(self, size: int = -1) -> bytes:
        chunk = self._reader.read(size)
        self._moved += len(chunk)
        if self._on_progress is not None and chunk:
            self._on_progress(self._moved, self._total)
        return chunk


def _split_hash(url: str) -> tuple[Optional[str], str]:
    for prefix in ("hash:sha3:", "hash://sha3:"):
        if url.startswith(prefix):
            hex_part, _, rest = url[len(prefix):].partition(":")
            return hex_part.lower().removeprefix("0x"), rest
    return None, url


def _hasher(expected: Optional[str]) -> Any:
    if expected is None:
        return None
    if len(expected) == 56:
        return hashlib.sha3_224()
    if len(expected) == 64:
        return hashlib.sha3_256()
    raise TransferError(f"unsupported hash length in {expected!r}")


def _container(url: str) -> str:
    return url[len("container:"):] if url.startswith("container:") else url


def _open_source(url: str, sandbox: Sandbox, gftp_root: Path, gsb: Optional[GsbServices],
                 abort: threading.Event) -> Any:
    try:
        if url.startswith(("http://", "https://")):
            return urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)
        service = gsb.gftp_service(url) if gsb is not None else None
        if service is not None:
            return GsbSource(service, abort)
        if url.startswith(gftpstore.SCHEME):
            return open(gftpstore.resolve_published(gftp_root, url), "rb")
        if url.startswith(("container:", "/")):
            return sandbox.open_read(_container(url))
    except (FileNotFoundError, OutsideSandbox, NotADirectoryError, IsADirectoryError) as exc:
        raise TransferError(str(exc)) from exc
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise TransferError(f"cannot read {url}: {exc}") from exc
    raise TransferError(f"unsupported source URL: {url}")


def _write(url: str, reader: Any, digest: Any, sandbox: Sandbox, gftp_root: Path,
           abort: threading.Event, gsb: Optional[GsbServices],
           check: Callable[[], None]) -> int:
    if url.startswith(("http://", "https://")):
        return _put(url, reader, digest)
    service = gsb.gftp_service(url) if gsb is not None else None
    if service is not None:
        return upload(service, reader, abort, digest=digest)
    try:
        if url.startswith(gftpstore.SCHEME):
            with open(gftpstore.resolve_receive(gftp_root, url), "wb") as out:
                return _copy(reader, out, digest, abort)
        if url.startswith(("container:", "/")):
            with sandbox.open_write(_container(url)) as out:
                moved = _copy(reader, out, digest, abort)
                check()  # a file that fails its hash never appears in the volume
                return moved
    except (OutsideSandbox, NotADirectoryError, IsADirectoryError) as exc:
        raise TransferError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise TransferError(str(exc) if "container" in str(exc) else
                            f"cannot write {url}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise TransferError(f"cannot write {url}: {exc}") from exc
    raise TransferError(f"unsupported destination URL: {url}")


def _copy(reader: Any, out: IO[bytes], digest: Any, abort: threading.Event) -> int:
    moved = 0
    for chunk in iter(lambda: reader.read(CHUNK), b""):
        if abort.is_set():
            raise TransferError("activity terminated during the transfer")
        out.write(chunk)
        moved += len(chunk)
        if digest is not None:
            digest.update(chunk)
    out.flush()
    os.fsync(out.fileno())
    return moved


def _put(url: str, reader: Any, digest: Any) -> int:
    moved = [0]

    def chunks() -> Iterator[bytes]:  # streamed with chunked transfer encoding
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            moved[0] += len(chunk)
            if digest is not None:
                digest.update(chunk)
            yield chunk

    request = urllib.request.Request(url, data=chunks(), method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT):
            pass
    except (OSError, urllib.error.URLError) as exc:
        raise TransferError(f"upload to {url} failed: {exc}") from exc
    return moved[0]
