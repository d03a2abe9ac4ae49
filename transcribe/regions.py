"""Speech recognition driven by speech regions: every stretch of speech is decoded, nothing else is.

Whisper decoding a whole recording skips ahead across its 30-second windows, its VAD filter can
drop a quiet voice, and silence or noise can come out as invented text. Here the ASR stage is
driven by the speech that diarization (or, without diarization, Silero VAD) hears:

1. `plan_chunks` cuts the speech turns into chunks of one speaker each, at most 30 s, at pauses
   and speaker changes, with a little padding for context (`exclusive_turns` first resolves
   overlapping speech: the louder voice keeps the overlap, so a quiet one is not drowned).
2. `transcribe_chunks` fills Whisper windows with whole chunks in time order (a chunk that does
   not fit is split at a pause or starts the next window: no chunk is ever cut off at a window's
   end, and nothing is skipped by seeking), each chunk brought to the same loudness first; it
   decodes the windows in batches (one encoder input per window, truncated to its length, then
   one batched beam search, as faster-whisper's `BatchedInferencePipeline` does) and maps every
   word back to its chunk: recording time, and the chunk's speaker. By default a window is
   decoded without timestamp tokens and without the text before it: on a GPU the stage runs 4x
   faster (CTranslate2 applies the timestamp rules row by row, so batches gained nothing), on a
   CPU 1.4x; on 7 composed meetings WER 0.126 -> 0.104 and insertions 42 -> 17, on 7 others a tie
   over the reference turns and a loss over our diarization (0.128 -> 0.141; RESULTS, session 14).
   With `previous_tokens`, each batch row is instead a stream of consecutive windows, each
   prompted with the text decoded before it (Whisper's conditioning on previous text, which
   helped while windows were decoded with timestamp tokens). A loop is not carried on: a window
   that loops or is scored as silence passes no text to the next.
3. The coverage check: a chunk whose window Whisper scored as silence or a loop, with an
   implausible word rate (too few words: something was skipped; too many: a loop), or whose
   words Whisper doubts (previous text can lead it astray) is decoded again on its own, without
   previous text, and the more plausible result is kept; any stretch of speech still without
   words (turns less than 1 s apart count as one stretch, and a word that the alignment stretches
   over more than 2 s covers only its ends: Whisper skipped what lies under it) is decoded again
   on its own, then with temperature fallback, then in halves. Words over
   time where nobody speaks are dropped as likely hallucinations. Everything is counted in
   `RegionResult.stats` (the pipeline puts it in `Transcript.stats["asr_regions"]`) and logged.

Why windows of several chunks rather than one chunk per input: Whisper's encoder costs the same
for every 30 s it sees, so one input per short turn costs far more than decoding the whole file,
while full windows cost about the same. The gain is in the decoder: one beam search over a batch of
windows instead of one window after another (on a loaded 2-core CPU the encoder, one window at a
time, is then about half of the stage). Figures: benchmarks/RESULTS.md, "Speech-region ASR".

faster-whisper 1.2.1 (pinned in pyproject.toml): `BatchedInferencePipeline.transcribe` does take
pre-cut spans (`clip_timestamps`, a list of {"start", "end"} in seconds), but always pads each to
30 s and has no coverage check or temperature fallback. Decoded without timestamp tokens, as there,
Whisper now and then ends a full window early or skips a chunk in it; the coverage check decodes
those chunks again. So the batch is built here from `WhisperModel.encode`, CTranslate2's
`generate` and `WhisperModel.add_word_timestamps`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from transcribe.errors import UsageError
from transcribe.streaming.policy import normalize_word
from transcribe.types import SAMPLE_RATE, Audio, Turn, Word

log = logging.getLogger("transcribe")

__all__ = [
    "Chunk",
    "MAX_PREVIOUS_TOKENS",
    "RegionOptions",
    "RegionResult",
    "exclusive_turns",
    "plan_chunks",
    "speech_language",
    "transcribe_chunks",
    "transcribe_regions",
    "vad_regions",
]

Progress = Callable[[float, float], None]  # (seconds done, seconds in all)

WINDOW = 30.0  # Whisper's input window, seconds
MAX_PREVIOUS_TOKENS = 223  # previous text tokens in a prompt, as Whisper (half its 448-token context, less one)
# Tokens Whisper may write per second of audio, and a few more for the timestamps: a decode that
# loops stops there instead of at the 448-token context (a loop on 9 s of a quiet voice ran to 448
# tokens, at every temperature of the fallback). The fastest clip of samples/ is 9.4 tokens a second
# (1.6 s), the others at most 7.1, French and English alike.
_TOKENS_PER_SECOND = 12.0
_EXTRA_TOKENS = 32


# No word is said for longer than this; a longer one in the alignment stands over skipped audio.
_LONGEST_WORD = 2.0


def _max_new_tokens(seconds: float) -> int:
    """How many tokens a decode of `seconds` of audio may write before it counts as a loop."""
    return int(math.ceil(seconds * _TOKENS_PER_SECOND)) + _EXTRA_TOKENS


@dataclass(frozen=True)
class RegionOptions:
    """How speech is cut into chunks and checked afterwards; every default measured on composed
    meetings (benchmarks/asr_regions.py)."""

    max_chunk: float = WINDOW  # a chunk, padding included, never exceeds Whisper's window
    pad: float = 0.2  # seconds of context on each side of a chunk's speech
    merge_gap: float = 1.0  # same-speaker turns closer than this share a chunk
    min_chunk: float = 1.0  # shorter chunks are widened to this (context for Whisper)
    separator: float = 0.5  # silence between two chunks that do not touch, in one window
    pack: bool = True  # several chunks per window (off: one window per chunk)
    tail: float = 0.5  # seconds of silence after a chunk, so that its last word ends in the input
    min_window: float = 10.0  # the encoder sees at least this many seconds (Whisper's is 30)
    batch_size: int = 8  # windows per batched decoding call
    previous_tokens: int = 0  # prompt each window with this much of the text before it (0: none; 223 at most)
    # With previous text: at least this many consecutive windows per batch row. Fewer streams mean
    # fewer windows decoded without the text before them, and smaller batches: on a 10-minute
    # meeting (22 windows, timestamp tokens on) 4 gave WER 0.127, 8 gave 0.120, one stream 0.118,
    # at 1.0, 1.15 and 1.5 times the ASR time of 4.
    stream_windows: int = 8
    # Decode with Whisper's timestamp tokens. Off: <|notimestamps|>, which CTranslate2 decodes
    # several times faster on a GPU (its timestamp rules run row by row).
    timestamp_tokens: bool = False
    speech_slack: float = 0.3  # a word within this of a speech turn counts as over speech
    min_uncovered: float = 2.0  # seconds of speech without a word that are decoded again
    # a chunk with at least this much speech and not one word (Whisper ended its window early) is
    # decoded again alone, where VAD hears a voice (pyannote's sample lost its last turn, 1.8 s)
    min_empty_speech: float = 0.5
    min_word_rate: float = 0.8  # a chunk with fewer words per second of speech is decoded again alone
    max_word_rate: float = 5.0  # ... and one with more (a repetition loop)
    no_speech_threshold: float = 0.6  # Whisper's own rule: no_speech_prob above this ...
    log_prob_threshold: float = -1.0  # ... and avg_logprob below this: the window is silence
    compression_ratio_threshold: float = 2.4  # above: a repetition loop, decoded again
    doubtful_probability: float = 0.5  # words this unlikely on average, where VAD hears no voice: dropped
    redecode_probability: float = 0.65  # a chunk's words this unlikely on average: decoded again alone
    # With the language not given: each speaker's own language, when Whisper is sure of it on
    # their speech (a meeting in which some speak English and others German or Spanish); off:
    # one language for the whole recording, as Whisper detects it.
    speaker_languages: bool = True
    # a speaker's language other than the main one needs this: on the tuning meetings, speakers
    # detected as a language not theirs had at most 0.54, those of another language than the main
    # one at least 0.79 (but one Italian speaker, 0.20): about the middle of that gap
    # (benchmarks/speakers.py languages)
    speaker_language_probability: float = 0.65
    min_language_speech: float = 4.0  # seconds of a speaker's speech needed to detect their language
    normalize_gain: bool = True  # bring every chunk to the same level before decoding
    max_gain_db: float = 30.0  # never amplify a chunk more than this

    def __post_init__(self) -> None:
        if not 1.0 <= self.max_chunk <= WINDOW:
            raise UsageError(f"max chunk length must be between 1 and {WINDOW:g} s, got {self.max_chunk}")
        if min(self.pad, self.merge_gap, self.tail, self.speech_slack) < 0:
            raise UsageError("chunk padding, merge gap, tail and speech slack must be zero or more")
        if not 1.0 <= self.min_window <= WINDOW:
            raise UsageError(f"the shortest encoder window must be between 1 and {WINDOW:g} s, got {self.min_window}")
        if 2 * self.pad >= self.max_chunk:
            raise UsageError(f"chunk padding {self.pad} s leaves no room in a {self.max_chunk} s chunk")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0 <= self.previous_tokens <= MAX_PREVIOUS_TOKENS:
            raise UsageError(
                f"previous text tokens must be between 0 and {MAX_PREVIOUS_TOKENS}, got {self.previous_tokens}"
            )
        if self.stream_windows < 1:
            raise UsageError(f"windows per stream must be at least 1, got {self.stream_windows}")


@dataclass(frozen=True)
class Chunk:
    """A stretch of audio to decode, `start`..`end` seconds (padding included), of one speaker.

    `speech` holds the speech turns inside it, unpadded, in order: the coverage check looks for
    them in the words. `speaker` is None for speech found by VAD alone.
    """

    start: float
    end: float
    speaker: str | None
    speech: tuple[tuple[float, float], ...]

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def speech_start(self) -> float:
        return self.speech[0][0]

    @property
    def speech_end(self) -> float:
        return self.speech[-1][1]

    @property
    def speech_seconds(self) -> float:
        return sum(e - s for s, e in self.speech)


@dataclass(frozen=True)
class RegionResult:
    """Words with absolute times and their chunk's speaker, and what the coverage check did.

    `stats` keys: chunks (after any split at a pause), windows (Whisper inputs in the first pass),
    speech_seconds (in the chunks), decoded_seconds (audio in the windows, padding and silence
    between chunks included), prompted_windows (windows decoded after the text of the window
    before them, with `previous_tokens`), redecoded (chunks and stretches decoded again on their
    own), replaced_doubtful (chunks whose words Whisper doubted in their window, and that it was surer
    of on their own, without previous text), recovered_words (words that brought back),
    dropped_outside_speech (words over no speech), dropped_no_speech (words of windows Whisper
    scored as silence, and doubtful words of chunks in which Silero VAD hears no voice),
    dropped_repetition (words of repetition loops, and phrases said twice in a row),
    uncovered_seconds (speech of 2 s or more still without a word).
    """

    words: tuple[Word, ...]
    language: str | None
    language_probability: float
    chunks: tuple[Chunk, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- planning


def exclusive_turns(
    turns: Sequence[Turn], duration: float | None = None, audio: Audio | None = None
) -> tuple[Turn, ...]:
    """One speaker at a time: turns sorted, clipped to `0..duration`, overlaps resolved.

    Where two speakers' turns overlap, the louder of the two (measured on the rest of each turn,
    given `audio`) keeps the overlap when it is `_LOUDER_DB` louder: a quiet voice then stays
    clean in its own chunk instead of being drowned by the loud one. Otherwise each keeps half.
    A turn wholly inside another speaker's turn (a backchannel) is left out; a speaker's own
    overlapping turns are joined; turns of no length are dropped.
    """
    levels = _levels(audio) if audio is not None else None
    out: list[list[Any]] = []
    end = math.inf if duration is None else duration
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        s, e = max(0.0, t.start), min(end, t.end)
        if e - s <= 1e-6:
            continue
        if out and s < out[-1][1]:
            prev = out[-1]
            if e <= prev[1]:
                continue
            if prev[2] == t.speaker:
                prev[1] = e
                continue
            cut = (s + prev[1]) / 2
            if levels is not None:
                before, after = _level(levels, prev[0], s), _level(levels, prev[1], e)
                if before - after >= _LOUDER_DB:
                    cut = prev[1]
                elif after - before >= _LOUDER_DB:
                    cut = s
            prev[1] = s = cut
        out.append([s, e, t.speaker])
    return tuple(Turn(round(s, 3), round(e, 3), spk) for s, e, spk in out if e - s > 1e-6)


_LOUDER_DB = 6.0


def _level(levels: np.ndarray, start: float, end: float) -> float:
    """Speech level of `start`..`end`: the 90th percentile of its frame levels (dB)."""
    a, b = int(start / _HOP), int(math.ceil(end / _HOP))
    part = levels[a:b]
    return float(np.percentile(part, 90)) if part.size else -100.0


def _quietest(levels: np.ndarray | None, hop: float, lo: float, hi: float) -> float:
    """The time in [lo, hi] where the audio is quietest (or `hi` when no levels are given)."""
    if levels is None or hi - lo < 2 * hop:
        return hi
    i, j = int(math.ceil(lo / hop)), min(int(hi / hop), len(levels))
    if j <= i:
        return hi
    return (i + int(np.argmin(levels[i:j]))) * hop + hop / 2


_HOP = 0.1  # seconds per frame of `_levels`


def _levels(audio: Audio, hop: float = _HOP) -> np.ndarray:
    """Frame energies in dB, one per `hop` seconds, smoothed over three frames."""
    n = int(hop * audio.sample_rate)
    frames = len(audio.samples) // n
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    x = audio.samples[: frames * n].reshape(frames, n).astype(np.float64)
    db = 10 * np.log10(np.mean(x * x, axis=1) + 1e-10)
    return np.convolve(db, np.ones(3) / 3, mode="same")


def plan_chunks(
    turns: Sequence[Turn],
    duration: float,
    *,
    options: RegionOptions | None = None,
    audio: Audio | None = None,
) -> tuple[Chunk, ...]:
    """Cut speech turns into chunks to decode: one speaker each, at most `max_chunk` s, in time order.

    `turns` are made exclusive first (`exclusive_turns`: where two people talk at once, the
    louder keeps the overlap, or each keeps half), so chunks never overlap. Same-speaker turns
    less than `merge_gap` apart share a chunk while it stays short enough; a chunk ends at a
    larger pause, at a speaker change, or where it would grow too long, cut at the pause between
    two turns that leaves it longest. A single turn longer than a chunk is cut at its quietest
    moment in the second half of the chunk (given `audio`; otherwise at the limit). Each chunk
    gets `pad` s of context on both sides, and one shorter than `min_chunk` is widened to it
    (clipped to the recording). VAD turns (speaker "") give chunks with speaker None. Pure: the
    same turns (and audio) give the same chunks.
    """
    opts = options or RegionOptions()
    spans = [(t.start, t.end, t.speaker or None) for t in exclusive_turns(turns, duration, audio)]
    limit = opts.max_chunk - 2 * opts.pad
    levels = _levels(audio) if audio is not None else None
    hop = 0.1

    # Runs: consecutive same-speaker turns with small gaps; each run is cut into pieces <= limit.
    pieces: list[tuple[str | None, list[tuple[float, float]]]] = []
    run: list[tuple[float, float]] = []
    run_speaker: str | None = None

    def flush() -> None:
        if run:
            pieces.extend((run_speaker, p) for p in _split_run(run, limit, levels, hop))
            run.clear()

    for s, e, spk in spans:
        if run and (spk != run_speaker or s - run[-1][1] > opts.merge_gap):
            flush()
        run_speaker = spk
        run.append((s, e))
    flush()

    chunks: list[Chunk] = []
    for spk, speech in pieces:
        s, e = speech[0][0], speech[-1][1]
        start, end = max(0.0, s - opts.pad), min(duration, e + opts.pad)
        short = opts.min_chunk - (end - start)
        if short > 0:
            start = max(0.0, start - short / 2)
            end = min(duration, max(end + short / 2, start + opts.min_chunk))
            start = max(0.0, min(start, end - opts.min_chunk))
        chunks.append(Chunk(round(start, 3), round(end, 3), spk, tuple((round(a, 3), round(b, 3)) for a, b in speech)))
    return tuple(chunks)


def _split_run(
    run: Sequence[tuple[float, float]], limit: float, levels: np.ndarray | None, hop: float
) -> list[list[tuple[float, float]]]:
    """Cut one speaker's run of turns into pieces whose speech spans at most `limit` seconds."""
    out: list[list[tuple[float, float]]] = []
    todo = list(run)
    while todo:
        start = todo[0][0]
        if todo[-1][1] - start <= limit:
            out.append(todo)
            break
        # The last pause between turns that keeps the piece within the limit.
        cut = 0
        for i in range(1, len(todo)):
            if todo[i - 1][1] - start <= limit:
                cut = i
        if cut and todo[cut - 1][1] - start >= limit / 3:
            out.append(todo[:cut])
            todo = todo[cut:]
            continue
        # No usable pause: cut the first turn itself (or what fits of it) at a quiet moment.
        s, e = todo[0]
        if cut:  # keep the short turns before, cut inside the next one
            head = todo[: cut]
            s, e = todo[cut]
            at = _quietest(levels, hop, max(s, start + limit / 2), start + limit)
            out.append(head + [(s, at)] if at > s + 1e-6 else head)
            todo = [(at, e)] + todo[cut + 1 :]
            continue
        at = _quietest(levels, hop, start + limit / 2, start + limit)
        out.append([(s, at)])
        todo = [(at, e)] + todo[1:]
    return out


