"""Who said what: attach diarization turns to recognised words, group words into segments,
and give speakers their names.

Every function here is pure: it returns new frozen objects and never changes its inputs.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from .errors import UsageError
from .types import Segment, Transcript, Turn, Word

log = logging.getLogger("transcribe")

__all__ = [
    "NameSpec",
    "apply_speaker_names",
    "assign_speakers",
    "build_segments",
    "ends_sentence",
    "parse_speaker_names",
    "rename_speakers",
    "speaker_mapping",
]


# --------------------------------------------------------------------------- speakers to words


def assign_speakers(words: Sequence[Word], turns: Sequence[Turn]) -> tuple[Word, ...]:
    """Give each word the speaker it overlaps most in `turns`.

    Overlap is summed per speaker, so a word spanning two turns of the same speaker counts both.
    A word that overlaps no turn (or has no duration) takes the speaker of the nearest turn by
    time distance. Ties go to the turn that starts earlier, i.e. to whoever was already talking.
    With no turns at all the words come back unchanged (speaker None unless already set).

    Runs in O((W + T) log T) for W words and T non-overlapping turns: turns are sorted once and
    each word finds its neighbours by bisection. Overlapping turns are handled correctly too.
    """
    if not turns:
        return tuple(words)

    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    starts = [t.start for t in ordered]
    # reach[i]: index of the turn with the latest end among ordered[0..i]
    reach: list[int] = []
    best = 0
    for i, t in enumerate(ordered):
        if t.end > ordered[best].end:
            best = i
        reach.append(best)

    out: list[Word] = []
    for w in words:
        speaker = _speaker_for(w.start, max(w.start, w.end), ordered, starts, reach)
        out.append(w if w.speaker == speaker else replace(w, speaker=speaker))
    return tuple(out)


def _speaker_for(
    ws: float, we: float, ordered: Sequence[Turn], starts: Sequence[float], reach: Sequence[int]
) -> str:
    # Turns that can overlap [ws, we] start before `we`; walk back while one may still reach ws.
    hi = bisect.bisect_left(starts, we)
    overlap: dict[str, float] = {}
    first_start: dict[str, float] = {}
    i = hi - 1
    while i >= 0 and ordered[reach[i]].end > ws:
        t = ordered[i]
        ov = min(we, t.end) - max(ws, t.start)
        if ov > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + ov
            first_start[t.speaker] = min(first_start.get(t.speaker, t.start), t.start)
        i -= 1
    if overlap:
        return max(overlap, key=lambda spk: (overlap[spk], -first_start[spk]))

    # Nearest turn: the one reaching furthest among those starting before `we` (it may even
    # contain a zero-length word), or the first one starting at or after `we`.
    candidates: list[tuple[float, float, str]] = []
    if hi > 0:
        t = ordered[reach[hi - 1]]
        candidates.append((max(0.0, ws - t.end, t.start - we), t.start, t.speaker))
    if hi < len(ordered):
        t = ordered[hi]
        candidates.append((max(0.0, t.start - we), t.start, t.speaker))
    return min(candidates)[2]


# --------------------------------------------------------------------------- words to segments

# Full stop, question and exclamation marks and the ellipsis, in Latin, CJK, Arabic, Devanagari,
# Armenian and Ethiopic scripts. (The Greek question mark is left out: it normalises to ';'.)
_SENTENCE_END = frozenset(".?!…。？！｡︒﹒﹖﹗؟۔।॥։።‼⁇⁈⁉")
# Closing quotes and brackets that may follow the sentence mark: `"Hello."` or `(yes!)`.
_CLOSERS = "\"'’”»›)]}」』】〕〉》）］｝"


def ends_sentence(text: str) -> bool:
    """Whether a word closes a sentence: ends in . ? ! … (or a CJK equivalent), maybe quoted."""
    t = text.rstrip().rstrip(_CLOSERS)
    return bool(t) and t[-1] in _SENTENCE_END


def build_segments(
    words: Sequence[Word], *, max_duration: float = 30.0, max_gap: float = 1.5
) -> tuple[Segment, ...]:
    """Group words into segments of one speaker each.

    A new segment starts where the speaker changes, after a word that ends a sentence, where the
    pause between two words exceeds `max_gap` seconds, or where adding the word would make the
    segment last longer than `max_duration` seconds. Words are taken in the order given.
    """
    if max_duration <= 0:
        raise UsageError(f"max segment duration must be positive, not {max_duration}")
    if max_gap < 0:
        raise UsageError(f"max pause within a segment must be zero or more, not {max_gap}")

    segments: list[Segment] = []
    current: list[Word] = []
    for w in words:
        if current:
            prev = current[-1]
            if (
                w.speaker != prev.speaker
                or ends_sentence(prev.text)
                or w.start - prev.end > max_gap
                or max(w.end, prev.end) - current[0].start > max_duration
            ):
                segments.append(_segment(current))
                current = []
        current.append(w)
    if current:
        segments.append(_segment(current))
    return tuple(segments)


def _segment(words: Sequence[Word]) -> Segment:
    return Segment(
        start=words[0].start,
        end=max(w.end for w in words),
        text="".join(w.text for w in words).strip(),
        speaker=words[0].speaker,
        words=tuple(words),
    )


# --------------------------------------------------------------------------- speaker names


@dataclass(frozen=True)
class NameSpec:
    """Names for speakers, parsed from --speaker-names.

    Either `names`, given in order of first appearance ("Diane,Sheila": first to speak is Diane),
    or `labels`, (label, name) pairs ("SPEAKER_00=Diane,SPEAKER_01=Sheila"); never both.
    """

    names: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.names or self.labels)


_FORMS = "give names like 'Diane,Sheila' or 'SPEAKER_00=Diane,SPEAKER_01=Sheila'"


def _clean(part: str) -> str:
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", part).strip())


def parse_speaker_names(spec: str) -> NameSpec:
    """Parse --speaker-names: "Diane,Sheila" (by order of first appearance) or
    "SPEAKER_00=Diane,SPEAKER_01=Sheila" (by label).

    Raises UsageError for an empty spec, an empty name or label, a mix of both forms, a part with
    more than one '=', a name given twice (case-insensitive) or a label given twice.
    """
    if not spec or not spec.strip():
        raise UsageError(f"--speaker-names is empty: {_FORMS}")
    if any(unicodedata.category(c) == "Cc" for c in spec):
        raise UsageError("--speaker-names must not contain control characters or line breaks")
    parts = spec.split(",")
    pairs = ["=" in p for p in parts]
    if any(pairs) and not all(pairs):
        raise UsageError(
            f"--speaker-names mixes plain names and LABEL=Name pairs in {spec!r}: use one form"
        )

    if not any(pairs):
        names = tuple(_clean(p) for p in parts)
        if not all(names):
            raise UsageError(f"--speaker-names has an empty name in {spec!r}: {_FORMS}")
        _check_unique_names(names)
        return NameSpec(names=names)

    labels: list[tuple[str, str]] = []
    for part in parts:
        if part.count("=") != 1:
            raise UsageError(f"--speaker-names: {part.strip()!r} is not LABEL=Name")
        label, name = (_clean(x) for x in part.split("="))
        if not label or not name:
            raise UsageError(f"--speaker-names: {part.strip()!r} needs both a label and a name")
        labels.append((label, name))
    seen: set[str] = set()
    for label, _ in labels:
        if label in seen:
            raise UsageError(f"--speaker-names names {label} twice")
        seen.add(label)
    _check_unique_names(tuple(name for _, name in labels))
    return NameSpec(labels=tuple(labels))


def _check_unique_names(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        key = name.casefold()
        if key in seen:
            raise UsageError(f"--speaker-names gives the name {name!r} twice")
        seen.add(key)


def speaker_mapping(spec: NameSpec, speakers: Sequence[str]) -> dict[str, str]:
    """Label -> name for `speakers` (labels in order of first appearance).

    Extra names are unused; speakers without a name keep their label (and are left out of the
    mapping). Raises UsageError when a name would equal another speaker's unchanged label.
    """
    if spec.names:
        mapping = dict(zip(speakers, spec.names))
        if len(spec.names) > len(speakers):
            log.info(
                "%d speaker name(s) unused: only %d speaker(s) found",
                len(spec.names) - len(speakers),
                len(speakers),
            )
    else:
        known = set(speakers)
        mapping = {label: name for label, name in spec.labels if label in known}
        unused = [label for label, _ in spec.labels if label not in known]
        if unused:
            log.warning("--speaker-names: no speaker labelled %s", ", ".join(unused))
    kept = {s.casefold() for s in speakers if s not in mapping}
    for label, name in mapping.items():
        if name.casefold() in kept:
            raise UsageError(
                f"--speaker-names: naming {label} {name!r} would merge it with speaker {name}"
            )
    return mapping


def rename_speakers(transcript: Transcript, mapping: Mapping[str, str]) -> Transcript:
    """A copy of `transcript` with speakers renamed in its words, segments and turns."""
    if not mapping:
        return transcript

    def name(s: str | None) -> str | None:
        return mapping.get(s, s) if s is not None else None

    segments = tuple(
        replace(
            seg,
            speaker=name(seg.speaker),
            words=tuple(replace(w, speaker=name(w.speaker)) for w in seg.words),
        )
        for seg in transcript.segments
    )
    turns = tuple(replace(t, speaker=mapping.get(t.speaker, t.speaker)) for t in transcript.turns)
    return replace(transcript, segments=segments, turns=turns)


def apply_speaker_names(transcript: Transcript, spec: NameSpec | str) -> Transcript:
    """Name the speakers of `transcript` from --speaker-names (a string or a parsed NameSpec).

    Order of first appearance is `transcript.speakers`: first in the words, then in the turns.
    """
    if isinstance(spec, str):
        spec = parse_speaker_names(spec)
    return rename_speakers(transcript, speaker_mapping(spec, transcript.speakers))
