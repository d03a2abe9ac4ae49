"""Streaming logic on hand-made inputs with known answers: the commit policy, the audio ring,
voice activity, online speakers, the live WebVTT file, message shapes, and the whole engine
driven by a scripted recognizer on synthetic audio (no models, no sockets, a fake clock)."""

from __future__ import annotations

import io
import threading
from dataclasses import replace

import numpy as np
import pytest
import webvtt

from transcribe.attribution import NameSpec, build_segments
from transcribe.errors import OutputError, UsageError
from transcribe.streaming.decoder import DecoderOptions, WindowResult
from transcribe.streaming.engine import EngineOptions, StreamingEngine
from transcribe.streaming.livevtt import LiveVtt
from transcribe.streaming.messages import Caption, Status, caption_message, status_message
from transcribe.streaming.policy import LocalAgreement, normalize_word
from transcribe.streaming.ring import AudioRing
from transcribe.streaming.session import StreamOptions, display_source
from transcribe.streaming.sources import PcmDecoder, is_live_url, looks_like_container, parse_hostport
from transcribe.streaming.speakers import OnlineSpeakers, SpeakerNamer, SpeakerOptions
from transcribe.streaming.vad import FRAME, VoiceActivity
from transcribe.types import Transcript, Word
from transcribe.writers import VttWriter

SR = 16_000


def W(start, end, text, speaker=None):
    return Word(start, end, text, 1.0, speaker)


def texts(words):
    return [w.text.strip() for w in words]


# --------------------------------------------------------------------------- LocalAgreement


def test_agreement_commits_the_prefix_two_passes_share():
    la = LocalAgreement(2)
    c, p = la.update([W(0.0, 0.4, " Hello"), W(0.5, 0.9, " every")])
    assert c == [] and texts(p) == ["Hello", "every"]
    c, p = la.update([W(0.0, 0.4, " Hello"), W(0.5, 1.0, " everyone."), W(1.2, 1.5, " This")])
    assert texts(c) == ["Hello"] and texts(p) == ["everyone.", "This"]
    c, p = la.update([W(0.0, 0.4, " Hello"), W(0.5, 1.0, " everyone."), W(1.2, 1.5, " This"), W(1.6, 1.8, " is")])
    assert texts(c) == ["everyone.", "This"] and texts(p) == ["is"]
    assert la.committed_end == 1.5


def test_agreement_ignores_case_and_punctuation_and_takes_the_newest_form():
    la = LocalAgreement(2)
    la.update([W(0.0, 0.3, " oh"), W(0.4, 0.8, " hello")])
    c, _ = la.update([W(0.0, 0.3, " Oh,"), W(0.4, 0.8, " hello.")])
    assert texts(c) == ["Oh,", "hello."]
    assert normalize_word(" Hello,") == normalize_word("hello") == "hello"
    assert normalize_word(" don't!") == "don't"


def test_agreement_drops_committed_words_heard_again():
    la = LocalAgreement(2)
    la.update([W(0.0, 0.4, " one"), W(0.5, 0.9, " two")])
    la.update([W(0.0, 0.4, " one"), W(0.5, 0.9, " two"), W(1.0, 1.3, " three")])
    # the window still holds "one two": they must not be committed twice, even with shifted times
    c, p = la.update([W(0.02, 0.41, " one"), W(0.52, 0.93, " two"), W(1.0, 1.3, " three"), W(1.4, 1.7, " four")])
    assert texts(c) == ["three"] and texts(p) == ["four"]


def test_agreement_with_a_repeated_head_word_after_the_committed_end():
    la = LocalAgreement(2)
    la.update([W(0.0, 0.5, " yes")])
    la.update([W(0.0, 0.5, " yes"), W(0.6, 0.9, " yes")])
    assert la.committed_end == 0.5
    # a re-recognised "yes" starting just before the committed end is the committed one
    c, p = la.update([W(0.45, 0.55, " yes"), W(0.6, 0.9, " yes"), W(1.0, 1.2, " no")])
    assert texts(c) == ["yes"] and texts(p) == ["no"]


def test_agreement_flush_and_flush_until():
    la = LocalAgreement(2)
    la.update([W(0.0, 0.3, " a"), W(0.4, 0.7, " b"), W(0.8, 1.1, " c")])
    assert texts(la.flush(until=0.75)) == ["a", "b"]
    assert texts(la.pending) == ["c"]
    # "c" stays a hypothesis: one more agreeing pass commits it
    c, _ = la.update([W(0.8, 1.1, " c"), W(1.2, 1.4, " d")])
    assert texts(c) == ["c"]
    assert texts(la.flush()) == ["d"] and la.pending == ()


def test_agreement_never_commits_a_word_the_window_may_have_cut():
    la = LocalAgreement(2)
    la.update([W(0.0, 0.4, " inter"), W(0.5, 0.99, " nation")], stable_until=0.8)
    c, p = la.update([W(0.0, 0.4, " inter"), W(0.5, 0.99, " nation")], stable_until=0.8)
    assert texts(c) == ["inter"] and texts(p) == ["nation"]
    c, p = la.update([W(0.5, 1.1, " national")], stable_until=1.3)
    assert c == [] and texts(p) == ["national"]


def test_agreement_n1_and_n3():
    la1 = LocalAgreement(1)
    c, p = la1.update([W(0, 1, " x")])
    assert texts(c) == ["x"] and p == []
    la3 = LocalAgreement(3)
    assert la3.update([W(0, 1, " x")])[0] == []
    assert la3.update([W(0, 1, " x")])[0] == []
    assert texts(la3.update([W(0, 1, " x")])[0]) == ["x"]
    with pytest.raises(ValueError):
        LocalAgreement(0)


