"""Output formats: one writer class per format, registered by name in WRITERS, all from one
Transcript.

Subtitle formats (VTT, SRT) share one cue iterator, `iter_cues`. `write_outputs` writes several
formats next to each other, all or nothing: every file goes to a temporary file in the target
folder and is renamed into place only when all of them are complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import json
import logging
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence, TextIO

import webvtt

from .attribution import ends_sentence
from .errors import InputError, OutputError, TranscribeError, UsageError
from .types import ModelInfo, Segment, Transcript, Turn, Word

log = logging.getLogger("transcribe")

__all__ = [
    "Cue",
    "JsonWriter",
    "MinutesWriter",
    "Paragraph",
    "RttmWriter",
    "SrtWriter",
    "TxtWriter",
    "VttWriter",
    "WRITERS",
    "Writer",
    "check_outputs",
    "iter_cues",
    "output_paths",
    "paragraphs",
    "parse_formats",
    "transcript_from_json",
    "transcript_to_json",
    "write_outputs",
]

JSON_VERSION = 1


# --------------------------------------------------------------------------- time formats


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _timestamp(seconds: float, marker: str = ".") -> str:
    """hh:mm:ss.mmm (VTT) or hh:mm:ss,mmm (SRT)."""
    h, rest = divmod(_ms(seconds), 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{marker}{ms:03d}"


def _clock(seconds: float) -> str:
    """hh:mm:ss, for timestamps in the minutes."""
    h, rest = divmod(int(max(0.0, seconds)), 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _duration(seconds: float) -> str:
    """h:mm:ss, for lengths of time."""
    h, rest = divmod(round(max(0.0, seconds)), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _stem(source: str) -> str:
    return PurePath(source).stem if source else ""


# --------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class Cue:
    """One subtitle: at most `max_lines` lines, one speaker, timed from its words."""

    start: float
    end: float
    speaker: str | None
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class _Token:
    start: float
    end: float
    text: str  # as recognised, leading space kept
    speaker: str | None


def _width(text: str) -> int:
    """Display width: wide (CJK) characters count two, combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _join(texts: Iterable[str]) -> str:
    return "".join(texts).strip()


def _tokens(seg: Segment) -> Iterator[_Token]:
    if seg.words:
        for w in seg.words:
            if w.text.strip():
                speaker = w.speaker if w.speaker is not None else seg.speaker
                yield _Token(w.start, max(w.start, w.end), w.text, speaker)
        return
    # No word timings (ASR without word timestamps): spread the segment's time over its words
    # in proportion to their length.
    parts = seg.text.split()
    total = sum(len(p) + 1 for p in parts)
    t, span = seg.start, max(0.0, seg.end - seg.start)
    for p in parts:
        d = span * (len(p) + 1) / total
        yield _Token(t, t + d, " " + p, seg.speaker)
        t += d


def _greedy_lines(texts: Sequence[str], width: int) -> list[list[str]]:
    """Fewest lines of at most `width` each; a word longer than a line stays whole on its own."""
    lines: list[list[str]] = []
    cur: list[str] = []
    for t in texts:
        if cur and _width(_join([*cur, t])) > width:
            lines.append(cur)
            cur = [t]
        else:
            cur.append(t)
    if cur:
        lines.append(cur)
    return lines


def _wrap(texts: Sequence[str], width: int) -> tuple[str, ...]:
    """Wrap words into lines; two lines are balanced (shorter first line on a tie)."""
    lines = _greedy_lines(texts, width)
    if len(lines) != 2:
        return tuple(_join(line) for line in lines)
    best: tuple[tuple[int, int], str, str] | None = None
    for k in range(1, len(texts)):
        a, b = _join(texts[:k]), _join(texts[k:])
        wa, wb = _width(a), _width(b)
        fits = (wa <= width or k == 1) and (wb <= width or k == len(texts) - 1)
        if fits and (best is None or (max(wa, wb), wa) < best[0]):
            best = ((max(wa, wb), wa), a, b)
    assert best is not None  # the greedy split always fits
    return best[1], best[2]


def iter_cues(
    segments: Iterable[Segment],
    *,
    max_line_chars: int = 42,
    max_lines: int = 2,
    max_duration: float = 7.0,
) -> Iterator[Cue]:
    """Split segments into subtitle cues.

    A cue ends at a speaker change, after a sentence end, before it would need more than
    `max_lines` lines of `max_line_chars` (wrapping on words; a longer word stays whole), and
    before it would last longer than `max_duration` seconds. Times come from the words.
    """
    for seg in segments:
        group: list[_Token] = []
        for tok in _tokens(seg):
            if group and (
                tok.speaker != group[-1].speaker
                or ends_sentence(group[-1].text)
                or tok.end - group[0].start > max_duration
                or len(_greedy_lines([g.text for g in group] + [tok.text], max_line_chars))
                > max_lines
            ):
                yield _cue(group, max_line_chars)
                group = []
            group.append(tok)
        if group:
            yield _cue(group, max_line_chars)


