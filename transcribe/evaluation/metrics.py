"""The metrics, as pure functions of references and hypotheses in the project's own types.

Each result is a frozen dataclass of *counts* (errors, words, seconds), not only a rate, so that
results over many files pool by adding counts: `sum(results, start=...)` or `a + b`. Rates are
properties; a rate with nothing to divide by is None.

- `word_errors`: WER, after per-language normalization (`normalize.py`), aligned with jiwer.
- `diarization_errors`: DER and JER with pyannote.metrics.
- `speaker_attributed_errors`: cpWER and tcpWER with meeteval.
- `speaker_attribution`: the share of words given to the right speaker (definition there).
- `speed`: real-time factors and peak memory carried from our JSON's `stats`.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import transcribe.offline  # noqa: F401  (keeps pyannote off the network; before any pyannote import)
from transcribe.evaluation.normalize import normalize, normalized_words
from transcribe.types import Segment, Turn, Word

__all__ = [
    "DiarizationErrors",
    "Speed",
    "SpeakerAttribution",
    "WordErrors",
    "diarization_errors",
    "pseudo_words",
    "speaker_attributed_errors",
    "speaker_attribution",
    "speed",
    "turns_from_segments",
    "word_errors",
]

UNKNOWN_SPEAKER = "<unknown>"


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


class _Counts:
    """Adds dataclasses of counts field by field."""

    def __add__(self, other: Any) -> Any:
        if not isinstance(other, type(self)):
            return NotImplemented
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return type(self)(**sums)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        return cls(**{f.name: data[f.name] for f in fields(cls)})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- WER


@dataclass(frozen=True)
class WordErrors(_Counts):
    """Word errors against `ref_words` reference words. `rate` = (S + D + I) / N; None when N = 0."""

    ref_words: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        return _ratio(self.errors, self.ref_words)


def word_errors(reference: str, hypothesis: str, language: str | None) -> WordErrors:
    """WER of `hypothesis` against `reference`, both normalized for `language`, aligned by jiwer
    (Levenshtein over words: substitutions, deletions, insertions of one minimal alignment)."""
    import jiwer

    ref = normalize(reference, language)
    hyp = normalize(hypothesis, language)
    if not ref:
        return WordErrors(0, 0, 0, len(hyp.split()))
    if not hyp:
        return WordErrors(len(ref.split()), 0, len(ref.split()), 0)
    out = jiwer.process_words(ref, hyp)
    return WordErrors(
        ref_words=out.substitutions + out.deletions + out.hits,
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
    )


# --------------------------------------------------------------------------- DER / JER


@dataclass(frozen=True)
class DiarizationErrors(_Counts):
    """Diarization errors in seconds over `total` seconds of scored reference speech.

    `der` = (missed + false_alarm + confusion) / total, pyannote's DiarizationErrorRate; `jer` =
    jer_speaker_error / jer_speakers, pyannote's JaccardErrorRate (the mean over reference
    speakers of 1 - Jaccard index). Sums over files pool as pyannote's `abs(metric)` does.
    """

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    jer_speaker_error: float = 0.0
    jer_speakers: int = 0

    @property
    def der(self) -> float | None:
        return _ratio(self.missed + self.false_alarm + self.confusion, self.total)

    @property
    def jer(self) -> float | None:
        return _ratio(self.jer_speaker_error, self.jer_speakers)

    @property
    def missed_rate(self) -> float | None:
        return _ratio(self.missed, self.total)

    @property
    def false_alarm_rate(self) -> float | None:
        return _ratio(self.false_alarm, self.total)

    @property
    def confusion_rate(self) -> float | None:
        return _ratio(self.confusion, self.total)


def _annotation(turns: Iterable[Turn], uri: str):
    from pyannote.core import Annotation, Segment as PSegment

    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        if t.end > t.start:
            ann[PSegment(t.start, t.end), i] = t.speaker
    return ann


def diarization_errors(
    reference: Sequence[Turn],
    hypothesis: Sequence[Turn],
    uem: Sequence[tuple[float, float]] | None = None,
    *,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> DiarizationErrors:
    """DER and JER components of `hypothesis` turns against `reference` turns, by pyannote.metrics.

    `collar` is pyannote's: the *total* width of the no-score zone centred on every reference
    boundary (0.5 means +/-0.25 s). `skip_overlap` leaves out regions where reference speakers
    overlap. Scored regions: `uem` when given, else the span from the earliest to the latest
    turn of either side (pyannote's own default, made explicit).
    """
    from pyannote.core import Segment as PSegment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    ref = _annotation(reference, "file")
    hyp = _annotation(hypothesis, "file")
    if uem is None:
        spans = [(t.start, t.end) for t in (*reference, *hypothesis) if t.end > t.start]
        uem = [(min(s for s, _ in spans), max(e for _, e in spans))] if spans else []
    timeline = Timeline([PSegment(s, e) for s, e in uem if e > s], uri="file")
    if not timeline:
        return DiarizationErrors()
    der = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)(
        ref, hyp, uem=timeline, detailed=True
    )
    jer = JaccardErrorRate(collar=collar, skip_overlap=skip_overlap)(
        ref, hyp, uem=timeline, detailed=True
    )
    return DiarizationErrors(
        total=float(der["total"]),
        missed=float(der["missed detection"]),
        false_alarm=float(der["false alarm"]),
        confusion=float(der["confusion"]),
        jer_speaker_error=float(jer["speaker error"]),
        jer_speakers=int(jer["speaker count"]),
    )


def turns_from_segments(segments: Iterable[Segment]) -> tuple[Turn, ...]:
    """Turns for DER from speaker-attributed text (subtitle cues, STM lines, our segments)."""
    return tuple(
        Turn(s.start, s.end, s.speaker) for s in segments if s.speaker is not None and s.end > s.start
    )


# --------------------------------------------------------------------------- cpWER / tcpWER


def _seglst(segments: Iterable[Segment], language: str | None, timed: bool):
    from meeteval.io import SegLST

    rows = []
    for s in segments:
        words = normalize(s.text, language)
        if not words:
            continue
        row: dict[str, Any] = {
            "session_id": "file",
            "speaker": s.speaker if s.speaker is not None else UNKNOWN_SPEAKER,
            "words": words,
        }
        if timed:
            row |= {"start_time": s.start, "end_time": max(s.start, s.end)}
        rows.append(row)
    return SegLST(rows)


def _from_meeteval(er) -> WordErrors:
    return WordErrors(er.length, er.substitutions, er.deletions, er.insertions)


def speaker_attributed_errors(
    reference: Sequence[Segment],
    hypothesis: Sequence[Segment],
    language: str | None,
    *,
    timed: bool = True,
    tcp_collar: float = 5.0,
) -> tuple[WordErrors, WordErrors | None]:
    """(cpWER, tcpWER) of speaker-attributed `hypothesis` segments against `reference` ones.

    cpWER (meeteval): concatenate each speaker's words, in time order, on both sides; pick the
    one-to-one speaker mapping that gives the fewest word errors; unmatched speakers' words are
    deletions or insertions. tcpWER (meeteval) is the same with time constraints: a hypothesis
    word can match a reference word only if their times, widened by `tcp_collar` seconds, overlap
    (word times are estimated inside each segment in proportion to characters, meeteval's
    default). Text is normalized per segment first. Hypothesis text without a speaker counts as
    one more speaker, "<unknown>". tcpWER is None when the segments are not `timed`.
    """
    from meeteval.wer.wer.cp import cp_word_error_rate
    from meeteval.wer.wer.time_constrained import (
        time_constrained_minimum_permutation_word_error_rate as tcp_word_error_rate,
    )

    ref = _seglst(reference, language, timed)
    hyp = _seglst(hypothesis, language, timed)
    if not len(ref) and not len(hyp):
        return WordErrors(), (WordErrors() if timed else None)
    if not len(ref):  # meeteval refuses an empty reference; every word is an insertion
        inserted = WordErrors(insertions=sum(len(r["words"].split()) for r in hyp))
        return inserted, (inserted if timed else None)
    cp = _from_meeteval(cp_word_error_rate(ref, hyp))
    if not timed:
        return cp, None
    # meeteval warns when segments last longer on average than the collar, taking it for times in
    # samples; ours are seconds, and one reference segment of a 10 s recording sets it off.
    unit_guess = logging.getLogger("preprocess")
    level = unit_guess.level
    unit_guess.setLevel(logging.ERROR)
    try:
        return cp, _from_meeteval(tcp_word_error_rate(ref, hyp, collar=tcp_collar))
    finally:
        unit_guess.setLevel(level)


# --------------------------------------------------------------------------- speaker attribution


@dataclass(frozen=True)
class SpeakerAttribution(_Counts):
    """Of `matched` hypothesis words aligned to reference words, `correct` carry the right speaker.

    `rate` = correct / matched; `coverage` = matched / ref_words (how much the rate rests on).
    """

    ref_words: int = 0
    matched: int = 0
    correct: int = 0

    @property
    def rate(self) -> float | None:
        return _ratio(self.correct, self.matched)

    @property
    def coverage(self) -> float | None:
        return _ratio(self.matched, self.ref_words)


def pseudo_words(segments: Iterable[Segment]) -> tuple[Word, ...]:
    """Words with times and speakers: a segment's own words when it has them (a word without a
    speaker takes its segment's), else its text split on spaces with the segment's time shared
    in proportion to word length."""
    out: list[Word] = []
    for s in segments:
        if s.words:
            out += [
                w if w.speaker is not None else Word(w.start, w.end, w.text, w.probability, s.speaker)
                for w in s.words
            ]
            continue
        parts = s.text.split()
        total = sum(len(p) + 1 for p in parts)
        t, span = s.start, max(0.0, s.end - s.start)
        for p in parts:
            d = span * (len(p) + 1) / total
            out.append(Word(t, t + d, p, speaker=s.speaker))
            t += d
    return tuple(out)


def speaker_attribution(
    reference: Sequence[Segment],
    hypothesis: Sequence[Word],
    language: str | None,
    *,
    tolerance: float = 0.25,
) -> SpeakerAttribution:
    """The share of words given to the right speaker.

    Definition, in three steps:

    1. Align words by time and text. Each reference segment (an STM line: speaker, times, text)
       offers its normalized words. Each hypothesis word, normalized on its own (a word that
       normalizes to several tokens offers each), is matched to an unused, equal word of a
       reference segment whose span, widened by `tolerance` seconds on each side, contains the
       word's midpoint; segments that contain the midpoint itself are tried first, then the
       nearest. Each reference word is matched at most once; hypothesis words that match
       nothing (recognition errors, words outside the reference) are left out.
    2. Map speakers: count matched words for every (hypothesis speaker, reference speaker) pair
       and choose the one-to-one mapping with the most words (Hungarian algorithm,
       `scipy.optimize.linear_sum_assignment`). Words without a hypothesis speaker map to no one.
    3. `correct` = matched words whose hypothesis speaker maps to their reference segment's
       speaker; `rate` = correct / matched.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    segs = sorted(reference, key=lambda s: s.start)
    starts = [s.start for s in segs]
    longest = max((s.end - s.start for s in segs), default=0.0)
    available = [Counter(normalized_words(s.text, language)) for s in segs]
    ref_words = sum(sum(c.values()) for c in available)

    pairs: Counter[tuple[str | None, str | None]] = Counter()
    for w in sorted(hypothesis, key=lambda w: w.start):
        mid = (w.start + w.end) / 2
        lo = bisect.bisect_left(starts, mid - tolerance - longest)
        hi = bisect.bisect_right(starts, mid + tolerance)
        near = [i for i in range(lo, hi) if segs[i].start - tolerance <= mid <= segs[i].end + tolerance]
        near.sort(key=lambda i: max(segs[i].start - mid, mid - segs[i].end, 0.0))
        for token in normalized_words(w.text, language):
            for i in near:
                if available[i][token] > 0:
                    available[i][token] -= 1
                    pairs[(w.speaker, segs[i].speaker)] += 1
                    break

    matched = sum(pairs.values())
    hyp_spk = sorted({h for h, _ in pairs if h is not None})
    ref_spk = sorted({r for _, r in pairs if r is not None})
    correct = 0
    if hyp_spk and ref_spk:
        counts = np.array([[pairs[(h, r)] for r in ref_spk] for h in hyp_spk])
        rows, cols = linear_sum_assignment(counts, maximize=True)
        correct = int(counts[rows, cols].sum())
    return SpeakerAttribution(ref_words=ref_words, matched=matched, correct=correct)


# --------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class Speed:
    """Processing time per stage for `audio` seconds of audio, and peak memory.

    `rtf` = total processing seconds / audio seconds (below 1 is faster than real time).
    Pooling adds seconds per stage and audio seconds, and keeps the highest peak memory.
    """

    audio: float
    stages: Mapping[str, float] = field(default_factory=dict)
    total: float = 0.0
    peak_rss_mb: float | None = None

    @property
    def rtf(self) -> float | None:
        return _ratio(self.total, self.audio)

    def stage_rtf(self, stage: str) -> float | None:
        return _ratio(self.stages.get(stage, 0.0), self.audio)

    def __add__(self, other: Any) -> Speed:
        if not isinstance(other, Speed):
            return NotImplemented
        stages = dict(self.stages)
        for k, v in other.stages.items():
            stages[k] = stages.get(k, 0.0) + v
        peaks = [p for p in (self.peak_rss_mb, other.peak_rss_mb) if p is not None]
        return Speed(self.audio + other.audio, stages, self.total + other.total, max(peaks, default=None))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Speed:
        return cls(data["audio"], dict(data.get("stages") or {}), data["total"], data.get("peak_rss_mb"))


def speed(stats: Mapping[str, Any], duration: float) -> Speed | None:
    """Speed from our JSON's `stats` ({"timings": {stage: seconds}, "peak_rss_mb": ...}) for a
    recording of `duration` seconds. The total is `timings["total"]` when present, else the sum
    of the stages. None without timings or duration."""
    timings = stats.get("timings") if stats else None
    if not isinstance(timings, Mapping) or not timings or not duration or duration <= 0:
        return None
    stages = {str(k): float(v) for k, v in timings.items() if k != "total" and _finite(v)}
    total = float(timings["total"]) if _finite(timings.get("total")) else sum(stages.values())
    peak = stats.get("peak_rss_mb")
    return Speed(float(duration), stages, total, float(peak) if _finite(peak) else None)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
