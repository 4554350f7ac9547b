"""Incremental detokenization and stop-string matching for one request.

Text is released only once it is final: a token that ends inside a multi-byte character waits for
the next one, and text that could still become the start of a stop string is held back until it
cannot, so a client never receives part of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence

from inference_server.engine.protocol import TextCodec

_CONTEXT = 4  # tokens of the prompt decoded as context (leading-space rules of some tokenizers)


class IncrementalDetokenizer:
    def __init__(self, codec: TextCodec, prompt_ids: Sequence[int], stop: Sequence[str]) -> None:
        self._codec = codec
        self._ids = list(prompt_ids[-_CONTEXT:])
        self._prefix = 0
        self._read = len(self._ids)
        self._stop = [s for s in stop if s]
        self.text = ""  # the generated text so far (cut at a stop string once one is found)
        self._released = 0
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that became final (possibly empty)."""
        self._ids.append(token_id)
        prefix_text = self._codec.decode(self._ids[self._prefix : self._read])
        full_text = self._codec.decode(self._ids[self._prefix :])
        if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
            self._append(full_text[len(prefix_text) :])
            self._prefix, self._read = self._read, len(self._ids)
        return self._release(final=False)

    def flush(self) -> str:
        """At the end of the request: release whatever was held back."""
        return self._release(final=True)

    def _append(self, delta: str) -> None:
        if self.stopped:
            return
        start = max(0, len(self.text) - max((len(s) for s in self._stop), default=0))
        self.text += delta
        if not self._stop:
            return
        hits = [i for i in (self.text.find(s, start) for s in self._stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _release(self, *, final: bool) -> str:
        end = len(self.text)
        if not final and not self.stopped:
            end -= self._held_back()
        out = self.text[self._released : end]
        self._released = max(self._released, end)
        return out

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:n]):
                    best = n
                    break
        return best
