"""Datasets, pairing of references with hypotheses, and scoring of every file under every convention.

A dataset is either a manifest (JSON lines, one recording a line) or a folder where references sit
beside the audio under the same stem (`a.wav`, `a.stm`, `a.rttm`, `a.uem`, `a.txt`). Hypotheses
are found in a folder by stem, from any tool: our JSON, RTTM, WebVTT, SRT, STM or plain text.

`score` never stops at one bad file: the error is recorded in that file's result and the next file
is scored. `ScoreResults.failed` lists those files; the CLI exits non-zero when there are any.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from transcribe.errors import TranscribeError
from transcribe.evaluation import metrics as m
from transcribe.evaluation import readers
from transcribe.evaluation.errors import EvalError
from transcribe.types import Segment, Transcript, Turn

log = logging.getLogger("transcribe.evaluation")

__all__ = [
    "AUDIO_EXTENSIONS",
    "DatasetItem",
    "FileResult",
    "HYPOTHESIS_FORMATS",
    "Hypothesis",
    "Reference",
    "ScoreOptions",
    "ScoreResults",
    "find_hypotheses",
    "load_dataset",
    "read_hypothesis",
    "read_reference",
    "score",
    "score_file",
]

Hook = Callable[[str, float, "float | None"], None]

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .m4a .ogg .opus .webm .mp4 .mkv .mov .aac .wma .aiff .aif .sph".split()
)
REFERENCE_KINDS = ("text", "stm", "rttm", "uem")
_REF_EXTENSIONS = {".txt": "text", ".stm": "stm", ".rttm": "rttm", ".uem": "uem"}

# Preference order: the first format present gives the text; RTTM, else our JSON's turns, else
# the speaker-attributed text, gives the diarization.
HYPOTHESIS_FORMATS = ("json", "stm", "vtt", "srt", "txt", "rttm")
_TEXT_FORMATS = ("json", "stm", "vtt", "srt", "txt")


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetItem:
    """One recording of a dataset and whichever references it has."""

    stem: str
    audio: Path | None = None
    language: str | None = None
    text: Path | None = None
    stm: Path | None = None
    rttm: Path | None = None
    uem: Path | None = None
    num_speakers: int | None = None

    @property
    def references(self) -> dict[str, Path]:
        return {k: getattr(self, k) for k in REFERENCE_KINDS if getattr(self, k) is not None}

    @property
    def scorable(self) -> bool:
        """Whether there is something to score against (a UEM alone is not)."""
        return any(getattr(self, k) is not None for k in ("text", "stm", "rttm"))


_MANIFEST_KEYS = {"audio", "id", "language", "num_speakers", *REFERENCE_KINDS}
# What samples/dev.jsonl and benchmarks/compose.py write beside those, for people to read:
# how many speak (`num_speakers` would hand the count to the pipeline), how long, what was used.
_MANIFEST_INFO_KEYS = {"speakers", "duration", "info"}


def load_dataset(path: Path, *, language: str | None = None) -> tuple[DatasetItem, ...]:
    """The recordings of a manifest (a `.jsonl` / `.json` file) or of a folder.

    Manifest lines are JSON objects: `audio` (path relative to the manifest), `language`, and
    any of `text`, `stm`, `rttm`, `uem` (paths relative to the manifest); optional `id` (the
    stem used to pair hypotheses, default the audio file's stem) and `num_speakers`; `speakers`,
    `duration` and `info` are read past (information for people). `language` here is the default
    for items that do not give one.
    """
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, language)
    if not path.exists():
        raise EvalError(f"{path}: no such file or folder")
    return _load_manifest(path, language)


def _load_folder(folder: Path, language: str | None) -> tuple[DatasetItem, ...]:
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        ext = p.suffix.lower()
        kind = "audio" if ext in AUDIO_EXTENSIONS else _REF_EXTENSIONS.get(ext)
        if kind is None:
            continue
        slot = found.setdefault(p.stem, {})
        if kind in slot:
            raise EvalError(f"{folder}: two {kind} files for {p.stem!r}: {slot[kind].name}, {p.name}")
        slot[kind] = p
    items = tuple(
        DatasetItem(stem=stem, language=language, **kinds)  # type: ignore[arg-type]
        for stem, kinds in sorted(found.items())
    )
    if not items:
        raise EvalError(f"{folder}: no audio and no references (.stm .rttm .uem .txt) in this folder")
    return items


def _load_manifest(path: Path, language: str | None) -> tuple[DatasetItem, ...]:
    items: list[DatasetItem] = []
    seen: dict[str, int] = {}
    lines = readers._read(path).splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalError(f"{where}: not valid JSON: {e.msg}") from None
        if not isinstance(row, dict):
            raise EvalError(f"{where}: expected a JSON object, got {type(row).__name__}")
        unknown = sorted(set(row) - _MANIFEST_KEYS - _MANIFEST_INFO_KEYS)
        if unknown:
            known = ", ".join(sorted(_MANIFEST_KEYS | _MANIFEST_INFO_KEYS))
            raise EvalError(f"{where}: unknown key {unknown[0]!r} (known: {known})")
        for key in ("audio", "id", "language", *REFERENCE_KINDS):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise EvalError(f"{where}: {key!r} must be a string")
        if row.get("num_speakers") is not None and (
            not isinstance(row["num_speakers"], int) or row["num_speakers"] < 1
        ):
            raise EvalError(f"{where}: 'num_speakers' must be a positive integer")
        if not row.get("audio") and not row.get("id"):
            raise EvalError(f"{where}: needs 'audio' (or at least 'id')")
        audio = path.parent / row["audio"] if row.get("audio") else None
        stem = row.get("id") or Path(row["audio"]).stem
        if stem in seen:
            raise EvalError(f"{where}: recording {stem!r} is already on line {seen[stem]}: give each an 'id'")
        seen[stem] = lineno
        refs = {k: path.parent / row[k] for k in REFERENCE_KINDS if row.get(k)}
        items.append(
            DatasetItem(
                stem=stem,
                audio=audio,
                language=row.get("language") or language,
                num_speakers=row.get("num_speakers"),
                **refs,
            )
        )
    if not items:
        raise EvalError(f"{path}: the manifest lists no recordings")
    return tuple(items)


def find_hypotheses(
    path: Path, formats: Sequence[str] | None = None
) -> dict[str, dict[str, Path]]:
    """{stem: {format: file}} of hypothesis files in a folder (or one file), by extension."""
    path = Path(path)
    allowed = tuple(formats) if formats else HYPOTHESIS_FORMATS
    for f in allowed:
        if f not in HYPOTHESIS_FORMATS:
            raise EvalError(f"unknown hypothesis format {f!r}: choose from {', '.join(HYPOTHESIS_FORMATS)}")
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        raise EvalError(f"{path}: no such file or folder")
    out: dict[str, dict[str, Path]] = {}
    for p in files:
        fmt = p.suffix.lower().lstrip(".")
        if fmt in allowed:
            out.setdefault(p.stem, {})[fmt] = p
    return out


# --------------------------------------------------------------------------- the two sides


@dataclass(frozen=True)
class Reference:
    """What the references of one recording offer. None: that reference does not exist."""

    text: tuple[Segment, ...] | None = None  # STM lines (timed, with speakers), else the text file
    text_timed: bool = False
    turns: tuple[Turn, ...] | None = None  # RTTM
    uem: tuple[tuple[float, float], ...] | None = None
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hypothesis:
    """What a system's outputs for one recording offer. None: no file gives it."""

    text: tuple[Segment, ...] | None = None
    text_timed: bool = False
    turns: tuple[Turn, ...] | None = None
    transcript: Transcript | None = None  # our JSON, for word times and stats
    sources: Mapping[str, str] = field(default_factory=dict)


def read_reference(item: DatasetItem) -> Reference:
    """Read every reference of `item` (raises EvalError naming the file and line)."""
    sources: dict[str, str] = {}
    text, timed = None, False
    if item.stm is not None:
        text, timed = readers.read_stm(item.stm, item.stem), True
        sources["text"] = str(item.stm)
    elif item.text is not None:
        text = readers.read_text(item.text)
        sources["text"] = str(item.text)
    turns = None
    if item.rttm is not None:
        turns = readers.read_rttm(item.rttm, item.stem)
        sources["turns"] = str(item.rttm)
    uem = None
    if item.uem is not None:
        uem = readers.read_uem(item.uem, item.stem)
        sources["uem"] = str(item.uem)
    return Reference(text, timed, turns, uem, sources)


def read_hypothesis(stem: str, files: Mapping[str, Path]) -> Hypothesis:
    """Read a system's outputs for one recording: text from the first of json, stm, vtt, srt, txt;
    diarization from RTTM, else our JSON's turns, else the speaker-attributed text."""
    sources: dict[str, str] = {}
    text: tuple[Segment, ...] | None = None
    timed = False
    transcript = None
    turns: tuple[Turn, ...] | None = None
    for fmt in _TEXT_FORMATS:
        if fmt not in files:
            continue
        p = files[fmt]
        if fmt == "json":
            transcript = readers.read_json(p)
            text, timed = transcript.segments, True
            if transcript.turns:
                turns = transcript.turns
                sources["turns"] = str(p)
        elif fmt == "stm":
            text, timed = readers.read_stm(p, stem), True
        elif fmt == "vtt":
            text, timed = readers.read_vtt(p), True
        elif fmt == "srt":
            text, timed = readers.read_srt(p), True
        else:
            text = readers.read_text(p)
        sources["text"] = str(p)
        break
    if "rttm" in files:
        turns = readers.read_rttm(files["rttm"], stem)
        sources["turns"] = str(files["rttm"])
    elif turns is None and text is not None and timed and any(s.speaker for s in text):
        turns = m.turns_from_segments(text)
        sources["turns"] = sources["text"]
    return Hypothesis(text, timed, turns, transcript, sources)


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ScoreOptions:
    """How files are scored. The strict DER is fixed: collar 0, overlap scored."""

    forgiving_collar: float = 0.5  # pyannote's collar: total width, so 0.5 is +/-0.25 s
    tcp_collar: float = 5.0  # seconds; meeteval's recommended tcpWER collar
    speaker_tolerance: float = 0.25  # seconds around reference segments, for speaker attribution
    # Normalization language of a recording: the dataset's, else our JSON's (the language it was
    # transcribed in), else this; None: Whisper's basic normalizer.
    language: str | None = None

    def __post_init__(self) -> None:
        for name in ("forgiving_collar", "tcp_collar", "speaker_tolerance"):
            if getattr(self, name) < 0:
                raise EvalError(f"{name.replace('_', '-')} must not be negative")


@dataclass(frozen=True)
class FileResult:
    """The scores of one recording (or, pooled, of all: stem "overall"). A metric is None when its
    references or hypotheses do not exist; `error` says why a file could not be scored."""

    stem: str
    language: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)  # "ref text", "hyp turns"... -> file
    error: str | None = None
    wer: m.WordErrors | None = None
    der_strict: m.DiarizationErrors | None = None
    der_forgiving: m.DiarizationErrors | None = None
    cpwer: m.WordErrors | None = None
    tcpwer: m.WordErrors | None = None
    speaker_attribution: m.SpeakerAttribution | None = None
    speed: m.Speed | None = None
    files: int = 1  # how many recordings a pooled result covers

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (m.WordErrors, m.DiarizationErrors, m.SpeakerAttribution)):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            elif isinstance(value, m.Speed):
                value = {"audio": value.audio, "stages": dict(value.stages), "total": value.total,
                         "peak_rss_mb": value.peak_rss_mb}
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileResult:
        kinds: dict[str, Any] = {
            "wer": m.WordErrors, "cpwer": m.WordErrors, "tcpwer": m.WordErrors,
            "der_strict": m.DiarizationErrors, "der_forgiving": m.DiarizationErrors,
            "speaker_attribution": m.SpeakerAttribution, "speed": m.Speed,
        }
        values = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            values[f.name] = kinds[f.name].from_dict(v) if f.name in kinds and v is not None else v
        return cls(**values)


