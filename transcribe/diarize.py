"""Speaker diarization: pyannote.audio's SpeakerDiarization, built from local files only.

Segmentation is pyannote's segmentation-3.0; the speaker embedding is 3D-Speaker's CAM++.
Three things differ from pyannote's own pipeline, each without patching the library:

- `LocalSpeakerDiarization.__init__` builds the pipeline from loaded models. pyannote's
  constructor insists on loading a PLDA (`plda=None` raises a TypeError in `get_plda`) that
  agglomerative clustering never uses, and resolves every model through the hub.
- `get_embeddings` runs the embedding network once per chunk and pools it once per local
  speaker; pyannote runs the whole network once per (chunk, speaker) pair, three times the work.
  As in pyannote's speaker-diarization-3.1 settings, a local speaker's embedding leaves out the
  frames where another voice is heard too (`embedding_exclude_overlap`), unless too little is left.
- audio is handed over as the decoded waveform, so pyannote never opens the file (torchcodec).

`Diarizer.features` (the networks: segmentation, speaker count, embeddings) and `Diarizer.cluster`
(global speakers, turns, centroids) are separate steps, so that benchmarks cache the first and sweep
the second; `cluster` gives the same turns as pyannote's own `apply` for the same settings.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import transcribe.offline  # noqa: F401  (before pyannote: no hub, no telemetry)

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.io import Audio as PyannoteAudio
from pyannote.audio.core.pipeline import Pipeline as PyannotePipeline
from pyannote.audio.core.task import Problem, Resolution, Specifications
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
from pyannote.core import Annotation, SlidingWindowFeature
from pyannote.pipeline.parameter import ParamDict, Uniform
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import cdist

from transcribe.campplus import CAMPPlus, embed, load_campplus, unit_embedding
from transcribe.errors import ModelError, UsageError
from transcribe.types import SAMPLE_RATE, Audio, Turn

Hook = Callable[..., None]
# The language spoken in stretches of a recording ((start, end) seconds), when a model is sure of it.
LanguageOf = Callable[[list[tuple[float, float]]], "str | None"]
log = logging.getLogger("transcribe")

# Calibrated for CAM++ on composed tuning meetings of 3 to 8 speakers and pyannote's two-speaker
# sample (benchmarks/speakers.py, benchmarks/RESULTS.md "Speaker accuracy (issue 5)"). Meetings want
# 0.78 or more (below, a speaker splits in two), the sample merges its two speakers from 0.78 on:
# 0.75 is the largest value that keeps the sample right. The eigengap count was tried and
# over-counted more often (kept as an option: count_method="eigengap").
# The minimum cluster size grows with the recording: 2% of the clustered embeddings, between 4 and
# 12 (pyannote 3.1's value). A fixed 8 or 12 swallowed speakers who say little in a 2-minute
# meeting of 6 to 8 (held-out count right 2/6 with 8, 4/6 with 4); a fixed 4 split a speaker of the
# 10-minute meeting in two (12 there with 2%).
# Two steps around pyannote's clustering, both on by default since session 8, when the tuning set
# grew from 4 to 12 meetings and showed the clustering alone over-counting (count right 2/12, strict
# DER 0.204); with both, 11/12 and 0.135 (held-out: 4/6 either way, DER 0.114 -> 0.107; the sample
# and issue 3's 1- and 10-minute meetings unchanged):
# - clusters split from one speaker are merged (close, and seldom heard in the same chunk:
#   `merge_split_clusters`): alone, 9/12. Its distance bound then (0.47) was 0.02 from a pair of
#   different speakers of issue 3's meetings (0.49 apart, 28% of chunks shared), and 0.45 gave 5/12,
#   0.43 4/12: an interview of two alike voices with long turns is what it could merge. On 24
#   held-out meetings (session 9) it joined two people in 3 (0.35 to 0.40 apart) and mended 2
#   splits; over tuning and held-out together it was then the best setting measured (0.40 since
#   session 12, below). --num-speakers turns it off,
#   --min-speakers bounds it. Since session 10 it does not join two clusters that Whisper hears
#   speaking two languages (no --language given): count right 11 -> 10 of 12 tuning meetings (a
#   cluster mixing a French and a German voice), 18 -> 19 of the 24 held-out, 16 -> 17 of 24 fresh.
# - a small cluster far from every large one is kept (`SpeakerClustering`): a speaker with 3 to 5 s
#   in a short meeting. 0.5 over-counted the 1-minute meeting; 0.55 and 0.6 gave the same on tuning.
# Since session 11 the embeddings leave out overlapped frames (pyannote 3.1's setting: strict DER on
# seeds 25 to 28 0.130 -> 0.115, the same on tuning and seeds 21 to 24), and a cluster heard for
# under 1.5 s after reconstruction is dissolved (`dissolve_small_speakers`): count right on tuning
# 10/12 at any value from 0.5 to 2 s (8/12 without), on seeds 21 to 28 39/48 at 1.5 and 2 s, 38/48
# at 1 s, 35/48 without. Both on unseen seeds 29 to 32: count right 18 -> 19 of 24, DER 0.113 -> 0.111.
# Session 12: the merge distance 0.47 -> 0.40. Every wrong count on 48 unseen meetings (seeds 29 to
# 36) found too few speakers: the merge step joined alike voices of different people. Over the 60
# tuning and development meetings (seeds 11, 12, 21 to 28): count right 49 -> 52, strict DER 0.1135
# -> 0.1133; the 12 tuning meetings lose 4 (their MFA speaker, recorded in several sessions with a
# cold, splits: 0.40 to 0.46 between its pieces), the 48 development meetings gain 7. In one
# recording a person keeps one voice and one microphone far more often than that, and two people
# joined cost a clerk more than one person split: one label for two people puts one's words in
# the other's mouth, while two labels for one person still keep every word apart from the others'.
DEFAULT_THRESHOLD = 0.75
DEFAULT_MIN_CLUSTER_SIZE = 8  # only for instantiating pyannote's pipeline; see min_cluster_size_for
MIN_CLUSTER_SHARE, MIN_CLUSTER_SIZE_RANGE = 0.02, (4, 12)
DEFAULT_COUNT_METHOD = "threshold"
DEFAULT_MERGE_DISTANCE = 0.40
DEFAULT_KEEP_DISTANCE = 0.55
DEFAULT_MERGE_COOCCURRENCE = 0.5
DEFAULT_MIN_SPEAKER_SPEECH = 1.5
# Session 17: a speaker split where their own turns are two voices (`split_speakers_by_turns`).
# A 10 s chunk's embedding of a voice is noisy; a whole turn's is steadier. Chosen on the 60 tuning
# and development meetings and the 48 of seeds 29 to 36 (scratch scripts; strict DER of the
# exclusive turns, count right; benchmarks/RESULTS.md "Session 17"):
#   none                                  60: 0.1427, 52    48: 0.1391, 40
#   split at 0.60 to 0.70, join within 0.5    0.1376, 54        0.1334, 43
#   split at 0.75                             0.1401, 53        0.1338, 43
#   split at 0.80                             0.1409, 53        0.1369, 41
#   all turns clustered again (0.55)          0.1372, 54        0.1319, 45
# The last, which can also join two speakers whole, joined two people of issue 3's 1-minute
# meeting (their turns 0.53 to 0.56 apart; strict DER 0.056 -> 0.307) and split one (two turns
# 0.65 apart, one of 3.3 s). Splitting only, at 0.7, changes neither that meeting, nor the
# 10-minute one, nor pyannote's sample, nor the four AMI excerpts. The join distance changed
# nothing from 0.45 to 0.6; turns of 2 s or more instead of 1.5 did worse on both sets.
DEFAULT_TURN_SPLIT_DISTANCE = 0.7
DEFAULT_TURN_JOIN_DISTANCE = 0.5
DEFAULT_TURN_MIN_SECONDS = 1.5
TURN_JOIN_GAP = 0.5  # one speaker's exclusive turns this close are one turn for `split_speakers_by_turns`
TURN_MAX_SECONDS = 30.0  # a turn's embedding is of its first 30 s


def min_cluster_size_for(num_embeddings: int) -> int:
    """The default minimum cluster size for this many clustered embeddings (see above)."""
    lo, hi = MIN_CLUSTER_SIZE_RANGE
    return int(min(hi, max(lo, round(MIN_CLUSTER_SHARE * num_embeddings))))


def load_segmentation(path: Path) -> Model:
    """segmentation-3.0 with torch.load(weights_only=True): only the few pyannote types it holds."""
    from torch.torch_version import TorchVersion

    try:
        with torch.serialization.safe_globals([TorchVersion, Specifications, Problem, Resolution]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        arch = ckpt["pyannote.audio"]["architecture"]
        if (arch["module"], arch["class"]) != ("pyannote.audio.models.segmentation.PyanNet", "PyanNet"):
            raise ModelError(f"{path}: not a PyanNet segmentation checkpoint ({arch['class']})")
        from pyannote.audio.models.segmentation import PyanNet

        model = PyanNet(**ckpt["hyper_parameters"])
        model.on_load_checkpoint(ckpt)  # sets the specifications the pipeline reads
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except ModelError:
        raise
    except Exception as exc:  # any unpickling or shape error: the file is not what we expect
        raise ModelError(f"{path}: cannot load the segmentation model: {exc}".splitlines()[0]) from None
    return model.eval()


class CamppEmbedding:
    """CAM++ with the interface pyannote's pipeline expects of `_embedding`."""

    sample_rate = SAMPLE_RATE
    dimension = 192
    metric = "cosine"
    min_num_samples = 1600  # 0.1 s: below this a mask gives a NaN embedding, as pyannote's do

    def __init__(self, model: CAMPPlus, device: torch.device):
        self.model = model.to(device)
        self.device = device

    def to(self, device: torch.device) -> "CamppEmbedding":
        self.model.to(device)
        self.device = device
        return self

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
        """(B, 1, N) waveforms and (B, S, F) masks -> (B, S, D) embeddings, NaN for empty masks."""
        with torch.inference_mode():
            out = embed(self.model, waveforms.to(self.device), masks.to(self.device)).float().cpu().numpy()
        min_frames = self.min_num_samples / waveforms.shape[-1] * masks.shape[-1]
        out[masks.sum(dim=-1).numpy() < min_frames] = np.nan
        return out