# --------------------------------------------------------------------------- ring


def test_ring_wraps_and_reads_by_absolute_index():
    ring = AudioRing(1.0)  # 16000 samples
    data = np.arange(40_000, dtype=np.float32)
    for i in range(0, 40_000, 3000):
        ring.write(data[i:i + 3000], arrived=float(i))
    assert ring.end == 40_000 and ring.start == 24_000
    np.testing.assert_array_equal(ring.read(30_000, 35_000), data[30_000:35_000])
    np.testing.assert_array_equal(ring.read(0, 24_010), data[24_000:24_010])  # clipped to what is held
    assert ring.read(50_000).size == 0
    assert ring.overwritten == 24_000  # nobody said they could go
    assert ring.arrival(39_999) == 39_000.0 and ring.arrival(30_000) == 30_000.0


def test_ring_counts_only_samples_not_released():
    ring = AudioRing(1.0)
    ring.write(np.zeros(16_000, np.float32), 0.0)
    ring.keep_from(10_000)
    ring.write(np.zeros(8_000, np.float32), 1.0)
    assert ring.overwritten == 0  # 0..8_000 dropped, all released
    ring.write(np.zeros(8_000, np.float32), 2.0)
    assert ring.overwritten == 6_000  # 10_000..16_000 dropped unread


def test_ring_skip_is_silence_and_moves_the_clock():
    ring = AudioRing(2.0)
    ring.write(np.ones(8_000, np.float32), 0.0)
    ring.skip(4_000)
    ring.write(np.ones(4_000, np.float32), 1.0)
    assert ring.end == 16_000
    x = ring.read(0)
    assert x[:8_000].min() == 1 and x[8_000:12_000].max() == 0 and x[12_000:].min() == 1
    ring.skip(100_000)  # a gap longer than the ring
    assert ring.end == 116_000 and ring.read(ring.start).max() == 0


# --------------------------------------------------------------------------- synthetic speech


VOCAB = ["Hello", "everyone.", "This", "is", "the", "budget", "meeting.", "Yes,", "thank", "you."]


def amp(k: int) -> float:
    return 0.1 + 0.02 * k


def synth(spec, seconds: float) -> np.ndarray:
    """Words as bursts of a square wave whose amplitude says which word it is."""
    x = np.zeros(int(seconds * SR), np.float32)
    for start, end, k in spec:
        a, b = int(start * SR), int(end * SR)
        x[a:b] = amp(k) * np.where(np.arange(b - a) % 2, 1.0, -1.0)
    return x


class FakeVadModel:
    """Silero's interface: (N*512,) samples -> N speech probabilities (1 for a burst)."""

    def __call__(self, audio):
        return (np.abs(audio.reshape(-1, FRAME)).max(axis=1) > 0.01).astype(np.float32)


class ScriptedDecoder:
    """Recognises bursts as words; a burst cut by the window's end comes out garbled, as Whisper
    guesses at a word it has heard only half of."""

    def __init__(self, cost: float = 0.0, clock=None):
        self.options = DecoderOptions()
        self.cost = cost
        self.clock = clock
        self.calls = 0
        self.windows: list[float] = []
        self.prompts: list[str] = []

    def __call__(self, samples, prompt="", encoder_seconds=None):
        self.calls += 1
        self.windows.append(len(samples) / SR)
        self.prompts.append(prompt)
        if self.clock is not None:
            self.clock.t += self.cost
        loud = np.abs(samples) > 0.01
        words = []
        i, n = 0, len(samples)
        while i < n:
            if not loud[i]:
                i += 1
                continue
            j = i
            while j < n and loud[j]:
                j += 1
            k = int(round((np.abs(samples[i:j]).max() - 0.1) / 0.02))
            text = VOCAB[k] if j < n - 200 else VOCAB[k][:2] + "zz"
            words.append(Word(round(i / SR, 3), round(j / SR, 3), " " + text, 0.9))
            i = j
        return WindowResult(tuple(words), 0.0, -0.1, None, self.cost)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run_engine(audio, *, options=None, embedder=None, speakers=None, namer=None, cost=0.0, chunk=0.1, gaps=(), probe=True,
               decoder_class=None, vad_model=None):
    """Feed `audio` in real time on a fake clock, stepping when the engine is ready; returns
    the engine and (time, caption) pairs. `gaps`: (at seconds of audio fed, gap seconds)."""
    clock = Clock()
    decoder = (decoder_class or ScriptedDecoder)(cost, clock)
    engine = StreamingEngine(
        decoder, vad=VoiceActivity(model=vad_model or FakeVadModel()), embedder=embedder, speakers=speakers,
        namer=namer, options=options or EngineOptions(), clock=clock,
    )
    out = []
    fed = 0
    n = int(chunk * SR)
    gaps = list(gaps)
    while fed < len(audio):
        # audio arrives in real time: everything due by now has arrived, also while a pass ran
        while fed < len(audio) and fed + n <= clock.t * SR + 1:
            if gaps and fed >= gaps[0][0] * SR:
                engine.gap(gaps.pop(0)[1])
            engine.feed(audio[fed:fed + n], clock.t)
            fed += n
        captions = engine.work() if probe else (engine.step() if engine.ready() else None)
        if captions is None:
            clock.t += chunk
        out += [(clock.t, c) for c in captions or []]
    engine.close()
    for _ in range(10):
        if engine.finished:
            break
        out += [(clock.t, c) for c in engine.step()]
    assert engine.finished
    return engine, out, decoder


def finals(out):
    return [c for _, c in out if c.kind == "final"]


