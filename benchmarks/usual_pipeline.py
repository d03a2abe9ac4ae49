"""The usual pipeline other tools run, on the same model files as ours, for benchmarks.

1. plain faster-whisper with its default options (beam 5, no VAD, conditioning on previous
   text), plus the word timestamps that attribution needs;
2. then pyannote's SpeakerDiarization with the speaker-diarization-3.1 hyperparameters, running
   the embedding network once per (chunk, local speaker) as pyannote does, overlapped frames left
   out of each embedding as 3.1's `embedding_exclude_overlap` asks (since session 11: before, they
   were kept, in ours too);
3. then each word to the speaker it overlaps most (largest overlap, nearest turn otherwise).
One after the other, as whisperX-style tools do.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization

from transcribe.attribution import assign_speakers, build_segments
from transcribe.diarize import CamppEmbedding, LocalSpeakerDiarization, _turns, load_segmentation
from transcribe.campplus import load_campplus
from transcribe.store import ModelStore
from transcribe.types import Audio, ModelInfo, Transcript, Word

# pyannote/speaker-diarization-3.1 config.yaml
PARAMS_3_1 = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
}


class PerSpeakerEmbedding(CamppEmbedding):
    """pyannote's calling convention: one (waveform, mask) row per local speaker, whole network each."""

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor) -> np.ndarray:  # masks: (B, F)
        return super().__call__(waveforms, masks[:, None, :])[:, 0, :]


class UsualSpeakerDiarization(LocalSpeakerDiarization):
    get_embeddings = SpeakerDiarization.get_embeddings  # pyannote's own: per (chunk, speaker)


def run_usual(audio: Audio, model: str = "base", num_speakers: int | None = None, threads: int = 0) -> Transcript:
    from faster_whisper import WhisperModel

    from transcribe.asr import seed_sampling

    store = ModelStore()
    timings = {}
    t0 = time.perf_counter()
    seed_sampling()  # its temperature fallback samples, as ours does
    whisper = WhisperModel(str(store.require(model)), device="cpu", compute_type="int8", cpu_threads=threads)
    segments, info = whisper.transcribe(audio.samples, word_timestamps=True)
    words = tuple(
        Word(round(w.start, 3), round(w.end, 3), w.word, round(w.probability, 4)) for s in segments for w in s.words or ()
    )
    timings["asr"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    device = torch.device("cpu")
    pipeline = UsualSpeakerDiarization(
        load_segmentation(store.require_weights("segmentation-3.0")),
        PerSpeakerEmbedding(load_campplus(store.require_weights("campplus"), device), device),
        embedding_batch_size=32,
        segmentation_batch_size=32,
    )
    pipeline.instantiate(PARAMS_3_1)
    result = pipeline(
        {"waveform": torch.from_numpy(audio.samples)[None], "sample_rate": audio.sample_rate, "uri": "audio"},
        num_speakers=num_speakers,
    )
    timings["diarization"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # the usual attribution: largest overlap with the (non-exclusive) diarization
    attributed = assign_speakers(words, _turns(result.speaker_diarization))
    segs = build_segments(attributed)
    timings["attribution"] = time.perf_counter() - t0
    return Transcript(
        source=audio.source,
        duration=audio.duration,
        language=info.language,
        segments=segs,
        turns=_turns(result.speaker_diarization),
        models=(ModelInfo("asr", model), ModelInfo("segmentation", "segmentation-3.0"), ModelInfo("embedding", "campplus")),
        options={"system": "usual"},
        stats={"timings": {k: round(v, 3) for k, v in timings.items()}},
    )
