"""A streaming session: one source, one engine, the caption outputs, and the final Transcript.

    options = StreamOptions(model="tiny.en")
    session = StreamSession(options, FfmpegSource("rtmp://127.0.0.1/live/room1"),
                            captions=CaptionServer("127.0.0.1", 8765), live_vtt=LiveVtt(Path("live.vtt")))
    transcript = asyncio.run(session.run())     # until the source ends or session.stop()

The event loop reads the source, feeds the engine and sends messages; the recognizer runs in a
worker thread (CTranslate2 and torch release the GIL), so sockets stay responsive while Whisper
works. Messages go to the caption server, to `on_message` (the CLI's JSON lines) and, for finals,
into the live VTT. When the source ends (or `stop()`), what is pending is made final, an `end`
message is sent, and `run()` returns the session's Transcript, the same type `transcribe run`
writes, so `write_outputs` gives the same VTT, JSON and minutes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from transcribe.attribution import build_segments, parse_speaker_names
from transcribe.errors import UsageError
from transcribe.streaming.decoder import DecoderOptions, WindowDecoder
from transcribe.streaming.engine import EngineOptions, StreamingEngine
from transcribe.streaming.livevtt import LiveVtt
from transcribe.streaming.messages import PROTOCOL_VERSION, Caption, Status, caption_message, status_message
from transcribe.streaming.server import CaptionServer
from transcribe.streaming.sources import Pcm, State
from transcribe.streaming.speakers import CamppEmbedder, OnlineSpeakers, SpeakerNamer, SpeakerOptions
from transcribe.types import ModelInfo, Transcript, Turn, Word

log = logging.getLogger("transcribe")

__all__ = ["StreamOptions", "StreamSession", "display_source"]

STALL = 1.0  # seconds without audio from a live source that count as a gap in it


@dataclass(frozen=True)
class StreamOptions:
    """Every choice a streaming session makes, with its default; recorded in the JSON output."""

    model: str = "tiny.en"  # a store name or a local CTranslate2 folder
    language: str | None = "en"
    device: str = "cpu"
    compute_type: str | None = None  # None: int8 on CPU, float16 on CUDA
    threads: int = 0  # CPU threads for Whisper; 0: all cores
    beam_size: int = 5  # as `transcribe run`: greedy passes skip words, and two passes can agree on a skip
    encoder_seconds: float = 30.0  # audio Whisper's encoder sees per pass (30: as trained)
    adaptive: bool = True  # shorten the encoder window (20, then 15 s) when passes cannot keep up
    prompt_chars: int = 200
    hotwords: str | None = None
    step: float = 0.5
    pause_flush: float = 0.5
    max_window: float = 12.0
    max_lag: float = 8.0
    diarize: bool = True
    embedding: str = "campplus"
    speaker_names: str | None = None
    speaker_threshold: float = SpeakerOptions.threshold  # the CLI repeats it: it imports only typer at load
    max_speakers: int | None = None
    status_interval: float = 5.0  # seconds between status messages
    idle_timeout: float = 0.0  # end the session after this long without a source; 0: never

    def __post_init__(self) -> None:
        if self.speaker_names:
            parse_speaker_names(self.speaker_names)
        if self.speaker_names and not self.diarize:
            raise UsageError("--speaker-names needs speaker labels: drop --no-diarize")
        if self.status_interval <= 0:
            raise UsageError("the status interval must be positive")
        if self.idle_timeout < 0:
            raise UsageError("--idle-timeout must be zero (never) or positive")
        self.engine_options()
        self.decoder_options()
        self.speaker_options()

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            step=self.step, pause_flush=self.pause_flush, max_window=self.max_window, max_lag=self.max_lag,
            adaptive=self.adaptive,
            ring_seconds=max(60.0, self.max_window + self.max_lag + 10.0),
        )

    def decoder_options(self) -> DecoderOptions:
        return DecoderOptions(
            language=self.language, beam_size=self.beam_size, prompt_chars=self.prompt_chars,
            encoder_seconds=max(self.encoder_seconds, 1.0), hotwords=self.hotwords,
        )

    def speaker_options(self) -> SpeakerOptions:
        try:
            return SpeakerOptions(threshold=self.speaker_threshold, max_speakers=self.max_speakers)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def display_source(source: str) -> str:
    """A source as shown to clients and written in outputs: no credentials, stream keys or
    query strings (RTMP stream keys and SRT passphrases are secrets)."""
    from transcribe.streaming.sources import display

    return "stdin" if source in ("-", "") else display(source)


def warmup_speech(seconds: float = 10.0) -> np.ndarray:
    """`seconds` of real speech to time the warm-up pass on: pyannote's sample, which ships in the
    wheel of a dependency (from 6 s on, where the talk starts); silence if it cannot be read."""
    from scipy.io import wavfile

    from transcribe.samples import pyannote_sample

    try:
        rate, x = wavfile.read(pyannote_sample(".wav"))
    except (OSError, ValueError):
        return np.zeros(int(seconds * 16000), dtype=np.float32)
    if rate != 16000 or x.ndim != 1 or x.dtype != np.int16:
        return np.zeros(int(seconds * 16000), dtype=np.float32)
    return (x[6 * rate : int((6 + seconds) * rate)] / 32768.0).astype(np.float32)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


class StreamSession:
    """Runs one live session (see the module text). Not reusable: one `run()` per instance."""

    def __init__(
        self,
        options: StreamOptions,
        source,
        *,
        source_name: str = "",
        captions: CaptionServer | None = None,
        live_vtt: LiveVtt | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        store=None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.options = options
        self.source = source
        self.source_name = source_name or getattr(source, "url", "") or "stdin"
        self.captions = captions
        self.live_vtt = live_vtt
        self.on_message = on_message
        self.clock = clock
        self.session_id = uuid.uuid4().hex[:12]
        self.started = dt.datetime.now(dt.timezone.utc)
        self.models: list[ModelInfo] = []
        self.words: list[Word] = []
        self._speakers: dict[str, None] = {}  # in order of first appearance
        self.state = "connecting"
        self._seq = 0
        self._stop: asyncio.Event | None = None  # made in run(), inside the loop
        self._progress: asyncio.Event | None = None
        self._halt = False
        self._cond = threading.Condition()
        self._first_audio: float | None = None
        self._last_audio = 0.0
        self.held = 0.0  # seconds a source that is not live went unread while the recognizer caught up
        self._dropped_at: float | None = None
        self._down_since: float | None = clock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine = self._build_engine(store)
        if captions is not None:
            captions.hello = self.hello

    # ---- models ------------------------------------------------------------------------------

    def _build_engine(self, store) -> StreamingEngine:
        from pathlib import Path

        from transcribe.asr import Recognizer
        from transcribe.devices import asr_device, resolve_device
        from transcribe.store import ModelStore

        o = self.options
        store = store or ModelStore()
        device = resolve_device(o.device)
        local = Path(o.model).expanduser()
        if o.model not in store.specs and local.is_dir():
            if not (local / "model.bin").is_file():
                raise UsageError(f"{local}: not a CTranslate2 Whisper folder (no model.bin)")
            asr_path, info = local, ModelInfo("asr", str(local), None)
        else:
            asr_path, info = store.require(o.model), ModelInfo("asr", o.model, store.file_checksums(o.model))
        self.models.append(info)
        asr_on, compute_type = asr_device(o.device, device, o.compute_type)
        recognizer = Recognizer(asr_path, asr_on, compute_type, o.threads)
        recognizer.check_language(o.language)
        decoder = WindowDecoder(recognizer.model, o.decoder_options())
        embedder = None
        speakers = None
        if o.diarize:
            weights = store.require_weights(o.embedding)
            self.models.append(ModelInfo("embedding", o.embedding, store.file_checksums(o.embedding)))
            # One torch thread: the embedding runs between Whisper passes, and more threads
            # only fight CTranslate2's for the same cores (measured: 20 times slower on 2 cores).
            embedder = CamppEmbedder(weights, device, threads=1 if device == "cpu" else None)
            speakers = OnlineSpeakers(o.speaker_options())
        names = parse_speaker_names(o.speaker_names) if o.speaker_names else None
        engine = StreamingEngine(
            decoder, embedder=embedder, speakers=speakers, namer=SpeakerNamer(names),
            options=o.engine_options(), clock=self.clock,
        )
        # Warm up: the first pass of each model allocates; do it before audio is waiting. Then time
        # a pass over real speech (a pass over silence decodes no text and flatters a slow machine):
        # a slow machine starts with a shorter encoder window instead of falling behind for its first
        # 10 to 20 s (measured on this 2-core CPU: ingest 3.5 s behind at 15 s, then 20 s windows).
        silence = np.zeros(16000, dtype=np.float32)
        decoder(silence)
        engine.prime(decoder(warmup_speech()).seconds)
        if embedder is not None:
            embedder(silence)
        engine.vad.model(np.zeros(512 * 4, dtype=np.float32))
        return engine

    # ---- messages ----------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "session": self.session_id,
            "source": display_source(self.source_name),
            "model": self.models[0].name if self.models else None,
            "language": self.options.language,
            "started": self.started.isoformat(timespec="seconds"),
            "audio_time": round(self.engine.ring.seconds, 3),
            "state": self.state,
            "speakers": list(self._speakers),
        }

    def _emit(self, message: dict[str, Any]) -> None:
        message = {**message, "seq": self._seq} if "seq" not in message else message
        self._seq += 1
        if self.captions is not None:
            self.captions.broadcast(message)
        if self.on_message is not None:
            self.on_message(message)

    def _next_seq(self) -> int:
        return self._seq

    def status(self) -> Status:
        e = self.engine
        return Status(
            audio_time=e.ring.seconds,
            lag=e.backlog,
            shed=e.stats.shed_seconds + e.ring.overwritten / e.ring.sample_rate,
            source=self.state,  # type: ignore[arg-type]
            reconnects=getattr(self.source, "reconnects", 0),
            clients=self.captions.clients if self.captions is not None else 0,
            speakers=tuple(self._speakers),
            extra={"latency_p50": _percentile(list(e.latencies)[-200:], 50), "encoder_window": e.encoder_seconds,
                   "held": round(self.held, 3)},
        )

    def _send_status(self) -> None:
        self._emit(status_message(self.status(), self._next_seq()))

    def _on_captions(self, captions: list[Caption], settled: float) -> None:
        finals = False
        for c in captions:
            self._emit(caption_message(c, self._next_seq()))
            if c.kind == "final":
                self.words += c.words
                if c.speaker is not None:
                    self._speakers.setdefault(c.speaker)
                finals = True
        if finals and self.live_vtt is not None:
            self.live_vtt.update(self.words, settled)

    # ---- running -----------------------------------------------------------------------------

    def stop(self) -> None:
        """End the session gracefully: stop the source, finish what is pending, send `end`.
        Safe to call from a signal handler in the loop's thread."""
        if self._stop is not None and not self._stop.is_set():
            log.info("stopping: finishing what was heard")
            self._stop.set()
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    def _worker(self, done: asyncio.Future) -> None:
        loop = self._loop
        engine = self.engine
        try:
            while not self._halt:
                with self._cond:
                    self._cond.wait_for(lambda: engine.ready() or engine.probe_ready() or self._halt, timeout=self.options.step)
                if self._halt:
                    break
                if engine.finished:
                    break
                captions = engine.work()
                if captions is None:
                    continue
                if captions:
                    loop.call_soon_threadsafe(self._on_captions, captions, engine.settled)
                loop.call_soon_threadsafe(self._progress.set)
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised from run()
            loop.call_soon_threadsafe(lambda e=exc: done.done() or done.set_exception(e))

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify()

    async def _consume(self) -> None:
        engine = self.engine
        live = getattr(self.source, "live", True)
        # Not live (a pipe, a file): pause reading while the recognizer has this much to do.
        backlog_limit = max(2 * self.options.step, 1.0)
        async for ev in self.source.events():
            if isinstance(ev, Pcm):
                now = self.clock()
                if self._first_audio is None:
                    self._first_audio = now
                elif live and (self._dropped_at is not None or now - self._last_audio >= STALL):
                    # The source dropped or stalled (a media server keeps players connected
                    # while the publisher is away): session time catches up with the wall clock.
                    behind = (now - self._first_audio) - engine.ring.seconds
                    if behind > STALL / 2:
                        engine.gap(behind)
                        log.info("audio back after %.1f s: session time moved on by %.1f s", now - self._last_audio, behind)
                self._dropped_at = None
                self._down_since = None
                self._last_audio = now
                engine.feed(ev.samples, now)
                self._notify()
                if not live and engine.backlog > backlog_limit:
                    waited = self.clock()
                    while engine.backlog > backlog_limit and not self._halt and not self._stop.is_set():
                        self._progress.clear()
                        try:
                            await asyncio.wait_for(self._progress.wait(), 1.0)
                        except asyncio.TimeoutError:
                            pass
                    self.held += self.clock() - waited
            else:
                self._on_state(ev)
            if self._stop.is_set():
                break

    def _on_state(self, ev: State) -> None:
        if ev.state == self.state:
            return
        if ev.state == "reconnecting" and self._dropped_at is None:
            self._dropped_at = self.clock()
            self._down_since = self._dropped_at
        if ev.state in ("connecting", "reconnecting") and self._down_since is None:
            self._down_since = self.clock()
        self.state = ev.state
        log.info("source %s%s", ev.state, f": {ev.detail}" if ev.detail else "")
        self._send_status()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.options.status_interval)
            self._send_status()
            idle = self.options.idle_timeout
            if idle and self._down_since is not None and self.clock() - self._down_since > idle:
                log.warning("no audio for %.0f s: ending the session", idle)
                self.stop()

    async def run(self) -> Transcript:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        if self.captions is not None:
            await self.captions.start()
        done: asyncio.Future = self._loop.create_future()
        worker = threading.Thread(target=self._worker, args=(done,), name="transcribe-stream", daemon=True)
        worker.start()
        consumer = asyncio.ensure_future(self._consume())
        ticker = asyncio.ensure_future(self._ticker())
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # a source error (InputError) ends the session here
            else:
                consumer.cancel()
                try:
                    await consumer
                except asyncio.CancelledError:
                    pass
            self.engine.close()
            self._notify()
            await done  # the worker decodes what is left and makes it final
        finally:
            self._halt = True
            self._notify()
            for task in (ticker, stopper, consumer):
                task.cancel()
            closer = getattr(self.source, "close", None)
            if closer is not None:
                await closer()
            worker.join(timeout=30)
            self.state = "ended"
        await asyncio.sleep(0)  # let the worker's last captions through the loop
        transcript = self.transcript()
        if self.live_vtt is not None:
            self.live_vtt.update(self.words, self.engine.ring.seconds, final=True)
        self._send_status()
        return transcript

    async def finish(self, outputs: list[str] | None = None) -> None:
        """Send the `end` message and close the caption server (after `run()`)."""
        self._emit({"type": "end", "seq": self._next_seq(), "duration": round(self.engine.ring.seconds, 3),
                    "finals": self.engine.stats.finals, "held": round(self.held, 3), "outputs": list(outputs or [])})
        if self.captions is not None:
            await self.captions.close()

    # ---- the result --------------------------------------------------------------------------

    def transcript(self) -> Transcript:
        e = self.engine
        segments = build_segments(self.words)
        turns = tuple(Turn(s.start, s.end, s.speaker) for s in segments if s.speaker is not None)
        latencies = list(e.latencies)
        stats: Mapping[str, Any] = {
            **e.stats.as_dict(),
            "final_latency_p50": _percentile(latencies, 50),
            "final_latency_p95": _percentile(latencies, 95),
            "mean_pass_seconds": round(e.stats.decode_seconds / e.stats.passes, 3) if e.stats.passes else None,
            "encoder_windows_used": sorted(e.encoder_windows_used, reverse=True),
            "reconnects": getattr(self.source, "reconnects", 0),
            "overwritten_seconds": round(e.ring.overwritten / e.ring.sample_rate, 3),
            "held_seconds": round(self.held, 3),
            "started": self.started.isoformat(timespec="seconds"),
            "session": self.session_id,
        }
        return Transcript(
            source=display_source(self.source_name),
            duration=e.ring.seconds,
            language=self.options.language or "en",
            segments=segments,
            turns=turns,
            models=tuple(self.models),
            options={**self.options.as_dict(), "date": self.started.date().isoformat()},
            stats=stats,
        )