SCRIPT = [(0.5, 0.9, 0), (1.0, 1.6, 1), (3.0, 3.3, 2), (3.4, 3.6, 3), (3.7, 3.9, 4), (4.0, 4.5, 5), (4.6, 5.3, 6),
          (7.0, 7.3, 7), (7.4, 7.8, 8), (7.9, 8.3, 9)]


def test_engine_final_words_in_order_and_fast():
    audio = synth(SCRIPT, 10.0)
    engine, out, decoder = run_engine(audio)
    assert [w.text.strip() for w in engine.words] == VOCAB
    assert [w.text.strip() for c in finals(out) for w in c.words] == VOCAB
    # every final arrives within a second and a half of its last word's end (step 0.5 s)
    for t, c in out:
        if c.kind == "final":
            assert t - c.end <= 1.5, (c, t)
    # partials came first, and the garbled half-heard words never became final
    assert any(c.kind == "partial" and c.text for _, c in out)
    assert all("zz" not in w.text for w in engine.words)
    ids = [c.id for c in finals(out)]
    assert ids == list(range(len(ids)))
    # silence was not decoded: fewer passes than steps
    assert decoder.calls < 10.0 / 0.5


def test_engine_probe_shows_the_first_words_early_and_leaves_finals_alone():
    # speech starts just after an idle step: without a probe its first text waits for the next
    script = [(0.6, 1.6, 1), (1.7, 2.4, 2), (2.5, 3.0, 3)]
    audio = synth(script, 5.0)
    engine, out, _ = run_engine(audio, cost=0.2)
    plain, plain_out, _ = run_engine(audio, cost=0.2, probe=False)
    first = min(t for t, c in out if c.text)
    assert first - 0.6 <= 0.3 + 0.1 + 0.2 + 1e-6  # probe_speech + probe_interval + a pass
    assert first < min(t for t, c in plain_out if c.text)
    assert engine.stats.probes == 1 and texts(engine.words) == texts(plain.words)


class ShyDecoder(ScriptedDecoder):
    """Says nothing until it has heard 0.4 s of speech in its window, as tiny.en on the first
    few hundred milliseconds of an utterance (rejected as no speech)."""

    def __call__(self, samples, prompt="", encoder_seconds=None):
        result = super().__call__(samples, prompt, encoder_seconds)
        if sum(w.end - w.start for w in result.words) >= 0.4:
            return result
        return WindowResult((), 0.9, -1.5, "no speech", self.cost)


@pytest.mark.parametrize("onset", [3.2, 3.3, 3.4])
def test_engine_probe_for_each_utterance_whatever_made_the_previous_words_final(onset):
    # The first utterance's words become final by agreement before any pass sees a long
    # trailing pause, so no pass "flushes" them; the next utterance must still get its early
    # pass (found by voice activity: a pause after the last final word) and its first text soon.
    script = [(0.6, 1.6, 1), (1.7, 2.35, 2), (onset, onset + 0.5, 3), (onset + 0.6, onset + 1.1, 4)]
    audio = synth(script, 6.0)
    engine, out, _ = run_engine(audio, cost=0.2, decoder_class=ShyDecoder)
    plain, _, _ = run_engine(audio, cost=0.2, probe=False, decoder_class=ShyDecoder)
    assert engine.stats.probes == 2
    first = min(t for t, c in out if c.text and c.end > onset)
    assert first - onset <= 0.9 + 1e-6  # before: 1.0 to 1.1 s, the first text waited for regular passes
    assert texts(engine.words) == texts(plain.words) == ["everyone.", "This", "is", "the"]


SHORT_WORD_ONSETS = [3.05, 3.15, 3.25, 3.35, 3.45]


def short_word(onset: float) -> np.ndarray:
    """Two words, then "Hello" (0.15 s, less than min_speech) after a pause, then the next speaker."""
    return synth([(0.6, 1.6, 1), (1.7, 2.35, 2), (onset, onset + 0.15, 0), (onset + 1.2, onset + 1.7, 3)], 6.0)


@pytest.mark.parametrize("probe", [True, False])
@pytest.mark.parametrize("onset", SHORT_WORD_ONSETS)
def test_engine_keeps_a_short_word_after_a_pause(onset, probe):
    # A pass skipped the short word as too little speech yet; the next found nothing new since
    # and, the words before being final, moved the window past it: it was lost (3.15 to 3.4).
    engine, _, _ = run_engine(short_word(onset), cost=0.2, probe=probe)
    assert texts(engine.words) == ["everyone.", "This", "Hello", "is"]


@pytest.mark.parametrize("onset", SHORT_WORD_ONSETS)
def test_engine_probe_for_a_short_word_that_ended(onset):
    # The short word is all the speech there is until the next speaker: the probe runs once
    # it has ended, not after probe_speech of speech. Before, its first text waited for a
    # regular pass: 0.85 s at 3.45 (1.7 s at 3.15 to 3.4, where the word was lost).
    _, out, _ = run_engine(short_word(onset), cost=0.2)
    first = min(t for t, c in out if c.text and c.end > onset)
    # the word, probe_tail and a frame, two probe intervals (a skipped pass may take one), a pass
    assert first - onset <= 0.15 + 0.2 + FRAME / SR + 0.2 + 0.2 + 1e-6


class LoopingDecoder(ScriptedDecoder):
    """On a probe's short encoder window, one word comes out five times, as Whisper loops."""

    def __call__(self, samples, prompt="", encoder_seconds=None):
        result = super().__call__(samples, prompt, encoder_seconds)
        if encoder_seconds is None or encoder_seconds > EngineOptions().probe_encoder or len(result.words) != 1:
            return result
        (w,) = result.words
        part = (w.end - w.start) / 5
        loop = [replace(w, start=round(w.start + k * part, 3), end=round(w.start + (k + 1) * part, 3)) for k in range(5)]
        return replace(result, words=tuple(loop))


