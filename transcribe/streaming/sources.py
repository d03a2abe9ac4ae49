"""Where live audio comes from: an ffmpeg-readable URL, standard input, or a WebSocket ingest.

Every source is an async iterator of events: `Pcm` (16 kHz mono float32 samples) and `State`
(connecting, live, reconnecting, ended). Sources never end the session on a dropped connection
when they can reconnect: they report `reconnecting`, retry with backoff, and report `live` again;
the session keeps its clock and speakers across the gap.

- `FfmpegSource`: an ffmpeg subprocess reads any URL (RTMP, SRT, RTSP, RTP with an SDP file,
  HTTP/Icecast, a file) with low-latency input flags and writes s16le 16 kHz mono to a pipe.
  Measured through nginx-rtmp: default probing holds the first audio back about 5 s;
  `-fflags nobuffer -flags low_delay -probesize 32 -analyzeduration 0` brings it to 0.3 to 0.7 s.
- `PipeSource`: standard input (or any binary file object), raw s16le 16 kHz mono, or any
  container ffmpeg reads (sniffed from the first bytes, or forced).
- `WebSocketIngest`: a WebSocket server a media server or bridge pushes PCM frames to
  (protocol in README.md); one publisher at a time, a new one replaces the old.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, AsyncIterator, Literal, Sequence
from urllib.parse import parse_qs, urlsplit

import numpy as np

from transcribe.errors import InputError
from transcribe.types import SAMPLE_RATE

log = logging.getLogger("transcribe")

__all__ = [
    "FfmpegSource",
    "PipeSource",
    "Pcm",
    "State",
    "WebSocketIngest",
    "ffmpeg_input_args",
    "is_live_url",
    "looks_like_container",
    "token_ok",
]

BYTES_PER_SECOND = SAMPLE_RATE * 2
READ_BYTES = 3200  # 0.1 s of s16le: the granularity at which audio reaches the recognizer
LIVE_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpt", "rtmpe", "srt", "rtsp", "rtsps", "rtp", "udp", "tcp", "http", "https", "icecast", "rist", "srtp"})


@dataclass(frozen=True)
class Pcm:
    samples: np.ndarray  # float32 in [-1, 1], 16 kHz mono


@dataclass(frozen=True)
class State:
    state: Literal["connecting", "live", "reconnecting", "ended"]
    detail: str = ""


Event = Pcm | State


class PcmDecoder:
    """s16le bytes -> float32 samples, carrying an odd trailing byte over to the next chunk."""

    def __init__(self) -> None:
        self._carry = b""

    def __call__(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0

    def reset(self) -> None:
        self._carry = b""


def is_live_url(source: str) -> bool:
    """Network URLs are live (reconnect on a drop); files and file: URLs end when they end."""
    scheme = urlsplit(source).scheme.lower()
    return scheme in LIVE_SCHEMES or source.lower().endswith(".sdp")


def ffmpeg_input_args(source: str, *, low_latency: bool = True) -> list[str]:
    """ffmpeg options placed before `-i source`."""
    args = ["-hide_banner", "-nostats", "-loglevel", "error"]
    if low_latency:
        args += ["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"]
    scheme = urlsplit(source).scheme.lower()
    if source.lower().endswith(".sdp"):
        args += ["-protocol_whitelist", "file,udp,rtp,crypto,data"]
    if scheme in {"rtmp", "rtmps", "rtmpt", "rtmpe"}:
        args += ["-rtmp_live", "live"]
    if scheme in {"rtsp", "rtsps"}:
        args += ["-rtsp_transport", "tcp"]
    if scheme in {"http", "https"}:
        args += ["-reconnect", "0"]  # reconnection is ours, with the session kept
    return args


OUTPUT_ARGS = ["-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-acodec", "pcm_s16le", "-f", "s16le", "pipe:1"]

# ffmpeg errors that no retry can fix: report them instead of reconnecting for ever
_FATAL = (
    "Protocol not found",
    "No such file or directory",
    "Invalid data found when processing input",
    "does not contain any stream",
    "Output file does not contain any stream",
    "Permission denied",
    "Unrecognized option",
    "Option not found",
)


def _last_error(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class _Backoff:
    def __init__(self, first: float = 0.5, factor: float = 2.0, limit: float = 4.0):
        self.first, self.factor, self.limit = first, factor, limit
        self.delay = first

    def next(self) -> float:
        d = self.delay
        self.delay = min(self.limit, self.delay * self.factor)
        return d

    def reset(self) -> None:
        self.delay = self.first


async def _stop_process(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class FfmpegSource:
    """Audio from any input ffmpeg reads, reconnecting with backoff when a live one drops."""

    def __init__(
        self,
        url: str,
        *,
        ffmpeg: str | None = None,
        reconnect: bool | None = None,
        low_latency: bool = True,
        stall_timeout: float = 10.0,
        extra_input_args: Sequence[str] = (),
    ):
        from transcribe.media import ffmpeg_binary

        self.url = url
        self.ffmpeg = ffmpeg or ffmpeg_binary()
        self.live = is_live_url(url)
        self.reconnect = self.live if reconnect is None else reconnect
        self.low_latency = low_latency and self.live  # a file needs no low-delay probing
        self.stall_timeout = stall_timeout
        self.extra_input_args = list(extra_input_args)
        self.reconnects = 0
        self._stopping = False
        self._proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        return [
            self.ffmpeg, *ffmpeg_input_args(self.url, low_latency=self.low_latency), *self.extra_input_args,
            "-nostdin", "-i", self.url, *OUTPUT_ARGS,
        ]

    def stop(self) -> None:
        """End the source: the running ffmpeg is stopped and no reconnection is tried."""
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()

    async def events(self) -> AsyncIterator[Event]:
        backoff = _Backoff()
        down_since: float | None = None
        yield State("connecting")
        while not self._stopping:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
                )
            except OSError as exc:
                raise InputError(f"cannot start ffmpeg ({self.ffmpeg}): {exc.strerror or exc}") from None
            self._proc = proc
            stderr_task = asyncio.ensure_future(proc.stderr.read())
            decode = PcmDecoder()
            got = 0
            started = time.monotonic()
            reason = ""
            try:
                while not self._stopping:
                    try:
                        data = await asyncio.wait_for(proc.stdout.read(READ_BYTES), self.stall_timeout)
                    except asyncio.TimeoutError:
                        reason = f"no audio for {self.stall_timeout:.0f} s"
                        break
                    if not data:
                        break
                    if got == 0:
                        if down_since is not None:
                            log.warning("%s: back after %.1f s", display(self.url), time.monotonic() - down_since)
                            down_since = None
                        yield State("live")
                    got += len(data)
                    samples = decode(data)
                    if len(samples):
                        yield Pcm(samples)
            finally:
                await _stop_process(proc)
                self._proc = None
                err = b""
                with contextlib.suppress(Exception):
                    err = await asyncio.wait_for(stderr_task, 1.0)
            reason = reason or _last_error(err) or f"ffmpeg exited with code {proc.returncode}"
            if self._stopping:
                break
            fatal = any(f in reason for f in _FATAL)
            if got == 0 and (fatal or not self.reconnect):
                raise InputError(f"{display(self.url)}: {reason}")
            if not self.reconnect:
                if proc.returncode not in (0, None):
                    log.warning("%s: %s", display(self.url), reason)
                break
            if got > 0 and time.monotonic() - started > 5.0:
                backoff.reset()
            delay = backoff.next()
            self.reconnects += 1
            if down_since is None:
                down_since = time.monotonic()
                log.warning("%s: source dropped (%s); reconnecting", display(self.url), reason)
            else:
                log.info("%s: still down (%s); next try in %.1f s", display(self.url), reason, delay)
            yield State("reconnecting", reason)
            await asyncio.sleep(delay)
        yield State("ended")


def display(url: str) -> str:
    """A URL fit for logs and messages: scheme, host and port only (no keys, no credentials)."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    return url


