"""Readers for references and hypotheses, any tool's: STM, RTTM, UEM, plain text, WebVTT, SRT, our JSON.

Each reader returns the project's own types (`Segment`, `Turn`, `Transcript`), so scoring sees one
shape whatever wrote the file. Malformed input raises `EvalError` naming the file and the line:
"refs/a.rttm:3: expected 10 fields, got 7".

Files that hold several recordings (STM, RTTM, UEM) are filtered to the lines whose recording id
equals `recording`; a file with a single recording id is taken whole whatever its id.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Iterator, Sequence

from transcribe.errors import TranscribeError
from transcribe.evaluation.errors import EvalError
from transcribe.types import Segment, Transcript, Turn

__all__ = [
    "read_json",
    "read_rttm",
    "read_srt",
    "read_stm",
    "read_text",
    "read_uem",
    "read_vtt",
    "speaker_prefix",
]


def _fail(path: Path | str, lineno: int | None, message: str) -> EvalError:
    where = f"{path}:{lineno}" if lineno is not None else f"{path}"
    return EvalError(f"{where}: {message}")


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _fail(path, None, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, None, "is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise _fail(path, None, f"not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise _fail(path, None, f"cannot read: {e.strerror or e}") from None


def _lines(path: Path) -> list[str]:
    return _read(path).splitlines()


def _number(text: str, path: Path, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, lineno, f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise _fail(path, lineno, f"{what} must be a finite number, got {text!r}")
    return value


def _select(rows: list[tuple[str, int, object]], recording: str | None, path: Path) -> list:
    """Rows (recording id, line number, value) of `recording`; all rows when the file holds one id."""
    ids = sorted({r[0] for r in rows})
    if len(ids) <= 1 or recording is None:
        if len(ids) > 1:
            raise _fail(path, None, f"holds {len(ids)} recordings ({_some(ids)}): say which one")
        return [r[2] for r in rows]
    chosen = [r[2] for r in rows if r[0] == recording]
    if not chosen:
        raise _fail(path, None, f"holds recordings {_some(ids)} but none named {recording!r}")
    return chosen


def _some(ids: Sequence[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _content_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of lines that are neither empty nor comments (;; or #)."""
    for lineno, raw in enumerate(_lines(path), start=1):
        line = raw.strip()
        if line and not line.startswith((";;", "#")):
            yield lineno, line


# --------------------------------------------------------------------------- NIST formats


def read_rttm(path: Path, recording: str | None = None) -> tuple[Turn, ...]:
    """Speaker turns from an RTTM file: `SPEAKER file chan start dur <NA> <NA> speaker <NA> <NA>`.

    Lines of other types (SPKR-INFO, LEXEME...) are skipped. Nine-field lines (no trailing
    <NA>) are accepted; fewer than eight fields are an error.
    """
    path = Path(path)
    rows = []
    for lineno, line in _content_lines(path):
        fields = line.split()
        if fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise _fail(path, lineno, f"expected 10 fields, got {len(fields)}")
        start = _number(fields[3], path, lineno, "start time (field 4)")
        duration = _number(fields[4], path, lineno, "duration (field 5)")
        if duration < 0:
            raise _fail(path, lineno, f"duration (field 5) must not be negative, got {fields[4]}")
        rows.append((fields[1], lineno, Turn(start, start + duration, fields[7])))
    return tuple(sorted(_select(rows, recording, path), key=lambda t: (t.start, t.end)))


def read_uem(path: Path, recording: str | None = None) -> tuple[tuple[float, float], ...]:
    """Scored regions from a UEM file: `file chan start end` (or `file start end`)."""
    path = Path(path)
    rows = []
    for lineno, line in _content_lines(path):
        fields = line.split()
        if len(fields) not in (3, 4):
            raise _fail(path, lineno, f"expected 4 fields (file channel start end), got {len(fields)}")
        start = _number(fields[-2], path, lineno, "start time")
        end = _number(fields[-1], path, lineno, "end time")
        if end < start:
            raise _fail(path, lineno, f"end time {fields[-1]} is before start time {fields[-2]}")
        rows.append((fields[0], lineno, (start, end)))
    return tuple(sorted(_select(rows, recording, path)))


_STM_SKIP_SPEAKERS = {"inter_segment_gap"}
_STM_SKIP_TEXT = {"ignore_time_segment_in_scoring"}


