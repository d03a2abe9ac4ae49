"""The batch pipeline: Audio -> words (ASR) + turns (diarization) -> attributed segments -> Transcript.

Models load once per `Pipeline` and serve every file it transcribes. Progress goes through one
hook, `hook(stage, completed, total)`; the library never prints.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from transcribe.asr import AsrOptions, AsrResult, Recognizer
from transcribe.attribution import assign_speakers, build_segments, parse_speaker_names, rename_speakers, speaker_mapping
from transcribe.devices import asr_device, default_compute_type, resolve_device
from transcribe.errors import ModelError, UsageError
from transcribe.regions import MAX_PREVIOUS_TOKENS, RegionOptions, RegionResult, speech_language, transcribe_regions
from transcribe.store import ModelStore
from transcribe.types import Audio, ModelInfo, Transcript, Turn, Word

log = logging.getLogger("transcribe")

Hook = Callable[[str, float, "float | None"], None]

ASR_MODES = ("regions", "whole")


@dataclass(frozen=True)
class PipelineOptions:
    """Every choice a run makes, with its default; recorded in the JSON output."""

    model: str = "base"  # a store name or a local CTranslate2 folder
    language: str | None = None  # None: detected
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str | None = None  # None: int8 on CPU, float16 on CUDA
    threads: int = 0  # CPU threads for ASR; 0: faster-whisper's default
    diarize: bool = True
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_names: str | None = None  # "Diane,Sheila" or "SPEAKER_00=Diane"
    enroll: tuple[str, ...] = ()  # ("Diane=diane.wav", ...): name the speakers whose voice matches
    initial_prompt: str | None = None
    hotwords: str | None = None
    beam_size: int = 5
    vad_filter: bool = True
    condition_on_previous_text: bool = False
    # regions: decode the speech that diarization (or Silero VAD) hears, chunk by chunk, batched,
    # with a coverage check (transcribe/regions.py); whole: faster-whisper over the whole file.
    asr_mode: str = "regions"
    segmentation: str = "segmentation-3.0"
    embedding: str = "campplus"
    clustering_threshold: float | None = None  # None: the calibrated default
    min_cluster_size: int | None = None

    def __post_init__(self) -> None:
        if self.speaker_names:
            parse_speaker_names(self.speaker_names)  # refuse a bad spec before any work starts
        if self.enroll:
            from transcribe.enroll import parse_enroll

            if not self.diarize:
                raise UsageError("--enroll needs diarization: drop --no-diarize")
            if self.speaker_names:
                raise UsageError("give --enroll or --speaker-names, not both")
            parse_enroll(self.enroll)  # a bad spec or a missing file, before any work starts
        if self.beam_size < 1:
            raise UsageError(f"--beam-size must be at least 1, got {self.beam_size}")
        if self.asr_mode not in ASR_MODES:
            raise UsageError(f"--asr-mode must be one of {', '.join(ASR_MODES)}, got '{self.asr_mode}'")
        if not self.diarize and any((self.num_speakers, self.min_speakers, self.max_speakers)):
            raise UsageError("speaker-count options need diarization: drop --no-diarize")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _attributed(words: tuple[Word, ...], exclusive: tuple[Turn, ...]) -> tuple[Word, ...]:
    """Words keep the speaker of the chunk they were decoded in (one speaker per chunk); a word
    without one (whole-file ASR) gets the exclusive turn it overlaps most."""
    if all(w.speaker is not None for w in words):
        return words
    by_overlap = assign_speakers(words, exclusive)
    return tuple(w if w.speaker is not None else o for w, o in zip(words, by_overlap))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Pipeline:
    """Loads the models named by the options (once), then transcribes recordings."""

    def __init__(self, options: PipelineOptions | None = None, store: ModelStore | None = None):
        self.options = options or PipelineOptions()
        self.store = store or ModelStore()
        self.device = resolve_device(self.options.device)
        self.compute_type = self.options.compute_type or default_compute_type(self.device)
        self._recognizer: Recognizer | None = None
        self.asr_device, self.asr_compute_type = self.device, self.compute_type
        self._diarizer = None
        self.models: list[ModelInfo] = []
        # Resolve model paths now: a missing model is reported before any decoding starts.
        self._asr_path, asr_info = self._resolve_asr(self.options.model)
        self.models.append(asr_info)
        if self.options.diarize:
            self._seg_path = self.store.require_weights(self.options.segmentation)
            self._emb_path = self.store.require_weights(self.options.embedding)
            for role, name in (("segmentation", self.options.segmentation), ("embedding", self.options.embedding)):
                self.models.append(ModelInfo(role, name, self.store.file_checksums(name)))
        self._enrollments = ()
        self._enrolled = None  # name -> CAM++ embedding, computed on first use
        if self.options.enroll:  # decoded and checked now: bad input fails before any work
            from transcribe.enroll import load_enrollments

            self._enrollments = load_enrollments(self.options.enroll)

    def _resolve_asr(self, model: str) -> tuple[Path, ModelInfo]:
        local = Path(model).expanduser()
        if model not in self.store.specs and local.is_dir():
            if not (local / "model.bin").is_file():
                raise UsageError(f"{local}: not a CTranslate2 Whisper folder (no model.bin)")
            return local, ModelInfo("asr", str(local), None)
        path = self.store.require(model)
        return path, ModelInfo("asr", model, self.store.file_checksums(model))

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            device, compute_type = asr_device(self.options.device, self.device, self.compute_type)
            self._recognizer = Recognizer(self._asr_path, device, compute_type, self.options.threads)
            self.asr_device, self.asr_compute_type = device, compute_type
            self._recognizer.check_language(self.options.language)
        return self._recognizer

    @property
    def diarizer(self):
        if self._diarizer is None:
            from transcribe.diarize import Diarizer  # imports pyannote: only when diarizing

            self._diarizer = Diarizer(self._seg_path, self._emb_path, self.device)
        return self._diarizer

    def load(self) -> None:
        """Load every model now (otherwise on first use)."""
        _ = self.recognizer
        if self.options.diarize:
            _ = self.diarizer

    def _asr_options(self) -> AsrOptions:
        opts = self.options
        return AsrOptions(
            language=opts.language,
            beam_size=opts.beam_size,
            vad_filter=opts.vad_filter,
            condition_on_previous_text=opts.condition_on_previous_text,
            initial_prompt=opts.initial_prompt,
            hotwords=opts.hotwords,
        )

    def _region_options(self) -> RegionOptions:
        """With `condition_on_previous_text`, each window is prompted with the text decoded before
        it, as Whisper decodes a recording: over our diarization 0.5 to 1.3 points of WER better on
        three sets of composed meetings, for 9 to 44% more ASR time on a 2-core CPU (windows of a
        stream decode one after another; benchmarks/RESULTS.md, issue 6, sessions 15 and 18)."""
        return RegionOptions(previous_tokens=MAX_PREVIOUS_TOKENS if self.options.condition_on_previous_text else 0)

    def _recognize(
        self, audio: Audio, turns: tuple[Turn, ...] | None, say: Hook
    ) -> tuple[AsrResult | RegionResult, dict[str, Any] | None]:
        """Words of `audio`, and what the speech-region ASR counted (None in whole-file mode).

        In regions mode the speech `turns` (the diarization as heard, overlaps kept: where two voices
        overlap, the louder keeps the stretch, see `regions.exclusive_turns`; None: Silero VAD) are
        cut into chunks, decoded in batches and checked for coverage; words carry their chunk's
        speaker. Measured on a 10-minute meeting, pyannote's own exclusive turns (the overlap given
        by its segmentation alone) lost more words: WER 0.131 against 0.127."""
        progress = lambda done, total: say("asr", done, total)  # noqa: E731
        if self.options.asr_mode == "whole":
            return self.recognizer(audio, self._asr_options(), progress=progress), None
        recognizer = self.recognizer
        try:
            result = transcribe_regions(
                recognizer, audio, turns, self._asr_options(), region_options=self._region_options(), progress=progress
            )
        except RuntimeError as exc:  # CTranslate2: a missing CUDA library, out of memory
            raise ModelError(f"speech recognition failed: {exc}".splitlines()[0]) from None
        return result, dict(result.stats)

    def _enrolled_embeddings(self) -> dict:
        if self._enrolled is None:
            from transcribe.enroll import embed_enrollment

            model = self.diarizer.pipeline._embedding.model
            self._enrolled = {e.name: embed_enrollment(model, audio) for e, audio in self._enrollments}
        return self._enrolled

    def transcribe(self, audio: Audio, hook: Hook | None = None) -> Transcript:
        say = hook or (lambda stage, done, total: None)
        opts = self.options
        timings: dict[str, float] = {}

        turns: tuple = ()
        exclusive: tuple = ()
        centroids: dict = {}
        if opts.diarize:
            from transcribe.diarize import DiarizationOptions

            d_opts = DiarizationOptions(
                num_speakers=opts.num_speakers,
                min_speakers=opts.min_speakers,
                max_speakers=opts.max_speakers,
                **({"threshold": opts.clustering_threshold} if opts.clustering_threshold is not None else {}),
                **({"min_cluster_size": opts.min_cluster_size} if opts.min_cluster_size is not None else {}),
            )
            t0 = time.perf_counter()
            say("diarization", 0.0, None)

            def pyannote_hook(step, artifact, file=None, total=None, completed=None):
                if total:
                    say(f"diarization:{step}", float(completed or 0), float(total))

            # Whisper's language detection keeps the merge step from joining two people who speak
            # two languages (`diarize.merge_split_clusters`); a language given holds for everyone.
            # Asked only for pairs that would merge, so Whisper is loaded here only then.
            def language_of(spans):
                return speech_language(self.recognizer, audio)(spans)

            result = self.diarizer(
                audio, d_opts, hook=pyannote_hook, language_of=language_of if opts.language is None else None
            )
            turns, exclusive = result.turns, result.exclusive
            centroids = result.centroids
            timings["diarization"] = time.perf_counter() - t0

        # Diarization first: its speech turns drive speech recognition (transcribe/regions.py).
        t0 = time.perf_counter()
        say("asr", 0.0, audio.duration)
        asr, region_stats = self._recognize(audio, turns if opts.diarize else None, say)
        timings["asr"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        words = _attributed(asr.words, exclusive) if opts.diarize else asr.words
        segments = build_segments(words)
        transcript = Transcript(
            source=audio.source,
            duration=round(audio.duration, 3),
            language=asr.language,
            segments=segments,
            turns=turns,
            models=tuple(self.models),
            options=opts.as_dict()
            | {"device": self.device, "asr_device": self.asr_device, "compute_type": self.asr_compute_type},
            stats={},
        )
        names: dict[str, str] = {}  # label -> the name the outputs show
        if opts.speaker_names:
            names = speaker_mapping(parse_speaker_names(opts.speaker_names), transcript.speakers)
            transcript = rename_speakers(transcript, names)
        enrolled = {}
        if self._enrollments:
            from transcribe.enroll import name_speakers

            transcript, enrolled = name_speakers(transcript, centroids, self._enrolled_embeddings())
            names = {e["speaker"]: name for name, e in enrolled.items() if e["speaker"] is not None}
        if region_stats is not None and "languages" in region_stats:
            region_stats["languages"] = {names.get(k, k): v for k, v in region_stats["languages"].items()}
        timings["attribution"] = time.perf_counter() - t0
        stats = {
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "real_time_factor": round(sum(timings.values()) / max(audio.duration, 1e-9), 4),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "language_probability": round(asr.language_probability, 4),
            "words": len(words),
        }
        if region_stats is not None:
            stats["asr_regions"] = region_stats
        if self._enrollments:
            stats["enrollment"] = enrolled
        if not words:
            log.warning("%s: no speech was recognised", audio.source or "audio")
        return dataclasses.replace(transcript, stats=stats)