# Magic numbers of containers ffmpeg reads; raw s16le PCM starting with one of these is
# practically impossible (it would be a loud, specific waveform). Bare MP3 or ADTS frames are
# not sniffed: their two-byte frame sync is also a common pair of PCM bytes (use "container").
_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"RIFF"), (0, b"RF64"), (0, b"OggS"), (0, b"fLaC"), (0, b"ID3"), (0, b"\x1a\x45\xdf\xa3"),
    (0, b"FLV"), (4, b"ftyp"), (0, b"FORM"), (0, b"#!AMR"), (0, b"caff"), (0, b".snd"), (0, b"MThd"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMA
)


def looks_like_container(head: bytes) -> bool:
    """Whether the first bytes of a stream are a container or compressed format, not raw PCM."""
    for offset, magic in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return True
    if len(head) >= 189 * 2 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return True  # MPEG-TS: a sync byte every 188 bytes
    return False


class PipeSource:
    """Audio from standard input or any binary file object: raw s16le 16 kHz mono, or any
    container (sniffed from the first bytes, or `kind="container"`), decoded by ffmpeg.

    Not live: when the recognizer falls behind, reading pauses (the writer waits) rather than
    audio being shed. The source ends at end of file.
    """

    SNIFF = 512

    def __init__(self, stream: IO[bytes], *, kind: Literal["auto", "raw", "container"] = "auto", ffmpeg: str | None = None, name: str = "-"):
        self.stream = stream
        self.kind = kind
        self.name = name
        self.live = False
        self.reconnects = 0
        self._ffmpeg = ffmpeg
        self._stopping = False
        self._proc: asyncio.subprocess.Process | None = None
        self._chunks: asyncio.Queue | None = None
        self._eof = False

    def stop(self) -> None:
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()

    async def _read(self) -> bytes:
        """The next chunk of the stream (b"" at its end), from a daemon reader thread: a read
        blocked on a silent pipe never holds up the end of the session or of the process."""
        if self._chunks is None:
            self._chunks = asyncio.Queue(maxsize=8)  # a few chunks ahead; then the writer waits
            loop = asyncio.get_running_loop()
            try:  # the file descriptor itself: a buffered reader's lock, held by a read
                fd = self.stream.fileno()  # blocked at exit, would abort the interpreter
                reader = lambda n: os.read(fd, n)  # noqa: E731
            except (AttributeError, OSError, io.UnsupportedOperation):
                reader = getattr(self.stream, "read1", self.stream.read)

            def pump() -> None:
                while True:
                    try:
                        data = reader(READ_BYTES)
                    except (OSError, ValueError) as exc:
                        data = exc
                    try:
                        asyncio.run_coroutine_threadsafe(self._chunks.put(data), loop).result()
                    except (RuntimeError, asyncio.CancelledError):
                        return  # the loop is gone
                    if not isinstance(data, bytes) or not data or self._stopping:
                        return

            threading.Thread(target=pump, name="transcribe-stdin", daemon=True).start()
        if self._eof:
            return b""
        data = await self._chunks.get()
        if isinstance(data, Exception):
            raise InputError(f"{self.name}: cannot read: {data}")
        if not data:
            self._eof = True
        return data

    async def events(self) -> AsyncIterator[Event]:
        yield State("connecting")
        head = b""
        while len(head) < self.SNIFF and not self._stopping:
            data = await self._read()
            if not data:
                break
            head += data
        if not head:
            yield State("ended", "standard input was empty")
            return
        container = self.kind == "container" or (self.kind == "auto" and looks_like_container(head))
        if container:
            async for ev in self._through_ffmpeg(head):
                yield ev
        else:
            decode = PcmDecoder()
            yield State("live")
            data = head
            while data:
                samples = decode(data)
                if len(samples):
                    yield Pcm(samples)
                if self._stopping:
                    break
                data = await self._read()
        yield State("ended")

    async def _through_ffmpeg(self, head: bytes) -> AsyncIterator[Event]:
        from transcribe.media import ffmpeg_binary

        ffmpeg = self._ffmpeg or ffmpeg_binary()
        # Containers on a pipe need ffmpeg's default probing to find their audio stream, and
        # `-fflags nobuffer` makes it decode nothing at all from a WAV on a pipe (measured).
        cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-i", "pipe:0", *OUTPUT_ARGS]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        self._proc = proc
        stderr_task = asyncio.ensure_future(proc.stderr.read())

        async def pump() -> None:
            try:
                data = head
                while data and not self._stopping:
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                    data = await self._read()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    proc.stdin.close()

        pumper = asyncio.ensure_future(pump())
        decode = PcmDecoder()
        got = 0
        try:
            while True:
                data = await proc.stdout.read(READ_BYTES)
                if not data:
                    break
                if got == 0:
                    yield State("live")
                got += len(data)
                samples = decode(data)
                if len(samples):
                    yield Pcm(samples)
        finally:
            pumper.cancel()
            with contextlib.suppress(BaseException):
                await pumper
            await _stop_process(proc)
            self._proc = None
        err = b""
        with contextlib.suppress(Exception):
            err = await asyncio.wait_for(stderr_task, 1.0)
        if got == 0 and not self._stopping:
            raise InputError(f"standard input: ffmpeg cannot decode it: {_last_error(err) or 'no audio'}")


