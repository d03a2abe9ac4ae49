"""`transcribe stream`: live captions with speaker labels from a media server, a pipe or a push.

The top-level cli.py registers `stream` with `app.command(name="stream")(stream)`; this module
imports only typer at load, the models and servers load when the command runs. Standalone:
`python -m transcribe.streaming.cli SOURCE ...` (a one-command app).

Results go where asked: the caption WebSocket (--serve), a live WebVTT file (--vtt), JSON lines
on stdout (--format jsonl) and, when the stream ends, the files of `transcribe run` (--output).
Logs and errors go to stderr; an error a user can cause is one line and an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Iterator, Optional

import typer

from transcribe.errors import TranscribeError, UsageError

__all__ = ["stream", "main"]

EXIT_INTERRUPTED = 130
log = logging.getLogger("transcribe")


def _setup_logging(quiet: bool, verbose: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.ERROR if quiet else (logging.INFO if verbose else logging.WARNING)
    handler = RichHandler(console=Console(stderr=True, highlight=False), show_time=verbose, show_path=False, markup=False)
    logger = logging.getLogger("transcribe")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("faster_whisper").setLevel(logging.ERROR)
        logging.getLogger("websockets").setLevel(logging.CRITICAL)


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """As cli.reported(): library errors, Ctrl-C and bugs become one line on stderr and an exit code."""
    try:
        yield
    except TranscribeError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("TRANSCRIBE_DEBUG"):
            raise
        raise _fail(f"unexpected {type(exc).__name__}: {exc} (set TRANSCRIBE_DEBUG=1 for the traceback)", 1) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def stream(
    source: Optional[str] = typer.Argument(
        None, show_default=False,
        help="What to caption: a URL ffmpeg reads (rtmp://, srt://, rtsp://, http://, an .sdp file), a media file, or - for standard input.",
    ),
    listen: Optional[str] = typer.Option(None, "--listen", help="Instead of SOURCE, take s16le 16 kHz mono PCM pushed over WebSocket to ws://[HOST:]PORT/ingest."),
    serve: Optional[str] = typer.Option(None, "--serve", help="Serve captions as JSON over WebSocket on [HOST:]PORT (host 127.0.0.1 unless given)."),
    vtt: Optional[Path] = typer.Option(None, "--vtt", help="Keep this WebVTT file up to date: finished cues only, rewritten atomically."),
    output_format: str = typer.Option("none", "--format", help="jsonl: every message as a JSON line on stdout; none: nothing on stdout."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="When the stream ends, write OUTPUT.vtt, .json, .md (see --formats), as `transcribe run` does."),
    formats: str = typer.Option("vtt,json,md", "--formats", "-f", help="Final files for --output: vtt, srt, json, rttm, md, txt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --vtt and --output files that already exist."),
    token: Optional[str] = typer.Option(
        None, "--token", envvar="TRANSCRIBE_STREAM_TOKEN", show_default=False,
        help="Shared secret that caption clients and publishers must send (Authorization: Bearer TOKEN, or ?token=TOKEN). Also read from TRANSCRIBE_STREAM_TOKEN.",
    ),
    model: str = typer.Option("tiny.en", "--model", "-m", help="Whisper model: a store name (tiny.en, base) or a local CTranslate2 folder."),
    language: str = typer.Option("en", "--language", "-l", help="Language code; streaming does not detect it."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    compute_type: Optional[str] = typer.Option(None, "--compute-type", help="CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for Whisper (0: all cores)."),
    beam_size: int = typer.Option(5, "--beam-size", help="Beam size of each Whisper pass (5: as `transcribe run`; 1: greedy, faster, skips more words)."),
    encoder_window: float = typer.Option(30.0, "--encoder-window", help="Seconds of audio Whisper's encoder sees per pass (30: as trained; 20 or 15: faster)."),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive", help="Shorten the encoder window (to 20, then 15 s) while passes cannot keep up."),
    diarize: bool = typer.Option(True, "--diarize/--no-diarize", help="Label speakers online (--no-diarize: captions without speakers)."),
    speaker_names: Optional[str] = typer.Option(None, "--speaker-names", help='Names in order of first appearance ("Diane,Sheila") or by label ("SPEAKER_00=Diane").'),
    speaker_threshold: float = typer.Option(0.40, "--speaker-threshold", help="Average cosine similarity at which two groups of speech are one speaker; lower merges more."),
    max_speakers: Optional[int] = typer.Option(None, "--max-speakers", help="At most this many speakers."),
    hotwords: Optional[str] = typer.Option(None, "--hotwords", help="Words to favour (names, jargon), space-separated."),
    step: float = typer.Option(0.5, "--step", help="Seconds of new audio between recognizer passes."),
    pause: float = typer.Option(0.5, "--pause", help="Seconds of silence after which pending words are final."),
    max_lag: float = typer.Option(8.0, "--max-lag", help="Seconds a live source may get ahead of the recognizer before audio is shed."),
    stdin_format: str = typer.Option("auto", "--stdin-format", help="For -: raw (s16le 16 kHz mono), container (anything ffmpeg reads), or auto (sniffed)."),
    reconnect: Optional[bool] = typer.Option(None, "--reconnect/--no-reconnect", show_default=False, help="Reconnect when the source drops (default: for network URLs)."),
    idle_timeout: float = typer.Option(0.0, "--idle-timeout", help="End the session after this many seconds without a source (0: never)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
) -> None:
    """Live captions with speaker labels from a media server URL, standard input, or a WebSocket push."""
    _setup_logging(quiet, verbose)
    with _reported():
        from transcribe.streaming.livevtt import LiveVtt
        from transcribe.streaming.server import CaptionServer
        from transcribe.streaming.session import StreamOptions, StreamSession
        from transcribe.streaming.sources import FfmpegSource, PipeSource, WebSocketIngest, parse_hostport
        from transcribe.writers import check_outputs, parse_formats, write_outputs

        # Refuse what cannot work before loading any model.
        if (source is None) == (listen is None):
            raise UsageError("give either SOURCE (a URL, a file or -) or --listen [HOST:]PORT, not both" if source else "nothing to caption: give SOURCE (a URL, a file or -) or --listen [HOST:]PORT")
        if output_format not in ("none", "jsonl"):
            raise UsageError(f"--format must be jsonl or none, not {output_format!r}")
        if stdin_format not in ("auto", "raw", "container"):
            raise UsageError(f"--stdin-format must be auto, raw or container, not {stdin_format!r}")
        if not (serve or vtt or output or output_format == "jsonl"):
            raise UsageError("no output: give --serve, --vtt, --format jsonl or --output")
        fmts = parse_formats(formats)
        if output is not None:
            check_outputs(output, fmts, overwrite=overwrite)
            if vtt is not None and "vtt" in fmts and (output.parent / f"{output.name}.vtt").resolve() == vtt.resolve():
                raise UsageError(f"--vtt and --output would both write {vtt}: name them apart")
        serve_at = parse_hostport(serve) if serve else None
        listen_at = parse_hostport(listen) if listen else None
        if serve_at and listen_at and serve_at == listen_at and serve_at[1] != 0:
            raise UsageError(f"--serve and --listen both ask for {serve_at[0]}:{serve_at[1]}")
        for what, at in (("--serve", serve_at), ("--listen", listen_at)):
            if at and not _is_loopback(at[0]) and not token:
                log.warning("%s binds to %s without --token: anyone who can reach it can connect", what, at[0])
        options = StreamOptions(
            model=model, language=language, device=device, compute_type=compute_type, threads=threads,
            beam_size=beam_size, encoder_seconds=encoder_window, adaptive=adaptive, hotwords=hotwords, step=step, pause_flush=pause, max_lag=max_lag,
            diarize=diarize, speaker_names=speaker_names, speaker_threshold=speaker_threshold,
            max_speakers=max_speakers, idle_timeout=idle_timeout,
        )

        if listen_at is not None:
            src = WebSocketIngest(*listen_at, token=token)
            name = f"ws://{listen_at[0]}:{listen_at[1]}/ingest"
        elif source == "-":
            src = PipeSource(sys.stdin.buffer, kind=stdin_format)  # type: ignore[arg-type]
            name = "stdin"
        else:
            if "://" not in source and not Path(source).exists():
                raise UsageError(f"{source}: no such file, and not a URL (rtmp://, srt://, rtsp://, http://...)")
            src = FfmpegSource(source, reconnect=reconnect)
            name = source
        live_vtt = LiveVtt(vtt, overwrite=overwrite) if vtt is not None else None
        captions = CaptionServer(*serve_at, token=token) if serve_at is not None else None

        def to_stdout(message: dict) -> None:
            sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
            sys.stdout.flush()

        session = StreamSession(
            options, src, source_name=name, captions=captions, live_vtt=live_vtt,
            on_message=to_stdout if output_format == "jsonl" else None,
        )
        written = asyncio.run(_run(session, captions, src, output, fmts, overwrite, write_outputs))
        if written and not quiet:
            sys.stderr.write("wrote " + ", ".join(str(p) for p in written) + "\n")


async def _run(session, captions, src, output, fmts, overwrite, write_outputs) -> list:
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            session.stop()
        else:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        if captions is not None:
            await captions.start()
            log.info("captions on ws://%s:%d/", captions.host, captions.bound_port)
        if hasattr(src, "start"):
            await src.start()
        transcript = await session.run()
        written = []
        if output is not None:
            written = write_outputs(transcript, output, fmts, overwrite=overwrite)
        await session.finish([str(p) for p in written])
        return written
    finally:
        if captions is not None:
            await captions.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
    app.command()(stream)
    app()


if __name__ == "__main__":
    main()
