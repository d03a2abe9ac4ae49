"""What a streaming session says: captions and status, as values and as JSON messages.

The JSON form is the protocol of the caption WebSocket server and of `--format jsonl`; it is
documented in transcribe/streaming/README.md and versioned by `PROTOCOL_VERSION`. Every message
has `type` and `seq` (one counter per session, over all message types, so a client can tell it
missed some); times are seconds of session time, rounded to milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from transcribe.types import Word

__all__ = ["PROTOCOL_VERSION", "Caption", "Status", "caption_message", "status_message", "word_dict"]

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Caption:
    """A partial (may still change, replaces the previous partial) or final caption.

    Finals are numbered from 0 by `id`; a partial carries the id the final that settles it will
    have. A final never changes once sent. Partials have no speaker yet (None).
    """

    kind: Literal["partial", "final"]
    id: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    words: tuple[Word, ...] = ()
    latency: float | None = None  # final: seconds from the last word's audio reaching us to now


@dataclass(frozen=True)
class Status:
    """How the session is doing: sent every few seconds and whenever the source changes state."""

    audio_time: float  # seconds of session time received
    lag: float  # seconds of received audio the recognizer has not looked at yet
    shed: float  # seconds of audio dropped, in all, because the recognizer fell behind
    source: Literal["connecting", "live", "reconnecting", "ended"]
    reconnects: int = 0
    clients: int = 0
    speakers: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _r(x: float) -> float:
    return round(float(x), 3)


def word_dict(w: Word) -> dict[str, Any]:
    return {"start": _r(w.start), "end": _r(w.end), "text": w.text, "probability": round(float(w.probability), 4)}


def caption_message(c: Caption, seq: int) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": c.kind,
        "seq": seq,
        "id": c.id,
        "start": _r(c.start),
        "end": _r(c.end),
        "speaker": c.speaker,
        "text": c.text,
    }
    if c.kind == "final":
        msg["words"] = [word_dict(w) for w in c.words]
        if c.latency is not None:
            msg["latency"] = _r(c.latency)
    return msg


def status_message(s: Status, seq: int) -> dict[str, Any]:
    return {
        "type": "status",
        "seq": seq,
        "audio_time": _r(s.audio_time),
        "lag": _r(s.lag),
        "shed": _r(s.shed),
        "source": s.source,
        "reconnects": s.reconnects,
        "clients": s.clients,
        "speakers": list(s.speakers),
        **s.extra,
    }