def _cue(group: Sequence[_Token], width: int) -> Cue:
    start = group[0].start
    end = max(start, max(t.end for t in group))
    return Cue(start, end, group[0].speaker, _wrap([t.text for t in group], width))


# --------------------------------------------------------------------------- paragraphs


@dataclass(frozen=True)
class Paragraph:
    """Consecutive segments of one speaker, merged (for TXT and the minutes)."""

    start: float
    end: float
    speaker: str | None
    text: str


def paragraphs(
    segments: Iterable[Segment], *, unattributed_gap: float = 2.0
) -> tuple[Paragraph, ...]:
    """Merge consecutive segments of the same speaker.

    Without speakers (ASR only) there would be a single paragraph, so there a pause longer than
    `unattributed_gap` seconds starts a new one.
    """
    out: list[Paragraph] = []
    for seg in segments:
        text = seg.text.strip()
        if not text:
            continue
        if out and out[-1].speaker == seg.speaker and (
            seg.speaker is not None or seg.start - out[-1].end <= unattributed_gap
        ):
            last = out[-1]
            out[-1] = Paragraph(
                last.start, max(last.end, seg.end), last.speaker, f"{last.text} {text}"
            )
        else:
            out.append(Paragraph(seg.start, seg.end, seg.speaker, text))
    return tuple(out)


def _shares(times: Mapping[str, float], units: int) -> dict[str, int]:
    """Integer shares of `units` in proportion to `times`, summing to `units` exactly
    (largest remainder), or all zero when no one spoke."""
    total = sum(max(0.0, t) for t in times.values())
    if total <= 0:
        return {k: 0 for k in times}
    raw = {k: max(0.0, t) * units / total for k, t in times.items()}
    out = {k: int(v) for k, v in raw.items()}
    left = units - sum(out.values())
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[:left]:
        out[k] += 1
    return out


# --------------------------------------------------------------------------- writers


class Writer:
    """One output format. Subclasses set `name` and `extension` and implement `write`."""

    name: ClassVar[str]
    extension: ClassVar[str]

    def write(self, transcript: Transcript, file: TextIO) -> None:
        raise NotImplementedError

    def to_string(self, transcript: Transcript) -> str:
        buf = io.StringIO()
        self.write(transcript, buf)
        return buf.getvalue()


@dataclass(frozen=True)
class SubtitleWriter(Writer):
    """Shared cue settings of the subtitle formats."""

    max_line_chars: int = 42
    max_lines: int = 2
    max_cue_duration: float = 7.0

    def cues(self, transcript: Transcript) -> Iterator[Cue]:
        return iter_cues(
            transcript.segments,
            max_line_chars=self.max_line_chars,
            max_lines=self.max_lines,
            max_duration=self.max_cue_duration,
        )


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class VttWriter(SubtitleWriter):
    """WebVTT through webvtt-py, the speaker in a voice span: `<v Diane>Hello?</v>`."""

    name: ClassVar[str] = "vtt"
    extension: ClassVar[str] = "vtt"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        captions = []
        for cue in self.cues(transcript):
            lines = [_vtt_escape(line) for line in cue.lines]
            if cue.speaker is not None:
                lines[0] = f"<v {_vtt_escape(cue.speaker)}>{lines[0]}"
                lines[-1] = f"{lines[-1]}</v>"
            captions.append(
                webvtt.Caption(_timestamp(cue.start), _timestamp(cue.end), "\n".join(lines))
            )
        file.write(webvtt.WebVTT(captions=captions).content)


@dataclass(frozen=True)
class SrtWriter(SubtitleWriter):
    """SubRip: the same cues, the speaker as a prefix on the first line ("Diane: Hello?")."""

    name: ClassVar[str] = "srt"
    extension: ClassVar[str] = "srt"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        for i, cue in enumerate(self.cues(transcript), start=1):
            lines = list(cue.lines)
            if cue.speaker is not None:
                lines[0] = f"{cue.speaker}: {lines[0]}"
            file.write(
                f"{i}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n"
                + "\n".join(lines)
                + "\n\n"
            )


class TxtWriter(Writer):
    """Plain text, one line per speaker paragraph: "Diane: text" (just text without speakers)."""

    name: ClassVar[str] = "txt"
    extension: ClassVar[str] = "txt"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        for p in paragraphs(transcript.segments):
            file.write(f"{p.speaker}: {p.text}\n" if p.speaker is not None else f"{p.text}\n")


def _rttm_field(text: str, default: str) -> str:
    return re.sub(r"\s+", "_", text.strip()) or default