class LocalSpeakerDiarization(SpeakerDiarization):
    """pyannote's SpeakerDiarization (its `apply` and everything after embeddings, unchanged),
    built from models already loaded, with agglomerative clustering and no PLDA."""

    def __init__(
        self,
        segmentation: Model,
        embedding: CamppEmbedding,
        *,
        segmentation_step: float = 0.1,
        embedding_batch_size: int = 16,
        segmentation_batch_size: int = 32,
        embedding_exclude_overlap: bool = True,
    ):
        # SpeakerDiarization.__init__ would load a PLDA and hub models: set up what `apply` reads here.
        PyannotePipeline.__init__(self)
        self.legacy = False
        self.segmentation_model = "segmentation-3.0"
        self.segmentation_step = segmentation_step
        self.embedding = "campplus"
        self.embedding_batch_size = embedding_batch_size
        self.embedding_exclude_overlap = embedding_exclude_overlap
        self.plda = None
        self._plda = None
        self.klustering = "AgglomerativeClustering"
        self.der_variant = {"collar": 0.0, "skip_overlap": False}
        duration = segmentation.specifications.duration
        self._segmentation = Inference(
            segmentation,
            duration=duration,
            step=segmentation_step * duration,
            skip_aggregation=True,
            batch_size=segmentation_batch_size,
            device=embedding.device,
        )
        self.segmentation = ParamDict(min_duration_off=Uniform(0.0, 1.0))
        self._embedding = embedding
        self._audio = PyannoteAudio(sample_rate=SAMPLE_RATE, mono="downmix")
        self.clustering = AgglomerativeClustering(metric="cosine")
        self._expects_num_speakers = False

    def get_embeddings(
        self,
        file,
        binary_segmentations: SlidingWindowFeature,
        exclude_overlap: bool = False,
        hook: Hook | None = None,
    ) -> np.ndarray:
        """(num_chunks, local_speakers, dim) embeddings: one network pass per chunk."""
        data = np.nan_to_num(binary_segmentations.data, nan=0.0).astype(np.float32)
        num_chunks, num_frames, _ = data.shape
        if exclude_overlap:
            # as pyannote does: drop overlapped frames unless too little clean speech is left
            duration = binary_segmentations.sliding_window.duration
            min_frames = math.ceil(num_frames * self._embedding.min_num_samples / (duration * SAMPLE_RATE))
            clean = data * (data.sum(axis=2, keepdims=True) < 2)
            keep_clean = clean.sum(axis=1, keepdims=True) > min_frames
            data = np.where(keep_clean, clean, data)
        chunks = [binary_segmentations.sliding_window[i] for i in range(num_chunks)]
        batch = max(1, self.embedding_batch_size)
        total = math.ceil(num_chunks / batch)
        if hook is not None:
            hook("embeddings", None, total=total, completed=0)
        out = []
        for b, start in enumerate(range(0, num_chunks, batch), 1):
            idx = range(start, min(start + batch, num_chunks))
            waves = torch.stack([self._audio.crop(file, chunks[i], mode="pad")[0] for i in idx])
            masks = torch.from_numpy(data[start : start + len(idx)].transpose(0, 2, 1).copy())
            out.append(self._embedding(waves, masks))
            if hook is not None:
                hook("embeddings", None, total=total, completed=b)
        return np.concatenate(out, axis=0)