def read_stm(path: Path, recording: str | None = None) -> tuple[Segment, ...]:
    """Speaker-attributed, timed text from an STM file: `file chan speaker start end [<label>] text`.

    NIST's `inter_segment_gap` speaker and `ignore_time_segment_in_scoring` segments are skipped.
    """
    path = Path(path)
    rows = []
    for lineno, line in _content_lines(path):
        fields = line.split(None, 5)
        if len(fields) < 5:
            raise _fail(
                path, lineno, f"expected at least 5 fields (file channel speaker start end), got {len(fields)}"
            )
        start = _number(fields[3], path, lineno, "start time (field 4)")
        end = _number(fields[4], path, lineno, "end time (field 5)")
        if end < start:
            raise _fail(path, lineno, f"end time {fields[4]} is before start time {fields[3]}")
        text = fields[5] if len(fields) > 5 else ""
        if text.startswith("<"):  # optional label such as <o,f0,male>
            label_end = text.find(">")
            if label_end < 0:
                raise _fail(path, lineno, "unclosed <label> before the text")
            text = text[label_end + 1 :].strip()
        if fields[2].lower() in _STM_SKIP_SPEAKERS or text.strip().lower() in _STM_SKIP_TEXT:
            continue
        rows.append((fields[0], lineno, Segment(start, end, text, speaker=fields[2])))
    return tuple(sorted(_select(rows, recording, path), key=lambda s: (s.start, s.end)))


# --------------------------------------------------------------------------- plain text

_PREFIX = re.compile(r"^(?:-\s*)?\[?(?P<name>[^\[\]:]{1,40}?)\]?\s*:\s+(?P<text>\S.*)$")


def speaker_prefix(line: str) -> tuple[str, str] | None:
    """("Diane", "Hello?") for "Diane: Hello?" or "[SPEAKER_00]: Hello?"; None without a prefix.

    A name is 1 to 4 words, not a bare number, up to 40 characters.
    """
    m = _PREFIX.match(line.strip())
    if not m:
        return None
    name = m.group("name").strip()
    if not name or len(name.split()) > 4 or name.replace(".", "").isdigit():
        return None
    return name, m.group("text").strip()


def read_text(path: Path) -> tuple[Segment, ...]:
    """Untimed text, one segment per non-empty line (times are 0).

    When every non-empty line starts with a speaker prefix ("Diane: Hello?", as our TXT writer
    writes), the prefix becomes the segment's speaker and is not part of the text; otherwise
    the lines are taken verbatim and have no speaker.
    """
    lines = [ln.strip() for ln in _lines(Path(path)) if ln.strip()]
    prefixed = [speaker_prefix(ln) for ln in lines]
    if lines and all(p is not None for p in prefixed):
        return tuple(Segment(0.0, 0.0, text, speaker=name) for name, text in prefixed)  # type: ignore[misc]
    return tuple(Segment(0.0, 0.0, ln) for ln in lines)


# --------------------------------------------------------------------------- subtitles

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})$")


def _timestamp(text: str, path: Path, lineno: int) -> float:
    m = _TIME.match(text.strip())
    if not m:
        raise _fail(path, lineno, f"bad timestamp {text.strip()!r} (expected hh:mm:ss.mmm)")
    h, mnt, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + float("0." + frac)


def _timing(line: str, path: Path, lineno: int) -> tuple[float, float]:
    left, _, right = line.partition("-->")
    if not right.strip():
        raise _fail(path, lineno, f"expected 'start --> end', got {line.strip()!r}")
    start = _timestamp(left, path, lineno)
    end = _timestamp(right.split()[0], path, lineno)  # cue settings may follow the end time
    if end < start:
        raise _fail(path, lineno, f"cue ends ({right.split()[0]}) before it starts ({left.strip()})")
    return start, end


def _blocks(lines: Sequence[str], first_lineno: int) -> Iterator[tuple[int, list[str]]]:
    """Blank-line separated blocks: (line number of the block's first line, its lines)."""
    block: list[str] = []
    start = first_lineno
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if line.strip():
            if not block:
                start = first_lineno + i
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # markup tags, and SSA overrides such as {\an8}


