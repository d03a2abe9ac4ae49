"""Online speaker labels: CAM++ embeddings of finalized speech, clustered again as each run comes.

Each run of final words gets one embedding, and every run is kept. A run long enough to tell
voices apart (`min_new_duration`) joins the others in a fresh clustering of all such runs
(average linkage on cosine distance, cut where groups are less alike than `threshold` on
average). Each cluster then takes the label that most of its speech was given before (a short
run counts with the nearest cluster; one label per cluster, the Hungarian way), and the new run
takes its cluster's label; a cluster no label fits is a new speaker. A short run ("Hello?") is
labelled with the nearest cluster but never clustered: too little to start or shape a speaker.
Labels, once given, never change: the captions already on screen stay true to what the
clustering knew when they were sent. What changes is the next label: a first run that held two
voices, or a run that joined the wrong speaker, no longer decides the rest of the session, as
it did when each run joined the nearest running centroid for good. (On pyannote's sample, a
telephone call whose two voices' runs of a second or more have a cosine similarity of 0.3 at the
median and up to 0.46, that greedy clustering gave one label for both voices in 4 of 10 replays
with passes 1 to 2 times their measured time, as on a busy machine; re-clustering, in none.
See benchmarks/RESULTS.md.) Past `memory` runs, the oldest are kept as one mean per label, so
the clustering's cost and the memory held stay bounded in a long session.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transcribe.attribution import NameSpec
from transcribe.types import SAMPLE_RATE

log = logging.getLogger("transcribe")

__all__ = ["CamppEmbedder", "OnlineSpeakers", "SpeakerOptions", "SpeakerNamer"]


@dataclass(frozen=True)
class SpeakerOptions:
    """Online clustering of speaker embeddings."""

    threshold: float = 0.40  # average cosine similarity at which two groups of runs are one speaker
    min_new_duration: float = 1.0  # seconds of speech a run needs to start a new speaker
    max_speakers: int | None = None  # at most this many speakers: new voices join the nearest
    min_embed_duration: float = 0.3  # shorter runs are not embedded: they take the last speaker
    memory: int = 256  # runs kept one by one; older ones are kept as one mean per label

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"speaker threshold must be a cosine similarity in [-1, 1], not {self.threshold}")
        if self.max_speakers is not None and self.max_speakers < 1:
            raise ValueError(f"max speakers must be at least 1, not {self.max_speakers}")
        if self.memory < 2:
            raise ValueError(f"speaker memory must hold at least 2 runs, not {self.memory}")


@dataclass
class _Run:
    unit: np.ndarray  # the run's embedding, of length 1
    duration: float  # seconds of speech (for an older label's mean: all of them)
    label: int  # the label it was given


class OnlineSpeakers:
    """Incremental clustering of embeddings into speakers labelled SPEAKER_00, SPEAKER_01, ...

    One instance per session: it holds that session's runs and nothing is shared.
    """

    def __init__(self, options: SpeakerOptions | None = None):
        self.options = options or SpeakerOptions()
        self._runs: list[_Run] = []  # the latest runs with an embedding, oldest first
        self._older: dict[int, _Run] = {}  # per label, the mean of its runs that left `_runs`
        self._labels = 0  # labels given so far
        self._live: set[int] = set()  # labels the latest clustering gives a voice to
        self.last: int | None = None

    @property
    def count(self) -> int:
        """Speakers told apart so far: labels that the latest clustering still gives a voice to
        (a label whose runs have joined another's is no longer counted)."""
        return len(self._live)

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
        """Cosine similarity of an embedding to the mean of the runs given `label` that were
        long enough to start a speaker (1.0 when there are none: nothing says the voice differs)."""
        index = int(label.rsplit("_", 1)[1])
        mean = _mean([r for r in self._solid() if r.label == index])
        v = np.asarray(embedding, dtype=np.float64).ravel()
        n = float(np.linalg.norm(v))
        if mean is None or n == 0 or not np.all(np.isfinite(v)):
            return 1.0
        return float(v @ mean) / n

    def _solid(self) -> list[_Run]:
        """Runs long enough to start a speaker, and the means of older runs."""
        return [*self._older.values(), *(r for r in self._runs if r.duration >= self.options.min_new_duration)]

    def _assign(self, embedding: np.ndarray | None, duration: float) -> int:
        v = None if embedding is None else np.asarray(embedding, dtype=np.float64).ravel()
        norm = 0.0 if v is None or not np.all(np.isfinite(v)) else float(np.linalg.norm(v))
        if norm == 0:
            if self.last is not None:
                return self.last
            return self._new() if self._labels == 0 else 0
        run = _Run(v / norm, duration, -1)
        solid = self._solid()
        if duration >= self.options.min_new_duration:
            solid.append(run)
        if not solid:
            # Nothing yet long enough to tell voices apart: the first label, or the nearest
            run.label = self._nearest_label(run.unit) if self._labels else self._new()
            self._live.add(run.label)
        else:
            run.label = self._cluster(run, solid)
        self._runs.append(run)
        self._forget()
        return run.label

    def _cluster(self, run: _Run, solid: list[_Run]) -> int:
        """Cluster the solid runs afresh; each cluster takes the label most of its speech (short
        runs counted with the nearest cluster) was given; the new run takes its cluster's."""
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.optimize import linear_sum_assignment

        x = np.stack([r.unit for r in solid])
        if len(solid) == 1:
            clusters = np.zeros(1, dtype=int)
        else:
            tree = linkage(x, method="average", metric="cosine")
            clusters = fcluster(tree, t=1.0 - self.options.threshold, criterion="distance") - 1
            cap = self.options.max_speakers
            if cap is not None and clusters.max() + 1 > cap:
                clusters = fcluster(tree, t=cap, criterion="maxclust") - 1
        n = int(clusters.max()) + 1
        means = np.stack([_mean([r for r, c in zip(solid, clusters) if c == k]) for k in range(n)])
        cluster_of = {id(r): int(c) for r, c in zip(solid, clusters)}
        votes = np.zeros((n, max(self._labels, 1)))
        for r in [*self._older.values(), *self._runs]:
            votes[cluster_of.get(id(r), int(np.argmax(means @ r.unit))), r.label] += r.duration
        rows, cols = linear_sum_assignment(votes, maximize=True)
        labels = {int(k): int(j) for k, j in zip(rows, cols) if votes[k, j] > 0}
        self._live = set(labels.values())
        mine = cluster_of.get(id(run))
        if mine is None:
            # Too short to start a speaker: the nearest cluster that has one. It is labelled,
            # not learnt from: short runs never enter the clustering.
            mine = next((int(k) for k in np.argsort(-(means @ run.unit)) if int(k) in labels), None)
            if mine is None:
                return self._nearest_label(run.unit)
        if mine in labels:
            log.debug("speaker %s: %d runs in its cluster", self.label(labels[mine]), int((clusters == mine).sum()))
            return labels[mine]
        if self.options.max_speakers is not None and len(labels) >= self.options.max_speakers:
            return self._nearest_label(run.unit)
        index = self._new()
        self._live.add(index)
        log.debug("new speaker %s (%.1f s)", self.label(index), run.duration)
        return index

    def _nearest_label(self, unit: np.ndarray) -> int:
        """The label whose runs' mean (all of them, short ones too) is most like `unit`."""
        best, best_sim = self.last if self.last is not None else 0, -2.0
        for index in range(self._labels):
            mean = _mean([r for r in [*self._older.values(), *self._runs] if r.label == index])
            if mean is not None and float(mean @ unit) > best_sim:
                best, best_sim = index, float(mean @ unit)
        return best

    def _new(self) -> int:
        self._labels += 1
        return self._labels - 1

    def _forget(self) -> None:
        """Keep `memory` runs; the oldest solid run is folded into its label's mean, a short one
        dropped, so that the cost of clustering and the memory held stay bounded."""
        while len(self._runs) > self.options.memory:
            r = self._runs.pop(0)
            if r.duration < self.options.min_new_duration:
                continue
            old = self._older.get(r.label)
            if old is None:
                self._older[r.label] = _Run(r.unit, r.duration, r.label)
            else:
                total = old.unit * old.duration + r.unit * r.duration
                self._older[r.label] = _Run(total / (np.linalg.norm(total) or 1.0), old.duration + r.duration, r.label)


def _mean(runs: list[_Run]) -> np.ndarray | None:
    """The duration-weighted mean direction of runs (length 1), or None without any."""
    if not runs:
        return None
    total = sum(r.unit * r.duration for r in runs)
    n = float(np.linalg.norm(total))
    return total / n if n > 0 else runs[-1].unit


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


# oneDNN, which runs torch's convolutions on the CPU, keeps every convolution it has prepared for
# an input shape, up to 1024 of them, about 1 MB each. CAM++ prepares 22 for each length of audio,
# and the stream embeds runs of every length: over 400 such runs the embedder's memory grew by
# 1042 MB, against 101 MB with the cache held to 32, which fits one length's set, and with no
# more CPU time (benchmarks/stream_embed_memory.py; benchmarks/RESULTS.md, streaming). oneDNN
# reads the variable when the process prepares its first convolution; a value the user set is kept.
ONEDNN_CACHE_CAPACITY = 32


class CamppEmbedder:
    """CAM++ speaker embeddings of short stretches of 16 kHz audio, on the CPU by default."""

    def __init__(self, weights: Path, device: str = "cpu", threads: int | None = None):
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
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