@pytest.mark.parametrize("onset", SHORT_WORD_ONSETS)
def test_engine_probe_that_loops_shows_what_the_speech_can_hold(onset):
    # A probe over one short word that comes back as five: the partial over 0.15 s of speech
    # shows the word once, as early as a probe does, never "Hello Hello Hello Hello Hello".
    engine, out, _ = run_engine(short_word(onset), cost=0.2, decoder_class=LoopingDecoder)
    assert engine.stats.probes >= 1
    assert not [c.text for _, c in out if c.text.count("Hello") > 1]
    first = min(t for t, c in out if c.text and c.end > onset)
    assert first - onset <= 0.15 + 0.2 + FRAME / SR + 0.2 + 0.2 + 1e-6
    assert texts(engine.words) == ["everyone.", "This", "Hello", "is"]


class HangoverVadModel(FakeVadModel):
    """Speech goes on 0.32 s past each burst, as Silero's does past a word (its lower threshold
    for the end of speech)."""

    def __call__(self, audio):
        flags = super().__call__(audio)
        out = flags.copy()
        for k in range(1, 11):
            out[k:] = np.maximum(out[k:], flags[:-k])
        return out


class CostlyDecoder(ScriptedDecoder):
    """A pass costs in proportion to its encoder window, as Whisper's encoder does: a regular
    pass (30 s) takes `cost`, a probe (10 s) a third of it."""

    def __call__(self, samples, prompt="", encoder_seconds=None):
        cost = self.cost
        self.cost = cost * (encoder_seconds or 30.0) / 30.0
        try:
            return super().__call__(samples, prompt, encoder_seconds)
        finally:
            self.cost = cost


@pytest.mark.parametrize("onset", [3.1, 3.2, 3.5, 3.6])
def test_engine_probe_goes_before_a_pass_that_is_due(onset):
    # Passes take longer than a step (0.6 s), so one is always due and they run back to back, as
    # on this 2-core CPU. A new utterance's probe must not wait behind the pass that is due, nor
    # for the previous utterance's pending words to be made final (it shows them and the new
    # words); a pass due when the probe is a moment away waits for it (3.2). Before, the first
    # text came 0.9 to 1.2 s after these onsets (LJSpeech replay: up to 1.3 s).
    script = [(0.6, 1.6, 1), (1.7, 2.35, 2), (onset, onset + 0.5, 3), (onset + 0.6, onset + 1.1, 4), (onset + 1.2, onset + 1.6, 5)]
    audio = synth(script, 7.0)
    engine, out, _ = run_engine(audio, cost=0.6, decoder_class=CostlyDecoder, vad_model=HangoverVadModel())
    plain, _, _ = run_engine(audio, cost=0.6, decoder_class=CostlyDecoder, vad_model=HangoverVadModel(), probe=False)
    first = min(t for t, c in out if c.text and c.end > onset)
    assert first - onset <= 0.8 + 1e-6
    assert texts(engine.words) == texts(plain.words) == ["everyone.", "This", "is", "the", "budget"]


def test_engine_window_does_not_keep_old_speech_through_a_long_silence():
    # Voice activity runs on past the last word, so a second pass agrees on it and nothing is
    # pending when the silence starts; then 20 s of silence: passes are skipped, and the window
    # must not keep the old speech and all that silence for the next utterance's pass.
    script = [(0.6, 1.6, 1), (1.7, 2.35, 2), (22.5, 23.0, 3), (23.1, 23.6, 4)]
    engine, _, decoder = run_engine(synth(script, 25.0), cost=0.2, vad_model=HangoverVadModel())
    assert texts(engine.words) == ["everyone.", "This", "is", "the"]
    assert max(decoder.windows) <= 3.0, decoder.windows