class RttmWriter(Writer):
    """NIST RTTM from the diarization turns (overlap kept): one SPEAKER line per turn."""

    name: ClassVar[str] = "rttm"
    extension: ClassVar[str] = "rttm"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        file_id = _rttm_field(_stem(transcript.source), "unknown")
        for t in sorted(transcript.turns, key=lambda t: (t.start, t.end, t.speaker)):
            file.write(
                f"SPEAKER {file_id} 1 {t.start:.3f} {max(0.0, t.duration):.3f} <NA> <NA> "
                f"{_rttm_field(t.speaker, 'unknown')} <NA> <NA>\n"
            )


def _jsonable(value: Any) -> Any:
    """`default=` for json.dumps: options may hold paths, dataclasses, enums, sets, numpy."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def _r(seconds: float) -> float:
    return round(float(seconds), 3)


def transcript_to_json(transcript: Transcript) -> dict[str, Any]:
    """The JSON document (as a dict) for `transcript`; times rounded to milliseconds."""
    times = transcript.speaking_time()
    total = sum(times.values())
    return {
        "version": JSON_VERSION,
        "source": transcript.source,
        "language": transcript.language,
        "duration": _r(transcript.duration),
        "speakers": [
            {
                "name": name,
                "speaking_time": _r(t),
                "share": round(t / total, 4) if total > 0 else 0.0,
            }
            for name, t in times.items()
        ],
        "segments": [
            {
                "start": _r(s.start),
                "end": _r(s.end),
                "speaker": s.speaker,
                "text": s.text,
                "words": [
                    {
                        "start": _r(w.start),
                        "end": _r(w.end),
                        "word": w.text,
                        "probability": round(float(w.probability), 4),
                        "speaker": w.speaker,
                    }
                    for w in s.words
                ],
            }
            for s in transcript.segments
        ],
        "turns": [
            {"start": _r(t.start), "end": _r(t.end), "speaker": t.speaker} for t in transcript.turns
        ],
        "models": [{"role": m.role, "name": m.name, "sha256": m.sha256} for m in transcript.models],
        "options": dict(transcript.options),
        "stats": dict(transcript.stats),
    }


def transcript_from_json(data: Mapping[str, Any]) -> Transcript:
    """The Transcript back from a document written by JsonWriter (the inverse of
    `transcript_to_json`, up to millisecond rounding). Raises InputError if it is not one."""
    if not isinstance(data, Mapping) or "version" not in data or "segments" not in data:
        raise InputError("not a transcript written by transcribe: no version or segments")
    if data["version"] != JSON_VERSION:
        raise InputError(
            f"transcript JSON version {data['version']!r} is not supported"
            f" (expected {JSON_VERSION})"
        )
    try:
        segments = tuple(
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=s["text"],
                speaker=s.get("speaker"),
                words=tuple(
                    Word(
                        start=float(w["start"]),
                        end=float(w["end"]),
                        text=w["word"],
                        probability=float(w.get("probability", 1.0)),
                        speaker=w.get("speaker"),
                    )
                    for w in s.get("words", ())
                ),
            )
            for s in data["segments"]
        )
        turns = tuple(
            Turn(float(t["start"]), float(t["end"]), t["speaker"]) for t in data.get("turns", ())
        )
        models = tuple(
            ModelInfo(m["role"], m["name"], m.get("sha256")) for m in data.get("models", ())
        )
        return Transcript(
            source=data.get("source", ""),
            duration=float(data.get("duration", 0.0)),
            language=data.get("language"),
            segments=segments,
            turns=turns,
            models=models,
            options=dict(data.get("options") or {}),
            stats=dict(data.get("stats") or {}),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"malformed transcript JSON: {type(e).__name__}: {e}") from None


class JsonWriter(Writer):
    """Everything, for programs: words with times, speakers, turns, models and options."""

    name: ClassVar[str] = "json"
    extension: ClassVar[str] = "json"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        json.dump(
            transcript_to_json(transcript), file, ensure_ascii=False, indent=2, default=_jsonable
        )
        file.write("\n")


_MD_TEXT = re.compile(r"([\\`*_\[\]<>#|])")
_MD_NAME = re.compile(r"([\\`*\[\]<>|])")


def _md(text: str) -> str:
    return _MD_TEXT.sub(r"\\\1", text)


def _md_name(text: str) -> str:
    return _MD_NAME.sub(r"\\\1", text)


class MinutesWriter(Writer):
    """Minutes in Markdown for a clerk: header, participants with speaking time and share,
    then the conversation as timestamped, speaker-attributed paragraphs."""

    name: ClassVar[str] = "md"
    extension: ClassVar[str] = "md"

    def write(self, transcript: Transcript, file: TextIO) -> None:
        stem = _stem(transcript.source)
        out = [f"# Minutes — {stem}" if stem else "# Minutes", ""]
        out.append(f"- **Date:** {_minutes_date(transcript)}")
        out.append(f"- **Duration:** {_duration(transcript.duration)}")
        out.append(f"- **Language:** {transcript.language or 'unknown'}")
        if transcript.source:
            out.append(f"- **Recording:** {_md_name(PurePath(transcript.source).name)}")
        out += ["", "## Participants", ""]

        times = transcript.speaking_time()
        if times:
            shares = _shares(times, 1000)  # tenths of a percent, summing to 100.0 %
            out += ["| Speaker | Speaking time | Share |", "|---|---:|---:|"]
            for name, t in times.items():
                out.append(f"| {_md_name(name)} | {_duration(t)} | {shares[name] / 10:.1f} % |")
        elif transcript.segments:
            out.append("Speakers were not identified (transcription only).")
        else:
            out.append("No speakers were identified.")

        out += ["", "## Conversation", ""]
        paras = paragraphs(transcript.segments)
        if not paras:
            out += ["*No speech was detected.*", ""]
        for p in paras:
            who = f" {_md_name(p.speaker)}:" if p.speaker is not None else ""
            out += [f"**[{_clock(p.start)}]{who}** {_md(p.text)}", ""]
        out.append("---")
        out.append("")
        out.append("*Transcribed automatically: check names and wording before approval.*")
        file.write("\n".join(out) + "\n")


def _minutes_date(transcript: Transcript) -> str:
    given = transcript.options.get("date") if transcript.options else None
    if given:
        return str(given)
    if transcript.source:
        try:
            return dt.date.fromtimestamp(os.stat(transcript.source).st_mtime).isoformat()
        except (OSError, ValueError, OverflowError):
            pass
    return dt.date.today().isoformat()


WRITERS: dict[str, type[Writer]] = {
    w.name: w for w in (VttWriter, SrtWriter, TxtWriter, RttmWriter, JsonWriter, MinutesWriter)
}


# --------------------------------------------------------------------------- output files


def _known() -> str:
    return ", ".join(sorted(WRITERS))


def parse_formats(spec: str | Sequence[str]) -> tuple[str, ...]:
    """'vtt,md' -> ('vtt', 'md'): lower-cased, duplicates dropped, unknown names rejected."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names: dict[str, None] = {}
    for part in parts:
        name = part.strip().lower().lstrip(".")
        if not name:
            continue
        if name not in WRITERS:
            raise UsageError(f"unknown output format {name!r}: choose from {_known()}")
        names.setdefault(name)
    if not names:
        raise UsageError(f"no output format given: choose from {_known()}")
    return tuple(names)


