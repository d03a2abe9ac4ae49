"""One Whisper pass over one window of audio: words with times, fast enough to repeat every second.

faster-whisper's `transcribe()` is made for files: it slides over 30 s windows, retries at higher
temperatures, runs its own VAD. A streaming pass needs less and must be predictable in cost, so
this calls the same CTranslate2 model directly: one encoder pass, one greedy (or small beam)
decode without timestamp tokens, then faster-whisper's own cross-attention alignment for word
times. A pass that loops (compression ratio above 2.4) or hears no speech gives no words: the
next pass will try again with more audio, which is cheaper than a temperature fallback.

`encoder_seconds` sets how much audio the encoder sees: Whisper was trained on 30 s windows
padded with silence. CTranslate2 accepts shorter encoder inputs; measured here on pyannote's
sample, streamed, a 20 s encoder window makes a pass about 3 times faster for 4 to 5 points of
WER (15 s: the same; windows padded by only a second or two lose words and loop). The default
is the full 30 s; the engine falls back to 20 and 15 s only while passes cannot keep up.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass

import numpy as np

from transcribe.errors import UsageError
from transcribe.types import SAMPLE_RATE, Word

log = logging.getLogger("transcribe")

__all__ = ["DecoderOptions", "WindowDecoder", "WindowResult"]

_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"
HOP = 160  # samples per mel frame
MAX_WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class DecoderOptions:
    language: str | None = "en"
    beam_size: int = 5
    prompt_chars: int = 200  # committed text fed back as the prompt; 0: none
    encoder_seconds: float = 30.0  # audio the encoder sees (the window, padded); 30: as trained
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    hotwords: str | None = None

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise UsageError(f"--beam-size must be at least 1, got {self.beam_size}")
        if not 1.0 <= self.encoder_seconds <= MAX_WINDOW_SECONDS:
            raise UsageError(f"encoder window must be 1 to 30 s, not {self.encoder_seconds}")


@dataclass(frozen=True)
class WindowResult:
    words: tuple[Word, ...]  # times relative to the start of the window
    no_speech_prob: float
    avg_logprob: float
    rejected: str | None  # why the pass gave no words although Whisper produced text
    seconds: float  # wall time the pass took


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


class WindowDecoder:
    """Greedy (or beam) Whisper decoding of one window, with word timestamps.

    `model` is a loaded faster_whisper.WhisperModel (`Recognizer.model`). Calls are not
    thread-safe among themselves; one session's worker thread makes them all.
    """

    def __init__(self, model, options: DecoderOptions | None = None):
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.options = options or DecoderOptions()
        multilingual = model.model.is_multilingual
        language = self.options.language if multilingual else "en"
        if multilingual and language is None:
            raise UsageError("streaming needs --language with a multilingual model (no detection on partial audio)")
        self.tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        self.suppress = get_suppressed_tokens(self.tokenizer, [-1])
        self.max_length = model.max_length
        self._hotword_tokens = (
            self.tokenizer.encode(" " + self.options.hotwords.strip())[: self.max_length // 4]
            if self.options.hotwords
            else []
        )

    @property
    def max_window(self) -> float:
        return self.options.encoder_seconds

    def __call__(self, samples: np.ndarray, prompt: str = "", encoder_seconds: float | None = None) -> WindowResult:
        """Recognise `samples` (float32, 16 kHz, at most `encoder_seconds` long; the options'
        value unless given)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_ctranslate2_storage, merge_punctuations

        t0 = time.perf_counter()
        opts = self.options
        encoder_seconds = min(MAX_WINDOW_SECONDS, encoder_seconds or opts.encoder_seconds)
        limit = int(encoder_seconds * SAMPLE_RATE)
        if len(samples) > limit:
            samples = samples[-limit:]
        frames = len(samples) // HOP
        if frames < 10:
            return WindowResult((), 1.0, 0.0, None, time.perf_counter() - t0)
        features = self.model.feature_extractor(samples)[:, :frames]
        features = pad_or_trim(features, limit // HOP)
        encoder_output = self.model.model.encode(get_ctranslate2_storage(features[None]), to_cpu=False)

        tok = self.tokenizer
        sequence: list[int] = []
        previous = tok.encode(" " + prompt.strip()[-opts.prompt_chars:]) if prompt.strip() and opts.prompt_chars else []
        if previous or self._hotword_tokens:
            sequence.append(tok.sot_prev)
            sequence.extend(self._hotword_tokens)
            sequence.extend(previous[-(self.max_length // 2 - 1 - len(self._hotword_tokens)):])
        sequence.extend(tok.sot_sequence)
        sequence.append(tok.no_timestamps)
        seconds = len(samples) / SAMPLE_RATE
        max_new = int(seconds * 8) + 16  # English runs at 2 to 4 tokens a second: a loop stops here
        result = self.model.model.generate(
            encoder_output,
            [sequence],
            beam_size=opts.beam_size,
            max_length=min(self.max_length, len(sequence) + max_new),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self.suppress,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1) if tokens else 0.0
        no_speech = float(result.no_speech_prob)
        text = tok.decode(tokens).strip()
        rejected = None
        if not tokens or not text:
            rejected = None
        elif no_speech > opts.no_speech_threshold and avg_logprob < opts.log_prob_threshold:
            rejected = f"no speech ({no_speech:.2f})"
        elif _compression_ratio(text) > opts.compression_ratio_threshold:
            rejected = f"repetitive ({_compression_ratio(text):.1f})"
        elif len(tokens) >= max_new:
            rejected = "ran to the token limit"
        if rejected or not text:
            if rejected:
                log.debug("window of %.1f s rejected: %s: %r", seconds, rejected, text[:80])
            return WindowResult((), no_speech, avg_logprob, rejected, time.perf_counter() - t0)

        alignment = self.model.find_alignment(tok, [tokens], encoder_output, frames)[0]
        merge_punctuations(alignment, _PREPEND, _APPEND)
        words = []
        for a in alignment:
            if not a["word"]:
                continue
            start = min(max(0.0, float(a["start"])), seconds)
            end = min(max(start, float(a["end"])), seconds)
            words.append(Word(round(start, 3), round(end, 3), a["word"], round(float(a["probability"]), 4)))
        return WindowResult(tuple(words), no_speech, avg_logprob, None, time.perf_counter() - t0)