def _clean(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def _split_cue(start: float, end: float, pieces: Sequence[tuple[str | None, str]]) -> list[Segment]:
    """Segments for the (speaker, text) pieces of one cue, its time shared in proportion to length."""
    merged: list[tuple[str | None, str]] = []
    for speaker, text in pieces:
        if not text:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1] = (speaker, f"{merged[-1][1]} {text}")
        else:
            merged.append((speaker, text))
    total = sum(len(t) for _, t in merged)
    out, t = [], start
    for speaker, text in merged:
        d = (end - start) * len(text) / total if total else 0.0
        out.append(Segment(t, t + d, text, speaker=speaker))
        t += d
    if out:  # no rounding drift at the cue's end
        last = out[-1]
        out[-1] = Segment(last.start, end, last.text, last.speaker)
    return out


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+(?P<name>[^>]*))?>|</v\s*>", re.IGNORECASE)


def _voice_pieces(payload: str) -> list[tuple[str | None, str]]:
    pieces: list[tuple[str | None, str]] = []
    speaker: str | None = None
    pos = 0
    for m in _VOICE.finditer(payload):
        pieces.append((speaker, _clean(payload[pos : m.start()])))
        if m.group(0).startswith("</"):
            speaker = None
        else:
            speaker = html.unescape(m.group("name") or "").strip() or None
        pos = m.end()
    pieces.append((speaker, _clean(payload[pos:])))
    return pieces


def read_vtt(path: Path) -> tuple[Segment, ...]:
    """Cues of a WebVTT file; the speaker comes from voice spans `<v Name>...</v>`.

    A cue with several voices is split into one segment per voice, its time shared in proportion
    to their length. Other markup is removed and entities decoded. NOTE, STYLE and REGION blocks
    are skipped.
    """
    path = Path(path)
    lines = _lines(path)
    if not lines or not lines[0].startswith("WEBVTT"):
        raise _fail(path, 1, "expected the WEBVTT header")
    body_start = next((i for i, ln in enumerate(lines) if not ln.strip()), len(lines))
    segments: list[Segment] = []
    for lineno, block in _blocks(lines[body_start:], body_start + 1):
        first = block[0].strip()
        if re.match(r"^(NOTE|STYLE|REGION)(\s|$)", first):
            continue
        if "-->" in block[0]:
            k = 0
        elif len(block) > 1 and "-->" in block[1]:
            k = 1  # cue identifier
        else:
            raise _fail(path, lineno, f"expected a cue timing line 'start --> end', got {first!r}")
        start, end = _timing(block[k], path, lineno + k)
        segments += _split_cue(start, end, _voice_pieces("\n".join(block[k + 1 :])))
    return tuple(segments)


def read_srt(path: Path) -> tuple[Segment, ...]:
    """Cues of a SubRip file; the speaker comes from a "Name: text" prefix.

    A prefix may start any line of a cue ("[Name]: text" and a leading "- " are accepted too); a
    line without one continues the previous speaker, across cues, as subtitles mark only
    changes. A cue with several speakers is split, its time shared in proportion to length.
    """
    path = Path(path)
    lines = _lines(path)
    segments: list[Segment] = []
    speaker: str | None = None
    for lineno, block in _blocks(lines, 1):
        k = 0
        if "-->" not in block[0]:
            if not block[0].strip().isdigit():
                raise _fail(path, lineno, f"expected a cue number or 'start --> end', got {block[0].strip()!r}")
            k = 1
        if k >= len(block) or "-->" not in block[k]:
            raise _fail(path, lineno + k, "expected a timing line 'start --> end' after the cue number")
        start, end = _timing(block[k], path, lineno + k)
        pieces = []
        for line in block[k + 1 :]:
            text = _clean(line)
            prefix = speaker_prefix(text)
            if prefix is not None:
                speaker, text = prefix
            pieces.append((speaker, text))
        segments += _split_cue(start, end, pieces)
    return tuple(segments)


# --------------------------------------------------------------------------- our JSON


def read_json(path: Path) -> Transcript:
    """A transcript written by our JSON writer (words with times and speakers, turns, stats)."""
    from transcribe.writers import transcript_from_json

    path = Path(path)
    try:
        data = json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise _fail(path, e.lineno, f"not valid JSON: {e.msg}") from None
    try:
        return transcript_from_json(data)
    except TranscribeError as e:
        raise _fail(path, None, str(e)) from None
