"""When a word is final: LocalAgreement over successive hypotheses of a rolling window.

Whisper is run again and again over a window that grows as audio arrives. A word is committed
(final) once the last `n` hypotheses agree on it as part of a common prefix: LocalAgreement-n of
Macháček, Dabre and Bojar, "Turning Whisper into Real-Time Transcription System" (2023), as in
their whisper_streaming. Two things differ from whisper_streaming:

- agreement compares words without case and punctuation ("Oh," and "oh" agree); the committed
  word is taken from the newest hypothesis, which has seen the most right context;
- `flush()` commits what is pending without waiting for agreement: the engine calls it when the
  voice activity detector says the speaker has paused, so the last words of an utterance do not
  wait for another pass over silence.

Everything here is pure logic over `Word`s in session time; it never sees audio.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from typing import Sequence

from transcribe.types import Word

__all__ = ["LocalAgreement", "normalize_word"]

_PUNCT = re.compile(r"[^\w']+")


def normalize_word(text: str) -> str:
    """The form in which two hypotheses' words are compared: case-folded, NFKC, no punctuation."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())


class LocalAgreement:
    """Commit the longest prefix on which the last `n` hypotheses agree.

    `update(hypothesis)` takes the words Whisper recognised in the current window (session
    times, any words already committed included) and returns `(committed, pending)`: the words
    that became final now, in order, and the rest of the hypothesis after them.
    """

    # A re-recognised committed word may start this much before the committed end and still
    # count as already committed (Whisper's word times move by a few tens of milliseconds).
    TIME_TOLERANCE = 0.1
    # How many committed words are compared with the head of a new hypothesis to drop repeats,
    # and how far past the committed end such a repeat may start.
    MAX_NGRAM = 5
    REPEAT_SLACK = 0.3

    def __init__(self, n: int = 2):
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1, got {n}")
        self.n = n
        self._previous: deque[list[Word]] = deque(maxlen=max(0, n - 1))
        self._latest: list[Word] = []
        self._tail: deque[Word] = deque(maxlen=self.MAX_NGRAM)
        self.committed_end = 0.0

    @property
    def pending(self) -> tuple[Word, ...]:
        """The newest hypothesis's words that are not committed yet."""
        return tuple(self._latest)

    def update(self, hypothesis: Sequence[Word], stable_until: float | None = None) -> tuple[list[Word], list[Word]]:
        """`stable_until`: words ending after this time are never committed by agreement (the
        window may have cut them: two passes can agree on the same wrong guess at a half word)."""
        new = self._strip_committed(hypothesis)
        agreed = len(new)
        if self.n > 1:
            for prev in self._previous:
                agreed = min(agreed, _common_prefix(prev, new))
            if len(self._previous) < self.n - 1:
                agreed = 0
        if stable_until is not None:
            while agreed and new[agreed - 1].end > stable_until:
                agreed -= 1
        committed = new[:agreed]
        pending = new[len(committed):]
        # Earlier hypotheses lose the agreed prefix too, so that they stay comparable.
        k = len(committed)
        self._previous = deque((p[k:] for p in self._previous), maxlen=self._previous.maxlen)
        if self._previous.maxlen:
            self._previous.append(list(pending))
        self._latest = list(pending)
        self._remember(committed)
        return list(committed), list(pending)

    def flush(self, until: float | None = None) -> list[Word]:
        """Commit the newest hypothesis's pending words now, without waiting for agreement: all
        of them (the speaker paused, the input ended), or those ending by `until` seconds."""
        if until is None:
            out, rest = list(self._latest), []
        else:
            k = 0
            while k < len(self._latest) and self._latest[k].end <= until:
                k += 1
            out, rest = self._latest[:k], self._latest[k:]
        self._remember(out)
        self._latest = list(rest)
        self._previous.clear()
        if rest and self._previous.maxlen:
            self._previous.append(list(rest))
        return out

    def reset(self) -> None:
        """Forget pending hypotheses (after a gap in the audio); committed state is kept."""
        self._latest = []
        self._previous.clear()

    def _remember(self, words: Sequence[Word]) -> None:
        for w in words:
            self._tail.append(w)
            self.committed_end = max(self.committed_end, w.end)

    def _strip_committed(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Drop the words of `hypothesis` that were committed already: those that end before the
        committed end, then any head of it that repeats the last committed words."""
        words = [w for w in hypothesis if w.start > self.committed_end - self.TIME_TOLERANCE]
        if not words or not self._tail or abs(words[0].start - self.committed_end) > 1.0:
            return words
        tail = [normalize_word(w.text) for w in self._tail]
        head = [normalize_word(w.text) for w in words[: self.MAX_NGRAM]]
        for size in range(min(len(tail), len(head)), 0, -1):
            # A repeat only if it could be the same audio: all of it starts by the committed end
            # (a phrase said again later is new words, even if it reads the same).
            if tail[-size:] == head[:size] and words[size - 1].start <= self.committed_end + self.REPEAT_SLACK:
                return words[size:]
        return words


def _common_prefix(a: Sequence[Word], b: Sequence[Word]) -> int:
    k = 0
    for x, y in zip(a, b, strict=False):
        if normalize_word(x.text) != normalize_word(y.text):
            break
        k += 1
    return k