_POOLED = ("wer", "der_strict", "der_forgiving", "cpwer", "tcpwer", "speaker_attribution", "speed")


def pool(results: Iterable[FileResult], stem: str = "overall") -> FileResult:
    """One result for all files scored without error: counts added, so overall WER is total
    errors / total reference words and overall DER is pooled seconds, as pyannote's
    `abs(metric)`. Each metric pools over the files that have it."""
    ok = [r for r in results if r.error is None]
    values: dict[str, Any] = {}
    for name in _POOLED:
        present = [getattr(r, name) for r in ok if getattr(r, name) is not None]
        if present:
            total = present[0]
            for v in present[1:]:
                total = total + v
            values[name] = total
    languages = {r.language for r in ok}
    return FileResult(stem, language=languages.pop() if len(languages) == 1 else None, files=len(ok), **values)


@dataclass(frozen=True)
class ScoreResults:
    """Per-file results, in dataset order, and the options they were scored with."""

    files: tuple[FileResult, ...]
    options: ScoreOptions = field(default_factory=ScoreOptions)
    unmatched_hypotheses: tuple[str, ...] = ()  # stems with outputs but no reference

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return tuple(r for r in self.files if r.error is not None)

    @property
    def overall(self) -> FileResult:
        return pool(self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "options": {f.name: getattr(self.options, f.name) for f in fields(self.options)},
            "files": [r.to_dict() for r in self.files],
            "overall": self.overall.to_dict(),
            "failed": len(self.failed),
            "unmatched_hypotheses": list(self.unmatched_hypotheses),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreResults:
        known = {f.name for f in fields(ScoreOptions)}
        options = ScoreOptions(**{k: v for k, v in (data.get("options") or {}).items() if k in known})
        return cls(
            tuple(FileResult.from_dict(r) for r in data["files"]),
            options,
            tuple(data.get("unmatched_hypotheses") or ()),
        )


def score_file(
    item: DatasetItem, hypothesis_files: Mapping[str, Path], options: ScoreOptions = ScoreOptions()
) -> FileResult:
    """Score one recording's outputs against its references, under every convention that its
    references and outputs allow. Any error is recorded in the result, never raised."""
    base = FileResult(item.stem, language=item.language or options.language)
    try:
        if not hypothesis_files:
            raise EvalError(f"no output for {item.stem!r} (looked for {', '.join(HYPOTHESIS_FORMATS)})")
        ref = read_reference(item)
        hyp = read_hypothesis(item.stem, hypothesis_files)
        json_language = hyp.transcript.language if hyp.transcript is not None else None
        language = item.language or json_language or options.language
        base = replace(base, language=language)
        sources = {f"ref {k}": v for k, v in ref.sources.items()} | {
            f"hyp {k}": v for k, v in hyp.sources.items()
        }
        return replace(base, sources=sources, **_metrics(ref, hyp, language, options))
    except TranscribeError as e:
        return replace(base, error=str(e))
    except Exception as e:  # a bug or a library's complaint about one file must not stop the rest
        log.debug("scoring %s failed", item.stem, exc_info=True)
        return replace(base, error=f"{type(e).__name__}: {e}".splitlines()[0])


def _metrics(ref: Reference, hyp: Hypothesis, language: str | None, o: ScoreOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ref.text is not None and hyp.text is not None:
        out["wer"] = m.word_errors(
            " ".join(s.text for s in ref.text), " ".join(s.text for s in hyp.text), language
        )
        ref_attributed = all(s.speaker is not None for s in ref.text)
        hyp_attributed = any(s.speaker is not None for s in hyp.text)
        if ref_attributed and hyp_attributed:
            both_timed = ref.text_timed and hyp.text_timed
            out["cpwer"], out["tcpwer"] = m.speaker_attributed_errors(
                ref.text, hyp.text, language, timed=both_timed, tcp_collar=o.tcp_collar
            )
            if both_timed:
                out["speaker_attribution"] = m.speaker_attribution(
                    ref.text, m.pseudo_words(hyp.text), language, tolerance=o.speaker_tolerance
                )
    if ref.turns is not None and hyp.turns is not None:
        out["der_strict"] = m.diarization_errors(ref.turns, hyp.turns, ref.uem, collar=0.0, skip_overlap=False)
        out["der_forgiving"] = m.diarization_errors(
            ref.turns, hyp.turns, ref.uem, collar=o.forgiving_collar, skip_overlap=True
        )
    if hyp.transcript is not None:
        out["speed"] = m.speed(hyp.transcript.stats, hyp.transcript.duration)
    return out


def score(
    items: Sequence[DatasetItem],
    hypotheses: Mapping[str, Mapping[str, Path]],
    options: ScoreOptions = ScoreOptions(),
    hook: Hook | None = None,
) -> ScoreResults:
    """Score every item against `hypotheses` ({stem: {format: file}}, see `find_hypotheses`).

    `hook(stage, completed, total)` reports progress. Items without references are skipped
    (a folder dataset may hold audio alone); hypotheses without a reference are listed in
    `unmatched_hypotheses`.
    """
    say = hook or (lambda stage, done, total: None)
    scored = [it for it in items if it.scorable]
    if not scored:
        raise EvalError("no recording has a reference (.stm, .rttm, .txt): nothing to score")
    results = []
    for i, item in enumerate(scored):
        say("score", float(i), float(len(scored)))
        results.append(score_file(item, hypotheses.get(item.stem, {}), options))
        if results[-1].error:
            log.info("%s: %s", item.stem, results[-1].error)
    say("score", float(len(scored)), float(len(scored)))
    stems = {it.stem for it in items}
    return ScoreResults(tuple(results), options, tuple(sorted(set(hypotheses) - stems)))