# --------------------------------------------------------------------------- VAD regions


def _normalized(samples: np.ndarray, max_gain_db: float = 30.0, target: float = 0.5) -> np.ndarray:
    """`samples` scaled so that their loud part peaks near `target`, amplified at most `max_gain_db`."""
    return np.clip(samples * _gain(samples, max_gain_db, target), -1.0, 1.0).astype(np.float32)


def vad_regions(
    audio: Audio,
    *,
    threshold: float = 0.35,
    min_silence: float = 0.3,
    pad: float = 0.1,
    speaker: str = "",
) -> tuple[Turn, ...]:
    """Speech found by Silero VAD (the model shipped with faster-whisper), as turns of `speaker`.

    For recordings transcribed without diarization. The audio is loudness-normalised first and the
    threshold is below Silero's usual 0.5, so that a quiet voice is not lost; what this lets through
    that is not speech, the hallucination rules of `transcribe_chunks` catch.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.duration == 0:
        return ()
    stamps = get_speech_timestamps(
        _normalized(audio.samples),
        VadOptions(
            threshold=threshold,
            min_silence_duration_ms=int(min_silence * 1000),
            speech_pad_ms=int(pad * 1000),
            min_speech_duration_ms=100,
        ),
        sampling_rate=audio.sample_rate,
    )
    sr = audio.sample_rate
    return tuple(Turn(round(s["start"] / sr, 3), round(s["end"] / sr, 3), speaker) for s in stamps)


# --------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class _Piece:
    """Recording time `src_start`..`src_end` of chunk `chunk`, placed at `offset` s in its window."""

    chunk: int
    src_start: float
    src_end: float
    offset: float


@dataclass(frozen=True)
class _Window:
    """One decoder input: pieces of consecutive chunks, end to end, silence between non-adjacent ones."""

    pieces: tuple[_Piece, ...]

    @property
    def length(self) -> float:
        last = self.pieces[-1]
        return last.offset + last.src_end - last.src_start

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(p.chunk for p in self.pieces)

    def to_recording(self, ws: float, we: float) -> tuple[int, float, float]:
        """Window time -> (chunk, recording start, recording end): the word goes to the piece its
        middle lies in (the silence between two pieces is shared at its middle), clamped into it."""
        mid = (ws + we) / 2
        piece = self.pieces[0]
        for prev, p in zip(self.pieces, self.pieces[1:]):
            if mid >= (prev.offset + prev.src_end - prev.src_start + p.offset) / 2:
                piece = p
        shift = piece.src_start - piece.offset
        s = min(max(ws + shift, piece.src_start), piece.src_end)
        e = min(max(we + shift, s), piece.src_end)
        return piece.chunk, s, e


def _ownership(chunks: Sequence[Chunk]) -> list[tuple[float, float]]:
    """The part of the timeline each chunk answers for: its speech, and its padding up to the middle
    of the pause before the neighbouring chunk's speech. These spans tile the timeline without
    overlap, so no audio is decoded twice and no word is kept twice."""
    bounds = []
    for i, c in enumerate(chunks):
        lo, hi = c.start, c.end
        if i > 0:
            lo = max(lo, (chunks[i - 1].speech_end + c.speech_start) / 2)
        if i < len(chunks) - 1:
            hi = min(hi, (c.speech_end + chunks[i + 1].speech_start) / 2)
        bounds.append((round(min(lo, c.speech_start), 3), round(max(hi, c.speech_end), 3)))
    return bounds


def _pack(
    chunks: Sequence[Chunk], owned: Sequence[tuple[float, float]], opts: RegionOptions, levels: np.ndarray | None = None
) -> tuple[tuple[Chunk, ...], tuple[tuple[float, float], ...], tuple[_Window, ...]]:
    """Chunks in time order, filled into windows of at most 30 s minus the tail.

    Chunks that touch in the recording go in as one stretch of audio; others are separated by
    `separator` s of silence. A chunk that does not fit in what is left of a window is split at a
    pause between two of its turns when the first part fills the window (then both parts are
    chunks of their own); otherwise it starts the next window. With `pack` off, every chunk has
    a window of its own. Returns the chunks (some maybe split), their ownership and the windows.
    """
    room = WINDOW - opts.tail
    out_chunks: list[Chunk] = []
    out_owned: list[tuple[float, float]] = []
    windows: list[_Window] = []
    pieces: list[_Piece] = []
    t = 0.0
    todo = list(zip(chunks, owned))
    while todo:
        c, (lo, hi) = todo.pop(0)
        if pieces and opts.pack:
            adjacent = abs(pieces[-1].src_end - lo) < 1e-3
            at = t if adjacent else t + opts.separator
            if at + hi - lo > room and room - at >= _MIN_FILL:
                split = _split_at_pause(c, lo, hi, room - at, opts.pad, levels)
                if split is not None:
                    (c, (lo, hi)), rest = split
                    todo.insert(0, rest)
            if at + hi - lo <= room:
                pieces.append(_Piece(len(out_chunks), lo, hi, at))
                out_chunks.append(c)
                out_owned.append((lo, hi))
                t = at + hi - lo
                continue
        if pieces:
            windows.append(_Window(tuple(pieces)))
        pieces, t = [_Piece(len(out_chunks), lo, hi, 0.0)], hi - lo
        out_chunks.append(c)
        out_owned.append((lo, hi))
    if pieces:
        windows.append(_Window(tuple(pieces)))
    return tuple(out_chunks), tuple(out_owned), tuple(windows)


_MIN_FILL = 3.0  # seconds left in a window worth splitting a chunk for


_PAUSE_DB = 15.0  # a moment this far under a chunk's loud level (90th percentile) is a pause to cut at


def _split_at_pause(c: Chunk, lo: float, hi: float, room: float, pad: float, levels: np.ndarray | None):
    """Split chunk `c` (owning `lo`..`hi`) at a pause so that the first part lasts at most `room` s
    (and at least `_MIN_FILL`, as does the rest): the latest pause between two of its turns, else
    the quietest moment inside a turn if it is `_PAUSE_DB` under the chunk's speech level (never in
    the middle of a word). None when there is no such pause."""
    cut = None
    for j in range(len(c.speech) - 1, 0, -1):
        at = (c.speech[j - 1][1] + c.speech[j][0]) / 2
        if _MIN_FILL <= at - lo <= room and hi - at >= _MIN_FILL:
            cut = at
            break
    if cut is None and levels is not None:
        hop = _HOP
        i = int(math.ceil((lo + _MIN_FILL) / hop))
        j = min(int((lo + room) / hop), int((hi - _MIN_FILL) / hop), len(levels))
        a, b = int(lo / hop), min(int(hi / hop), len(levels))
        if j > i and b > a:
            k = i + int(np.argmin(levels[i:j]))
            if levels[k] <= np.percentile(levels[a:b], 90) - _PAUSE_DB:
                cut = round(k * hop + hop / 2, 3)
    if cut is None:
        return None
    head_speech = tuple((s, min(e, cut)) for s, e in c.speech if s < cut)
    tail_speech = tuple((max(s, cut), e) for s, e in c.speech if e > cut)
    head = Chunk(c.start, round(min(c.end, head_speech[-1][1] + pad), 3), c.speaker, head_speech)
    tail = Chunk(round(max(c.start, tail_speech[0][0] - pad), 3), c.end, c.speaker, tail_speech)
    return (head, (lo, cut)), (tail, (cut, hi))


def _window_audio(audio: Audio, chunks: Sequence[Chunk], window: _Window, gains: Sequence[float]) -> np.ndarray:
    sr = audio.sample_rate
    out = np.zeros(int(math.ceil(window.length * sr)) + 1, dtype=np.float32)
    for p in window.pieces:
        a, b = int(round(p.src_start * sr)), int(round(p.src_end * sr))
        x = audio.samples[a:b] * gains[p.chunk]
        at = int(round(p.offset * sr))
        n = min(len(x), len(out) - at)
        out[at : at + n] = x[:n]
    return np.clip(out, -1.0, 1.0)


def _gain(x: np.ndarray, max_gain_db: float, target: float = 0.5) -> float:
    """The factor that brings the loud part of `x` (99.9th percentile) near `target`, at most `max_gain_db`."""
    if x.size == 0:
        return 1.0
    peak = float(np.percentile(np.abs(x), 99.9))
    if peak <= 1e-6:
        return 1.0
    return min(target / peak, 10 ** (max_gain_db / 20))


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Decoded:
    """One window's words in window time, with Whisper's scores for the window."""

    words: tuple[tuple[float, float, str, float], ...]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    tokens: tuple[int, ...] = ()

    def silent(self, opts: RegionOptions) -> bool:
        """Whisper's own rule: the window is silence."""
        return self.no_speech_prob > opts.no_speech_threshold and self.avg_logprob < opts.log_prob_threshold

    def looping(self, opts: RegionOptions) -> bool:
        return self.compression_ratio > opts.compression_ratio_threshold

    def failed(self, opts: RegionOptions) -> bool:
        """Whisper scored the window as silence, or it looped."""
        return self.silent(opts) or self.looping(opts)


