"""What the local hub serves: repositories read from directories, under a repository id and a
commit, with the per-file facts the real hub publishes (git blob id, LFS sha256, size)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# Files the real hub keeps in LFS (its default .gitattributes) or that are large; their ETag is
# the sha256 of the content, other files' ETag is the git blob id.
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model", ".gguf", ".onnx", ".msgpack")
_LFS_MIN_BYTES = 10 * 1024 * 1024
# A git-lfs pointer file is about this long; the hub reports it as `pointerSize`.
_POINTER_SIZE = 134


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository at a commit."""

    path: str  # relative, "/"-separated
    source: Path
    size: int
    blob_id: str  # git blob sha1 of the content (of the pointer for LFS files)
    sha256: str | None  # set for LFS files

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id

    def tree_entry(self) -> dict[str, object]:
        """The entry of `/api/models/{repo}/tree/{rev}`."""
        entry: dict[str, object] = {
            "type": "file",
            "oid": self.blob_id,
            "size": self.size,
            "path": self.path,
        }
        if self.sha256 is not None:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": _POINTER_SIZE}
        return entry

    def sibling(self, blobs: bool) -> dict[str, object]:
        """The entry of `siblings` in the model info (sizes only with `?blobs=true`)."""
        if not blobs:
            return {"rfilename": self.path}
        entry: dict[str, object] = {
            "rfilename": self.path,
            "size": self.size,
            "blobId": self.blob_id,
        }
        if self.sha256 is not None:
            entry["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": _POINTER_SIZE}
        return entry


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _file_digests(path: Path, size: int, lfs: bool) -> tuple[str, str | None]:
    if not lfs:
        return _git_blob_id(path.read_bytes()), None
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            sha.update(chunk)
    sha256 = sha.hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return _git_blob_id(pointer.encode()), sha256


def read_files(directory: Path) -> dict[str, RepoFile]:
    """Every file under `directory` (hidden folders such as `.cache` left out), by path."""
    files: dict[str, RepoFile] = {}
    for source in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = source.relative_to(directory)
        if any(part.startswith(".") and part != ".gitattributes" for part in relative.parts):
            continue
        size = source.stat().st_size
        lfs = source.suffix in _LFS_SUFFIXES or size >= _LFS_MIN_BYTES
        blob_id, sha256 = _file_digests(source, size, lfs)
        path = relative.as_posix()
        files[path] = RepoFile(path=path, source=source, size=size, blob_id=blob_id, sha256=sha256)
    return files


@dataclass
class HubRepo:
    """A model repository: its commits (each a set of files), branches and gate."""

    repo_id: str
    gated: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens granted access when gated
    commits: dict[str, dict[str, RepoFile]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        """The commit a revision (a commit or a branch name) names; None when unknown."""
        if revision in self.commits:
            return revision
        return self.branches.get(revision)

    def allows(self, token: str | None) -> bool:
        return not self.gated or (token is not None and token in self.tokens)
