"""File transfer: the StorageProvider interface, on the GSB API or a gftp program."""

from __future__ import annotations

from .base import Published, Receiving, StorageProvider
from .gftp import GftpStorage
from .gsb import GsbStorage

__all__ = ["GftpStorage", "GsbStorage", "Published", "Receiving", "StorageProvider"]
