"""The speech recogniser on its own: what the pipeline relies on from faster-whisper."""

from __future__ import annotations

import pytest

from transcribe.media import load_audio
from transcribe.types import Audio


@pytest.mark.slow
def test_sampled_decoding_gives_the_same_words_every_time(store, sample) -> None:
    """The temperature fallback samples; a model loaded anew must sample the same words again.

    Sampling at temperature 1 from the start (no greedy pass) makes every word depend on the
    random draws: without the seed, two loads of tiny.en gave two different transcripts of these
    12 s.
    """
    from transcribe.asr import AsrOptions, Recognizer

    audio = load_audio(sample)
    clip = Audio(audio.samples[: 12 * audio.sample_rate])
    options = AsrOptions(language="en", vad_filter=False, temperature=(1.0,))
    runs = [Recognizer(store.require("tiny.en"), cpu_threads=1)(clip, options).words for _ in range(2)]
    assert runs[0], "tiny.en heard nothing in the sample's first 12 s"
    assert [w.text for w in runs[0]] == [w.text for w in runs[1]]