def output_paths(stem: Path, formats: Sequence[str]) -> list[Path]:
    """Where `write_outputs` would write: `<stem>.<extension>` per format."""
    stem = Path(stem)
    return [stem.parent / f"{stem.name}.{WRITERS[n].extension}" for n in parse_formats(formats)]


def check_outputs(stem: Path, formats: Sequence[str], *, overwrite: bool = False) -> list[Path]:
    """The paths `write_outputs` would write; OutputError if any cannot be (or, without
    `overwrite`, already exists). Callers use it to refuse before doing the work."""
    stem = Path(stem)
    folder = stem.parent
    paths = output_paths(stem, formats)
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    for path in paths:
        if path.is_dir():
            raise OutputError(f"{path} is a folder: choose another output name")
        if not overwrite and (path.exists() or path.is_symlink()):
            raise OutputError(f"{path} already exists: use --overwrite to replace it")
    return paths


def write_outputs(
    transcript: Transcript, stem: Path, formats: Sequence[str], *, overwrite: bool = False
) -> list[Path]:
    """Write `transcript` as `<stem>.<extension>` in each format; return the paths written.

    Checks everything before writing anything: unknown formats (UsageError), a missing folder
    and existing files without `overwrite` (OutputError). Each file is written to a temporary
    file in the same folder; all are renamed into place only when every one is complete, so an
    error or an interrupt leaves no partial output and no temporary files.
    """
    names = parse_formats(formats)
    stem = Path(stem)
    folder = stem.parent
    targets = list(zip((WRITERS[n] for n in names), check_outputs(stem, names, overwrite=overwrite)))

    temps: list[Path] = []
    try:
        for cls, path in targets:
            tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            temps.append(tmp)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                cls().write(transcript, f)
                f.flush()
                os.fsync(f.fileno())
        for tmp, (_, path) in zip(temps, targets):
            os.replace(tmp, path)
            log.debug("wrote %s", path)
    except BaseException as e:
        for tmp in temps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                log.warning("could not remove temporary file %s", tmp)
        if isinstance(e, PermissionError):
            raise OutputError(f"cannot write to folder {folder}: permission denied") from e
        if isinstance(e, OSError) and not isinstance(e, TranscribeError):
            raise OutputError(f"cannot write to folder {folder}: {e.strerror or e}") from e
        raise
    return [path for _, path in targets]
