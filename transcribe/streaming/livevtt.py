"""A WebVTT file that grows during the session and is valid at every moment.

Only finished cues are written: a segment (words of one speaker, cut at sentence ends and
pauses, as in `transcribe run`) is finished once a later word has started a new one, once it
ends a sentence, once every word up to `max_gap` past its end is final (no later word can join
it), or at the end of the session. Each update writes
the whole file to a temporary file beside it and renames it into place, so a reader never sees
a half-written cue. Cues are rendered once, by the same VttWriter as the batch outputs, so the
file at the end is exactly the VTT `transcribe run` would write for the same segments.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Sequence

from transcribe.attribution import build_segments, ends_sentence
from transcribe.errors import OutputError
from transcribe.types import Segment, Transcript, Word
from transcribe.writers import VttWriter

log = logging.getLogger("transcribe")

__all__ = ["LiveVtt"]

HEADER = "WEBVTT\n"


class LiveVtt:
    def __init__(self, path: Path, *, overwrite: bool = False, max_gap: float = 1.5, max_duration: float = 30.0):
        self.path = Path(path)
        self.max_gap = max_gap
        self.max_duration = max_duration
        self._writer = VttWriter()
        self._cues: list[str] = []
        self._done = 0  # words already in finished segments
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder: give a file name for --vtt")
        if not self.path.parent.is_dir():
            raise OutputError(f"folder {self.path.parent} does not exist (for --vtt)")
        if self.path.exists() and not overwrite:
            raise OutputError(f"{self.path} already exists: use --overwrite to replace it")
        self._write()

    @property
    def cues(self) -> int:
        return len(self._cues)

    def segments(self, words: Sequence[Word]) -> tuple[Segment, ...]:
        return build_segments(words, max_duration=self.max_duration, max_gap=self.max_gap)

    def update(self, words: Sequence[Word], now: float, *, final: bool = False) -> bool:
        """Add the segments of `words` (all final words so far) that are finished, given that
        every word before session time `now` is final; `final`: the session ended, everything is
        finished. Returns whether the file changed."""
        open_words = words[self._done:]
        if not open_words:
            return False
        segs = self.segments(open_words)
        finished = list(segs[:-1])
        last = segs[-1]
        if final or ends_sentence(last.words[-1].text) or now - last.end > self.max_gap:
            finished.append(last)
        if not finished:
            return False
        text = self._writer.to_string(Transcript(source="", duration=now, language=None, segments=tuple(finished)))
        blocks = text[len(HEADER):].split("\n\n")
        self._cues += [b.strip("\n") + "\n" for b in blocks if b.strip()]
        self._done += sum(len(s.words) for s in finished)
        self._write()
        return True

    def content(self) -> str:
        return HEADER + "".join("\n" + c for c in self._cues)

    def _write(self) -> None:
        tmp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(self.content())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