MIN_REPEAT = 6  # words: a phrase this long said twice in a row is a loop


def _unrepeated(words: Sequence[Word], min_words: int = MIN_REPEAT) -> list[Word]:
    """The words of one chunk without the second of two identical runs of `min_words` words or
    more in a row: a loop that the compression ratio lets through.

    Whisper's temperature fallback on a quiet 9 s turn gave one invented 16-word sentence twice
    (compression ratio under 2.4). In the clips' reference texts no run of even 3 words comes twice
    in a row. Only one chunk at a time: a composed meeting can have one speaker say the same
    sentence twice, a few seconds apart, and those are two chunks.
    """
    out, keys = list(words), [normalize_word(w.text) for w in words]
    i = 0
    while i < len(out):
        for n in range(min_words, (len(out) - i) // 2 + 1):
            if keys[i : i + n] == keys[i + n : i + 2 * n]:
                again = "".join(w.text for w in out[i + n : i + 2 * n])
                log.debug("dropped %r at %.2f s: said twice in a row", again, out[i + n].start)
                del out[i + n : i + 2 * n], keys[i + n : i + 2 * n]
                break
        else:
            i += 1
    return out


def _model_of(recognizer_or_model: Any):
    """A faster-whisper WhisperModel from a Recognizer or a WhisperModel."""
    return getattr(recognizer_or_model, "model", recognizer_or_model)


def _frames(model, seconds: float, opts: RegionOptions) -> int:
    """Encoder input length, in mel frames, for `seconds` of audio: rounded up, at least `min_window`."""
    fe = model.feature_extractor
    return int(min(WINDOW, max(opts.min_window, math.ceil(seconds))) * fe.sampling_rate // fe.hop_length)


def _language_probabilities(model, x: np.ndarray, opts: RegionOptions) -> dict[str, float]:
    """Whisper's language detection on `x` (at most 30 s), encoded at its own length: every
    language's probability."""
    from faster_whisper.audio import pad_or_trim

    x = x[: int(WINDOW * SAMPLE_RATE)]
    feats = model.feature_extractor(x)[..., :-1]
    encoded = model.encode(pad_or_trim(feats, _frames(model, len(x) / SAMPLE_RATE, opts))[None])
    return {token[2:-2]: float(prob) for token, prob in model.model.detect_language(encoded)[0]}


def _speech_sample(audio: Audio, spans: Sequence[tuple[float, float]], seconds: float = WINDOW) -> np.ndarray:
    """Up to `seconds` of the speech in `spans`, longest spans first, joined."""
    pieces, total = [], 0.0
    for s, e in sorted(spans, key=lambda p: p[0] - p[1]):
        if total >= seconds:
            break
        take = min(e - s, seconds - total)
        pieces.append(_slice(audio, s, s + take))
        total += take
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def speech_language(
    recognizer_or_model: Any, audio: Audio, options: RegionOptions | None = None
) -> Callable[[Sequence[tuple[float, float]]], str | None]:
    """The language spoken in stretches of `audio`, by Whisper's language detection, as diarization's
    merge step asks it (`diarize.LanguageOf`): the most likely language of up to 30 s of the speech
    in the given (start, end) spans, when Whisper gives it at least `speaker_language_probability`
    on at least `min_language_speech` s; None when unsure, and always for an English-only model."""
    opts = options or RegionOptions()
    model = _model_of(recognizer_or_model)

    def language_of(spans: Sequence[tuple[float, float]]) -> str | None:
        if not model.model.is_multilingual or sum(e - s for s, e in spans) < opts.min_language_speech:
            return None
        return _sure_language(_language_probabilities(model, _speech_sample(audio, spans), opts), opts)

    return language_of


def _sure_language(probs: Mapping[str, float], opts: RegionOptions) -> str | None:
    """The most likely language when Whisper gives it at least `speaker_language_probability`."""
    best = max(probs, key=probs.__getitem__) if probs else None
    return best if best is not None and probs[best] >= opts.speaker_language_probability else None


def _languages(
    model, audio: Audio, chunks: Sequence[Chunk], opts: RegionOptions
) -> tuple[str, float, dict[str | None, str]]:
    """The recording's main language, its probability, and each speaker's language.

    Whisper detects the language of up to 30 s of each speaker's speech; the main language is
    the most likely over all the speech (each speaker's probabilities weighted by how long they
    speak). A speaker keeps the main language unless Whisper is sure of another on their speech
    (`speaker_language_probability`): a short or accented turn detected as another language would
    otherwise be decoded, or translated, in it. Without `speaker_languages`, one language for all,
    detected on up to 30 s of all the speech.
    """
    spans: dict[str | None, list[tuple[float, float]]] = {}
    for c in chunks:
        spans.setdefault(c.speaker, []).extend(c.speech)
    seconds = {k: sum(e - s for s, e in v) for k, v in spans.items()}
    heard = {
        k: _language_probabilities(model, _speech_sample(audio, v), opts)
        for k, v in (spans.items() if opts.speaker_languages else ())
        if seconds[k] >= opts.min_language_speech
    }
    if not heard:  # one language for all (asked for, or nobody says much): all of the speech at once
        heard = {None: _language_probabilities(model, _speech_sample(audio, [s for v in spans.values() for s in v]), opts)}
        seconds[None] = sum(seconds.values())
    weight = sum(seconds[k] for k in heard)
    mixture: dict[str, float] = {}
    for k, probs in heard.items():
        for lang, p in probs.items():
            mixture[lang] = mixture.get(lang, 0.0) + p * seconds[k] / weight
    main = max(mixture, key=mixture.__getitem__)
    own = {k: _sure_language(heard.get(k, {}), opts) or main for k in spans}
    log.info(
        "detected language %s (p=%.2f)%s", main, mixture[main],
        "".join(f"; {k}: {v} (p={heard[k][v]:.2f})" for k, v in own.items() if v != main),
    )
    return main, mixture[main], own


_PREPEND = "\"'“¿([{-"  # faster-whisper's defaults for attaching punctuation to words
_APPEND = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class _Decoder:
    """What every batch is decoded with: tokenizer, prompt and suppressed tokens, built once.

    `prompt` holds no previous text but the user's initial prompt; `prompts` builds those of
    windows that follow text already decoded, as Whisper was trained to see them.
    """

    model: Any
    tokenizer: Any
    initial: tuple[int, ...]  # the user's initial prompt
    hotwords: str | None
    prompt: tuple[int, ...]
    suppress_tokens: tuple[int, ...]
    beam_size: int
    without_timestamps: bool

    def prompts(self, previous: Sequence[Sequence[int]], most: int = MAX_PREVIOUS_TOKENS) -> list[tuple[int, ...]]:
        """Prompts for a batch of windows, each after the text tokens in `previous`.

        CTranslate2 wants the start of the transcript at the same place in every prompt of a batch,
        so every row keeps as many of its last previous tokens as the shortest has (at most
        `most`); a batch in which one row has none is decoded without previous text.
        """
        keep = min([len(p) for p in previous] + [most])
        if keep == 0:
            return [self.prompt] * len(previous)
        return [
            tuple(self.model.get_prompt(
                self.tokenizer, list(p[-keep:]), without_timestamps=self.without_timestamps, hotwords=self.hotwords))
            for p in previous
        ]


def _decoder(model, language: str, options, timestamp_tokens: bool) -> _Decoder:
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    initial = tuple(tokenizer.encode(" " + options.initial_prompt.strip())) if options.initial_prompt else ()
    prompt = model.get_prompt(
        tokenizer, list(initial), without_timestamps=not timestamp_tokens, hotwords=options.hotwords
    )
    return _Decoder(
        model,
        tokenizer,
        initial,
        options.hotwords,
        tuple(prompt),
        tuple(get_suppressed_tokens(tokenizer, [-1])),
        options.beam_size,
        not timestamp_tokens,
    )


def _encode(model, batch: np.ndarray):
    """Encoder output for a batch of features. On a CPU one input at a time: measured faster there
    than the batched call (the decoder, by contrast, gains from the batch)."""
    import ctranslate2

    if model.model.device != "cpu" or len(batch) == 1:
        return model.encode(batch)
    parts = [np.array(model.encode(batch[k : k + 1])) for k in range(len(batch))]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(parts)))


