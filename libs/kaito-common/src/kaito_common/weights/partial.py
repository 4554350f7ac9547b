"""The unfinished part of a download, kept in the weights volume between runs.

`<dest>/.kaito-weights.partial/` holds each file being downloaded as `<path>.part` and
`state.json`: the repository and commit it belongs to and the files already moved into place.
A run of another repository or commit discards it; the folder is removed once the marker is
written.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

PARTIAL_DIR = ".kaito-weights.partial"
_STATE = "state.json"


class PartialDownload:
    def __init__(self, dest: Path, repo: str) -> None:
        self.dest = dest
        self.folder = dest / PARTIAL_DIR
        self.repo = repo
        self._lock = threading.Lock()
        self._state: dict[str, object] = {}
        self._done: list[str] = []

    def resume(self, commit: str) -> set[str]:
        """Starts or continues the download of `commit`: the files a previous run completed
        (still in place); partial files of any other download are discarded."""
        try:
            state = json.loads((self.folder / _STATE).read_text())
        except (OSError, ValueError):
            state = None
        done: list[str] = []
        if (
            isinstance(state, dict)
            and state.get("repo") == self.repo
            and state.get("commit") == commit
        ):
            done = [str(p) for p in state.get("done", [])]
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._state = {"repo": self.repo, "commit": commit}
        self._done = [path for path in done if (self.dest / path).is_file()]
        self._write()
        return set(self._done)

    def part(self, path: str) -> Path:
        return self.folder / f"{path}.part"

    def size(self, path: str, expected: int) -> int:
        """Bytes of `path` already here; 0 when none, or more than the file has (not ours)."""
        try:
            size = self.part(path).stat().st_size
        except OSError:
            return 0
        return size if size <= expected else 0

    def complete(self, path: str) -> None:
        """Moves the checked `.part` file into place and records it."""
        target = self.dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        part = self.part(path)
        part.chmod(0o644)
        os.replace(part, target)
        with self._lock:
            self._done.append(path)
            self._write()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self) -> None:
        scratch = self.folder / f"{_STATE}.tmp"
        scratch.write_text(json.dumps({**self._state, "done": self._done}))
        os.replace(scratch, self.folder / _STATE)
