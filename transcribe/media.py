"""Ingest: any audio or video file ffmpeg reads, decoded to 16 kHz mono float32.

ffmpeg is driven through ffmpeg-python. The binary is the system's `ffmpeg` when there is one,
else the one bundled in the `imageio-ffmpeg` wheel, so that pip alone sets the tool up.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

import ffmpeg
import numpy as np

from transcribe.errors import InputError
from transcribe.types import SAMPLE_RATE, Audio

# Declared and decoded durations may differ by a frame or two; more than this is a truncated file.
_TRUNCATION_TOLERANCE = 0.05  # share of the declared duration
_TRUNCATION_SLACK_S = 0.5


@functools.lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """`$TRANSCRIBE_FFMPEG`, else `ffmpeg` on PATH, else imageio-ffmpeg's bundled binary."""
    explicit = os.environ.get("TRANSCRIBE_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a dependency of ours
        raise InputError("no ffmpeg found: install ffmpeg or `pip install imageio-ffmpeg`") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _duration_from_log(log: str) -> float | None:
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", log)
    if not match:
        return None
    h, m, s = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def _reason(log: str) -> str:
    """The one ffmpeg line that says why decoding failed, made readable."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    if any("does not contain any stream" in ln or "matches no streams" in ln for ln in lines):
        return "it has no audio stream"
    for needle, say in (
        ("Invalid data found when processing input", "it is not a media file ffmpeg can read"),
        ("could not find codec parameters", "ffmpeg cannot find its codec parameters (corrupt or truncated?)"),
        ("Permission denied", "permission denied"),
        ("moov atom not found", "it is truncated or corrupt (no moov atom)"),
        ("End of file", "it is truncated or corrupt"),
    ):
        if any(needle in ln for ln in lines):
            return say
    errors = [ln for ln in lines if "rror" in ln or "nvalid" in ln]
    return (errors or lines or ["ffmpeg failed"])[-1]


def _riff_shortfall(path: Path) -> int:
    """Bytes a RIFF/WAVE file is missing according to its own header (0 when whole or not WAV).

    ffmpeg estimates a WAV's duration from its size, so a cut-off WAV decodes without complaint.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    declared = int.from_bytes(head[4:8], "little")
    if declared in (0, 0xFFFFFFFF):  # written by a streaming tool that never knew the length
        return 0
    return max(0, declared + 8 - path.stat().st_size)


def load_audio(path: str | os.PathLike[str]) -> Audio:
    """Decode a recording to 16 kHz mono float32, or raise InputError with one line saying why not."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a recording")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty (0 bytes)")
    stream = (
        ffmpeg.input(str(p))
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE, vn=None, sn=None, dn=None)
        .global_args("-nostdin", "-hide_banner", "-nostats")
    )
    try:
        out, err = stream.run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        raise InputError(f"{p}: cannot decode: {_reason(exc.stderr.decode(errors='replace'))}") from None
    log = err.decode(errors="replace")
    samples = np.frombuffer(out, dtype=np.float32)
    if samples.size == 0:
        if "Audio:" not in log:
            raise InputError(f"{p}: cannot decode: it has no audio stream")
        raise InputError(f"{p}: cannot decode: no audio could be decoded (truncated or corrupt?)")
    decoded = samples.size / SAMPLE_RATE
    missing = _riff_shortfall(p)
    if missing > 1024:
        raise InputError(f"{p}: truncated: its WAV header counts {missing} more bytes than the file holds")
    declared = None if "Estimating duration from bitrate" in log else _duration_from_log(log)
    if declared and decoded < declared * (1 - _TRUNCATION_TOLERANCE) - _TRUNCATION_SLACK_S:
        raise InputError(
            f"{p}: truncated or corrupt: it declares {declared:.1f} s but only {decoded:.1f} s decode"
        )
    return Audio(samples=samples.copy(), source=str(p))
