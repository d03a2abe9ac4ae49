"""`transcribe eval`: score any system's outputs, run our pipeline over a dataset, compare runs.

Thin wrappers over the library: options are checked before any work starts, library errors become
one `Error: ...` line on stderr and the error's exit code, progress goes to stderr, tables to stdout.
Exit status: 0 when every file was scored; 5 when some could not be (the table says why, the
others are scored and written); the error's own code when nothing ran (2 unusable input or
options, 3 model, 4 outputs that exist without --overwrite); 1 for a bug.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from transcribe.errors import OutputError, TranscribeError

# The eval extra (pip install 'transcribe[eval]'): the main CLI mounts `eval` only when this
# module imports, so say here, cheaply, whether the extra's packages are there.
_MISSING = [n for n in ("meeteval", "jiwer", "whisper_normalizer") if importlib.util.find_spec(n) is None]
if _MISSING:
    raise ImportError(f"the eval extra is not installed (missing {', '.join(_MISSING)})")

# Exit codes, as in the main CLI's table.
EXIT_BUG = 1
EXIT_PARTIAL = 5  # several inputs: some could not be scored, the others were
EXIT_INTERRUPTED = 130

app = typer.Typer(
    help=(
        "Score transcripts and diarizations against references, under every convention side by "
        "side: WER, DER and JER (strict and forgiving), cpWER, tcpWER, speaker attribution, speed."
    ),
    no_args_is_help=True,
    add_completion=False,
)

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn library errors, Ctrl-C and bugs into one `Error: ...` line on stderr and an exit code
    (the same rules as the main CLI's `reported()`). Third-party warnings are not the user's
    business either (`transcribe run` drops them too); TRANSCRIBE_DEBUG=1 shows them."""
    debug = bool(os.environ.get("TRANSCRIBE_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            yield
    except TranscribeError as e:
        raise _fail(str(e), e.exit_code) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as e:  # a bug: still one line, the traceback on request
        if debug:
            raise
        raise _fail(
            f"unexpected {type(e).__name__}: {e} (set TRANSCRIBE_DEBUG=1 for the traceback)", EXIT_BUG
        ) from None


def _stderr() -> Console:
    return Console(stderr=True)


def _progress() -> Progress:
    console = _stderr()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no stray blank line in logs and pipes
    )


def _prepare_output(folder: Optional[Path], overwrite: bool) -> None:
    """Refuse before any work starts to overwrite results, or to write where no folder can be."""
    if folder is None:
        return
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file: give a folder for the results")
    for name in (RESULTS_JSON, RESULTS_CSV):
        if (folder / name).exists() and not overwrite:
            raise OutputError(f"{folder / name} already exists: use --overwrite to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {folder}: {e.strerror or e}") from e


def _finish(results, folder: Optional[Path], overwrite: bool) -> None:
    from transcribe.evaluation.report import results_table, write_csv, write_json

    Console().print(results_table(results))
    if folder is not None:
        write_json(results, folder / RESULTS_JSON, overwrite=overwrite)
        write_csv(results, folder / RESULTS_CSV, overwrite=overwrite)
        _stderr().print(f"Wrote {folder / RESULTS_JSON} and {folder / RESULTS_CSV}", highlight=False)
    if results.failed:
        raise _fail(
            f"{len(results.failed)} of {len(results.files)} files could not be scored (see 'Could not score')",
            EXIT_PARTIAL,
        )


_COLLAR_HELP = (
    "Forgiving DER's collar in pyannote's sense: the total width of the no-score zone centred "
    "on each reference boundary (0.5 = ±0.25 s)."
)
_TCP_HELP = "tcpWER's collar in seconds (how far a word's time may be off and still match)."
_LANG_HELP = (
    "Language of recordings the dataset gives none for, which picks the text normalizer "
    "(en: Whisper's English; fr, de: ours; other: Whisper's basic). Default: the language our "
    "JSON records, else the basic normalizer."
)


@app.command()
def score(
    ref: Path = typer.Option(
        ...,
        "--ref",
        "-r",
        help=(
            "References: a folder of .stm .rttm .uem .txt files named by recording (audio may sit "
            "beside them), or a manifest (.jsonl)."
        ),
    ),
    hyp: Path = typer.Option(
        ...,
        "--hyp",
        help=(
            "Outputs to score, from any tool: a folder (or one file) of .json (ours) .rttm .vtt .srt "
            ".stm .txt, paired with references by file stem."
        ),
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Folder to write results.json and results.csv into (created if missing)."
    ),
    language: Optional[str] = typer.Option(None, "--language", "-l", help=_LANG_HELP),
    hyp_format: Optional[List[str]] = typer.Option(
        None,
        "--hyp-format",
        help=(
            "Read only these output formats (repeatable: json, stm, vtt, srt, txt, rttm). Default: "
            "all; text from the first of json, stm, vtt, srt, txt; diarization from rttm, else json, "
            "else the speaker-attributed text."
        ),
    ),
    forgiving_collar: float = typer.Option(0.5, "--forgiving-collar", min=0.0, help=_COLLAR_HELP),
    tcp_collar: float = typer.Option(5.0, "--tcp-collar", min=0.0, help=_TCP_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results already in --output."),
) -> None:
    """Score outputs of any tool against references: per file and overall."""
    from transcribe.evaluation.score import ScoreOptions, find_hypotheses, load_dataset
    from transcribe.evaluation.score import score as score_all

    with cli_errors():
        options = ScoreOptions(forgiving_collar=forgiving_collar, tcp_collar=tcp_collar)
        items = load_dataset(ref, language=language)
        hypotheses = find_hypotheses(hyp, hyp_format)
        _prepare_output(output, overwrite)
        with _progress() as progress:
            task = progress.add_task("Scoring", total=None)
            results = score_all(
                items,
                hypotheses,
                options,
                hook=lambda stage, done, total: progress.update(task, completed=done, total=total),
            )
        _finish(results, output, overwrite)


@app.command()
def run(
    dataset: Path = typer.Argument(
        ...,
        help=(
            "A manifest (.jsonl: audio, language, text/stm/rttm/uem paths) or a folder of audio "
            "with references beside it."
        ),
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Run folder: outputs go to <run>/out/, scores to <run>/results.json and results.csv.",
    ),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="ASR model (store name or local folder). Default: the pipeline's."
    ),
    language: Optional[str] = typer.Option(
        None, "--language", "-l", help="Language of recordings the dataset gives none for. Default: detected."
    ),
    num_speakers: Optional[int] = typer.Option(
        None,
        "--num-speakers",
        min=1,
        help="Speaker count for recordings the dataset gives none for. Default: estimated.",
    ),
    forgiving_collar: float = typer.Option(0.5, "--forgiving-collar", min=0.0, help=_COLLAR_HELP),
    tcp_collar: float = typer.Option(5.0, "--tcp-collar", min=0.0, help=_TCP_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace outputs and results already in the run folder."
    ),
) -> None:
    """Run the pipeline over a dataset, then score its outputs."""
    from transcribe.evaluation.errors import EvalError
    from transcribe.evaluation.run import OUTPUT_FORMATS, transcribe_dataset, with_run_errors
    from transcribe.evaluation.score import ScoreOptions, find_hypotheses, load_dataset
    from transcribe.evaluation.score import score as score_all

    with cli_errors():
        options = ScoreOptions(forgiving_collar=forgiving_collar, tcp_collar=tcp_collar)
        items = load_dataset(dataset, language=language)
        todo = [it for it in items if it.scorable]
        if not todo:
            raise EvalError(f"{dataset}: no recording has a reference (.stm, .rttm, .txt): nothing to run")
        out_dir = output / "out"
        if not overwrite:
            for it in todo:
                for fmt in OUTPUT_FORMATS:
                    target = out_dir / f"{it.stem}.{fmt}"
                    if target.exists():
                        raise OutputError(f"{target} already exists: use --overwrite to replace it")
        _prepare_output(output, overwrite)
        out_dir.mkdir(exist_ok=True)
        with _progress() as progress:
            task = progress.add_task("Transcribing", total=len(todo))
            done: set[str] = set()

            def hook(stem: str, stage: str, completed: float, total: float | None) -> None:
                done.add(stem)
                progress.update(task, description=f"{stem}: {stage}", completed=len(done) - 1)

            errors = transcribe_dataset(
                items, out_dir, model=model, num_speakers=num_speakers, overwrite=overwrite, hook=hook
            )
            progress.update(task, description="Scoring", completed=len(todo))
            results = with_run_errors(score_all(items, find_hypotheses(out_dir), options), errors)
        _finish(results, output, overwrite)


@app.command()
def compare(
    old: Path = typer.Argument(..., help="The earlier run: its folder or its results.json."),
    new: Path = typer.Argument(..., help="The later run: its folder or its results.json."),
    show_all: bool = typer.Option(
        False, "--all", help="Show every metric of every file, not only what got better or worse."
    ),
) -> None:
    """Show what got better or worse between two scored runs, per file and overall."""
    from transcribe.evaluation.report import compare as compare_runs
    from transcribe.evaluation.report import comparison_table, load_results

    with cli_errors():
        comparison = compare_runs(load_results(old), load_results(new))
        Console().print(comparison_table(comparison, str(old), str(new), changed_only=not show_all))
