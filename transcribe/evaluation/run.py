"""Run our pipeline over a dataset, writing outputs that `score` then reads like any tool's."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from transcribe.errors import ModelError, TranscribeError, UsageError
from transcribe.evaluation.score import DatasetItem, FileResult, ScoreResults

log = logging.getLogger("transcribe.evaluation")

__all__ = ["OUTPUT_FORMATS", "transcribe_dataset", "with_run_errors"]

OUTPUT_FORMATS = ("json", "rttm", "vtt")

# hook(stem, stage, completed, total)
RunHook = Callable[[str, str, float, "float | None"], None]


def transcribe_dataset(
    items: Sequence[DatasetItem],
    out_dir: Path,
    *,
    model: str | None = None,
    num_speakers: int | None = None,
    overwrite: bool = False,
    hook: RunHook | None = None,
) -> dict[str, str]:
    """Transcribe every item that has a reference into `out_dir/<stem>.{json,rttm,vtt}`.

    One pipeline is built per (language, speaker count) and serves every recording that shares
    them, so models load once. An item's own `num_speakers` wins over `num_speakers`. Returns
    {stem: error} for the recordings that could not be transcribed; model and option errors
    stop the run, since every file would fail the same way.
    """
    from transcribe.media import load_audio
    from transcribe.pipeline import Pipeline, PipelineOptions
    from transcribe.writers import write_outputs

    say = hook or (lambda stem, stage, done, total: None)
    pipelines: dict[tuple[str | None, int | None], Pipeline] = {}
    errors: dict[str, str] = {}
    for item in items:
        if not item.scorable:
            log.info("%s: no reference, not transcribed", item.stem)
            continue
        if item.audio is None:
            errors[item.stem] = "the dataset gives no audio for this recording"
            continue
        speakers = item.num_speakers or num_speakers
        key = (item.language, speakers)
        try:
            if key not in pipelines:
                options = {"language": item.language, "num_speakers": speakers}
                if model is not None:
                    options["model"] = model
                pipelines[key] = Pipeline(PipelineOptions(**options))
            say(item.stem, "decode", 0.0, None)
            audio = load_audio(item.audio)
            transcript = pipelines[key].transcribe(
                audio, hook=lambda stage, done, total, stem=item.stem: say(stem, stage, done, total)
            )
            write_outputs(transcript, Path(out_dir) / item.stem, list(OUTPUT_FORMATS), overwrite=overwrite)
        except (ModelError, UsageError):
            raise
        except TranscribeError as e:
            errors[item.stem] = str(e)
            log.info("%s: %s", item.stem, e)
    return errors


def with_run_errors(results: ScoreResults, errors: Mapping[str, str]) -> ScoreResults:
    """`results` with the transcription error, rather than "no output", for files that failed."""
    files = tuple(
        FileResult(r.stem, language=r.language, error=f"transcription failed: {errors[r.stem]}")
        if r.stem in errors
        else r
        for r in results.files
    )
    return replace(results, files=files)