def test_vad_last_pause_is_the_last_silence_that_speech_follows():
    vad = VoiceActivity(model=FakeVadModel())
    vad._append(np.array([1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool))
    frames = lambda pause: None if pause is None else (pause[0] // FRAME, pause[1] // FRAME)  # noqa: E731
    end = 17 * FRAME
    assert frames(vad.last_pause(0, end, 4 * FRAME / SR)) == (2, 6)
    assert frames(vad.last_pause(0, end, 2 * FRAME / SR)) == (8, 10)  # the last one long enough
    assert vad.last_pause(0, end, 5 * FRAME / SR) is None  # the trailing silence is not followed by speech
    assert vad.last_pause(3 * FRAME, end, 3 * FRAME / SR) is None  # a window starting in silence: no speech before


def test_engine_prompt_is_text_before_the_window():
    audio = synth(SCRIPT, 10.0)
    _, _, decoder = run_engine(audio)
    later = [p for p in decoder.prompts if p]
    assert later and all(p.strip().startswith("Hello") for p in later)


def test_engine_pause_makes_the_last_word_final():
    # one utterance, then silence: its last word has no second pass to agree with
    audio = synth([(0.5, 0.9, 0), (1.0, 1.6, 1)], 4.0)
    engine, out, _ = run_engine(audio, options=EngineOptions(pause_flush=0.5))
    assert texts(engine.words) == ["Hello", "everyone."]
    last = [t for t, c in out if c.kind == "final" and "everyone." in c.text][0]
    assert last - 1.6 <= 1.5


def test_engine_settles_pending_words_when_the_source_stops_after_speech():
    # the audio ends right after the last word: no silence will come to show the pause
    audio = synth([(0.5, 0.9, 0), (1.0, 1.6, 1), (1.8, 2.2, 2), (2.3, 2.95, 3)], 3.0)
    clock = Clock()
    engine = StreamingEngine(ScriptedDecoder(0.0, clock), vad=VoiceActivity(model=FakeVadModel()), clock=clock)
    for i in range(0, len(audio), 1600):
        engine.feed(audio[i:i + 1600], clock.t)
        clock.t += 0.1
        while engine.ready():
            engine.step()
    assert engine.agreement.pending  # "is" waits for agreement or a pause
    stopped = clock.t
    while not engine.ready():
        clock.t += 0.05
    assert clock.t - stopped <= 0.85
    engine.step()
    assert texts(engine.words) == ["Hello", "everyone.", "This", "is"]


def test_engine_gap_moves_session_time_and_settles_what_came_before():
    audio = synth([(0.5, 0.9, 0), (1.0, 1.4, 2), (3.0, 3.3, 3), (3.4, 3.8, 4)], 5.0)
    # the source drops after 2.5 s of audio and comes back 10 s later
    engine, out, _ = run_engine(audio, gaps=[(2.5, 10.0)])
    assert texts(engine.words) == ["Hello", "This", "is", "the"]
    times = {w.text.strip(): w.start for w in engine.words}
    assert times["is"] == pytest.approx(3.0 + 10.0, abs=0.15)
    assert engine.stats.gaps == 1 and engine.ring.seconds == pytest.approx(15.0, abs=0.11)


def test_engine_window_stays_bounded_without_sentence_ends():
    # 60 s of words 0.3 s long, 0.1 s apart, none ending a sentence
    spec = [(0.2 + 0.4 * i, 0.5 + 0.4 * i, [2, 3, 4, 5][i % 4]) for i in range(150)]
    audio = synth(spec, 61.0)
    opts = EngineOptions(max_window=6.0, ring_seconds=30.0)
    engine, _, decoder = run_engine(audio, options=opts)
    assert max(decoder.windows) <= 6.0 + 0.5 + 0.01
    assert len(engine.words) >= 140
    assert engine.ring.capacity == 30 * SR


def test_engine_keeps_up_with_slow_passes_and_sheds_when_they_are_too_slow():
    spec = [(0.5 + 1.0 * i, 1.2 + 1.0 * i, [2, 3, 4][i % 3]) for i in range(40)]
    audio = synth(spec, 41.0)
    # passes of 1.5 s for a 0.5 s step: each pass takes in all that came meanwhile, the lag
    # stays at one pass, nothing is lost
    engine, out, _ = run_engine(audio, options=EngineOptions(max_lag=4.0, adaptive=False), cost=1.5)
    assert len(engine.words) == 40 and engine.stats.shed_seconds == 0
    assert engine.stats.max_lag <= 1.5 + 0.5 + 0.01
    # passes of 3 s with at most 2 s of lag allowed: audio is shed, counted, and the lag stays bounded
    engine, out, _ = run_engine(audio, options=EngineOptions(max_lag=2.0, adaptive=False), cost=3.0)
    assert engine.stats.shed_seconds > 10.0
    assert engine.stats.max_lag <= 3.0 + 0.5 + 0.01
    assert 5 <= len(engine.words) < 40


def test_engine_adapts_encoder_window_to_slow_passes():
    clock = Clock()
    decoder = ScriptedDecoder(0.0, clock)
    engine = StreamingEngine(decoder, vad=VoiceActivity(model=FakeVadModel()), options=EngineOptions(), clock=clock)
    assert engine.ladder == (30.0, 20.0, 15.0)
    engine.prime(2.0)  # a full-window pass takes 2 s: far over the 0.5 s step
    assert engine.encoder_seconds == 15.0
    engine.prime(0.2)
    assert engine.encoder_seconds == 30.0
    for _ in range(5):
        engine._adapt(1.5)
    assert engine.encoder_seconds < 30.0
    fixed = StreamingEngine(decoder, vad=VoiceActivity(model=FakeVadModel()), options=EngineOptions(adaptive=False), clock=clock)
    fixed.prime(5.0)
    assert fixed.encoder_seconds == 30.0


class AmplitudeEmbedder:
    """Two 'voices': even word indices are speaker A, odd ones speaker B."""

    def __call__(self, samples):
        a = float(np.abs(samples).max())
        k = int(round((a - 0.1) / 0.02))
        return np.array([1.0, 0.05]) if k % 2 == 0 else np.array([0.05, 1.0])


def test_engine_labels_speakers_with_names_and_keeps_them():
    # A says words 0,2,4; B says 1,3,5 (pauses between turns); A again; B again
    spec = [(0.5, 1.5, 0), (2.5, 3.5, 1), (4.5, 5.5, 2), (6.5, 7.5, 3), (8.5, 9.5, 4), (10.5, 11.5, 5)]
    audio = synth(spec, 13.0)
    engine, out, _ = run_engine(
        audio, embedder=AmplitudeEmbedder(), speakers=OnlineSpeakers(SpeakerOptions(threshold=0.5)),
        namer=SpeakerNamer(NameSpec(names=("Diane", "Sheila"))),
    )
    assert [w.speaker for w in engine.words] == ["Diane", "Sheila"] * 3
    assert all(c.speaker in ("Diane", "Sheila") for c in finals(out))


def test_engine_close_without_audio_is_finished():
    engine, out, decoder = run_engine(np.zeros(SR, np.float32))
    assert engine.words == [] and decoder.calls == 0


def test_engine_options_refuse_nonsense():
    with pytest.raises(UsageError):
        EngineOptions(step=0.0)
    with pytest.raises(UsageError):
        EngineOptions(max_window=1.0)
    with pytest.raises(UsageError):
        StreamOptions(speaker_names="Diane,Diane")
    with pytest.raises(UsageError):
        StreamOptions(speaker_names="Diane", diarize=False)
    with pytest.raises(UsageError):
        DecoderOptions(beam_size=0)


# --------------------------------------------------------------------------- voice activity


def test_vad_incremental_flags_match_the_bursts():
    ring = AudioRing(30.0)
    audio = synth([(1.0, 2.0, 0), (3.0, 3.5, 1)], 5.0)
    vad = VoiceActivity(model=FakeVadModel())
    for i in range(0, len(audio), 1600):
        ring.write(audio[i:i + 1600], 0.0)
        vad.update(ring)
    assert vad.has_speech(int(1.2 * SR), int(1.3 * SR))
    assert not vad.has_speech(int(2.1 * SR), int(2.9 * SR))
    assert vad.first_speech(0, len(audio)) == pytest.approx(SR * 1.0, abs=FRAME)
    assert vad.last_speech_end(0, len(audio)) == pytest.approx(SR * 3.5, abs=FRAME)
    assert vad.trailing_silence(0) == pytest.approx(1.5, abs=0.05)


# --------------------------------------------------------------------------- speakers


def test_online_speakers_threshold_min_duration_and_cap():
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.5, min_new_duration=1.0))
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert sp.assign(a, 2.0) == "SPEAKER_00"
    assert sp.assign(b, 0.5) == "SPEAKER_00"  # too short to start a new voice
    assert sp.assign(b, 2.0) == "SPEAKER_01"
    assert sp.assign(a + 0.1 * b, 1.0) == "SPEAKER_00"
    assert sp.assign(None, 1.0) == "SPEAKER_00"  # no embedding: the previous speaker
    capped = OnlineSpeakers(SpeakerOptions(threshold=0.9, max_speakers=1))
    assert capped.assign(a, 2.0) == capped.assign(b, 2.0) == "SPEAKER_00"
    with pytest.raises(ValueError):
        SpeakerOptions(threshold=2.0)