@dataclass(frozen=True)
class DiarizationOptions:
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    threshold: float = DEFAULT_THRESHOLD
    min_cluster_size: int | None = None  # None: grows with the recording (min_cluster_size_for)
    min_duration_off: float = 0.0
    # how the number of speakers is found when not given: "threshold" (where agglomerative
    # clustering stops merging) or "eigengap" (the largest gap in the spectrum of the pruned
    # cosine affinity, then agglomerative clustering cut at that many clusters)
    count_method: str = DEFAULT_COUNT_METHOD
    eigengap_keep: float = 0.2  # eigengap: each embedding keeps its nearest neighbours (share)
    # clusters this close (cosine distance of centroids; 0: never) that seldom speak in the same
    # chunk are taken for one speaker split in two, and merged (see `merge_split_clusters`)
    merge_distance: float = DEFAULT_MERGE_DISTANCE
    merge_cooccurrence: float = DEFAULT_MERGE_COOCCURRENCE
    # a cluster under the minimum size, of 2 embeddings or more, whose centroid is at least this far
    # (cosine distance) from every large one is a speaker who says little, and is kept (0: never)
    keep_distance: float = DEFAULT_KEEP_DISTANCE
    # a cluster heard for less than this in all (seconds) is not a speaker: its local speakers go
    # to the nearest remaining ones (0: keep every cluster; never with a speaker count given)
    min_speaker_speech: float = DEFAULT_MIN_SPEAKER_SPEECH
    # a speaker whose own turns are two voices is split (`split_speakers_by_turns`): turns of at
    # least `turn_min_seconds`, split where `turn_split_distance` apart (0: never; never with a
    # speaker count given), a part joining another speaker within `turn_join_distance`
    turn_split_distance: float = DEFAULT_TURN_SPLIT_DISTANCE
    turn_join_distance: float = DEFAULT_TURN_JOIN_DISTANCE
    turn_min_seconds: float = DEFAULT_TURN_MIN_SECONDS

    def __post_init__(self) -> None:
        if self.count_method not in ("threshold", "eigengap"):
            raise UsageError(f"unknown speaker count method {self.count_method!r}")
        if self.min_cluster_size is not None and self.min_cluster_size < 1:
            raise UsageError(f"the minimum cluster size must be at least 1, got {self.min_cluster_size}")
        if self.merge_distance < 0 or not 0 <= self.merge_cooccurrence <= 1:
            raise UsageError("the merge distance must be zero or more, the shared share between 0 and 1")
        if self.keep_distance < 0:
            raise UsageError(f"the keep distance must be zero or more, got {self.keep_distance}")
        if self.min_speaker_speech < 0:
            raise UsageError(f"the least speech of a speaker must be zero or more, got {self.min_speaker_speech}")
        if self.turn_split_distance < 0 or self.turn_join_distance < 0 or self.turn_min_seconds <= 0:
            raise UsageError("the turn distances must be zero or more, the shortest turn embedded over zero seconds")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise UsageError("--min-speakers is larger than --max-speakers")
        if self.num_speakers and (self.min_speakers or self.max_speakers):
            raise UsageError("give --num-speakers, or --min-speakers/--max-speakers, not both")


