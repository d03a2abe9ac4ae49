"""Speech recognition with faster-whisper, word timestamps on.

Defaults measured here: without word timestamps segment times are wrong, and conditioning on
the previous text makes Whisper base loop on long audio, so word timestamps and the VAD filter
are on and `condition_on_previous_text` is off.

The temperature fallback samples. CTranslate2 seeds each decoding thread once, when it first
samples, from the seed set last; so every model is loaded right after `seed_sampling()`, and
the same recording with the same options gives the same words every time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transcribe.errors import ModelError, UsageError
from transcribe.types import Audio, Word

log = logging.getLogger("transcribe")

Progress = Callable[[float, float], None]  # (seconds done, seconds in all)
SAMPLING_SEED = 0


def seed_sampling() -> None:
    """Fix the seed that the Whisper model loaded next samples from (its threads read it once)."""
    import ctranslate2

    ctranslate2.set_random_seed(SAMPLING_SEED)


@dataclass(frozen=True)
class AsrOptions:
    language: str | None = None  # None: detect
    beam_size: int = 5
    vad_filter: bool = True
    condition_on_previous_text: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class AsrResult:
    words: tuple[Word, ...]
    language: str | None
    language_probability: float


class Recognizer:
    """A faster-whisper model loaded once from a local CTranslate2 folder."""

    def __init__(self, model_dir: Path, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0):
        from faster_whisper import WhisperModel

        seed_sampling()
        try:
            self.model = WhisperModel(
                str(model_dir), device=device, compute_type=compute_type, cpu_threads=cpu_threads, local_files_only=True
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"{model_dir}: cannot load the Whisper model: {exc}".splitlines()[0]) from None
        self.multilingual = self.model.model.is_multilingual

    def check_language(self, language: str | None) -> None:
        if language is None:
            return
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if language not in _LANGUAGE_CODES:
            raise UsageError(f"unknown language '{language}' (use a code such as en, fr, de)")
        if not self.multilingual and language != "en":
            raise UsageError(f"this Whisper model is English-only; --language {language} needs a multilingual model")

    def __call__(self, audio: Audio, options: AsrOptions, progress: Progress | None = None) -> AsrResult:
        self.check_language(options.language)
        try:
            segments, info = self._start(audio, options)
        except RuntimeError as exc:  # language detection already runs the encoder
            raise ModelError(f"speech recognition failed: {exc}".splitlines()[0]) from None

        words: list[Word] = []
        try:
            for seg in segments:  # decoding happens here, as the generator is consumed
                for w in seg.words or ():
                    words.append(Word(round(w.start, 3), round(w.end, 3), w.word, round(w.probability, 4)))
                if progress is not None:
                    progress(min(seg.end, audio.duration), audio.duration)
        except RuntimeError as exc:  # CTranslate2: a missing CUDA library, out of memory
            raise ModelError(f"speech recognition failed: {exc}".splitlines()[0]) from None
        if progress is not None:
            progress(audio.duration, audio.duration)
        return AsrResult(tuple(words), info.language, info.language_probability)

    def _start(self, audio: Audio, options: AsrOptions):
        """Start faster-whisper; segments decode lazily as the caller iterates."""
        return self.model.transcribe(
            audio.samples,
            language=options.language if self.multilingual else "en",
            beam_size=options.beam_size,
            word_timestamps=True,
            vad_filter=options.vad_filter,
            condition_on_previous_text=options.condition_on_previous_text,
            initial_prompt=options.initial_prompt,
            hotwords=options.hotwords,
            temperature=list(options.temperature),
        )