def test_speaker_namer_by_order_and_by_label():
    by_order = SpeakerNamer(NameSpec(names=("Diane",)))
    assert by_order("SPEAKER_01") == "Diane" and by_order("SPEAKER_00") == "SPEAKER_00"
    assert by_order("SPEAKER_01") == "Diane"
    by_label = SpeakerNamer(NameSpec(labels=(("SPEAKER_01", "Sheila"),)))
    assert by_label("SPEAKER_00") == "SPEAKER_00" and by_label("SPEAKER_01") == "Sheila"


# --------------------------------------------------------------------------- live WebVTT


def words_of(text, start, speaker, step=0.4):
    return [W(round(start + i * step, 3), round(start + i * step + 0.3, 3), " " + t, speaker) for i, t in enumerate(text.split())]


def test_live_vtt_is_valid_at_every_moment_and_ends_as_the_batch_writer(tmp_path):
    path = tmp_path / "live.vtt"
    live = LiveVtt(path)
    assert path.read_text() == "WEBVTT\n"
    words = (
        words_of("Hello everyone.", 0.0, "Diane")
        + words_of("So the first item is the budget", 2.0, "Diane")
        + words_of("and the second is <R&D> hiring.", 5.0, "Diane")
        + words_of("Is that right?", 9.0, "Sheila")
    )
    seen = []
    for k in range(1, len(words) + 1):
        live.update(words[:k], now=words[k - 1].end)
        content = path.read_text()
        webvtt.from_buffer(io.StringIO(content))  # parses: valid now
        seen.append(live.cues)
        # finished cues only: never a cue for the word just added unless it ends a sentence
        assert "right?" not in content or k == len(words)
    assert seen == sorted(seen) and seen[-1] >= 2
    live.update(words, now=20.0, final=True)
    expected = VttWriter().to_string(Transcript("", 20.0, "en", build_segments(words)))
    assert path.read_text() == expected
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_live_vtt_time_closes_an_open_segment(tmp_path):
    live = LiveVtt(tmp_path / "a.vtt")
    words = words_of("no full stop here", 0.0, "A")
    assert not live.update(words, now=1.6)
    assert live.update(words, now=1.6 + 1.6)  # more than max_gap after its end
    assert live.cues == 1


