"""File transfer: the StorageProvider interface and its gftp implementation."""

from __future__ import annotations

from .base import Published, Receiving, StorageProvider
from .gftp import GftpStorage

__all__ = ["GftpStorage", "Published", "Receiving", "StorageProvider"]
