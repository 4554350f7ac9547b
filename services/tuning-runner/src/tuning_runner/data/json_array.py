"""The rows of a file holding one JSON array of objects, read element by element.

The file is read in chunks into a window that only holds what is not yet decoded, so memory
stays at about one element (plus a chunk) whatever the file's size. Each element is decoded
with `json.JSONDecoder.raw_decode`; one that does not fit in the window yet gets more of the
file (the read size doubling, so a large element is not decoded over and over), up to
`MAX_ELEMENT_CHARS`. Errors name the element and its line and column in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tuning_runner.errors import DatasetError

CHUNK_CHARS = 1 << 16
# A larger element is refused (it is also where a malformed one stops being read).
MAX_ELEMENT_CHARS = 64 << 20
_NON_SPACE = re.compile(r"[^ \t\n\r]")


class _Window:
    """Unread text of a stream: `buf[pos:]`. Text before `pos` is dropped when more is read,
    its lines and columns counted so positions can still be told in file terms."""

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._lines = 0  # newlines dropped
        self._column = 0  # characters dropped since the last dropped newline

    def read_more(self, size: int) -> bool:
        """Append up to `size` characters (dropping what was consumed); False at end of file."""
        if self.eof:
            return False
        chunk = self._fh.read(size)
        if not chunk:
            self.eof = True
            return False
        dropped = self.buf[: self.pos]
        newline = dropped.rfind("\n")
        if newline >= 0:
            self._lines += dropped.count("\n")
            self._column = len(dropped) - newline - 1
        else:
            self._column += len(dropped)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """Skip whitespace; the next character, or "" at end of file."""
        while True:
            found = _NON_SPACE.search(self.buf, self.pos)
            if found is not None:
                self.pos = found.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.read_more(CHUNK_CHARS):
                return ""

    def decode(self, decoder: json.JSONDecoder) -> tuple[Any, int]:
        """Decode the value at `pos`; (value, where it started in `buf`)."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                # Incomplete in the window, or malformed: read on while that can tell.
                pending = len(self.buf) - self.pos
                if pending > MAX_ELEMENT_CHARS or not self.read_more(max(CHUNK_CHARS, pending)):
                    raise
                continue
            start = self.pos
            self.pos = end
            return value, start

    def where(self, index: int) -> str:
        """`line L, column C` (1-based) of `buf[index]` in the file."""
        line = self._lines + self.buf.count("\n", 0, index) + 1
        newline = self.buf.rfind("\n", 0, index)
        column = index - newline if newline >= 0 else self._column + index + 1
        return f"line {line}, column {column}"


def iter_json_array(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of the JSON array in `path`, one at a time."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as fh:
        win = _Window(fh)
        if win.peek() != "[":
            raise DatasetError(f"{path.name} does not start with a JSON array")
        win.pos += 1
        if win.peek() == "]":
            win.pos += 1
        else:
            yield from _elements(path, win, decoder)
        if win.peek():
            raise DatasetError(
                f"{path.name} has more data after its JSON array ({win.where(win.pos)}); "
                "a .json file holds one array (use .jsonl for one object per line)"
            )


def _elements(path: Path, win: _Window, decoder: json.JSONDecoder) -> Iterator[dict[str, Any]]:
    index = 0
    while True:
        if not win.peek():
            raise DatasetError(_unterminated(path, index))
        try:
            value, start = win.decode(decoder)
        except json.JSONDecodeError as err:
            if win.eof and err.pos >= len(win.buf):
                raise DatasetError(_unterminated(path, index)) from err
            raise DatasetError(
                f"{path.name} element {index} of the JSON array ({win.where(err.pos)}) is not "
                f"valid JSON: {err.msg}"
            ) from err
        if not isinstance(value, dict):
            raise DatasetError(
                f"{path.name} element {index} of the JSON array ({win.where(start)}) is not a "
                "JSON object; a JSON array of objects was expected"
            )
        yield value
        index += 1
        separator = win.peek()
        win.pos += 1
        if separator == "]":
            return
        if separator != ",":
            if not separator:
                raise DatasetError(_unterminated(path, index))
            raise DatasetError(
                f"{path.name} element {index - 1} of the JSON array is followed by "
                f"{separator!r} ({win.where(win.pos - 1)}); expected ',' or ']'"
            )


def _unterminated(path: Path, elements: int) -> str:
    return (
        f"{path.name} ends inside its JSON array (after {elements} complete elements); "
        "is the file complete?"
    )
