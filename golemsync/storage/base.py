"""What the engine needs from file transfer: publish local files, receive remote ones.

A :class:`StorageProvider` turns a local file (or bytes) into a URL a provider can download
(``publish_*``), and opens URLs a provider can upload into (``receive_file``). Script commands
(``send_*``/``download_*``) become ExeScript ``transfer`` commands between those URLs and
paths in the VM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Optional


class Published:
    """A file served at ``url`` until :meth:`release` (idempotent)."""

    def __init__(self, url: str, release: Callable[[], None]) -> None:
        self.url = url
        self._release: Optional[Callable[[], None]] = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class Receiving:
    """An upload slot at ``url``; the provider writes to ``path`` (a temporary file).

    :meth:`finish` with ``ok=True`` moves the complete file to its destination and returns
    it; with ``ok=False`` it removes the partial file. Only the first call counts.
    """

    def __init__(self, url: str, path: Path, finish: Callable[[bool], Path]) -> None:
        self.url = url
        self.path = path
        self._finish: Optional[Callable[[bool], Path]] = finish
        self._result: Optional[Path] = None

    def finish(self, ok: bool) -> Path:
        finish, self._finish = self._finish, None
        if finish is not None:
            self._result = finish(ok)
        assert self._result is not None
        return self._result


class StorageProvider(ABC):
    """File transfer for scripts; shared by every worker thread, so thread-safe."""

    @abstractmethod
    def publish_file(self, path: Path) -> Published:
        """Serve a local file; :class:`StorageError` when it cannot be read."""

    @abstractmethod
    def publish_bytes(self, data: bytes) -> Published:
        """Serve ``data`` as a file."""

    @abstractmethod
    def receive_file(self, path: Optional[Path]) -> Receiving:
        """Open an upload slot for ``path`` (None: a temporary file of the storage's own)."""

    @abstractmethod
    def close(self) -> None:
        """Stop serving everything and release resources. Idempotent."""
