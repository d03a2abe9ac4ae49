"""Streaming: near-real-time captions with speaker labels from a live source.

    source (ffmpeg URL | stdin | WebSocket ingest) -> AudioRing -> StreamingEngine (worker thread:
    Silero VAD, Whisper passes, LocalAgreement-2, CAM++ online speakers) -> Caption messages ->
    caption WebSocket server, live WebVTT, JSON lines -> at the end, one Transcript -> writers

The message protocol is in README.md beside this file.
"""

from transcribe.streaming.messages import PROTOCOL_VERSION, Caption, Status
from transcribe.streaming.policy import LocalAgreement

__all__ = ["PROTOCOL_VERSION", "Caption", "LocalAgreement", "Status"]
