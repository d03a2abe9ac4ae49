"""The streaming recognizer: audio in, partial and final captions with speakers out.

One `StreamingEngine` per session. The event loop `feed`s it audio as it arrives; a worker
thread calls `step()` about every `step` seconds. Each step:

1. updates voice activity over the new audio; a window without speech is not decoded at all
   (pending words are made final, the silence is dropped);
2. runs Whisper over the window [buffer start, newest sample) and hands the words to
   LocalAgreement-2, which commits the prefix two passes agree on;
3. commits everything pending when the speaker has paused (`pause_flush` seconds of silence),
   or when the source dropped (a gap) or ended;
4. labels each run of committed words with a speaker (CAM++ embedding of its audio, clustered
   online) and turns them into final captions; what is left is the partial;
5. trims the window at the last committed sentence end or pause, and never lets it grow past
   `max_window` seconds, so the cost of a pass and the memory held stay bounded.

If the machine cannot keep up, the audio that arrived since the last pass (the lag) grows; past
`max_lag` seconds the oldest of it is dropped (shed) and counted, instead of queueing without end.
All times are session times: seconds since the session started, gaps in the source included.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from transcribe.attribution import ends_sentence
from transcribe.streaming.decoder import WindowDecoder
from transcribe.streaming.messages import Caption
from transcribe.streaming.policy import LocalAgreement
from transcribe.streaming.ring import AudioRing
from transcribe.streaming.speakers import OnlineSpeakers, SpeakerNamer
from transcribe.streaming.vad import FRAME, VoiceActivity
from transcribe.types import SAMPLE_RATE, Word

log = logging.getLogger("transcribe")

__all__ = ["EngineOptions", "EngineStats", "StreamingEngine"]

SR = SAMPLE_RATE
SLOW, FAST = 1.5, 0.8  # pass time / step above which the encoder window shrinks, below which it grows
HEARD_AFTER = 0.3  # seconds a pass must have heard past the end of speech to settle it
TAIL_GUARD = 0.2  # a word ending this close to the window's end may be cut: not final by agreement
SPEECH_SLACK = 0.2  # a word must have voice activity within this of its span to be kept
CUT_SLACK = 0.25  # the window is cut at a sentence end only with a pause this close to it
MIN_WORD = 0.09  # seconds of speech below which a blip is not taken for a word (three Silero frames)
PROBE_RATE = 5.0  # words a second of speech a probe may show, and one more: past it, Whisper loops


@dataclass(frozen=True)
class EngineOptions:
    """How often to decode, when words become final, and how much audio to hold."""

    step: float = 0.5  # seconds of new audio between recognizer passes
    idle_step: float = 0.5  # the same while nothing is pending (shorter catches onsets sooner, but
    # measured on LJSpeech, 0.2 s cost 4 points of WER: first passes over a fifth of a second of speech)
    min_speech: float = 0.2  # seconds of speech a window needs before its first pass (unless it ended)
    probe_speech: float = 0.3  # seconds of new speech after which one early pass shows a partial
    probe_interval: float = 0.1  # while no words are pending, how often a probe checks voice activity
    # a probe also runs on less speech than probe_speech once this much silence follows it: a
    # short utterance ("Hello?", "Yes.") that ended is all there is to hear until the next one
    probe_tail: float = 0.2
    # encoder window of a probe, at most the shortest regular one: its audio is a second or two, and
    # tiny.en heard the same words at 10 s as at 15 s in a quarter less time (150 against 200 ms)
    probe_encoder: float = 10.0
    agreement: int = 2  # LocalAgreement-n: passes that must agree before a word is final
    pause_flush: float = 0.5  # seconds of silence after which pending words are final
    max_window: float = 12.0  # longest window decoded; longer ones are cut
    max_lag: float = 8.0  # seconds of backlog beyond which audio is shed
    keep_silence: float = 0.3  # silence kept before speech at the start of a window
    run_gap: float = 0.3  # a pause this long between final words may be a change of speaker
    speaker_pad: float = 0.1  # audio taken either side of a run for its embedding
    lookahead: float = 3.0  # a run's embedding may take in pending words up to this long
    adaptive: bool = True  # shorten the encoder window when passes cannot keep up
    degraded_encoder: tuple[float, ...] = (20.0, 15.0)  # encoder windows to fall back on, in order
    ring_seconds: float = 60.0  # audio held at most

    def __post_init__(self) -> None:
        from transcribe.errors import UsageError

        if not 0.1 <= self.step <= 5.0:
            raise UsageError(f"--step must be between 0.1 and 5 seconds, not {self.step}")
        if self.max_window < 2.0 or self.max_window > 30.0:
            raise UsageError(f"the window must be 2 to 30 seconds, not {self.max_window}")
        if self.max_lag < self.step:
            raise UsageError(f"--max-lag must be at least --step ({self.step} s), not {self.max_lag}")
        if self.ring_seconds < self.max_window + self.max_lag:
            raise UsageError("the audio ring must hold the window and the allowed lag")


@dataclass
class EngineStats:
    passes: int = 0
    decode_seconds: float = 0.0
    skipped_silent: int = 0
    shed_seconds: float = 0.0
    lag: float = 0.0  # at the start of the latest pass
    max_lag: float = 0.0
    gaps: int = 0
    gap_seconds: float = 0.0
    finals: int = 0
    probes: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


Embedder = Callable[[np.ndarray], "np.ndarray | None"]


class StreamingEngine:
    """Incremental transcription with speaker labels for one session (see the module text)."""

    def __init__(
        self,
        decoder: WindowDecoder,
        *,
        vad: VoiceActivity | None = None,
        embedder: Embedder | None = None,
        speakers: OnlineSpeakers | None = None,
        namer: SpeakerNamer | None = None,
        options: EngineOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.options = options or EngineOptions()
        self.decoder = decoder
        self.vad = vad or VoiceActivity()
        self.embedder = embedder
        self.speakers = speakers if speakers is not None else (OnlineSpeakers() if embedder else None)
        self.namer = namer or SpeakerNamer()
        self.clock = clock
        self.ring = AudioRing(self.options.ring_seconds)
        self.agreement = LocalAgreement(self.options.agreement)
        self.stats = EngineStats()
        self.words: list[Word] = []  # every final word, with its speaker: the transcript
        self.latencies: deque[float] = deque(maxlen=100_000)
        self._lock = threading.Lock()
        self._breaks: deque[tuple[int, int]] = deque()  # (index where audio stopped, where it resumed)
        self._start = 0  # window start (sample index)
        self._decoded_to = 0  # end of the window of the latest pass
        self._partial = ""
        self._next_id = 0
        self._closed = False
        self._idle = True
        self._empty_passes = 0  # passes in a row that heard speech but gave no words
        self._probed = False  # the current utterance had its early pass (see _probe_plan())
        self._probe_onset = -1  # sample index where the speech of the latest probe started
        self._spent = False  # the latest pass's words are all final: the window has nothing more to say
        self._turn_start = 0.0  # start of the run of speech the latest speaker label was chosen for
        self._turn_weak = False  # that label was chosen on less speech than a new speaker needs
        self._label: str | None = None  # the latest speaker label chosen (before display names)
        self._vad_checked = 0  # sample index up to which a probe looked at voice activity
        self._hold_to = 0  # no pass before this sample index: a probe is about to be due
        self._held_for = -1  # the onset of the utterance whose probe a pass last waited for
        self.settled = 0.0  # session time before which every word is final (after the last step)
        full = decoder.options.encoder_seconds
        self.ladder = tuple(x for x in (full, *self.options.degraded_encoder) if x <= full and x >= self.options.max_window) if self.options.adaptive else (full,)
        self.ladder = tuple(dict.fromkeys(self.ladder))
        self.encoder_seconds = full
        self._pass_ema: float | None = None
        self._since_change = 0
        self.encoder_windows_used: set[float] = set()

    # ---- the event loop's side ------------------------------------------------------------

    def feed(self, samples: np.ndarray, arrived: float | None = None) -> None:
        """Append float32 mono 16 kHz samples as they arrive."""
        self.ring.write(np.asarray(samples, dtype=np.float32), self.clock() if arrived is None else arrived)

    def gap(self, seconds: float) -> None:
        """The source dropped and came back: `seconds` of session time passed without audio.

        What was pending before the gap becomes final at the next step; session time moves on
        by the gap, so timestamps stay those of the wall clock and speaker labels are kept.
        """
        n = max(0, int(round(seconds * SR)))
        with self._lock:
            at = self.ring.end
            self.ring.skip(n)
            self._breaks.append((at, at + n))
            self.stats.gaps += 1
            self.stats.gap_seconds += n / SR

    def close(self) -> None:
        """No more audio will come: the next steps decode what is left and make it all final."""
        self._closed = True

    @property
    def backlog(self) -> float:
        """Seconds of audio received that no pass has covered yet."""
        return max(0, self.ring.end - self._decoded_to) / SR

    def ready(self) -> bool:
        """Whether a step now would have something to do."""
        step = self.options.idle_step if self._idle else self.options.step
        return (
            (self.ring.end - self._decoded_to >= step * SR and self.ring.end >= self._hold_to)
            or bool(self._breaks)
            or (self._closed and not self.finished)
            or self._stalled()
        )

    def _stalled(self) -> bool:
        """Words are pending and the source has sent nothing for a pause's length: it stopped
        (a publisher left, a bridge hung) right after speech; settle what was heard."""
        last = self.ring.last_arrival
        return (
            bool(self.agreement.pending)
            and self.ring.end - self._decoded_to < self.options.step * SR  # no audio is waiting
            and last is not None
            and self.clock() - last >= self.options.pause_flush + HEARD_AFTER
        )

    def probe_ready(self) -> bool:
        """Whether a probe now could show the first words of an utterance (see _probe_plan())."""
        return (
            not self._closed
            and self.ring.end - max(self._vad_checked, self._decoded_to) >= self.options.probe_interval * SR
        )

    def work(self) -> list[Caption] | None:
        """Do what is due, from the worker thread: the captions it gave, or None if nothing was.

        A probe goes first when one would decode: it takes a fifth of a second, where a pass may
        take most of a step, and while passes run back to back a probe that waited for a free
        moment would never run (measured on the LJSpeech composite: a new utterance whose first
        pass had too little of it to give a word showed its first text 1.1 to 1.3 s after it
        began). A probe that is one `probe_interval` of speech away holds the pass that is due
        until then, once per utterance. Otherwise a pass if one is due, otherwise a
        voice-activity check for a probe."""
        if self.probe_ready():
            plan = self._probe_plan()
            if plan is not None:
                return self._probe(*plan)
            if not self.ready():
                return []
        if self.ready():
            return self.step()
        return None

    def _probe_plan(self) -> tuple[int, int, int, float] | None:
        """Whether to probe now: (onset, where the probe's audio begins and ends, seconds of
        speech), or None. Updates voice activity to the newest audio, and holds the pass that is
        due when a probe is one check away (see work()).

        A probe is one early pass over the start of an utterance, once `probe_speech` seconds of
        speech have come (or a shorter word has ended: `probe_tail` of silence after it), whose
        words are shown as a partial only. It does not vote in the agreement (a pass over a
        fraction of a second of speech guesses; two such guesses could agree), so final text is
        unchanged; it only brings the first text of each utterance forward.

        An utterance is the speech at the window's start, or speech after a pause of `run_gap`
        or more (where the speaker may change) that follows the last final word and any pending
        ones; a pass need not have landed in the pause (the words before it may have become final
        by agreement, or still be pending: the partial shows them, then the probe's)."""
        o = self.options
        end = self.ring.end
        self._vad_checked = end
        self.vad.update(self.ring, end)
        start = max(self._start, self.ring.start)
        pause = self._pause_after_finals(end, o.run_gap)
        pending = self.agreement.pending
        if pending and (pause is None or pause[1] < pending[-1].end - CUT_SLACK):
            return None  # the words pending are still being said: the next pass shows them
        if pause is not None:
            onset: int | None = int(pause[1] * SR)
        elif not self._probed:
            onset = self.vad.first_speech(start, end)
        else:
            return None
        if onset is None or onset <= self._probe_onset:
            return None
        speech = int(self.vad.speech_frames(onset, end).sum()) * FRAME / SR
        if speech < o.probe_speech and not (speech >= MIN_WORD and self.vad.trailing_silence(onset) >= o.probe_tail):
            # too little speech to guess at yet, unless it was a short word that has ended
            if speech >= o.probe_speech - o.probe_interval and onset != self._held_for:
                # but nearly enough: a pass started now would hold the probe back by a whole
                # pass (half a second here), so the pass waits for one more check
                self._held_for = onset
                self._hold_to = end + int(o.probe_interval * SR)
            return None
        return onset, max(start, onset - int(o.keep_silence * SR)), end, speech

    def _probe(self, onset: int, begin: int, end: int, speech: float) -> list[Caption]:
        o = self.options
        self._probed = True
        self._probe_onset = onset
        # a short encoder window: a probe is about speed, its words are not kept
        audio = self.ring.read(begin, end)
        seconds = max(min(o.probe_encoder, self.ladder[-1]), math.ceil(len(audio) / SR))
        result = self.decoder(audio, prompt=self._prompt(), encoder_seconds=seconds)
        self.stats.probes += 1
        pending = self.agreement.pending
        # not final already, and after the words pending from before the pause
        settled = max([self.agreement.committed_end, *(w.end for w in pending)]) - LocalAgreement.TIME_TOLERANCE
        words = [w for w in self._heard(result.words, begin) if w.start > settled]
        if not words:
            return []
        # no more words than the speech can hold: tiny.en, given one "Hello?" padded to 10 s,
        # said "hello? hello? hello? hello? hello?" (the 31-minute run): show those that fit
        words = words[: int(1 + PROBE_RATE * speech)]
        return self._partial_caption([*pending, *words])

    @property
    def finished(self) -> bool:
        return self._closed and not self._breaks and self._decoded_to >= self.ring.end and not self.agreement.pending

    # ---- the worker's side -----------------------------------------------------------------

    def step(self) -> list[Caption]:
        """One recognizer pass over the current window; the captions it settles or changes."""
        with self._lock:
            brk = self._breaks[0] if self._breaks else None
        end = self.ring.end
        closing = self._closed or self._stalled()
        if brk is not None and brk[0] <= end:
            end, closing = brk[0], True
        out: list[Caption] = []

        lag = max(0, end - self._decoded_to) / SR
        self.stats.lag = lag
        self.stats.max_lag = max(self.stats.max_lag, lag)
        if lag > self.options.max_lag and not closing:
            out += self._shed(end)
        self._start = max(self._start, self.ring.start)

        if end > self._decoded_to or (closing and self.agreement.pending):
            self.vad.update(self.ring, end)
            out += self._pass(end, closing)
            self._decoded_to = max(self._decoded_to, end)
        if brk is not None and brk[0] <= self.ring.end and self._decoded_to >= brk[0]:
            with self._lock:
                self._breaks.popleft()
            self.agreement.reset()
            self._start = self._decoded_to = brk[1]
        self.ring.keep_from(self._start)
        pending = self.agreement.pending
        self.settled = min(pending[0].start, self._decoded_to / SR) if pending else self._decoded_to / SR
        return out

    def _pass(self, end: int, closing: bool) -> list[Caption]:
        o = self.options
        now = self.clock()
        out: list[Caption] = []
        self._idle = False
        if not self.vad.has_speech(self._start, end) and not (closing and self.agreement.pending):
            self._idle = True  # listen closely for the next speech: short steps, VAD only
            self._probed = False
            self._empty_passes = 0
            self.stats.skipped_silent += 1
            out += self._finals(self.agreement.flush(), now)
            self._start = max(self._start, end - int(o.keep_silence * SR))
            out += self._partial_caption([])
            return out
        if not self.agreement.pending:
            first = self.vad.first_speech(self._start, end)
            if first is not None and first - self._start > o.keep_silence * SR:
                self._start = first - int(o.keep_silence * SR)

        if not closing and not self.vad.has_speech(max(self._start, self._decoded_to - FRAME), end):
            # Nothing new to hear since the last pass: no pass, unless the speaker has paused and
            # the last pass may have cut the utterance's end: then one more pass, made final.
            pending = self.agreement.pending
            if not pending and self._spent:
                # The latest pass's words are all final and nothing was said since: another
                # pass over the same speech would only say it again.
                if self.vad.trailing_silence(self._start) >= o.pause_flush:
                    # and the speaker paused: the utterance is over, keep only the silence
                    # a window starts with
                    self._start = max(self._start, end - int(o.keep_silence * SR))
                self._idle = True
                self.stats.skipped_silent += 1
                return out
            if not pending and self._empty_passes >= 2:
                # Two passes heard nothing in this speech (a cough, a noise): let it go.
                self._start = max(self._start, end - int(o.keep_silence * SR))
                self._idle = True
                self._probed = False
                self.stats.skipped_silent += 1
                return out
            if pending and self.vad.trailing_silence(self._start) < o.pause_flush:
                self.stats.skipped_silent += 1
                return out
            # no words yet from speech heard only briefly: try again with the silence after it
            speech_end = self.vad.last_speech_end(self._start, end)
            if pending and (speech_end is None or self._decoded_to >= speech_end + int(HEARD_AFTER * SR)):
                out += self._finals(self.agreement.flush(), now)
                self._probed = False  # the utterance is over: the next one may have its probe
                out += self._partial_caption([])
                self._start = max(self._start, end - int(o.keep_silence * SR))
                return out

        if not self.agreement.pending and not closing:
            speech = int(self.vad.speech_frames(self._start, end).sum()) * FRAME / SR
            if speech < o.min_speech and self.vad.trailing_silence(self._start) < HEARD_AFTER:
                # Too little yet for Whisper to say anything sensible, and more is coming.
                self._idle = True
                self._spent = False  # but it was said: the next pass must not skip it as heard
                self.stats.skipped_silent += 1
                return out

        window = self.ring.read(self._start, end)
        if len(window) < int(0.3 * SR):
            return out
        self.encoder_windows_used.add(self.encoder_seconds)
        result = self.decoder(window, prompt=self._prompt(), encoder_seconds=self.encoder_seconds)
        self.stats.passes += 1
        self.stats.decode_seconds += result.seconds
        self._adapt(result.seconds)
        hypothesis = self._heard(result.words, self._start)
        end_time = end / SR
        had_pending = bool(self.agreement.pending)
        committed, pending = self.agreement.update(hypothesis, stable_until=end_time - TAIL_GUARD)
        self._empty_passes = 0 if (hypothesis or had_pending) else self._empty_passes + 1

        silence = self.vad.trailing_silence(self._start)
        resumed = None
        if pending and (closing or silence >= o.pause_flush):
            committed += self.agreement.flush()
            pending = []
            self._probed = False
        elif closing:
            committed += self.agreement.flush()
        else:
            # The speaker paused and went on between two passes: what was said before the pause
            # is as settled as if a pass had seen the pause at the window's end (otherwise it
            # would depend on where passes fall), and the window starts again after it.
            resumed = self._pause_after_finals(end, o.pause_flush)
            if resumed is not None and pending and pending[0].end <= resumed[0] + CUT_SLACK:
                committed += self.agreement.flush(until=resumed[0] + CUT_SLACK)
                pending = list(self.agreement.pending)
        self._spent = not pending and bool(hypothesis or had_pending)
        now = self.clock()
        out += self._finals(committed, now, pending)
        out += self._partial_caption(pending)

        # Trim: keep the window from the last committed sentence end or pause.
        cut = self._trim_point(committed, pending, end_time, silence)
        if resumed is not None:
            # the new utterance, with the silence before it that a window starts with
            at = resumed[1] - o.keep_silence
            cut = max(cut or 0.0, min(at, pending[0].start) if pending else at)
        if cut is not None:
            self._start = max(self._start, int(cut * SR))
        if (end - self._start) / SR > o.max_window:
            out += self._force_trim(end, now)
        return out

    def _pause_after_finals(self, end: int, seconds: float) -> tuple[float, float] | None:
        """The last pause of `seconds` or more, after the last final word, that speech followed
        (the same speaker or the next) by sample `end`: (where it starts, where speech resumes)
        in seconds, or None. Found by voice activity, so whether a pass landed in it or not."""
        final_end = self.agreement.committed_end
        since = max(self.ring.start, int((final_end - 2 * CUT_SLACK) * SR))  # the last final word's audio on
        pause = self.vad.last_pause(since, end, seconds)
        if pause is None or pause[0] / SR + CUT_SLACK < final_end:
            return None  # no pause, or one inside speech that is final already
        return pause[0] / SR, pause[1] / SR

    def _heard(self, words: Sequence[Word], begin: int) -> list[Word]:
        """A pass's words over a window starting at sample `begin`, in session time, without
        those with no speech under them (Whisper filling silence, not something said)."""
        offset = begin / SR
        return [
            replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3))
            for w in words
            if self.vad.has_speech(begin + int((w.start - SPEECH_SLACK) * SR), begin + int((w.end + SPEECH_SLACK) * SR))
        ]

    def _adapt(self, seconds: float) -> None:
        """Shed work when passes cannot keep up: a shorter encoder window (Whisper sees less
        silence padding: 2 to 3 times faster, a few points of WER); back up when they can."""
        self._pass_ema = seconds if self._pass_ema is None else 0.7 * self._pass_ema + 0.3 * seconds
        self._since_change += 1
        if self._since_change >= 3:
            self._choose(self._pass_ema)

    def prime(self, seconds: float) -> None:
        """Start at the encoder window that suits a pass measured at `seconds` at full window."""
        self._choose(seconds, from_full=True)

    def _choose(self, seconds: float, from_full: bool = False) -> None:
        ladder = self.ladder
        level = 0 if from_full else ladder.index(self.encoder_seconds)
        # The encoder's cost grows about with the square of its window (attention).
        cost = lambda k: seconds * (ladder[k] / ladder[level]) ** 2  # noqa: E731
        budget = self.options.step
        new = level
        while new + 1 < len(ladder) and cost(new) > SLOW * budget:
            new += 1
        if new == level:
            while new > 0 and cost(new - 1) < FAST * budget:
                new -= 1
        if new == level and not from_full:
            return
        if ladder[new] != self.encoder_seconds:
            log.info("passes take %.2f s: encoder window %.0f s", seconds, ladder[new])
        self.encoder_seconds = ladder[new]
        self._since_change = 0
        self._pass_ema = None

    def _trim_point(self, committed: Sequence[Word], pending: Sequence[Word], end_time: float, silence: float) -> float | None:
        if not committed:
            return None
        last = committed[-1]
        limit = pending[0].start if pending else end_time
        if not pending and silence >= self.options.pause_flush:
            # all is final and the speaker paused: keep only the silence a window starts with
            return min(limit, max(last.end, end_time - min(silence, self.options.keep_silence)))
        if ends_sentence(last.text) or (pending and pending[0].start - last.end >= self.options.run_gap):
            # Only where the voice activity detector hears a pause near the word's end: Whisper's
            # word times are approximate, and a window that starts inside speech loses or garbles
            # its first words (measured on the sample: "so what can I say" lost after "so.").
            near = self.vad.speech_frames(int((last.end - CUT_SLACK) * SR), int((last.end + CUT_SLACK) * SR))
            if len(near) and not near.all():
                return min(limit, last.end)
        return None

    def _force_trim(self, end: int, now: float) -> list[Caption]:
        """The window outgrew `max_window` without a sentence end or pause: make the pending
        words of its older half final and cut there."""
        keep_from = (end - int(self.options.max_window / 2 * SR)) / SR
        committed = self.agreement.flush(until=keep_from)
        out = self._finals(committed, now, self.agreement.pending)
        out += self._partial_caption(self.agreement.pending)
        pending = self.agreement.pending
        cut = min(keep_from, pending[0].start) if pending else keep_from
        self._start = max(self._start, int(cut * SR))
        log.debug("window over %.0f s: cut at %.2f s", self.options.max_window, cut)
        return out

    def _shed(self, end: int) -> list[Caption]:
        """Too far behind: make pending words final and drop all but the newest two steps of audio."""
        out = self._finals(self.agreement.flush(), self.clock())
        new_start = max(self._start, end - int(self.options.step * 2 * SR))
        dropped = max(0, new_start - max(self._start, self._decoded_to)) / SR
        self.stats.shed_seconds += dropped
        log.warning("recognizer %.1f s behind: shedding %.1f s of audio", self.stats.lag, dropped)
        self._start = self._decoded_to = new_start
        self.agreement.reset()
        return out

    def _prompt(self) -> str:
        """Final text from before the window (the window's own words would be heard twice)."""
        chars = self.decoder.options.prompt_chars
        if not chars:
            return ""
        start = self._start / SR
        words: list[str] = []
        for w in reversed(self.words[-80:]):
            if w.end <= start + 0.05:
                words.append(w.text)
        return "".join(reversed(words))[-chars:]

    # ---- captions ---------------------------------------------------------------------------

    def _partial_caption(self, pending: Sequence[Word]) -> list[Caption]:
        text = "".join(w.text for w in pending).strip()
        if text == self._partial:
            return []
        self._partial = text
        start = pending[0].start if pending else (self.words[-1].end if self.words else 0.0)
        end = max((w.end for w in pending), default=start)
        return [Caption("partial", self._next_id, start, end, text, None, tuple(pending))]

    def _boundary(self, a: Word, b: Word) -> bool:
        """Whether the speaker may change between consecutive words: a sentence end or a pause."""
        return ends_sentence(a.text) or b.start - a.end >= self.options.run_gap

    def _runs(self, words: Sequence[Word]) -> list[list[Word]]:
        """Split final words where the speaker may change."""
        runs: list[list[Word]] = []
        for w in words:
            if runs and not self._boundary(runs[-1][-1], w):
                runs[-1].append(w)
            else:
                runs.append([w])
        return runs

    def _finals(self, words: Sequence[Word], now: float, pending: Sequence[Word] = ()) -> list[Caption]:
        words = [w for w in words if w.text.strip()]
        if not words:
            return []
        labelled: list[Word] = []
        runs = self._runs(words)
        min_new = self.speakers.options.min_new_duration if self.speakers is not None else 0.0
        for i, run in enumerate(runs):
            previous = labelled[-1] if labelled else (self.words[-1] if self.words else None)
            end = run[-1].end
            if i == len(runs) - 1:
                # Look ahead into the pending words up to the next pause or sentence end: more
                # audio for the embedding, no later caption. (Past a sentence end it took in the
                # next speaker's answer when that came without a pause, and the more words were
                # pending, as when passes fall behind on a busy machine, the more often it did.)
                last = run[-1]
                for p in pending:
                    if self._boundary(last, p) or p.end - run[0].start > self.options.lookahead:
                        break
                    end, last = p.end, p
            if previous is not None and previous.speaker is not None and not self._boundary(previous, run[0]):
                speaker = previous.speaker  # the same run of speech, committed in two passes
                if self._turn_weak and end - self._turn_start >= min_new:
                    # The run's speaker was chosen on too little speech (a short first run takes
                    # the nearest speaker): now that there is enough, choose again, for the
                    # words from here on.
                    speaker = self._speaker(self._turn_start, end)
                    self._turn_weak = False
                elif end - run[0].start >= min_new:
                    changed = self._same_voice(run[0].start, end)
                    if changed is not None:
                        speaker = self._speaker(run[0].start, end, changed)
                        self._turn_start = run[0].start
            else:
                self._turn_start = run[0].start
                self._turn_weak = end - run[0].start < min_new
                speaker = self._speaker(run[0].start, end)
            labelled += [replace(w, speaker=speaker) for w in run]
        out: list[Caption] = []
        group: list[Word] = []
        for w in labelled:
            if group and w.speaker != group[-1].speaker:
                out.append(self._final(group, now))
                group = []
            group.append(w)
        out.append(self._final(group, now))
        self.words += labelled
        self._partial = "\0"  # the next partial is sent even if empty
        return out

    def _final(self, words: list[Word], now: float) -> Caption:
        arrived = self.ring.arrival(int(words[-1].end * SR))
        latency = None if arrived is None else max(0.0, now - arrived)
        if latency is not None:
            self.latencies.append(latency)
        self.stats.finals += 1
        c = Caption(
            "final", self._next_id, words[0].start, max(w.end for w in words),
            "".join(w.text for w in words).strip(), words[0].speaker, tuple(words), latency,
        )
        self._next_id += 1
        return c

    def _embed(self, start: float, end: float) -> np.ndarray | None:
        if self.embedder is None or self.speakers is None or end - start < self.speakers.options.min_embed_duration:
            return None
        pad = self.options.speaker_pad
        return self.embedder(self.ring.read(int((start - pad) * SR), int((end + pad) * SR)))

    def _speaker(self, start: float, end: float, embedding: np.ndarray | None = None) -> str | None:
        """The label for speech in [start, end] seconds of session time."""
        if self.speakers is None:
            return None
        if embedding is None:
            embedding = self._embed(start, end)
        self._label = self.speakers.assign(embedding, end - start)
        return self.namer(self._label)

    def _same_voice(self, start: float, end: float) -> np.ndarray | None:
        """None if speech in [start, end] sounds like the latest speaker (or cannot tell);
        otherwise its embedding, to choose the speaker again: the voice changed without a pause
        or sentence end between the words (Whisper's punctuation and word times miss some)."""
        if self.speakers is None or self._label is None:
            return None
        embedding = self._embed(start, end)
        if embedding is None or self.speakers.similarity(embedding, self._label) >= self.speakers.options.threshold:
            return None
        return embedding
