"""Online speaker labels: CAM++ embeddings of finalized speech, clustered as they come.

Each run of final words gets one embedding. It joins the speaker whose running centroid is most
similar (cosine) if that similarity reaches `threshold`; otherwise it starts a new speaker, but
only when the run holds enough speech to trust (`min_new_duration`): a short "Hello?" is too
little to tell voices apart, so it goes to the nearest speaker instead. Centroids are running
means weighted by speech duration. Labels, once given, never change: the captions already on
screen stay true to what the clustering knew when they were sent.

Calibrated on pyannote's sample and the AMI excerpts of pyannote's test data (10 files, 1 to 4
speakers, runs of words from tiny.en cut at sentence ends and pauses as the engine cuts them):
threshold 0.40 with 0.8 s for a new speaker gave 89 % of words the right speaker (best mapping),
0.33 gave 82 % (it merged the sample's two speakers), 0.45 gave 87 %; comparing with the best
few past runs of each speaker instead of a centroid did no better. It over-split rather than
merged: 4 labels for 2 speakers in one excerpt, 7 for 4 in another, 3 for 2 on the sample in
some runs. Against that: a new speaker needs 1.0 s of speech (a 0.86 s "Neither did
I" had opened one), and a speaker whose centroid, with more speech, comes within
`merge_threshold` of an earlier speaker's is merged into it: that voice keeps the earlier label
from then on (labels already sent stay as they were). And a run too short to start a speaker
that is unlike every known one is labelled with the nearest but not added to its centroid: the
sample's two speakers (centroids 0.51 apart on its telephone channel) had become one after the
second's short "Hello?" and "Neither did I" had pulled the first's centroid towards her.
A label known only from runs too short to trust (the first "Hello?", 0.5 s) is taken over by the
first solid voice unlike the known ones: the sample otherwise got a third label for its opening.
Replaying pieces of the references (0.6 and 1.5 s, as runs of final words come) through this
clustering, threshold 0.42 or 0.45 gave 2 labels for the sample's 2 speakers (88 % of pieces on
the right speaker) and 3 for the 4-minute 3-speaker composite of benchmarks/compose.py --seed 7
(95 %); 0.50 gave 3 and 4.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transcribe.attribution import NameSpec
from transcribe.types import SAMPLE_RATE

log = logging.getLogger("transcribe")

__all__ = ["CamppEmbedder", "OnlineSpeakers", "SpeakerOptions", "SpeakerNamer"]


@dataclass(frozen=True)
class SpeakerOptions:
    """Online clustering of speaker embeddings."""

    threshold: float = 0.45  # cosine similarity to a centroid needed to join that speaker
    min_new_duration: float = 1.0  # seconds of speech a run needs to start a new speaker
    merge_threshold: float = 0.70  # two speakers' centroids this similar (and at least `threshold`) are one from then on
    max_speakers: int | None = None  # when reached, new voices join the nearest speaker
    min_embed_duration: float = 0.3  # shorter runs are not embedded: they take the last speaker

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"speaker threshold must be a cosine similarity in [-1, 1], not {self.threshold}")
        if self.max_speakers is not None and self.max_speakers < 1:
            raise ValueError(f"max speakers must be at least 1, not {self.max_speakers}")


@dataclass
class _Centroid:
    total: np.ndarray  # sum of duration-weighted unit embeddings
    duration: float

    def unit(self) -> np.ndarray:
        n = float(np.linalg.norm(self.total))
        return self.total / n if n > 0 else self.total


@dataclass
class OnlineSpeakers:
    """Incremental clustering of embeddings into speakers labelled SPEAKER_00, SPEAKER_01, ...

    One instance per session: it holds that session's centroids and nothing is shared.
    """

    options: SpeakerOptions = field(default_factory=SpeakerOptions)
    _centroids: list[_Centroid] = field(default_factory=list)
    _merged: dict[int, int] = field(default_factory=dict)  # a speaker found to be an earlier one -> that one
    last: int | None = None

    @property
    def count(self) -> int:
        """Speakers told apart so far (those merged into an earlier one not counted)."""
        return len(self._centroids) - len(self._merged)

    @staticmethod
    def label(index: int) -> str:
        return f"SPEAKER_{index:02d}"

    def assign(self, embedding: np.ndarray | None, duration: float) -> str:
        """The label for a run of speech of `duration` seconds with this embedding (None: no
        usable embedding, the run takes the previous speaker, or the first one)."""
        index = self._assign(embedding, duration)
        self.last = index
        return self.label(index)

    def similarity(self, embedding: np.ndarray, label: str) -> float:
        """Cosine similarity of an embedding to a speaker's centroid (1.0 when the speaker has
        none yet: nothing says the voice differs)."""
        index = int(label.rsplit("_", 1)[1])
        while index in self._merged:
            index = self._merged[index]
        c = self._centroids[index] if 0 <= index < len(self._centroids) else None
        v = np.asarray(embedding, dtype=np.float64).ravel()
        n = float(np.linalg.norm(v))
        if c is None or c.duration == 0 or n == 0 or not np.all(np.isfinite(v)):
            return 1.0
        return float(v @ c.unit()) / n

    def _assign(self, embedding: np.ndarray | None, duration: float) -> int:
        if embedding is None or not np.all(np.isfinite(embedding)):
            if self.last is not None:
                last = self.last
                while last in self._merged:
                    last = self._merged[last]
                return last
            if not self._centroids:
                return self._new(None, 0.0)
            return 0
        v = np.asarray(embedding, dtype=np.float64).ravel()
        norm = float(np.linalg.norm(v))
        if norm == 0:
            return self._assign(None, duration)
        v = v / norm
        if not self._centroids:
            return self._new(v, duration)
        sims = [float(v @ c.unit()) if c.duration > 0 and i not in self._merged else -1.0 for i, c in enumerate(self._centroids)]
        best = int(np.argmax(sims))
        full = self.options.max_speakers is not None and self.count >= self.options.max_speakers
        if sims[best] < self.options.threshold and duration < self.options.min_new_duration and not full:
            # Unlike every known voice, but too short to start one: labelled with the nearest,
            # not taken as evidence of it (it would pull that centroid towards another voice).
            log.debug("speaker %s: similarity %.2f (%.1f s, too short to learn from)", self.label(best), sims[best], duration)
            return best
        if sims[best] >= self.options.threshold or full:
            c = self._centroids[best]
            if c.duration == 0:  # a speaker first seen without an embedding
                c.total = v * duration
            else:
                c.total = c.total + v * duration
            c.duration += duration
            log.debug("speaker %s: similarity %.2f (%.1f s)", self.label(best), sims[best], duration)
            return self._merge_into_earlier(best)
        provisional = [i for i, c in enumerate(self._centroids) if i not in self._merged and c.duration < self.options.min_new_duration]
        if provisional:
            # A speaker known only from runs too short to trust (the session's first "Hello?"):
            # this first solid voice unlike the others takes that label over, instead of a
            # new label beside one that may never be heard again.
            index = max(provisional, key=lambda i: sims[i])
            self._centroids[index] = _Centroid(v * duration, duration)
            log.debug("speaker %s: taken over (%.1f s)", self.label(index), duration)
            return index
        log.debug("new speaker %s: best similarity %.2f (%.1f s)", self.label(len(self._centroids)), sims[best], duration)
        return self._new(v, duration)

    def _merge_into_earlier(self, index: int) -> int:
        """When more speech has brought a speaker's centroid close to an earlier speaker's, they
        were one voice split early on (a short first run): merge them, so that from now on that
        voice has the earlier label. Labels already sent are not changed."""
        c = self._centroids[index]
        limit = max(self.options.merge_threshold, self.options.threshold)
        for j, other in enumerate(self._centroids):
            if j == index or j in self._merged or other.duration == 0:
                continue
            if float(c.unit() @ other.unit()) >= limit:
                keep, gone = min(j, index), max(j, index)
                self._centroids[keep].total = self._centroids[keep].total + self._centroids[gone].total
                self._centroids[keep].duration += self._centroids[gone].duration
                self._merged[gone] = keep
                log.debug("speaker %s merged into %s", self.label(gone), self.label(keep))
                return keep
        return index

    def _new(self, v: np.ndarray | None, duration: float) -> int:
        if v is None:
            self._centroids.append(_Centroid(np.zeros(1), 0.0))
        else:
            self._centroids.append(_Centroid(v * duration, duration))
        return len(self._centroids) - 1


class SpeakerNamer:
    """Display names for labels as speakers appear: --speaker-names given in order of first
    appearance ("Diane,Sheila") or by label ("SPEAKER_00=Diane"). A label without a name keeps it."""

    def __init__(self, spec: NameSpec | None = None):
        self.spec = spec or NameSpec()
        self._order: dict[str, str] = {}
        self._by_label = dict(self.spec.labels)

    def __call__(self, label: str) -> str:
        if label not in self._order:
            k = len(self._order)
            if self.spec.names:
                name = self.spec.names[k] if k < len(self.spec.names) else label
            else:
                name = self._by_label.get(label, label)
            self._order[label] = name
        return self._order[label]

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self._order)


class CamppEmbedder:
    """CAM++ speaker embeddings of short stretches of 16 kHz audio, on the CPU by default."""

    def __init__(self, weights: Path, device: str = "cpu", threads: int | None = None):
        import torch

        from transcribe.campplus import load_campplus

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.model = load_campplus(weights, device)
        self.device = device

    def __call__(self, samples: np.ndarray) -> np.ndarray | None:
        """The embedding of `samples` (float32 mono), or None when there is too little audio."""
        if len(samples) < SAMPLE_RATE // 4:
            return None
        from transcribe.campplus import embed

        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, None].to(self.device)
            out = embed(self.model, x)[0, 0].float().cpu().numpy()
        return out if np.all(np.isfinite(out)) else None