def token_ok(expected: str | None, request) -> bool:
    """Whether a WebSocket handshake carries the shared secret: `Authorization: Bearer TOKEN`
    or `?token=TOKEN` (browsers cannot set headers on a WebSocket). No secret set: all pass."""
    if not expected:
        return True
    given = None
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None:
        values = parse_qs(urlsplit(request.path).query).get("token")
        given = values[0] if values else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _path(request) -> str:
    return urlsplit(request.path).path.rstrip("/") or "/"


class WebSocketIngest:
    """A WebSocket server that takes PCM from a media server or bridge (protocol: README.md).

    Binary messages: raw s16le, 16 kHz, mono, a whole number of samples, at most `max_frame`
    bytes each. Text messages: `{"type": "start", "format": "s16le", "sample_rate": 16000,
    "channels": 1}` (optional, checked) and `{"type": "end"}` (ends the session). Anything else
    closes the connection with a reason. A second publisher replaces the first.
    """

    PATHS = ("/", "/ingest")

    def __init__(self, host: str, port: int, *, token: str | None = None, max_frame: int = 64_000, queue_frames: int = 2000):
        if max_frame < 2:
            raise ValueError("max_frame must hold at least one sample")
        self.host, self.port = host, port
        self.token = token
        self.max_frame = max_frame
        self.live = True
        self.reconnects = 0
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=queue_frames)
        self._server = None
        self._publisher = None
        self._publishers = 0
        self._stopping = False
        self.dropped_frames = 0
        self.refused = 0

    @property
    def bound_port(self) -> int:
        return self._server.sockets[0].getsockname()[1] if self._server else self.port

    async def start(self) -> None:
        if self._server is not None:
            return
        from websockets.asyncio.server import serve

        try:
            self._server = await serve(
                self._handle, self.host, self.port, max_size=self.max_frame, max_queue=64,
                process_request=self._check, compression=None, ping_interval=20, ping_timeout=20,
            )
        except OSError as exc:
            from transcribe.errors import UsageError

            raise UsageError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        log.info("ingest listening on ws://%s:%d/ingest", self.host, self.bound_port)

    def _check(self, connection, request):
        if _path(request) not in self.PATHS:
            self.refused += 1
            return connection.respond(HTTPStatus.NOT_FOUND, "ingest is at /ingest\n")
        if not token_ok(self.token, request):
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN\n")
        return None

    def _put(self, ev: Event | None) -> None:
        try:
            self._queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.dropped_frames += 1

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        old = self._publisher
        self._publisher = ws
        self._publishers += 1
        if old is not None:
            log.warning("ingest: a new publisher replaces the connected one")
            await old.close(4000, "replaced by a new publisher")
        if self._publishers > 1:
            self.reconnects += 1
        self._put(State("live", str(ws.remote_address)))
        decode = PcmDecoder()
        try:
            async for message in ws:
                if isinstance(message, str):
                    reply = self._control(message)
                    if reply == "end":
                        self._put(None)
                        await ws.close(1000, "session ended")
                        return
                    if reply is not None:
                        self.refused += 1
                        await ws.close(1003, reply)
                        return
                    continue
                if len(message) % 2:
                    self.refused += 1
                    await ws.close(1007, "PCM frames must hold whole 16-bit samples (even length)")
                    return
                samples = decode(message)
                if len(samples):
                    self._put(Pcm(samples))
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1009:
                self.refused += 1
            log.info("ingest: publisher closed (%s)", exc)
        finally:
            if self._publisher is ws:
                self._publisher = None
                if not self._stopping:
                    self._put(State("reconnecting", "publisher disconnected"))

    def _control(self, text: str) -> str | None:
        """None if the text message is accepted, "end" to end, or why it is refused."""
        try:
            msg = json.loads(text)
        except ValueError:
            return "text messages must be JSON control messages"
        if not isinstance(msg, dict):
            return "a control message must be a JSON object"
        kind = msg.get("type")
        if kind == "end":
            return "end"
        if kind == "start":
            fmt = (msg.get("format", "s16le"), int(msg.get("sample_rate", SAMPLE_RATE) or 0), int(msg.get("channels", 1) or 0))
            if fmt != ("s16le", SAMPLE_RATE, 1):
                return f"only s16le, {SAMPLE_RATE} Hz, mono is accepted; got {fmt[0]}, {fmt[1]} Hz, {fmt[2]} channel(s)"
            return None
        return f"unknown control message type {kind!r}"

    def stop(self) -> None:
        self._stopping = True
        self._put(None)

    async def close(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def events(self) -> AsyncIterator[Event]:
        if self._server is None:
            await self.start()
        yield State("connecting", f"waiting for a publisher on ws://{self.host}:{self.bound_port}/ingest")
        while True:
            ev = await self._queue.get()
            if ev is None:
                break
            yield ev
        yield State("ended")


_HOSTPORT = re.compile(r"^(?:(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):)?(?P<port>\d+)$")


def parse_hostport(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'8765' -> ('127.0.0.1', 8765); 'HOST:PORT' and '[::1]:PORT' as given. Port 0 picks a free one."""
    from transcribe.errors import UsageError

    m = _HOSTPORT.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not PORT or HOST:PORT")
    host = m.group("v6") or m.group("host") or default_host
    port = int(m.group("port"))
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range")
    return host, port
