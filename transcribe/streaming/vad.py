"""Voice activity over the live audio: Silero VAD (shipped inside faster-whisper), incrementally.

Speech probabilities are kept per 32 ms frame (512 samples), addressed by absolute frame index.
Each update runs the model over the new frames only, with one second of the audio before them
as warm-up context, so the cost per recognizer pass is a few milliseconds whatever the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transcribe.streaming.ring import AudioRing
from transcribe.types import SAMPLE_RATE

__all__ = ["VadOptions", "VoiceActivity"]

FRAME = 512  # samples per Silero frame at 16 kHz
_CONTEXT_FRAMES = 32  # about 1 s of warm-up for the model's recurrent state


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5  # a frame at or above this is speech
    neg_threshold: float = 0.35  # below this is silence; in between keeps the previous state
    max_frames: int = 4096  # probabilities kept (about 2 minutes)


class VoiceActivity:
    """Speech/silence per frame for the audio of one session."""

    def __init__(self, options: VadOptions | None = None, model=None):
        if model is None:
            from faster_whisper.vad import get_vad_model

            model = get_vad_model()
        self.model = model
        self.options = options or VadOptions()
        self.first = 0  # frame index of _speech[0]
        self._speech = np.zeros(0, dtype=bool)

    @property
    def done(self) -> int:
        """One past the last frame with a decision."""
        return self.first + len(self._speech)

    def update(self, ring: AudioRing, upto: int | None = None) -> None:
        """Decide every whole frame up to sample `upto` (default: all the audio held)."""
        upto = ring.end if upto is None else upto
        last = upto // FRAME
        begin = max(self.done, ring.start // FRAME + 1)
        if begin > self.done:  # frames were lost (ring overwritten, gap): restart there
            self._append(np.zeros(begin - self.done, dtype=bool))
        if last <= begin:
            return
        ctx = max(ring.start // FRAME + (1 if ring.start % FRAME else 0), begin - _CONTEXT_FRAMES)
        audio = ring.read(ctx * FRAME, last * FRAME)
        if len(audio) != (last - ctx) * FRAME:  # the ring moved on under us: try next time
            return
        probs = np.asarray(self.model(audio)).reshape(-1)[begin - ctx:]
        state = bool(self._speech[-1]) if len(self._speech) else False
        out = np.empty(len(probs), dtype=bool)
        for i, p in enumerate(probs):
            if p >= self.options.threshold:
                state = True
            elif p < self.options.neg_threshold:
                state = False
            out[i] = state
        self._append(out)

    def _append(self, flags: np.ndarray) -> None:
        self._speech = np.concatenate([self._speech, flags])
        extra = len(self._speech) - self.options.max_frames
        if extra > 0:
            self._speech = self._speech[extra:]
            self.first += extra

    def speech_frames(self, start: int, end: int) -> np.ndarray:
        """Speech flags of the frames overlapping samples [start, end) that have a decision."""
        a = max(self.first, start // FRAME)
        b = min(self.done, -(-end // FRAME))
        if b <= a:
            return np.zeros(0, dtype=bool)
        return self._speech[a - self.first:b - self.first]

    def has_speech(self, start: int, end: int) -> bool:
        return bool(self.speech_frames(start, end).any())

    def first_speech(self, start: int, end: int) -> int | None:
        """Sample index of the first speech frame in [start, end), or None."""
        flags = self.speech_frames(start, end)
        idx = np.flatnonzero(flags)
        if len(idx) == 0:
            return None
        return (max(self.first, start // FRAME) + int(idx[0])) * FRAME

    def last_speech_end(self, start: int, end: int) -> int | None:
        """Sample index just after the last speech frame in [start, end), or None."""
        flags = self.speech_frames(start, end)
        idx = np.flatnonzero(flags)
        if len(idx) == 0:
            return None
        return (max(self.first, start // FRAME) + int(idx[-1]) + 1) * FRAME

    def last_pause(self, start: int, end: int, seconds: float) -> tuple[int, int] | None:
        """The last silence of `seconds` or more in [start, end) that speech follows, as sample
        indices (where it starts, where speech resumes); None if there is none."""
        flags = self.speech_frames(start, end)
        base = max(self.first, start // FRAME)
        starts = np.flatnonzero(flags[1:] & ~flags[:-1]) + 1  # speech resumes at these frames
        for k in starts[::-1]:
            before = np.flatnonzero(flags[:k])
            if len(before) and (k - 1 - before[-1]) * FRAME >= seconds * SAMPLE_RATE:
                return (base + int(before[-1]) + 1) * FRAME, (base + int(k)) * FRAME
        return None

    def trailing_silence(self, start: int) -> float:
        """Seconds of silence at the end of the decided audio, counting back no further than `start`."""
        end = self.done * FRAME
        last = self.last_speech_end(start, end)
        return (end - (last if last is not None else start)) / SAMPLE_RATE
