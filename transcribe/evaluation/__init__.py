"""Evaluation: score any system's transcripts and diarizations against references.

One harness, every convention side by side: WER (normalized per language), DER and JER strict
(collar 0, overlap scored) and forgiving (collar ±0.25 s, overlap skipped), cpWER and tcpWER, the
share of words given to the right speaker, and speed. Readers take our JSON and other tools'
RTTM, WebVTT, SRT, STM and plain text.

    items = load_dataset(Path("refs/"))                  # or a manifest .jsonl
    results = score(items, find_hypotheses(Path("out/")))
    console.print(results_table(results))                # the library never prints
    write_json(results, Path("results.json")); write_csv(results, Path("results.csv"))
    comparison = compare(load_results(old), load_results(new))

The command line is `transcribe eval score|run|compare` (`transcribe.evaluation.cli.app`).
"""

from transcribe.evaluation.errors import EvalError
from transcribe.evaluation.metrics import (
    DiarizationErrors,
    SpeakerAttribution,
    Speed,
    WordErrors,
    diarization_errors,
    speaker_attributed_errors,
    speaker_attribution,
    word_errors,
)
from transcribe.evaluation.normalize import LatinNormalizer, normalize, normalizer_for
from transcribe.evaluation.report import (
    Comparison,
    compare,
    comparison_table,
    load_results,
    results_table,
    write_csv,
    write_json,
)
from transcribe.evaluation.score import (
    DatasetItem,
    FileResult,
    ScoreOptions,
    ScoreResults,
    find_hypotheses,
    load_dataset,
    score,
    score_file,
)

__all__ = [
    "Comparison",
    "DatasetItem",
    "DiarizationErrors",
    "EvalError",
    "FileResult",
    "LatinNormalizer",
    "ScoreOptions",
    "ScoreResults",
    "SpeakerAttribution",
    "Speed",
    "WordErrors",
    "compare",
    "comparison_table",
    "diarization_errors",
    "find_hypotheses",
    "load_dataset",
    "load_results",
    "normalize",
    "normalizer_for",
    "results_table",
    "score",
    "score_file",
    "speaker_attributed_errors",
    "speaker_attribution",
    "word_errors",
    "write_csv",
    "write_json",
]