def test_live_vtt_refuses_existing_file_and_missing_folder(tmp_path):
    (tmp_path / "x.vtt").write_text("keep")
    with pytest.raises(OutputError, match="already exists"):
        LiveVtt(tmp_path / "x.vtt")
    LiveVtt(tmp_path / "x.vtt", overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        LiveVtt(tmp_path / "nope" / "x.vtt")


def test_live_vtt_reader_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "r.vtt"
    live = LiveVtt(path)
    words = [w for i in range(300) for w in words_of(f"Sentence number {i}.", i * 2.0, "A")]
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                bad.append("missing")
                continue
            if not text.startswith("WEBVTT\n") or (len(text) > 7 and not text.endswith("</v>\n")):
                bad.append(text[-40:])

    th = threading.Thread(target=reader)
    th.start()
    try:
        for k in range(3, len(words) + 1, 3):
            live.update(words[:k], now=words[k - 1].end)
    finally:
        stop.set()
        th.join()
    assert not bad


# --------------------------------------------------------------------------- messages and helpers


def test_message_shapes():
    c = Caption("final", 3, 1.23456, 2.5, "Hello there.", "Diane", (W(1.23456, 1.8, " Hello"), W(1.9, 2.5, " there.")), 0.8123)
    m = caption_message(c, 17)
    assert m == {
        "type": "final", "seq": 17, "id": 3, "start": 1.235, "end": 2.5, "speaker": "Diane", "text": "Hello there.",
        "words": [{"start": 1.235, "end": 1.8, "text": " Hello", "probability": 1.0},
                  {"start": 1.9, "end": 2.5, "text": " there.", "probability": 1.0}],
        "latency": 0.812,
    }
    p = caption_message(Caption("partial", 4, 2.6, 3.0, "So"), 18)
    assert p == {"type": "partial", "seq": 18, "id": 4, "start": 2.6, "end": 3.0, "speaker": None, "text": "So"}
    s = status_message(Status(12.0, 0.4, 0.0, "live", 1, 2, ("Diane",)), 19)
    assert s["type"] == "status" and s["source"] == "live" and s["speakers"] == ["Diane"] and s["clients"] == 2


def test_container_sniffing():
    assert looks_like_container(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert looks_like_container(b"OggS\x00\x02")
    assert looks_like_container(b"fLaC\x00\x00")
    assert looks_like_container(b"\x1a\x45\xdf\xa3\x01")
    assert looks_like_container(b"\x00\x00\x00\x20ftypisom")
    assert looks_like_container(b"FLV\x01\x05")
    ts = bytearray(600)
    ts[0] = ts[188] = ts[376] = 0x47
    assert looks_like_container(bytes(ts))
    pcm = (np.sin(np.arange(4000) / 7) * 8000).astype("<i2").tobytes()
    assert not looks_like_container(pcm)
    assert not looks_like_container(b"\x00" * 512)


def test_pcm_decoder_carries_odd_bytes():
    dec = PcmDecoder()
    pcm = np.array([1000, -2000, 32767], "<i2").tobytes()
    a = dec(pcm[:3])
    b = dec(pcm[3:])
    np.testing.assert_allclose(np.concatenate([a, b]) * 32768, [1000, -2000, 32767])


def test_hostport_and_urls():
    assert parse_hostport("8765") == ("127.0.0.1", 8765)
    assert parse_hostport("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_hostport("[::1]:9000") == ("::1", 9000)
    with pytest.raises(UsageError):
        parse_hostport("host:port")
    with pytest.raises(UsageError):
        parse_hostport("70000")
    assert is_live_url("rtmp://127.0.0.1/live/x") and is_live_url("srt://h:9000") and is_live_url("stream.sdp")
    assert not is_live_url("meeting.webm")
    assert display_source("rtmp://user:pw@media.example:1935/live/SECRETKEY?token=x") == "rtmp://media.example:1935"
    assert display_source("-") == "stdin" and display_source("talk.wav") == "talk.wav"


def test_online_speakers_merge_a_voice_split_early_into_the_earlier_label():
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.7, min_new_duration=1.0))
    first, short_noisy, more = np.array([1.0, 0.0, 0.5]), np.array([1.0, 0.9, 0.0]), np.array([1.0, 0.3, 0.0])
    assert sp.assign(first, 2.0) == "SPEAKER_00"
    assert sp.assign(short_noisy, 1.0) == "SPEAKER_01"  # similarity 0.66: a new voice, on 1 s
    assert sp.count == 2
    # 8 s more of that voice, similarity 0.90 to SPEAKER_01's run and 0.86 to SPEAKER_00's: the
    # two groups are then 0.76 alike on average, above 0.7, so the three runs are one voice,
    # which keeps the label given to most of its speech
    assert sp.assign(more, 8.0) == "SPEAKER_00"
    assert sp.count == 1
    assert sp.assign(short_noisy, 2.0) == "SPEAKER_00"  # from then on, the earlier label
    assert sp.assign(None, 1.0) == "SPEAKER_00"


def test_online_speakers_do_not_learn_from_runs_too_short_to_trust():
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.5, min_new_duration=1.0))
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert sp.assign(a, 2.0) == "SPEAKER_00"
    assert sp.assign(b, 0.5) == "SPEAKER_00"  # another voice, too short to start a speaker
    assert sp.similarity(a, "SPEAKER_00") == pytest.approx(1.0)  # ... and not taken as SPEAKER_00's
    assert sp.assign(b, 1.5) == "SPEAKER_01"


class VoiceShareEmbedder:
    """'Voices' by word parity (even: A, odd: B), as the share of each in the audio."""

    def __call__(self, samples):
        level = np.abs(samples)
        k = np.round((level[level > 0.01] - 0.1) / 0.02).astype(int)
        even = float((k % 2 == 0).sum())
        return np.array([even, len(k) - even]) + 1e-3


def test_engine_notices_a_change_of_voice_without_a_pause_or_sentence_end():
    # A says words 0, 2, 4, then B goes on at once with 3, 5, 7: no pause, no sentence end
    spec = [(0.5, 1.2, 0), (1.25, 1.9, 2), (1.95, 2.6, 4), (2.65, 3.3, 3), (3.35, 4.2, 5), (4.25, 4.9, 7)]
    engine, _, _ = run_engine(synth(spec, 7.0), embedder=VoiceShareEmbedder(), speakers=OnlineSpeakers(SpeakerOptions(threshold=0.5)))
    speakers = [w.speaker for w in engine.words]
    assert speakers[0] == "SPEAKER_00" and speakers[-1] == "SPEAKER_01", speakers


class RecordingEmbedder(VoiceShareEmbedder):
    """VoiceShareEmbedder that keeps the share of the second voice in each stretch it embeds."""

    def __init__(self):
        self.shares: list[float] = []

    def __call__(self, samples):
        v = super().__call__(samples)
        self.shares.append(float(v[1] / v.sum()))
        return v