def _decode_batch(
    model,
    inputs: Sequence[np.ndarray],
    dec: _Decoder,
    opts: RegionOptions,
    prompts: Sequence[Sequence[int]] | None = None,
) -> list[_Decoded]:
    """Decode a batch of windows at once, at temperature 0; word times relative to each window's start.

    `prompts`, one per input, default to `dec.prompt` (no previous text).

    The encoder sees each window with `tail` s of silence after it, padded to the longest in the
    batch (at least `min_window` s) rather than always to 30 s. The beam search runs over the
    whole batch (CTranslate2's `generate`, as in faster-whisper's `BatchedInferencePipeline`);
    word times come from faster-whisper's cross-attention alignment (`add_word_timestamps`), on a
    CPU one window at a time, which measured faster there than the batched alignment.
    """
    import ctranslate2
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import get_compression_ratio

    sr = SAMPLE_RATE
    tail = np.zeros(int(opts.tail * sr), dtype=np.float32)
    feats = [model.feature_extractor(np.concatenate([x, tail]))[..., :-1] for x in inputs]
    durations = [len(x) / sr for x in inputs]
    frames = _frames(model, max(math.ceil(d) for d in durations) + opts.tail, opts)
    encoded = _encode(model, np.stack([pad_or_trim(f, frames) for f in feats]))
    prompts = [list(p) for p in prompts] if prompts is not None else [list(dec.prompt) for _ in inputs]
    results = model.model.generate(
        encoded,
        prompts,
        beam_size=dec.beam_size,
        max_length=min(model.max_length, max(map(len, prompts)) + _max_new_tokens(max(durations))),
        suppress_blank=True,
        suppress_tokens=list(dec.suppress_tokens),
        return_scores=True,
        return_no_speech_prob=True,
    )
    segments = []
    for d, r in zip(durations, results):
        tokens = r.sequences_ids[0]
        text = dec.tokenizer.decode(tokens)
        segments.append(
            [
                dict(
                    text=text,
                    tokens=tokens,
                    start=0.0,
                    end=d,
                    seek=0,
                    avg_logprob=r.scores[0] * len(tokens) / (len(tokens) + 1),  # as faster-whisper's batched pipeline
                    no_speech_prob=r.no_speech_prob,
                    compression_ratio=get_compression_ratio(text),
                )
            ]
        )
    sizes = [int(math.ceil(d) * model.frames_per_second) for d in durations]
    if model.model.device == "cpu" and len(segments) > 1:
        per_item = np.array(encoded)
        for k, seg in enumerate(segments):
            one = ctranslate2.StorageView.from_array(np.ascontiguousarray(per_item[k : k + 1]))
            model.add_word_timestamps([seg], dec.tokenizer, one, [sizes[k]], _PREPEND, _APPEND, 0.0)
    else:
        model.add_word_timestamps(segments, dec.tokenizer, encoded, sizes, _PREPEND, _APPEND, 0.0)
    out = []
    for (seg,) in segments:
        words = tuple(
            (float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in seg.get("words", ())
        )
        scores = (float(seg["no_speech_prob"]), float(seg["avg_logprob"]), float(seg["compression_ratio"]))
        out.append(_Decoded(words, *scores, tuple(seg["tokens"])))
    return out


def _schedule(lengths: Sequence[float], opts: RegionOptions) -> list[list[int]]:
    """The order in which windows (of these lengths, in time order) are decoded, batch by batch.

    With previous text: the windows are cut into at most `batch_size` streams of consecutive windows,
    each at least `stream_windows` long, and batch j holds the j-th window of every stream, so that
    every window but a stream's first is decoded after the one before it. Without: longest first,
    so that a batch holds windows of similar length (less padding).
    """
    n = len(lengths)
    if not opts.previous_tokens:
        order = sorted(range(n), key=lambda k: -lengths[k])
        return [order[b : b + opts.batch_size] for b in range(0, n, opts.batch_size)]
    streams = max(1, min(opts.batch_size, n // opts.stream_windows))
    size = math.ceil(n / streams) if n else 0
    starts = range(0, n, size) if size else ()
    return [[a + j for a in starts if a + j < min(a + size, n)] for j in range(size)]


def _decode_alone(
    model, x: np.ndarray, language: str, options, opts: RegionOptions, prompt_tokens: int
) -> list[tuple[float, float, str, float]]:
    """One stretch with faster-whisper's sequential decoder: its temperature fallback and its
    no-speech rule. Word times relative to the start of `x`; `prompt_tokens` is the length of
    the prompt faster-whisper builds (the user's prompt and hotwords), which shares the context."""
    temps = tuple(options.temperature) or (0.0,)
    if len(temps) == 1:
        temps = (temps[0], 0.2, 0.4, 0.6)
    segments, _ = model.transcribe(
        x,
        language=language,
        beam_size=options.beam_size,
        word_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
        temperature=list(temps),
        max_new_tokens=max(1, min(_max_new_tokens(len(x) / SAMPLE_RATE), model.max_length - prompt_tokens)),
        no_speech_threshold=opts.no_speech_threshold,
        log_prob_threshold=opts.log_prob_threshold,
        compression_ratio_threshold=opts.compression_ratio_threshold,
    )
    words = []
    for seg in segments:
        if _Decoded((), seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio).failed(opts):
            continue  # silence, or still looping at the last temperature
        words.extend((w.start, w.end, w.word, w.probability) for w in seg.words or ())
    return words


# --------------------------------------------------------------------------- coverage


def _over_speech(w: Word, speech: Sequence[tuple[float, float]], slack: float) -> bool:
    return any(w.end > s - slack and w.start < e + slack for s, e in speech)


def _uncovered(
    speech: Sequence[tuple[float, float]],
    words: Sequence[Word],
    min_len: float,
    slack: float = 0.5,
    longest_word: float = _LONGEST_WORD,
    pause: float = 1.0,
) -> list[tuple[float, float]]:
    """Stretches of `speech` at least `min_len` s long with no word within `slack` s. Turns less than
    `pause` s apart count as one stretch: 7 s of speech in four short turns, none of them 2 s long,
    had come out without a word and unnoticed.

    A word longer than `longest_word` covers only its two ends: the alignment stretches a word over
    audio that Whisper skipped (seen: "Mr." over 13 s, when a window decoded without timestamp
    tokens jumped from one speaker's first sentence to the fourth speaker's turn).
    """
    covered = sorted(
        span
        for w in words
        for span in (
            [(w.start - slack, w.end + slack)]
            if w.end - w.start <= longest_word
            else [(w.start - slack, w.start + slack), (w.end - slack, w.end + slack)]
        )
    )
    joined: list[tuple[float, float]] = []
    for s, e in sorted(speech):
        if joined and s - joined[-1][1] < pause:
            joined[-1] = (joined[-1][0], max(joined[-1][1], e))
        else:
            joined.append((s, e))
    out = []
    for s, e in joined:
        t = s
        for a, b in covered:
            if b <= t:
                continue
            if a >= e:
                break
            if a - t >= min_len:
                out.append((t, a))
            t = max(t, b)
        if e - t >= min_len:
            out.append((t, e))
    return out


def _confidence(words: Sequence[Word]) -> float:
    """Whisper's mean word probability over `words`."""
    return float(np.mean([w.probability for w in words]))


def _has_voice(x: np.ndarray, min_speech: float = 0.3) -> bool:
    """Silero VAD (on loudness-normalised audio, low threshold) hears `min_speech` s of speech in `x`."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        _normalized(x), VadOptions(threshold=0.3, min_speech_duration_ms=int(min_speech * 1000), speech_pad_ms=0)
    )
    return bool(stamps)


@dataclass(frozen=True)
class _Request:
    """Speech `start`..`end` of chunk `chunk` to decode again, from audio `a`..`b`."""

    chunk: int
    start: float
    end: float
    a: float
    b: float


class _Coverage:
    """The second pass: decode again, on their own, what the first pass got wrong, and count it."""

    def __init__(self, model, audio: Audio, chunks, owned, dec: _Decoder, language: str, options, opts, stats):
        self.model, self.audio, self.chunks, self.owned = model, audio, chunks, owned
        self.dec, self.language, self.options, self.opts, self.stats = dec, language, options, opts, stats

    def request(self, i: int, s: float, e: float) -> _Request:
        c, opts = self.chunks[i], self.opts
        a, b = max(c.start, s - opts.pad), min(c.end, e + opts.pad)
        if b - a < opts.min_chunk:
            widen = (opts.min_chunk - (b - a)) / 2
            a, b = max(0.0, a - widen), min(self.audio.duration, b + widen)
        return _Request(i, s, e, a, b)

    def audio_of(self, r: _Request) -> np.ndarray:
        x = _slice(self.audio, r.a, r.b)
        return _normalized(x, self.opts.max_gain_db) if self.opts.normalize_gain else x

    def _words(self, r: _Request, raw) -> list[Word]:
        """Decoded words in recording time, kept when over the stretch and in the chunk's own span."""
        c, slack = self.chunks[r.chunk], self.opts.speech_slack
        lo, hi = self.owned[r.chunk]
        out = []
        for ws, we, text, p in raw:
            s, e = r.a + ws, min(r.a + max(we, ws), r.b)
            mid = (s + e) / 2
            if r.start - slack <= mid <= r.end + slack and lo <= mid <= hi:
                out.append(Word(round(s, 3), round(e, 3), text, round(float(p), 4), c.speaker))
        return out

    def once(self, words: list[Word]) -> list[Word]:
        """The words of one chunk, a phrase said twice in a row kept once (`_unrepeated`), counted."""
        kept = _unrepeated(words)
        self.stats["dropped_repetition"] += len(words) - len(kept)
        return kept

    def batch(self, requests: Sequence[_Request]) -> list[list[Word]]:
        """Each request decoded on its own, in batches, at temperature 0;
        what Whisper scores as silence or a repetition loop comes back empty."""
        opts = self.opts
        out: list[list[Word]] = []
        for k in range(0, len(requests), opts.batch_size):
            group = requests[k : k + opts.batch_size]
            for r, d in zip(group, _decode_batch(self.model, [self.audio_of(r) for r in group], self.dec, opts)):
                out.append([] if d.failed(opts) else self.once(self._words(r, d.words)))
        self.stats["redecoded"] += len(requests)
        return out

    def fallback(self, r: _Request, depth: int = 0) -> list[Word]:
        """One stretch with faster-whisper's temperature fallback; in halves if still nothing."""
        x = self.audio_of(r)
        if not _has_voice(x):
            return []
        self.stats["redecoded"] += 1
        raw = _decode_alone(self.model, x, self.language, self.options, self.opts, len(self.dec.prompt))
        words = self.once(self._words(r, raw))
        if words or depth or r.end - r.start < 2 * self.opts.min_uncovered:
            return words
        levels = _levels(Audio(_slice(self.audio, r.start, r.end)))
        mid = r.start + _quietest(levels, _HOP, (r.end - r.start) / 3, 2 * (r.end - r.start) / 3)
        first, second = self.request(r.chunk, r.start, mid), self.request(r.chunk, mid, r.end)
        return self.fallback(first, 1) + self.fallback(second, 1)


# --------------------------------------------------------------------------- the stage


def transcribe_chunks(
    recognizer_or_model: Any,
    audio: Audio,
    chunks: Sequence[Chunk],
    options: Any,
    *,
    region_options: RegionOptions | None = None,
    progress: Progress | None = None,
) -> RegionResult:
    """Decode `chunks` of `audio` in batches, then check that every stretch of speech got its words.

    `recognizer_or_model` is a `transcribe.asr.Recognizer` or a faster-whisper `WhisperModel`;
    `options` an `AsrOptions` (language, beam size, prompt, hotwords and temperatures are used;
    the VAD filter and conditioning on previous text mean nothing here). `chunks` come from
    `plan_chunks`, in time order. Words come back in time order, with recording times and the
    speaker of their chunk. When the language is not given it is detected, for each speaker
    unless `region_options.speaker_languages` is off (see `_languages`); `stats["languages"]`
    then says which speaker was decoded in which language, when they differ.
    """
    opts = region_options or RegionOptions()
    model = _model_of(recognizer_or_model)
    chunks = tuple(chunks)
    multilingual = model.model.is_multilingual
    stats: dict[str, Any] = {
        "chunks": len(chunks),
        "windows": 0,
        "speech_seconds": round(sum(c.speech_seconds for c in chunks), 3),
        "decoded_seconds": 0.0,
        "prompted_windows": 0,
        "redecoded": 0,
        "replaced_doubtful": 0,
        "recovered_words": 0,
        "dropped_outside_speech": 0,
        "dropped_no_speech": 0,
        "dropped_repetition": 0,
        "uncovered_seconds": 0.0,
    }
    say = progress or (lambda done, total: None)
    language = options.language if multilingual else "en"
    if not chunks:
        say(audio.duration, audio.duration)
        return RegionResult((), language, 1.0 if language else 0.0, (), stats)

    owned = _ownership(chunks)
    if language is not None:
        return _transcribe(model, audio, chunks, owned, language, 1.0, options, opts, stats, say)
    language, language_probability, spoken = _languages(model, audio, chunks, opts)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        groups.setdefault(spoken[c.speaker], []).append(i)
    if len(groups) == 1:
        return _transcribe(model, audio, chunks, owned, language, language_probability, options, opts, stats, say)

    # Each language's chunks on their own (windows never mix two languages), one after another.
    speech = [c.speech_seconds for c in chunks]
    total, done = sum(speech), 0.0
    parts = []
    for lang, members in groups.items():
        share = sum(speech[i] for i in members) / total

        def part_say(d: float, t: float, before: float = done, share: float = share) -> None:
            say((before + share * d / max(t, 1e-9)) * audio.duration, audio.duration)

        part_stats = {k: 0 if isinstance(v, int) else 0.0 for k, v in stats.items()}
        parts.append(_transcribe(
            model, audio, [chunks[i] for i in members], [owned[i] for i in members], lang, 1.0,
            options, opts, part_stats, part_say,
        ))
        done += share
    for k in stats:
        if k != "speech_seconds":
            stats[k] = round(sum(p.stats[k] for p in parts), 3)
    stats["languages"] = {k: v for k, v in spoken.items() if k is not None}
    words = tuple(sorted((w for p in parts for w in p.words), key=lambda w: (w.start, w.end)))
    out_chunks = tuple(sorted((c for p in parts for c in p.chunks), key=lambda c: c.start))
    say(audio.duration, audio.duration)
    return RegionResult(words, language, round(float(language_probability), 4), out_chunks, stats)


def _transcribe(
    model,
    audio: Audio,
    chunks: Sequence[Chunk],
    owned: Sequence[tuple[float, float]],
    language: str,
    language_probability: float,
    options: Any,
    opts: RegionOptions,
    stats: dict[str, Any],
    say: Progress,
) -> RegionResult:
    """`transcribe_chunks` for chunks of one language, given the spans they own."""
    chunks, owned, windows = _pack(chunks, owned, opts, _levels(audio))
    stats["chunks"] = len(chunks)
    gains = [_gain(_slice(audio, c.start, c.end), opts.max_gain_db) if opts.normalize_gain else 1.0 for c in chunks]
    inputs = [_window_audio(audio, chunks, w, gains) for w in windows]
    stats["windows"] = len(windows)
    stats["decoded_seconds"] = round(sum(w.length for w in windows), 3)

    dec = _decoder(model, language, options, opts.timestamp_tokens)

    # Pass 1: every window, in batches. With `previous_tokens`, the windows are cut into streams of
    # consecutive windows, and each batch holds the next window of every stream, prompted with the
    # text of the window before it, as Whisper decodes a recording; without, batches of similar length.
    found: dict[int, list[Word]] = {i: [] for i in range(len(chunks))}
    retry: set[int] = set()
    before: dict[int, list[int]] = {}  # window -> the text up to its end, as the next one's prompt
    total = sum(w.length for w in windows)
    done = 0.0
    for group in _schedule([w.length for w in windows], opts):
        contexts = [before.get(k - 1, list(dec.initial)) for k in group]
        prompts = dec.prompts(contexts, opts.previous_tokens) if opts.previous_tokens else None
        stats["prompted_windows"] += sum(p != dec.prompt for p in prompts or ())
        decoded = _decode_batch(model, [inputs[k] for k in group], dec, opts, prompts)
        for k, context, d in zip(group, contexts, decoded):
            text = [] if d.failed(opts) else [t for t in d.tokens if t < dec.tokenizer.eot]
            before[k] = (context + text)[-MAX_PREVIOUS_TOKENS:]
            window = windows[k]
            done += window.length
            if d.silent(opts):
                stats["dropped_no_speech"] += len(d.words)
                retry.update(window.chunks)
                continue
            if d.looping(opts):
                stats["dropped_repetition"] += len(d.words)
                retry.update(window.chunks)
                continue
            for ws, we, text, p in d.words:
                i, s, e = window.to_recording(ws, we)
                found[i].append(Word(round(s, 3), round(e, 3), text, round(p, 4), chunks[i].speaker))
        say(done / total * audio.duration, audio.duration)

    def over_speech(i: int, words: Sequence[Word]) -> list[Word]:
        kept = [w for w in words if _over_speech(w, chunks[i].speech, opts.speech_slack)]
        for w in words:
            if w not in kept:
                log.debug("dropped %r at %.2f s: nobody speaks there", w.text, w.start)
        stats["dropped_outside_speech"] += len(words) - len(kept)
        return kept

    # Pass 2, the coverage check, everything decoded on its own, without previous text. (a) A chunk
    # whose window failed, whose word rate is implausible (too few words: Whisper skipped some; too
    # many: it looped) or whose words Whisper doubts (previous text can lead it astray) is decoded
    # again; the more plausible result is kept: fewer words for a loop, surer words for a doubtful
    # chunk, and for a sparse one more words. (b) Stretches of speech still without
    # words are decoded again; (c) those still empty, with temperature fallback, then in halves.
    coverage = _Coverage(model, audio, chunks, owned, dec, language, options, opts, stats)
    voiced: dict[int, bool] = {}

    def has_voice(i: int) -> bool:
        if i not in voiced:
            whole = coverage.request(i, chunks[i].speech_start, chunks[i].speech_end)
            voiced[i] = _has_voice(coverage.audio_of(whole))
        return voiced[i]

    def plausible(i: int, words: list[Word]) -> list[Word]:
        """Words of a chunk in which Silero VAD hears no voice at all, and that Whisper itself
        doubts, are what Whisper invents over noise and silence ("you", "Thank you.")."""
        if words and _confidence(words) < opts.doubtful_probability and not has_voice(i):
            log.debug("dropped %r at %.2f s: no voice there", "".join(w.text for w in words), words[0].start)
            stats["dropped_no_speech"] += len(words)
            return []
        return words

    final = {i: plausible(i, over_speech(i, coverage.once(found[i]))) for i in range(len(chunks))}
    seconds = [c.speech_seconds for c in chunks]

    def sparse(i: int, words: Sequence[Word]) -> bool:
        return seconds[i] >= opts.min_uncovered and len(words) < opts.min_word_rate * seconds[i]

    def dense(i: int, words: Sequence[Word]) -> bool:
        return len(words) > opts.max_word_rate * max(seconds[i], 1.0)

    def doubtful(words: Sequence[Word]) -> bool:
        return bool(words) and _confidence(words) < opts.redecode_probability

    def empty(i: int, words: Sequence[Word]) -> bool:
        return not words and seconds[i] >= opts.min_empty_speech

    redo = [coverage.request(i, c.speech_start, c.speech_end) for i, c in enumerate(chunks)
            if dense(i, final[i]) or doubtful(final[i])
            or ((i in retry or sparse(i, final[i]) or empty(i, final[i])) and has_voice(i))]
    for r, again in zip(redo, coverage.batch(redo)):
        i, old = r.chunk, final[r.chunk]
        again = plausible(i, over_speech(i, again))
        if dense(i, old) and len(again) < len(old):
            stats["dropped_repetition"] += len(old) - len(again)
            final[i] = again
        elif doubtful(old) and again and not dense(i, again) and _confidence(again) > _confidence(old):
            stats["replaced_doubtful"] += 1
            stats["recovered_words"] += max(0, len(again) - len(old))
            final[i] = again
        elif len(again) > len(old) and not dense(i, again):
            stats["recovered_words"] += len(again) - len(old)
            final[i] = again
        log.debug("chunk at %.2f-%.2f s: %d word(s) on its own, %d in its window", r.start, r.end, len(again), len(old))

    def add(i: int, more: Sequence[Word]) -> None:
        more = plausible(i, over_speech(i, list(more)))
        if more:
            stats["recovered_words"] += len(more)
            final[i] = sorted(final[i] + list(more), key=lambda w: (w.start, w.end))

    gaps = [
        coverage.request(i, s, e)
        for i, c in enumerate(chunks)
        for s, e in _uncovered(c.speech, final[i], opts.min_uncovered)
    ]
    gaps = [r for r in gaps if _has_voice(coverage.audio_of(r))]
    still = []
    for r, more in zip(gaps, coverage.batch(gaps)):
        add(r.chunk, more)
        if not more:
            still.append(r)
    for r in still:
        add(r.chunk, coverage.fallback(r))
    for i, c in enumerate(chunks):
        stats["uncovered_seconds"] += sum(e - s for s, e in _uncovered(c.speech, final[i], opts.min_uncovered))

    stats["uncovered_seconds"] = round(stats["uncovered_seconds"], 3)
    words = tuple(sorted((w for i in range(len(chunks)) for w in final[i]), key=lambda w: (w.start, w.end)))
    log.info(
        "ASR over %d chunk(s) in %d window(s): %d stretch(es) decoded again, %d word(s) recovered; "
        "%d word(s) over no speech and %d over silence dropped; %.1f s of speech without words",
        stats["chunks"],
        stats["windows"],
        stats["redecoded"],
        stats["recovered_words"],
        stats["dropped_outside_speech"],
        stats["dropped_no_speech"],
        stats["uncovered_seconds"],
    )
    say(audio.duration, audio.duration)
    return RegionResult(words, language, round(float(language_probability), 4), chunks, stats)


def _slice(audio: Audio, start: float, end: float) -> np.ndarray:
    sr = audio.sample_rate
    return audio.samples[int(round(start * sr)) : int(round(end * sr))]


def transcribe_regions(
    recognizer_or_model: Any,
    audio: Audio,
    turns: Sequence[Turn] | None,
    options: Any,
    *,
    region_options: RegionOptions | None = None,
    progress: Progress | None = None,
) -> RegionResult:
    """Plan chunks from `turns` (exclusive diarization turns; None: Silero VAD) and decode them."""
    opts = region_options or RegionOptions()
    if turns is None:
        turns = vad_regions(audio)
    chunks = plan_chunks(turns, audio.duration, options=opts, audio=audio)
    return transcribe_chunks(recognizer_or_model, audio, chunks, options, region_options=opts, progress=progress)
