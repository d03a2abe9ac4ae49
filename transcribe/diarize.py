"""Speaker diarization: pyannote.audio's SpeakerDiarization, built from local files only.

Segmentation is pyannote's segmentation-3.0; the speaker embedding is 3D-Speaker's CAM++.
Three things differ from pyannote's own pipeline, each without patching the library:

- `LocalSpeakerDiarization.__init__` builds the pipeline from loaded models. pyannote's
  constructor insists on loading a PLDA (`plda=None` raises a TypeError in `get_plda`) that
  agglomerative clustering never uses, and resolves every model through the hub.
- `get_embeddings` runs the embedding network once per chunk and pools it once per local
  speaker; pyannote runs the whole network once per (chunk, speaker) pair, three times the work.
- audio is handed over as the decoded waveform, so pyannote never opens the file (torchcodec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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

from transcribe.campplus import CAMPPlus, embed, load_campplus
from transcribe.errors import ModelError, UsageError
from transcribe.types import SAMPLE_RATE, Audio, Turn

Hook = Callable[..., None]

# Calibrated for CAM++ on pyannote's sample and composed meetings (see benchmarks/RESULTS.md);
# pyannote 3.1's 0.7046 was chosen for another embedding.
DEFAULT_THRESHOLD = 0.65
DEFAULT_MIN_CLUSTER_SIZE = 12


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
        embedding_exclude_overlap: bool = False,
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
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    min_duration_off: float = 0.0

    def __post_init__(self) -> None:
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


def _turns(annotation: Annotation) -> tuple[Turn, ...]:
    return tuple(
        Turn(round(seg.start, 3), round(seg.end, 3), str(label))
        for seg, _, label in annotation.itertracks(yield_label=True)
    )


class Diarizer:
    """Loads the two models once; `__call__` diarizes one recording."""

    def __init__(self, segmentation_path: Path, embedding_path: Path, device: str = "cpu"):
        dev = torch.device(device)
        self.pipeline = LocalSpeakerDiarization(
            load_segmentation(segmentation_path),
            CamppEmbedding(load_campplus(embedding_path, dev), dev),
        )

    def __call__(self, audio: Audio, options: DiarizationOptions, hook: Hook | None = None) -> Diarization:
        self.pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": options.min_duration_off},
                "clustering": {
                    "method": "centroid",
                    "min_cluster_size": options.min_cluster_size,
                    "threshold": options.threshold,
                },
            }
        )
        file = {
            "waveform": torch.from_numpy(audio.samples)[None],
            "sample_rate": audio.sample_rate,
            "uri": Path(audio.source).stem or "audio",
        }
        result = self.pipeline(
            file,
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
            hook=hook,
        )
        labels = result.speaker_diarization.labels()
        centroids = {}
        if result.speaker_embeddings is not None:
            centroids = {lab: result.speaker_embeddings[i] for i, lab in enumerate(labels)}
        return Diarization(
            turns=_turns(result.speaker_diarization),
            exclusive=_turns(result.exclusive_speaker_diarization),
            centroids=centroids,
        )
