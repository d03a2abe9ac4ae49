"""The typed, frozen values that flow between the stages.

media -> Audio -> Word (ASR) + Turn (diarization) -> Segment (attribution) -> Transcript -> writers
One Transcript type serves batch, streaming and evaluation alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True, eq=False)
class Audio:
    """Decoded audio: 16 kHz mono float32 samples in [-1, 1]."""

    samples: np.ndarray
    source: str = ""
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class Word:
    """One recognised word. `text` keeps Whisper's leading space; `speaker` is None until attributed."""

    start: float
    end: float
    text: str
    probability: float = 1.0
    speaker: str | None = None


@dataclass(frozen=True)
class Turn:
    """A stretch of time in which one speaker talks (one line of an RTTM)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Segment:
    """A run of words by one speaker: a sentence or part of one."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a stage's output, for the record in JSON outputs."""

    role: str  # "asr", "segmentation", "embedding"
    name: str
    sha256: str | None = None


@dataclass(frozen=True)
class Transcript:
    """Everything the writers need, and nothing they have to compute again.

    `turns` is the diarization as heard (overlap kept), for RTTM; `segments` carry the words.
    Speaker labels everywhere are the final display names (SPEAKER_00 or a given name).
    """

    source: str
    duration: float
    language: str | None
    segments: tuple[Segment, ...]
    turns: tuple[Turn, ...] = ()
    models: tuple[ModelInfo, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)

    @property
    def speakers(self) -> tuple[str, ...]:
        """Speakers in order of first appearance: in the words, then in the turns."""
        seen: dict[str, None] = {}
        for s in self.segments:
            if s.speaker is not None:
                seen.setdefault(s.speaker)
        for t in sorted(self.turns, key=lambda t: t.start):
            seen.setdefault(t.speaker)
        return tuple(seen)

    def speaking_time(self) -> dict[str, float]:
        """Seconds each speaker talks, from the turns (or the segments when there are no turns)."""
        spans = self.turns or tuple(
            Turn(s.start, s.end, s.speaker) for s in self.segments if s.speaker is not None
        )
        out: dict[str, float] = {spk: 0.0 for spk in self.speakers}
        for t in spans:
            out[t.speaker] = out.get(t.speaker, 0.0) + t.duration
        return out
