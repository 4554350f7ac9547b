"""Blobs on disk: read in chunks for upload, written in chunks with their digest computed on the
way, so no blob is ever held whole in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 digest, size) of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, one chunk at a time (a fresh read each time it is called)."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it to `sink`."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hasher.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hasher.hexdigest()