@dataclass(frozen=True)
class Diarization:
    """Turns as heard (overlap kept), the exclusive turns for attribution, one centroid per speaker."""

    turns: tuple[Turn, ...]
    exclusive: tuple[Turn, ...]
    centroids: dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class SpeakerFeatures:
    """What the two networks computed for one recording, before any clustering choice.

    Cheap to keep: benchmarks cache it once per recording and sweep the clustering over it.
    """

    uri: str
    segmentations: SlidingWindowFeature  # (chunks, frames, local speakers), powerset -> binary
    count: SlidingWindowFeature  # (frames, 1) instantaneous number of speakers
    embeddings: np.ndarray  # (chunks, local speakers, dim), NaN where a speaker is too short


def _turns(annotation: Annotation) -> tuple[Turn, ...]:
    return tuple(
        Turn(round(seg.start, 3), round(seg.end, 3), str(label))
        for seg, _, label in annotation.itertracks(yield_label=True)
    )


class SpeakerClustering(AgglomerativeClustering):
    """pyannote's agglomerative clustering, except that a small cluster far from every large one
    is kept as a speaker of its own.

    pyannote gives every cluster under `min_cluster_size` to the nearest large one. In a 2-minute
    meeting a speaker with 3 to 5 s of speech has 2 or 3 clustered embeddings, under the minimum of
    4, and their speech went to someone else. On the composed tuning and held-out meetings
    (benchmarks/RESULTS.md, issue 5), small clusters that were such speakers lay 0.62 to 0.83
    (cosine distance of centroids) from the nearest large cluster, and those that were pieces of a
    large one 0.32 to 0.47. With `keep_distance` 0 (or a speaker count given) this is pyannote's
    clustering unchanged.
    """

    def __init__(self, keep_distance: float = 0.0):
        super().__init__(metric="cosine")
        self.keep_distance = keep_distance

    def cluster(self, embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
        if self.keep_distance <= 0 or num_clusters is not None or len(embeddings) < 2:
            return super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
        # pyannote's clustering up to its small clusters (and its smaller minimum for few embeddings)
        x = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
        clusters = fcluster(linkage(x, method=self.method, metric="euclidean"), self.threshold, criterion="distance") - 1
        ids, counts = np.unique(clusters, return_counts=True)
        size = dict(zip(ids.tolist(), counts.tolist()))
        min_size = min(self.min_cluster_size, max(1, round(0.1 * len(embeddings))))
        large = [k for k, n in size.items() if n >= min_size]
        if not large:
            return super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
        large_centroids = np.vstack([x[clusters == k].mean(axis=0) for k in large])
        small = {  # small cluster -> its distance to each large one
            k: cdist(large_centroids, x[clusters == k].mean(axis=0, keepdims=True), metric="cosine")[:, 0]
            for k, n in size.items() if n < min_size
        }
        far = {k for k, distance in small.items() if size[k] >= 2 and distance.min() >= self.keep_distance}
        if not min_clusters <= len(large) + len(far) <= max_clusters:
            return super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
        for k, distance in small.items():
            if k in far:
                log.info("a cluster of %d embeddings kept: %.2f from the nearest large one", size[k], distance.min())
            else:
                clusters[clusters == k] = large[int(np.argmin(distance))]
        _, clusters = np.unique(clusters, return_inverse=True)
        return clusters


def cluster_embeddings(
    embeddings: np.ndarray,
    segmentations: SlidingWindowFeature,
    options: DiarizationOptions,
    language_of: LanguageOf | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local speakers -> global speakers: (chunks, local) cluster ids (-2: none) and centroids.

    pyannote's agglomerative clustering (centroid linkage on unit-normalised embeddings, clusters
    smaller than `min_cluster_size` re-assigned to the nearest large one unless `keep_distance`
    keeps them: `SpeakerClustering`), then clusters split from one speaker merged
    (`merge_split_clusters`, which `language_of` keeps from joining two languages).
    """
    clustering = SpeakerClustering(options.keep_distance)
    train, _, _ = clustering.filter_embeddings(embeddings, segmentations=segmentations)
    min_size = options.min_cluster_size or min_cluster_size_for(len(train))
    clustering.instantiate({"method": "centroid", "min_cluster_size": min_size, "threshold": options.threshold})
    num_clusters = options.num_speakers
    if num_clusters is None and options.count_method == "eigengap":
        if len(train) > 2:
            lo = options.min_speakers or 1
            hi = min(options.max_speakers or MAX_SPEAKERS, len(train) - 1)
            num_clusters = eigengap_count(train, lo, max(lo, hi), keep=options.eigengap_keep)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # pyannote prints "Found only N clusters..." to stdout
        hard, _, centroids = clustering(
            embeddings=embeddings.copy(),
            segmentations=segmentations,
            num_clusters=num_clusters,
            min_clusters=None if num_clusters else options.min_speakers,
            max_clusters=None if num_clusters else options.max_speakers,
        )
    if said.getvalue().strip():
        log.info("clustering: %s", said.getvalue().strip())
    if num_clusters is None and options.merge_distance > 0:
        hard, centroids = merge_split_clusters(
            embeddings, segmentations, hard, centroids, options.merge_distance, options.merge_cooccurrence,
            min_clusters=options.min_speakers or 1, language_of=language_of,
        )
    return hard, centroids


def merge_split_clusters(
    embeddings: np.ndarray,
    segmentations: SlidingWindowFeature,
    hard: np.ndarray,
    centroids: np.ndarray,
    max_distance: float,
    max_cooccurrence: float,
    min_clusters: int = 1,
    language_of: LanguageOf | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge clusters that are one speaker split in two: close, and seldom heard together.

    The segmentation model tells apart the voices of one 10 s chunk, so two clusters whose local
    speakers share many chunks are two people, however alike their voices; one speaker split in two
    (another microphone, a cold, a whisper) seldom shares a chunk with itself. Centroid distance
    alone cannot tell: on pyannote's two-speaker sample the two voices are 0.34 apart, while clusters
    split from one speaker of the composed meetings were 0.37 to 0.46 apart, and different speakers
    0.49 and more (benchmarks/RESULTS.md, issue 5). So the closest pair of clusters is merged while
    it is within `max_distance` and shares at most `max_cooccurrence` of the chunks of the smaller
    one (counting the local speakers clean enough to be clustered), down to `min_clusters`.

    Given `language_of` (Whisper's language detection), two clusters heard speaking two different
    languages are two people, and are not merged: on 24 held-out meetings, 3 of the 4 pairs of
    different people the merge joined spoke German and English (benchmarks/RESULTS.md, issue 5).
    Each cluster's language is asked for on the speech where it alone is heard (`cluster_speech`),
    only for pairs that would otherwise merge. One person speaking two languages stays two clusters.
    Returns (chunks, local) cluster ids (-2: none, as given) and the centroids, renumbered.
    """
    _, chunk_idx, speaker_idx = AgglomerativeClustering(metric="cosine").filter_embeddings(
        embeddings, segmentations=segmentations
    )
    hard = hard.copy()
    spoken: dict[int, frozenset[str]] = {}  # cluster -> the languages heard from it (none: unsure)

    def languages(k: int) -> frozenset[str]:
        if k not in spoken:
            language = language_of(cluster_speech(segmentations, hard, k))
            spoken[k] = frozenset([language] if language else [])
        return spoken[k]

    def two_languages(a: int, b: int) -> bool:
        if language_of is None or (languages(a) & languages(b)) or not (languages(a) and languages(b)):
            return False
        log.info("clusters %d and %d not merged: heard speaking %s and %s", a, b,
                 "/".join(sorted(languages(a))), "/".join(sorted(languages(b))))
        return True

    refused: set[tuple[int, int]] = set()
    while True:
        ids = [k for k in range(len(centroids)) if np.any(hard == k)]
        if len(ids) <= min_clusters:
            break
        chunks = {k: set(chunk_idx[hard[chunk_idx, speaker_idx] == k].tolist()) for k in ids}
        unit = {k: centroids[k] / max(float(np.linalg.norm(centroids[k])), 1e-12) for k in ids}
        best = None
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                distance = 1.0 - float(unit[a] @ unit[b])
                smaller = min(len(chunks[a]), len(chunks[b]))
                shared = len(chunks[a] & chunks[b]) / smaller if smaller else 1.0
                if distance <= max_distance and shared <= max_cooccurrence and (best is None or distance < best[0]):
                    if (a, b) not in refused:
                        best = (distance, a, b, shared)
        if best is None:
            break
        distance, a, b, shared = best
        if two_languages(a, b):
            refused.add((a, b))
            continue
        log.info("clusters %d and %d merged: %.2f apart, %.0f%% of chunks shared", a, b, distance, 100 * shared)
        hard[hard == b] = a
        if a in spoken and b in spoken:
            spoken[a] |= spoken.pop(b)
        else:
            spoken.pop(a, None)
        refused = {pair for pair in refused if a not in pair and b not in pair}
        members = hard[chunk_idx, speaker_idx] == a
        centroids = centroids.copy()
        centroids[a] = np.mean(embeddings[chunk_idx[members], speaker_idx[members]], axis=0)
    keep = [k for k in range(len(centroids)) if np.any(hard == k)]
    renumber = {k: n for n, k in enumerate(keep)}
    out = np.where(hard >= 0, np.vectorize(lambda k: renumber.get(int(k), -2))(hard), hard)
    return out.astype(hard.dtype), centroids[keep]


def dissolve_small_speakers(
    hard: np.ndarray,
    embeddings: np.ndarray,
    centroids: np.ndarray,
    heard: dict[int, float],
    min_speech: float,
    min_speakers: int = 1,
) -> bool:
    """Give the local speakers of every cluster heard for under `min_speech` s (`heard`: seconds per
    cluster id, after reconstruction) to the nearest remaining cluster, in place; True if any was.

    A cluster kept by the clustering can come out of pyannote's reconstruction with almost no speech
    of its own: each frame goes to the clusters most active there, and a few embeddings of a voice
    already heard elsewhere can lose nearly every frame. On 60 composed meetings such clusters were
    heard for 0.1 to 1.4 s, mostly inside other speakers' overlaps, and each made the speaker count
    one too many; the real speakers with least speech there were heard for 2.1 s or more
    (benchmarks/RESULTS.md, issue 5). Each such local speaker goes to the remaining centroid nearest
    its own embedding (the cluster's centroid where the embedding is missing), never below
    `min_speakers` clusters; the smallest are dissolved first. Labels of `heard` with no cluster
    behind them (no centroid, no local speaker: pyannote's reconstruction adds them where it hears
    more voices at once than there are clusters) are neither dissolved nor given voices.
    """
    heard = {k: seconds for k, seconds in heard.items() if np.any(hard == k)}  # cluster ids < len(centroids)
    small = sorted((k for k, seconds in heard.items() if seconds < min_speech), key=heard.__getitem__)
    keep = [k for k in heard if k not in small]
    while small and len(keep) < min_speakers:
        keep.append(small.pop())  # the largest of the small ones stay
    if not small or not keep:
        return False
    targets = centroids[keep]
    for k in small:
        chunks, speakers = np.nonzero(hard == k)
        own = embeddings[chunks, speakers]
        own = np.where(np.isnan(own).any(axis=1, keepdims=True), centroids[k], own)
        nearest = np.argmin(cdist(own, targets, metric="cosine"), axis=1)
        hard[chunks, speakers] = np.asarray(keep)[nearest]
        log.info("a cluster heard for %.1f s in all is no speaker: its voices go to the nearest ones", heard[k])
    return True


def cluster_speech(segmentations: SlidingWindowFeature, hard: np.ndarray, k: int) -> list[tuple[float, float]]:
    """Where cluster `k` is heard alone: the frames of its local speakers with no other voice in
    their chunk, joined over the overlapping chunks, as (start, end) seconds in time order."""
    data, window = segmentations.data, segmentations.sliding_window
    num_chunks, num_frames, _ = data.shape
    step = window.duration / num_frames
    heard = np.zeros(int(math.ceil((window[num_chunks - 1].start + window.duration) / step)) + 1, dtype=bool)
    alone = np.sum(data > 0.5, axis=2) == 1  # (chunks, frames): one voice
    for c, s in zip(*np.nonzero(hard == k)):
        frames = np.nonzero(alone[c] & (data[c, :, s] > 0.5))[0]
        heard[frames + int(round(window[c].start / step))] = True
    edges = np.diff(np.concatenate([[0], heard.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return [(round(a * step, 3), round(b * step, 3)) for a, b in zip(starts, ends)]


def speaker_spans(exclusive: Sequence[Turn], gap: float = TURN_JOIN_GAP) -> list[Turn]:
    """Exclusive turns in time order, one speaker's turns under `gap` s apart joined into one."""
    spans: list[Turn] = []
    for t in sorted(exclusive, key=lambda t: (t.start, t.end)):
        if spans and spans[-1].speaker == t.speaker and t.start - spans[-1].end < gap:
            spans[-1] = Turn(spans[-1].start, max(spans[-1].end, t.end), t.speaker)
        else:
            spans.append(t)
    return spans


def _joined(turns: Iterable[Turn]) -> tuple[Turn, ...]:
    """Turns in time order, one speaker's overlapping or touching turns made one."""
    out: list[Turn] = []
    last: dict[str, int] = {}  # speaker -> index of their latest turn in out
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        k = last.get(t.speaker)
        if k is not None and t.start <= out[k].end:
            out[k] = Turn(out[k].start, max(out[k].end, t.end), t.speaker)
        else:
            last[t.speaker] = len(out)
            out.append(t)
    return tuple(out)


def split_speakers_by_turns(
    turns: Sequence[Turn],
    exclusive: Sequence[Turn],
    vector_of: Callable[[float, float], np.ndarray],
    split_distance: float,
    join_distance: float,
    min_seconds: float,
    max_speakers: int | None = None,
) -> tuple[tuple[Turn, ...], tuple[Turn, ...], dict[str, np.ndarray]]:
    """Speakers split where their own turns are two voices: (turns, exclusive turns, the mean
    embedding of the long turns of each speaker the split changed; empty when nothing changed).

    The clustering decides from 10 s chunks, and a chunk's embedding of a voice is noisy: two alike
    voices can share a cluster, or one voice leave a few chunks in another's. A whole turn's
    embedding is steadier. Each speaker's exclusive turns under `TURN_JOIN_GAP` apart are joined
    (`speaker_spans`); every span of at least `min_seconds` gets one embedding (`vector_of(start,
    end)`, unit norm). Each speaker's long spans are clustered (average linkage on cosine distance)
    and cut at `split_distance`. The group with most time keeps the label; each other group goes to
    the speaker whose long spans are nearest on average when within `join_distance`, or becomes a
    speaker of its own (`<label>+<n>`). Two speakers are never joined whole (different people's
    turns can be as close as one person's). A shorter span follows its speaker's long spans (the
    label with most of their time). A turn with overlap is cut where its speaker's spans change
    label, halfway between them. Nothing changes when the count would exceed `max_speakers`.
    """
    spans = speaker_spans(exclusive)
    long = [i for i, t in enumerate(spans) if t.end - t.start >= min_seconds]
    if len(long) < 2:
        return tuple(turns), tuple(exclusive), {}
    vectors = {i: vector_of(spans[i].start, spans[i].end) for i in long}
    seconds = {i: spans[i].end - spans[i].start for i in long}
    by_label: dict[str, list[int]] = {}
    for i in long:
        by_label.setdefault(spans[i].speaker, []).append(i)
    label_of = {i: spans[i].speaker for i in long}  # span index -> new label
    taken = set(by_label)
    for label, idx in by_label.items():
        if len(idx) < 2:
            continue
        x = np.vstack([vectors[i] for i in idx])
        groups: dict[int, list[int]] = {}
        for i, g in zip(idx, fcluster(linkage(x, method="average", metric="cosine"), split_distance, "distance")):
            groups.setdefault(int(g), []).append(i)
        parts = sorted(groups.values(), key=lambda g: -sum(seconds[i] for i in g))
        for part in parts[1:]:
            near = [
                (float(np.mean([1.0 - float(vectors[i] @ vectors[j]) for i in part for j in others])), other)
                for other, others in by_label.items() if other != label
            ]
            distance, other = min(near) if near else (2.0, None)
            if other is None or distance > join_distance:
                other = next(f"{label}+{n}" for n in range(1, len(spans) + 2) if f"{label}+{n}" not in taken)
                taken.add(other)
            label_of.update((i, other) for i in part)
    went: dict[str, dict[str, float]] = {}  # old label -> new label -> seconds of its long spans
    for i in long:
        to = went.setdefault(spans[i].speaker, {})
        to[label_of[i]] = to.get(label_of[i], 0.0) + seconds[i]
    follow = {old: max(to, key=to.__getitem__) for old, to in went.items()}
    for i, t in enumerate(spans):
        label_of.setdefault(i, follow.get(t.speaker, t.speaker))
    if all(label_of[i] == t.speaker for i, t in enumerate(spans)):
        return tuple(turns), tuple(exclusive), {}
    found = set(label_of.values()) | {t.speaker for t in turns}
    if max_speakers is not None and len(found) > max_speakers:
        return tuple(turns), tuple(exclusive), {}
    own: dict[str, list[tuple[float, float, str]]] = {}  # old label -> its spans, in time order
    for i, t in enumerate(spans):
        own.setdefault(t.speaker, []).append((t.start, t.end, label_of[i]))

    def relabelled(turn: Turn) -> list[Turn]:
        mine = own.get(turn.speaker)
        if not mine:
            return [Turn(turn.start, turn.end, follow.get(turn.speaker, turn.speaker))]
        label, start, out = mine[0][2], turn.start, []
        for (_, end0, a), (start1, _, b) in zip(mine, mine[1:]):
            if a == b:
                continue
            cut = round((end0 + start1) / 2, 3)
            if cut <= turn.start:
                label = b
            elif cut < turn.end:
                out.append(Turn(start, cut, label))
                start, label = cut, b
        out.append(Turn(start, turn.end, label))
        return out

    new_turns = _joined(piece for t in turns for piece in relabelled(t))
    new_exclusive = _joined(piece for t in exclusive for piece in relabelled(t))
    moved = [i for i in long if label_of[i] != spans[i].speaker]
    means = {}  # every label a move touched keeps long spans: a split speaker keeps its largest part
    for label in {label_of[i] for i in moved} | {spans[i].speaker for i in moved}:
        v = sum(seconds[i] * vectors[i] for i in long if label_of[i] == label)
        means[label] = v / max(float(np.linalg.norm(v)), 1e-12)
    log.info("speakers split by their turns: %.1f s of speech changed speaker, %d speakers",
             sum(seconds[i] for i in moved), len({t.speaker for t in new_turns}))
    return new_turns, new_exclusive, means


MAX_SPEAKERS = 20  # the most speakers the eigengap looks for
EIGENGAP_MAX_EMBEDDINGS = 2000  # about 20 minutes of chunks; beyond, every other (third...) is used


def eigengap_count(embeddings: np.ndarray, min_k: int, max_k: int, keep: float = 0.2) -> int:
    """Number of clusters from the eigengap of a pruned cosine affinity (as NME-SC does).

    Each row keeps its `keep` share of most similar embeddings (the rest set to 0), the matrix is
    symmetrised, and k is where the normalised Laplacian's sorted eigenvalues jump the most,
    within [min_k, max_k].
    """
    if len(embeddings) > EIGENGAP_MAX_EMBEDDINGS:  # an n x n eigenproblem: long recordings are thinned
        embeddings = embeddings[:: math.ceil(len(embeddings) / EIGENGAP_MAX_EMBEDDINGS)]
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sim = np.clip(x @ x.T, 0.0, None)
    n = len(sim)
    p = max(1, int(round(keep * n)))
    pruned = np.zeros_like(sim)
    top = np.argsort(-sim, axis=1)[:, :p]
    rows = np.arange(n)[:, None]
    pruned[rows, top] = sim[rows, top]
    affinity = (pruned + pruned.T) / 2
    degree = affinity.sum(axis=1)
    d = 1.0 / np.sqrt(np.maximum(degree, 1e-10))
    laplacian = np.eye(n) - d[:, None] * affinity * d[None, :]
    eig = np.sort(np.linalg.eigvalsh(laplacian))
    max_k = max(min_k, min(max_k, n - 1))
    gaps = eig[min_k : max_k + 1] - eig[min_k - 1 : max_k]
    return int(min_k + np.argmax(gaps))


class Diarizer:
    """Loads the two models once; `__call__` diarizes one recording.

    `features` (the networks, the costly part) and `cluster` (the choices) can also be called
    apart: `diarizer(audio, options) == diarizer.cluster(diarizer.features(audio), options, None, audio)`.
    """

    def __init__(self, segmentation_path: Path, embedding_path: Path, device: str = "cpu"):
        dev = torch.device(device)
        self.pipeline = LocalSpeakerDiarization(
            load_segmentation(segmentation_path),
            CamppEmbedding(load_campplus(embedding_path, dev), dev),
        )
        self.pipeline.instantiate({"segmentation": {"min_duration_off": 0.0}, "clustering": _PYANNOTE_CLUSTERING})

    def features(self, audio: Audio, hook: Hook | None = None) -> SpeakerFeatures:
        """Segmentation, instantaneous speaker count and one embedding per (chunk, local speaker)."""
        pipe = self.pipeline
        uri = Path(audio.source).stem or "audio"
        file = {"waveform": torch.from_numpy(audio.samples)[None], "sample_rate": audio.sample_rate, "uri": uri}
        hook = pipe.setup_hook(file, hook=hook)
        segmentations = pipe.get_segmentations(file, hook=hook)  # powerset: already binary
        count = pipe.speaker_count(segmentations, pipe._segmentation.model.receptive_field, warm_up=(0.0, 0.0))
        num_chunks, _, local = segmentations.data.shape
        if np.nanmax(count.data) == 0.0:
            embeddings = np.full((num_chunks, local, self.pipeline._embedding.dimension), np.nan, dtype=np.float32)
        else:
            embeddings = pipe.get_embeddings(file, segmentations, exclude_overlap=pipe.embedding_exclude_overlap, hook=hook)
        return SpeakerFeatures(uri, segmentations, count, embeddings)

    def turn_vector(self, audio: Audio, start: float, end: float) -> np.ndarray:
        """One unit-norm CAM++ embedding of `audio` from `start` to `end` s (its first
        `TURN_MAX_SECONDS`), in one pass."""
        sr = audio.sample_rate
        x = audio.samples[int(start * sr) : int(min(end, start + TURN_MAX_SECONDS) * sr)]
        return unit_embedding(self.pipeline._embedding.model, x)

    def cluster(
        self,
        features: SpeakerFeatures,
        options: DiarizationOptions,
        language_of: LanguageOf | None = None,
        audio: Audio | None = None,
    ) -> Diarization:
        """Global speakers from the features: turns as heard, exclusive turns and centroids.
        `language_of` keeps clusters of two languages apart (`merge_split_clusters`); given the
        `audio`, a speaker whose turns are two voices is split (`split_speakers_by_turns`)."""
        pipe = self.pipeline
        segmentations, count = features.segmentations, features.count
        if np.nanmax(count.data) == 0.0:
            return Diarization((), (), {})
        hard, centroids = cluster_embeddings(features.embeddings, segmentations, options, language_of)
        max_speakers = options.num_speakers or options.max_speakers
        count_data = count.data if max_speakers is None else np.minimum(count.data, max_speakers)
        hard = hard.copy()
        hard[np.sum(segmentations.data, axis=1) == 0] = -2  # inactive local speakers

        def annotations() -> list[Annotation]:  # turns as heard, then exclusive turns
            out = []
            for cap in (None, 1):
                c = SlidingWindowFeature(
                    (count_data if cap is None else np.minimum(count_data, cap)).astype(np.int8), count.sliding_window
                )
                discrete = pipe.reconstruct(segmentations, hard, c)
                ann = pipe.to_annotation(discrete, min_duration_on=0.0, min_duration_off=options.min_duration_off)
                ann.uri = features.uri
                out.append(ann)
            return out

        diarization, exclusive = annotations()
        if options.num_speakers is None and options.min_speaker_speech > 0:
            heard = {int(label): diarization.label_duration(label) for label in diarization.labels()}
            if dissolve_small_speakers(
                hard, features.embeddings, centroids, heard, options.min_speaker_speech, options.min_speakers or 1
            ):
                diarization, exclusive = annotations()
            # A label without a cluster behind it: where the segmentation hears more voices at once
            # than there are clusters, pyannote's reconstruction adds one (a 30 s AMI excerpt with
            # one cluster came out with a second "speaker" of 0.3 s). Heard this little, no speaker.
            unseen = {
                label for label in diarization.labels()
                if not np.any(hard == int(label)) and diarization.label_duration(label) < options.min_speaker_speech
            }
            if unseen:
                log.info("%d voice(s) heard for under %.1f s without a cluster: no speaker", len(unseen),
                         options.min_speaker_speech)
                diarization = diarization.subset(unseen, invert=True)
                exclusive = exclusive.subset(unseen, invert=True)
        labels = diarization.labels()  # cluster ids, in order
        mapping = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(labels)}
        diarization = diarization.rename_labels(mapping=mapping)
        exclusive = exclusive.rename_labels(mapping=mapping)
        centroid_of = {
            mapping[label]: centroids[int(label)] for label in labels if int(label) < len(centroids)
        }
        turns, exclusive_turns = _turns(diarization), _turns(exclusive)
        if audio is not None and options.turn_split_distance > 0 and options.num_speakers is None:
            turns, exclusive_turns, means = split_speakers_by_turns(
                turns, exclusive_turns, lambda start, end: self.turn_vector(audio, start, end),
                options.turn_split_distance, options.turn_join_distance, options.turn_min_seconds,
                options.max_speakers,
            )
            if means:  # labels renumbered; a speaker the split made has its long turns' mean for centroid
                found = sorted({t.speaker for t in turns} | {t.speaker for t in exclusive_turns})
                renumber = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(found)}
                turns = tuple(Turn(t.start, t.end, renumber[t.speaker]) for t in turns)
                exclusive_turns = tuple(Turn(t.start, t.end, renumber[t.speaker]) for t in exclusive_turns)
                centroid_of = {
                    renumber[label]: centroid_of[label] if label in centroid_of else means[label]
                    for label in found if label in centroid_of or label in means
                }
        return Diarization(turns=turns, exclusive=exclusive_turns, centroids=centroid_of)

    def __call__(
        self,
        audio: Audio,
        options: DiarizationOptions,
        hook: Hook | None = None,
        language_of: LanguageOf | None = None,
    ) -> Diarization:
        return self.cluster(self.features(audio, hook=hook), options, language_of, audio)


# pyannote's pipeline needs clustering parameters to be instantiated; `Diarizer.cluster` passes
# its own, per call.
_PYANNOTE_CLUSTERING = {"method": "centroid", "min_cluster_size": DEFAULT_MIN_CLUSTER_SIZE, "threshold": DEFAULT_THRESHOLD}