@pytest.mark.parametrize("cost", [0.0, 0.3, 0.6])
def test_engine_embeds_a_run_without_the_next_sentence_said_at_once(cost):
    # A ends a sentence ("... meeting.") and B answers at once, without a pause: a run's
    # embedding may take in pending words up to the next pause, but not past the sentence end,
    # or A's first embedding holds B's voice and B's words join A.
    spec = [(0.5, 1.0, 0), (1.05, 1.5, 2), (1.55, 2.2, 6), (2.25, 2.7, 7), (2.75, 3.3, 3), (3.35, 4.0, 9)]
    embedder = RecordingEmbedder()
    engine, _, _ = run_engine(synth(spec, 6.0), embedder=embedder, cost=cost,
                              speakers=OnlineSpeakers(SpeakerOptions(threshold=0.5, min_new_duration=0.5)))
    speakers = [w.speaker for w in engine.words]
    assert speakers == ["SPEAKER_00"] * 3 + ["SPEAKER_01"] * 3, speakers
    # the padding either side of a run may take in a little of the other voice, never more
    assert all(min(s, 1 - s) < 0.15 for s in embedder.shares), embedder.shares


def test_online_speakers_first_solid_voice_takes_over_a_label_known_only_from_short_runs():
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.5, min_new_duration=1.0))
    a, b, noisy = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    assert sp.assign(noisy, 0.5) == "SPEAKER_00"  # "Hello?": the first label, on half a second
    assert sp.assign(a, 2.0) == "SPEAKER_00"  # unlike it, but it was too little to go on: taken over
    assert sp.assign(b, 2.0) == "SPEAKER_01" and sp.count == 2
    assert sp.assign(a, 1.0) == "SPEAKER_00"


def test_warmup_times_a_pass_over_real_speech(monkeypatch) -> None:
    """The warm-up pass that picks the first encoder window runs on speech, not silence (a silent
    pass decodes no text and flatters a slow machine); silence only when the sample is missing."""
    import transcribe.samples
    from transcribe.streaming.session import warmup_speech

    x = warmup_speech(10.0)
    assert x.dtype == np.float32 and len(x) == 160000
    assert float(np.sqrt(np.mean(x**2))) > 0.01  # speech, not silence

    def missing(suffix=".wav"):
        raise FileNotFoundError("pyannote.audio is not installed")

    monkeypatch.setattr(transcribe.samples, "pyannote_sample", missing)
    y = warmup_speech(2.0)
    assert len(y) == 32000 and not y.any()


def test_online_speakers_recover_from_a_first_run_that_holds_two_voices():
    # The first run holds both voices (a turn change inside it): its embedding is near each.
    # Taken greedily, it made one centroid that both voices then joined for the rest of the
    # session. Re-clustering every run tells them apart once each has said enough.
    a, b, mixed = np.array([1.0, 0.0, 0.0]), np.array([0.3, 0.954, 0.0]), np.array([0.8, 0.6, 0.0])
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.45))
    assert sp.assign(mixed, 2.0) == "SPEAKER_00"
    labels = [(sp.assign(a, 2.0), sp.assign(b, 2.0)) for _ in range(5)]
    assert labels[0] == ("SPEAKER_00", "SPEAKER_00")  # too little to go on: one voice so far
    assert labels[-1] == ("SPEAKER_00", "SPEAKER_01") and sp.count == 2, labels


def test_online_speakers_memory_is_bounded_and_older_runs_keep_their_labels():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.3, 0.954, 0.0])
    sp = OnlineSpeakers(SpeakerOptions(threshold=0.45, memory=4))
    assert (sp.assign(a, 2.0), sp.assign(b, 2.0)) == ("SPEAKER_00", "SPEAKER_01")
    for _ in range(10):
        assert (sp.assign(a, 2.0), sp.assign(b, 0.5), sp.assign(b, 2.0)) == ("SPEAKER_00", "SPEAKER_01", "SPEAKER_01")
    assert len(sp._runs) == 4 and sp.count == 2
    with pytest.raises(ValueError):
        SpeakerOptions(memory=1)


# --------------------------------------------------------------------------- latency benchmark


def test_benchmark_first_text_counts_from_each_onset_and_skips_old_words():
    from benchmarks.stream_latency import first_text

    texts = [
        (0.9, {"end": 0.5}),  # words from before the first utterance
        (1.6, {"end": 1.2}),
        (5.5, {"end": 4.5}),  # the first utterance's last words, sent after the second began
        (5.8, {"end": 5.3}),
    ]
    assert first_text(texts, 0.0, [1.0, 5.0, 9.0]) == pytest.approx([0.6, 0.8, None])
    assert first_text(texts, 100.0, [1.0]) == [None]  # nothing arrived after the push began


def test_benchmark_speech_onsets_are_where_speech_starts_after_a_pause():
    from benchmarks.stream_latency import speech_onsets
    from transcribe.media import load_audio
    from transcribe.samples import pyannote_sample

    x = load_audio(pyannote_sample(".wav")).samples
    assert speech_onsets(x) == pytest.approx([6.78], abs=0.05)  # the talk starts at 6.8 s, no pause of 0.8 s after
    # two seconds of silence put in at 10 s: a second utterance starts at 12 s
    y = np.concatenate([x[: 10 * SR], np.zeros(2 * SR, np.float32), x[10 * SR : 20 * SR]])
    onsets = speech_onsets(y)
    assert len(onsets) == 2 and 12.0 <= onsets[1] <= 12.3


def test_benchmark_replay_slowdown_is_lo_hi_and_refuses_nonsense():
    import argparse

    from benchmarks.stream_replay import factors

    assert factors("3:5") == (3.0, 5.0) and factors("1:1") == (1.0, 1.0)
    for bad in ("3", "5:3", "0:2", "a:b", "1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            factors(bad)
