"""Results as rich tables (renderables: the library never prints), JSON and CSV; and comparisons.

The JSON keeps every count, so results load back (`load_results`) and pool again; the CSV is one
flat row per file plus the overall row, rates as fractions (0.1 is 10 %).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from transcribe.errors import OutputError
from transcribe.evaluation.errors import EvalError
from transcribe.evaluation.score import FileResult, ScoreResults, pool

__all__ = [
    "METRICS",
    "Comparison",
    "Delta",
    "FileComparison",
    "Metric",
    "compare",
    "comparison_table",
    "load_results",
    "result_rows",
    "results_table",
    "write_csv",
    "write_json",
]


@dataclass(frozen=True)
class Metric:
    """A headline number of a result, how to show it, and which way is better."""

    name: str
    label: str
    get: Callable[[FileResult], float | None]
    higher_is_better: bool = False
    percent: bool = True
    decimals: int = 1  # as shown: of the percentage, or of the number

    def value(self, r: FileResult) -> float | None:
        try:
            return self.get(r)
        except AttributeError:  # the metric's counts are absent (None)
            return None

    def format(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value * 100:.{self.decimals}f}%" if self.percent else f"{value:.{self.decimals}f}"


METRICS: tuple[Metric, ...] = (
    Metric("wer", "WER", lambda r: r.wer.rate),
    Metric("cpwer", "cpWER", lambda r: r.cpwer.rate),
    Metric("tcpwer", "tcpWER", lambda r: r.tcpwer.rate),
    Metric("speaker_attribution", "Right speaker", lambda r: r.speaker_attribution.rate, True),
    Metric("der_strict", "DER strict", lambda r: r.der_strict.der),
    Metric("jer_strict", "JER strict", lambda r: r.der_strict.jer),
    Metric("der_forgiving", "DER forgiving", lambda r: r.der_forgiving.der),
    Metric("jer_forgiving", "JER forgiving", lambda r: r.der_forgiving.jer),
    Metric("rtf", "RTF", lambda r: r.speed.rtf, percent=False, decimals=3),
    Metric("peak_rss_mb", "Peak MB", lambda r: r.speed.peak_rss_mb, percent=False, decimals=0),
)
_BY_NAME = {mt.name: mt for mt in METRICS}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _fixed(value: float | None, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _has(results: Sequence[FileResult], attr: str) -> bool:
    return any(getattr(r, attr) is not None for r in results)


# --------------------------------------------------------------------------- tables


def results_table(results: ScoreResults) -> RenderableType:
    """Words, diarization, speed and failures, one table each (only those with something to show)."""
    overall = results.overall
    ok = [r for r in results.files if r.error is None] + [overall]
    parts: list[RenderableType] = []
    o = results.options

    def name(r: FileResult) -> Text:
        return Text("overall", style="bold") if r is overall else Text(r.stem)

    if _has(ok, "wer"):
        t = Table(title=f"Words (tcpWER collar {o.tcp_collar:g} s)", title_justify="left")
        t.add_column("File", no_wrap=True)
        for col in ("Lang", "Ref words", "WER", "Sub", "Del", "Ins", "cpWER", "tcpWER", "Right spk"):
            t.add_column(col, justify="left" if col == "Lang" else "right")
        for r in ok:
            w = r.wer
            t.add_row(
                name(r),
                r.language or "",
                str(w.ref_words) if w else "–",
                _pct(w.rate) if w else "–",
                *((str(w.substitutions), str(w.deletions), str(w.insertions)) if w else ("–",) * 3),
                _pct(r.cpwer.rate) if r.cpwer else "–",
                _pct(r.tcpwer.rate) if r.tcpwer else "–",
                _pct(r.speaker_attribution.rate) if r.speaker_attribution else "–",
            )
        parts.append(t)

    o = results.options
    for attr, title in (
        ("der_strict", "Diarization, strict: collar 0, overlap scored"),
        (
            "der_forgiving",
            f"Diarization, forgiving: collar ±{o.forgiving_collar / 2:g} s "
            f"(pyannote collar={o.forgiving_collar:g}), overlap skipped",
        ),
    ):
        if not _has(ok, attr):
            continue
        t = Table(title=title, title_justify="left")
        t.add_column("File", no_wrap=True)
        for col in ("DER", "Missed", "False alarm", "Confusion", "JER", "Scored s"):
            t.add_column(col, justify="right")
        for r in ok:
            d = getattr(r, attr)
            if d is None:
                t.add_row(name(r), *["–"] * 6)
                continue
            t.add_row(
                name(r),
                _pct(d.der),
                _pct(d.missed_rate),
                _pct(d.false_alarm_rate),
                _pct(d.confusion_rate),
                _pct(d.jer),
                f"{d.total:.1f}",
            )
        parts.append(t)

    if _has(ok, "speed"):
        stages = sorted({s for r in ok if r.speed for s in r.speed.stages})
        t = Table(title="Speed: real-time factor (processing time / audio time)", title_justify="left")
        t.add_column("File", no_wrap=True)
        t.add_column("Audio s", justify="right")
        for s in stages:
            t.add_column(s, justify="right")
        t.add_column("End to end", justify="right")
        t.add_column("Peak MB", justify="right")
        for r in ok:
            sp = r.speed
            if sp is None:
                t.add_row(name(r), *["–"] * (len(stages) + 3))
                continue
            t.add_row(
                name(r),
                f"{sp.audio:.1f}",
                *(_fixed(sp.stage_rtf(s), 3) for s in stages),
                _fixed(sp.rtf, 3),
                _fixed(sp.peak_rss_mb, 0),
            )
        parts.append(t)

    if results.failed:
        t = Table(title=f"Could not score ({len(results.failed)})", title_justify="left", title_style="bold red")
        t.add_column("File", no_wrap=True)
        t.add_column("Error", style="red")
        for r in results.failed:
            t.add_row(r.stem, r.error or "")
        parts.append(t)

    if results.unmatched_hypotheses:
        parts.append(Text(f"Outputs without a reference (not scored): {', '.join(results.unmatched_hypotheses)}"))
    if not parts:
        parts.append(Text("Nothing to show: no file was scored."))
    return Group(*parts)


# --------------------------------------------------------------------------- files


def result_rows(results: ScoreResults) -> list[dict[str, Any]]:
    """Flat rows, one per file and the overall last, as written to CSV."""
    stages = sorted({s for r in results.files if r.speed for s in r.speed.stages})
    rows = []
    for r in [*results.files, results.overall]:
        row: dict[str, Any] = {"file": r.stem, "language": r.language, "files": r.files, "error": r.error}
        for key, w in (("wer", r.wer), ("cpwer", r.cpwer), ("tcpwer", r.tcpwer)):
            row[key] = w.rate if w else None
            for part in ("ref_words", "substitutions", "deletions", "insertions"):
                row[f"{key}_{part}"] = getattr(w, part) if w else None
        sa = r.speaker_attribution
        row["speaker_attribution"] = sa.rate if sa else None
        row["speaker_attribution_matched"] = sa.matched if sa else None
        row["speaker_attribution_coverage"] = sa.coverage if sa else None
        for conv, d in (("strict", r.der_strict), ("forgiving", r.der_forgiving)):
            row[f"der_{conv}"] = d.der if d else None
            row[f"missed_{conv}"] = d.missed_rate if d else None
            row[f"false_alarm_{conv}"] = d.false_alarm_rate if d else None
            row[f"confusion_{conv}"] = d.confusion_rate if d else None
            row[f"jer_{conv}"] = d.jer if d else None
            row[f"scored_speech_s_{conv}"] = d.total if d else None
        sp = r.speed
        row["audio_s"] = sp.audio if sp else None
        for s in stages:
            row[f"rtf_{s}"] = sp.stage_rtf(s) if sp else None
        row["rtf"] = sp.rtf if sp else None
        row["peak_rss_mb"] = sp.peak_rss_mb if sp else None
        for k in ("ref text", "ref turns", "ref uem", "hyp text", "hyp turns"):
            row[k.replace(" ", "_")] = r.sources.get(k)
        rows.append(row)
    return rows


def _check_target(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists: use --overwrite to replace it")


def write_json(results: ScoreResults, path: Path, *, overwrite: bool = False) -> Path:
    """Every count and option, loadable by `load_results`."""
    path = Path(path)
    _check_target(path, overwrite)
    try:
        path.write_text(json.dumps(results.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def write_csv(results: ScoreResults, path: Path, *, overwrite: bool = False) -> Path:
    """One row per file and an overall row (`file` = "overall"); rates as fractions."""
    path = Path(path)
    _check_target(path, overwrite)
    rows = result_rows(results)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def load_results(path: Path) -> ScoreResults:
    """Results written by `write_json`: the file, or a run folder holding `results.json`."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"{path}: no such file (expected results written by `transcribe eval`)") from None
    except json.JSONDecodeError as e:
        raise EvalError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError(f"{path}: cannot read: {e}") from None
    try:
        return ScoreResults.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise EvalError(f"{path}: not results written by `transcribe eval` ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Delta:
    """One metric before and after; `verdict` is "better", "worse", "same", or None if either is missing."""

    metric: str
    old: float | None
    new: float | None

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def verdict(self) -> str | None:
        change = self.change
        if change is None:
            return None
        if math.isclose(change, 0.0, abs_tol=1e-9):
            return "same"
        improved = change > 0 if _BY_NAME[self.metric].higher_is_better else change < 0
        return "better" if improved else "worse"


@dataclass(frozen=True)
class FileComparison:
    stem: str
    deltas: tuple[Delta, ...]
    note: str | None = None  # "only in the new run", "failed in the old run: ..."

    def delta(self, metric: str) -> Delta:
        return next(d for d in self.deltas if d.metric == metric)


@dataclass(frozen=True)
class Comparison:
    """Per-file and overall deltas. The overall pools only files scored in both runs, so that
    both sides cover the same recordings."""

    files: tuple[FileComparison, ...]
    overall: FileComparison
    common: int  # files scored without error in both runs

    @property
    def better(self) -> int:
        return sum(1 for f in self.files for d in f.deltas if d.verdict == "better")

    @property
    def worse(self) -> int:
        return sum(1 for f in self.files for d in f.deltas if d.verdict == "worse")


def _deltas(old: FileResult | None, new: FileResult | None) -> tuple[Delta, ...]:
    return tuple(
        Delta(mt.name, mt.value(old) if old else None, mt.value(new) if new else None) for mt in METRICS
    )


def compare(old: ScoreResults, new: ScoreResults) -> Comparison:
    """What got better or worse from `old` to `new`, per file and overall."""
    olds = {r.stem: r for r in old.files}
    news = {r.stem: r for r in new.files}
    stems = list(olds) + [s for s in news if s not in olds]
    files = []
    for stem in stems:
        o, n = olds.get(stem), news.get(stem)
        note = None
        if o is None:
            note = "only in the new run"
        elif n is None:
            note = "only in the old run"
        elif o.error and n.error:
            note = f"failed in both runs: {n.error}"
        elif n.error:
            note = f"failed in the new run: {n.error}"
        elif o.error:
            note = f"failed in the old run: {o.error}"
        usable_o = o if o is not None and o.error is None else None
        usable_n = n if n is not None and n.error is None else None
        files.append(FileComparison(stem, _deltas(usable_o, usable_n), note))
    common = [s for s in stems if s in olds and s in news and not olds[s].error and not news[s].error]
    overall = FileComparison(
        "overall",
        _deltas(pool(olds[s] for s in common), pool(news[s] for s in common)),
    )
    return Comparison(tuple(files), overall, len(common))


_STYLE = {"better": "green", "worse": "red"}


def _delta_cells(d: Delta) -> tuple[str, str, str, Text]:
    """old, new, change (points for percentages), verdict."""
    mt = _BY_NAME[d.metric]
    change = d.change
    if change is None:
        step = "–"
    else:
        step = f"{change * 100:+.{mt.decimals}f}" if mt.percent else f"{change:+.{mt.decimals}f}"
    verdict = d.verdict or ""
    return mt.format(d.old), mt.format(d.new), step, Text(verdict, style=_STYLE.get(verdict, ""))


def comparison_table(
    comparison: Comparison, old_label: str = "old", new_label: str = "new", *, changed_only: bool = True
) -> RenderableType:
    """The overall, metric by metric; then per file what got better or worse (every metric either
    run has, with `changed_only=False`); then the files that could not be compared."""
    parts: list[RenderableType] = []
    head = ("Metric", old_label, new_label, "Change", "")

    overall = Table(
        title=f"Overall ({comparison.common} files in both runs)",
        caption="pooled over the files scored in both runs; changes of percentages in points",
        title_justify="left",
        caption_justify="left",
    )
    for i, col in enumerate(head):
        overall.add_column(col, justify="left" if i in (0, 4) else "right")
    for d in comparison.overall.deltas:
        if d.old is None and d.new is None:
            continue
        overall.add_row(_BY_NAME[d.metric].label, *_delta_cells(d))
    parts.append(overall)

    if changed_only:
        changed = [(f, d) for f in comparison.files for d in f.deltas if d.verdict in _STYLE]
    else:
        changed = [
            (f, d) for f in comparison.files if not f.note for d in f.deltas if d.old is not None or d.new is not None
        ]
    if changed:
        t = Table(title="Per file: what changed" if changed_only else "Per file", title_justify="left")
        t.add_column("File", no_wrap=True)
        for i, col in enumerate(head):
            t.add_column(col, justify="left" if i in (0, 4) else "right")
        for f, d in changed:
            t.add_row(f.stem, _BY_NAME[d.metric].label, *_delta_cells(d))
        parts.append(t)
    else:
        parts.append(Text("No file got better or worse."))

    noted = [f for f in comparison.files if f.note]
    if noted:
        t = Table(title="Not compared", title_justify="left", title_style="yellow")
        t.add_column("File", no_wrap=True)
        t.add_column("Why", style="yellow")
        for f in noted:
            t.add_row(f.stem, f.note or "")
        parts.append(t)
    return Group(*parts)
