"""Compose meetings from real single-speaker clips, deterministically, with exact RTTM and STM.

Most real recordings we may use hold one speaker, so meetings for diarization and attribution
tests are made here: speakers from `samples/clips.jsonl` take turns with whole clips (the
catalogue has no word times, so clips are never cut), with pauses, some overlapping speech,
per-speaker gain differences and a little pink noise; optionally through a telephone channel or
an Opus round trip. The same seed and options give a byte-identical WAV.

    python benchmarks/compose.py --seed 7 --speakers 5 --minutes 4 --language en -o DIR
    python benchmarks/compose.py --seed 1 --speakers 3 --minutes 2 --language en,fr,de -o DIR
    python benchmarks/compose.py --silence 60 -o DIR
    python benchmarks/compose.py --noise 60 --noise-db -40 -o DIR
    python benchmarks/compose.py --list-speakers

Writes DIR/NAME.wav (16 kHz mono 16-bit), NAME.rttm (one line per utterance, exact times),
NAME.stm (one line per utterance with the clip's reference text), NAME.uem, NAME.json (what was
used and measured) and adds NAME's line to DIR/manifest.jsonl, in the format of
samples/dev.jsonl. The library API is `compose_meeting()` / `compose_background()` (audio and
references in memory) and `write_meeting()`; `plan_meeting()` is the schedule alone (no audio).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import subprocess
import sys
import wave
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import signal

from transcribe.errors import TranscribeError, UsageError

SR = 16_000
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = ROOT / "samples" / "clips.jsonl"
VERSION = 1  # bump when the same seed and options would give different audio

log = logging.getLogger("transcribe.benchmarks.compose")


class ComposeError(UsageError):
    """The clips or options cannot make the meeting asked for."""


# ----------------------------------------------------------------------------------------------
# Catalogue
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One utterance by one speaker: a span of a real recording, with its reference text."""

    id: str
    path: Path  # the recording (absolute)
    start: float  # span in the recording, seconds
    end: float
    speaker: str
    language: str
    text: str
    text_quality: str = "verbatim"  # verbatim | read-text | approximate
    source: str = ""
    licence: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def load_clips(path: Path | str = DEFAULT_CLIPS) -> tuple[Clip, ...]:
    """Read a clips.jsonl catalogue; audio paths in it are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise ComposeError(f"no clip catalogue at {path}; build samples/ first")
    names = {f.name for f in fields(Clip)}
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            row["path"] = (path.parent / row.pop("audio")).resolve()
            out.append(Clip(**{k: v for k, v in row.items() if k in names}))
        except (KeyError, TypeError) as e:
            raise ComposeError(f"{path}:{n}: not a clip record ({e})") from None
    return tuple(out)


def speakers_by_language(clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """{language: {speaker: seconds of clips}}, for choosing speaker sets."""
    out: dict[str, dict[str, float]] = {}
    for c in clips:
        by = out.setdefault(c.language, {})
        by[c.speaker] = by.get(c.speaker, 0.0) + c.duration
    return {lang: dict(sorted(by.items())) for lang, by in sorted(out.items())}


# ----------------------------------------------------------------------------------------------
# Options and results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeOptions:
    """How the meeting sounds; recorded in NAME.json.

    overlap: share of speech time in which two people talk at once (0 to 0.4); it is reached
        by letting some turns start before the previous one ends (never more than two voices).
    pause: range of the silence between turns, seconds (drawn uniformly).
    turn_seconds: median length of a turn; a turn joins one speaker's clips up to about this.
    gain_db: each speaker's level is drawn uniformly within +-gain_db of level_dbfs.
    level_dbfs: active speech level of a clip before the speaker's gain.
    noise_db: RMS of the added pink noise, dBFS; None adds none.
    telephone: 300-3400 Hz band, 8 kHz resampling and G.711 mu-law; the file stays 16 kHz.
    opus_kbps: Opus round trip through the bundled ffmpeg (libopus, VoIP mode) at this bitrate.
    quiet_turn: seconds of one long turn by a speaker whose level is quiet_db under level_dbfs
        in all their turns (the speaker is drawn among those with enough material).
    speaker_set: exactly these speakers (then n_speakers may be 0 or their number).
    exclude_speakers: never these (held-out speakers).
    allow_approximate: also use clips whose reference text is approximate.
    """

    overlap: float = 0.05
    pause: tuple[float, float] = (0.2, 1.5)
    turn_seconds: float = 8.0
    gain_db: float = 6.0
    level_dbfs: float = -26.0
    noise_db: float | None = -50.0
    telephone: bool = False
    opus_kbps: int | None = None
    quiet_turn: float | None = None
    quiet_db: float = -20.0
    speaker_set: tuple[str, ...] = ()
    exclude_speakers: tuple[str, ...] = ()
    allow_approximate: bool = False

    def check(self) -> None:
        if not 0.0 <= self.overlap <= 0.4:
            raise ComposeError(f"overlap must be within 0 and 0.4, not {self.overlap}")
        lo, hi = self.pause
        if not 0.0 <= lo <= hi:
            raise ComposeError(f"pause must be a range (min <= max, both >= 0), not {self.pause}")
        if self.turn_seconds <= 0 or self.gain_db < 0:
            raise ComposeError("turn_seconds must be > 0 and gain_db >= 0")
        if self.opus_kbps is not None and not 6 <= self.opus_kbps <= 256:
            raise ComposeError(f"opus bitrate must be within 6 and 256 kb/s, not {self.opus_kbps}")
        if self.quiet_turn is not None and self.quiet_turn <= 0:
            raise ComposeError("quiet_turn must be a positive number of seconds")
        if set(self.speaker_set) & set(self.exclude_speakers):
            raise ComposeError("a speaker cannot be both in the speaker set and excluded")


@dataclass(frozen=True)
class Utterance:
    """One clip placed in the meeting: one RTTM line and one STM line."""

    start: float  # seconds in the meeting
    end: float
    speaker: str
    text: str
    clip: str  # clip id
    turn: int  # index of the turn it belongs to (a turn joins clips of one speaker)


@dataclass(frozen=True)
class Plan:
    """The schedule of a meeting, without audio."""

    utterances: tuple[Utterance, ...]
    speakers: tuple[str, ...]  # in order of first turn
    gains_db: Mapping[str, float]  # speaker level relative to level_dbfs
    duration: float
    quiet_speaker: str | None
    quiet_turn: int | None  # turn index of the long quiet turn


@dataclass(frozen=True, eq=False)
class Meeting:
    """A composed recording and its references."""

    name: str
    samples: np.ndarray  # float32, 16 kHz mono, in [-1, 1]
    plan: Plan
    languages: tuple[str, ...]
    seed: int
    kind: str  # "meeting", "silence" or "noise"
    options: ComposeOptions
    info: Mapping[str, Any] = field(default_factory=dict)  # measured facts, for NAME.json

    @property
    def duration(self) -> float:
        return len(self.samples) / SR

    @property
    def utterances(self) -> tuple[Utterance, ...]:
        return self.plan.utterances

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.plan.speakers

    @property
    def language(self) -> str | None:
        """The language to tell a recogniser; None when several are spoken (or none)."""
        return self.languages[0] if len(self.languages) == 1 else None

    def rttm(self) -> str:
        return "".join(
            f"SPEAKER {self.name} 1 {u.start:.3f} {u.end - u.start:.3f} <NA> <NA> {u.speaker} <NA> <NA>\n"
            for u in self.utterances
        )

    def stm(self) -> str:
        return "".join(
            f"{self.name} 1 {u.speaker} {u.start:.3f} {u.end:.3f} {u.text}\n" for u in self.utterances
        )

    def uem(self) -> str:
        return f"{self.name} 1 0.000 {self.duration:.3f}\n"


# ----------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------


def _usable(clips: Sequence[Clip], languages: tuple[str, ...] | None, opts: ComposeOptions) -> dict[str, list[Clip]]:
    by: dict[str, list[Clip]] = {}
    for c in clips:
        if languages is not None and c.language not in languages:
            continue
        if c.text_quality == "approximate" and not opts.allow_approximate:
            continue
        if c.speaker in opts.exclude_speakers:
            continue
        by.setdefault(c.speaker, []).append(c)
    return {spk: sorted(cs, key=lambda c: c.id) for spk, cs in sorted(by.items())}


def parse_languages(language: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """'en' -> ('en',); 'en,fr' -> ('en', 'fr'); 'any' or None -> None (all languages)."""
    if language is None:
        return None
    items = language.split(",") if isinstance(language, str) else list(language)
    items = [s.strip() for s in items if s.strip()]
    if not items or items == ["any"]:
        return None
    return tuple(sorted(set(items)))


def plan_meeting(
    clips: Sequence[Clip],
    seed: int,
    n_speakers: int,
    minutes: float,
    language: str | Sequence[str] | None = "en",
    options: ComposeOptions = ComposeOptions(),
) -> Plan:
    """Choose speakers, gains and the turn schedule. Pure: the same arguments, the same plan.

    Every chosen speaker talks at least once (the first round gives each a turn, in random
    order), so the speaker count is exact even in a short meeting. A speaker's clips are used
    in a shuffled order; when they run out they are shuffled again and reused (the JSON counts
    the reuses).
    """
    opts = options
    opts.check()
    if minutes <= 0:
        raise ComposeError(f"minutes must be positive, not {minutes}")
    languages = parse_languages(language)
    pool = _usable(clips, languages, opts)
    if opts.speaker_set:
        missing = [s for s in opts.speaker_set if s not in pool]
        if missing:
            raise ComposeError(
                f"speaker(s) {', '.join(missing)} have no usable clips in language "
                f"{language!r}; see --list-speakers")
        if n_speakers not in (0, len(set(opts.speaker_set))):
            raise ComposeError(f"{n_speakers} speakers asked for, but the speaker set names {len(set(opts.speaker_set))}")
        n_speakers = len(set(opts.speaker_set))
    if n_speakers < 1:
        raise ComposeError("a meeting needs at least one speaker")
    if n_speakers > len(pool):
        hint = ""
        if not opts.allow_approximate:
            wider = _usable(clips, languages, replace(opts, allow_approximate=True))
            hint = f" (--allow-approximate adds {len(wider) - len(pool)})" if len(wider) > len(pool) else ""
        raise ComposeError(
            f"{n_speakers} speakers asked for, but only {len(pool)} have usable clips in language "
            f"{language!r} ({', '.join(pool) or 'none'}){hint}; use fewer speakers or more languages")

    rng = np.random.default_rng(seed)
    material = {s: sum(c.duration for c in cs) for s, cs in pool.items()}
    quiet_speaker = None
    if opts.speaker_set:
        chosen = list(dict.fromkeys(opts.speaker_set))
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    else:
        names = list(pool)
        if opts.quiet_turn is not None:  # make sure one chosen speaker can hold the long turn
            eligible = [s for s in names if material[s] >= opts.quiet_turn]
            if eligible:
                quiet_speaker = eligible[int(rng.integers(len(eligible)))]
                names.remove(quiet_speaker)
        k = n_speakers - (quiet_speaker is not None)
        chosen = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
        if quiet_speaker is not None:
            chosen.insert(int(rng.integers(len(chosen) + 1)), quiet_speaker)
    gains = {s: float(np.round(rng.uniform(-opts.gain_db, opts.gain_db), 2)) for s in chosen}
    # talkativeness: half equal share, half Dirichlet, so some people talk more than others
    talk = 0.5 / n_speakers + 0.5 * rng.dirichlet(np.full(n_speakers, 2.0))

    if opts.quiet_turn is not None:
        if quiet_speaker is None:
            eligible = [s for s in chosen if material[s] >= opts.quiet_turn]
            if not eligible:
                raise ComposeError(
                    f"no usable speaker has {opts.quiet_turn:g} s of clips for the quiet turn; "
                    "see --list-speakers")
            quiet_speaker = eligible[int(rng.integers(len(eligible)))]
        gains[quiet_speaker] = float(opts.quiet_db)

    queues: dict[str, list[Clip]] = {s: [] for s in chosen}
    placed = {s: 0 for s in chosen}

    def next_clip(spk: str) -> Clip:
        if not queues[spk]:
            cs = pool[spk]
            queues[spk] = [cs[i] for i in rng.permutation(len(cs))]
        placed[spk] += 1
        return queues[spk].pop(0)

    total = minutes * 60.0
    first_round = [chosen[i] for i in rng.permutation(n_speakers)]
    quiet_at = float(rng.uniform(0.2, 0.6)) * total
    quiet_turn_index: int | None = None
    utts: list[Utterance] = []
    turns: list[tuple[str, float, float]] = []  # speaker, start, end
    speech = overlap = 0.0  # seconds with >= 1 and >= 2 voices so far
    cursor = float(rng.uniform(0.3, 1.0))
    t_index = 0
    while True:
        prev = turns[-1] if turns else None
        quiet_due = (quiet_speaker is not None and quiet_turn_index is None
                     and t_index >= n_speakers and cursor >= quiet_at)
        if t_index < n_speakers:
            spk = first_round[t_index]
        elif quiet_due and (prev[0] != quiet_speaker or n_speakers == 1):
            spk = quiet_speaker
        else:
            others = [i for i, s in enumerate(chosen) if prev is None or s != prev[0]] or [0]
            # a speaker whose clips have all been heard is picked less (less repetition)
            w = talk[others] * [1.0 if placed[chosen[i]] < len(pool[chosen[i]]) else 0.3 for i in others]
            w = w / w.sum()
            spk = chosen[others[int(rng.choice(len(others), p=w))]]
        long_quiet = quiet_due and spk == quiet_speaker
        if long_quiet:
            target = float(opts.quiet_turn)
        else:
            target = float(np.clip(rng.lognormal(math.log(opts.turn_seconds), 0.5), 1.5, 30.0))
            if t_index < n_speakers:  # everybody speaks once, early
                target = min(target, max(1.5, 0.8 * total / n_speakers))
            target = min(target, max(1.5, total - cursor))
        if long_quiet:
            queues[spk] = []  # a fresh round of all their clips, so the turn can be long enough
        if long_quiet:
            queues[spk] = []  # a fresh round of all their clips, so the turn can be long enough
        chosen_clips: list[Clip] = []
        gaps: list[float] = []
        length = 0.0
        while not chosen_clips or length < target:
            if len(chosen_clips) >= len(pool[spk]):
                break  # never the same clip twice in one turn
            c = next_clip(spk)
            if any(c.id == x.id for x in chosen_clips):
                queues[spk].append(c)
                placed[spk] -= 1
                break
            if chosen_clips:
                g = float(rng.uniform(0.15, 0.5))
                gaps.append(g)
                length += g
            chosen_clips.append(c)
            length += c.duration
        # start: after a pause, or before the previous turn ends (overlap)
        start = cursor
        if prev is not None:
            start = prev[2] + float(rng.uniform(*opts.pause))
            want = (opts.overlap * (speech + length) - overlap) / (1.0 + opts.overlap)
            threshold = float(rng.uniform(0.5, 1.5))
            after_quiet = quiet_turn_index is not None and quiet_turn_index == t_index - 1
            if (opts.overlap > 0 and want >= threshold and spk != prev[0]
                    and not (long_quiet or after_quiet)):
                limit = prev[2] - (turns[-2][2] if len(turns) > 1 else 0.0)  # never three voices
                ov = min(want, 0.5 * (prev[2] - prev[1]), 0.5 * length, 4.0, limit)
                if ov >= 0.3:
                    start = prev[2] - ov
        # place the clips, snapping to the sample grid
        t = start
        s0 = round(start * SR) / SR
        for i, c in enumerate(chosen_clips):
            if i:
                t += gaps[i - 1]
            a = round(t * SR)
            b = a + (round(c.end * SR) - round(c.start * SR))
            utts.append(Utterance(a / SR, b / SR, spk, c.text, c.id, t_index))
            t = b / SR
        end = t
        if prev is not None:
            ov = max(0.0, prev[2] - s0)
            overlap += ov
            speech += (end - s0) - ov
        else:
            speech += end - s0
        turns.append((spk, s0, end))
        if long_quiet:
            quiet_turn_index = t_index
        t_index += 1
        cursor = max(cursor, end)
        if (t_index >= n_speakers and cursor >= total - 1.5
                and (quiet_speaker is None or quiet_turn_index is not None)):
            break
    duration = round((cursor + float(rng.uniform(0.5, 1.0))) * SR) / SR
    order = list(dict.fromkeys(u.speaker for u in utts))
    return Plan(tuple(utts), tuple(order), {s: gains[s] for s in order}, duration, quiet_speaker, quiet_turn_index)


def overlap_stats(utterances: Sequence[Utterance]) -> tuple[float, float, int]:
    """(seconds with >= 1 voice, seconds with >= 2 voices, most voices at once)."""
    events = sorted([(u.start, 1) for u in utterances] + [(u.end, -1) for u in utterances])
    speech = over = 0.0
    active = most = 0
    last = 0.0
    for t, d in events:
        if active >= 1:
            speech += t - last
        if active >= 2:
            over += t - last
        active += d
        most = max(most, active)
        last = t
    return speech, over, most


# ----------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - the project depends on it
        raise ComposeError("imageio-ffmpeg is not installed; install the project's dependencies") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=None)
def _decode(path: str) -> np.ndarray:
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise ComposeError(f"cannot decode {path}: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    x = np.frombuffer(proc.stdout, np.float32).copy()
    x.setflags(write=False)
    return x


def clip_audio(clip: Clip) -> np.ndarray:
    """The clip's samples (read-only view of the cached recording)."""
    x = _decode(str(clip.path))
    a, b = round(clip.start * SR), round(clip.end * SR)
    if b > len(x):
        raise ComposeError(f"clip {clip.id} ends at {clip.end} s, after the end of {clip.path.name}")
    return x[a:b]


def active_level_db(x: np.ndarray) -> float:
    """Active speech level: mean power of the 20 ms frames within 30 dB of the loudest."""
    n = len(x) // 320
    if n == 0:
        return -120.0
    p = np.mean(x[: n * 320].astype(np.float64).reshape(n, 320) ** 2, axis=1)
    db = 10 * np.log10(p + 1e-12)
    return float(10 * np.log10(np.mean(p[db > db.max() - 30.0]) + 1e-12))


def pink_noise(n: int, rng: np.random.Generator, rms_db: float) -> np.ndarray:
    """Pink (1/f) noise with the given RMS in dBFS, made in 10 s blocks (memory stays small)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    zi = np.zeros(3)
    out = np.empty(n, np.float32)
    block = 10 * SR
    for i in range(0, n, block):
        w = rng.standard_normal(min(block, n - i))
        y, zi = signal.lfilter(b, a, w, zi=zi)
        out[i:i + len(y)] = y
    rms = float(np.sqrt(np.mean(out.astype(np.float64) ** 2))) if n else 1.0
    out *= np.float32(10 ** (rms_db / 20) / max(rms, 1e-12))
    return out


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz (zero phase, so times do not move), 8 kHz, 8-bit mu-law, back to 16 kHz."""
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")
    y = signal.sosfiltfilt(sos, x.astype(np.float64))
    y8 = signal.resample_poly(y, 1, 2)
    mu = 255.0
    q = np.sign(y8) * np.log1p(mu * np.minimum(np.abs(y8), 1.0)) / np.log1p(mu)
    q = np.round(q * 127.0) / 127.0
    y8 = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    return signal.resample_poly(y8, 2, 1)[: len(x)].astype(np.float32)


def opus_round_trip(x: np.ndarray, kbps: int) -> np.ndarray:
    """Encode to Opus (libopus, VoIP) and decode back with the bundled ffmpeg; same length."""
    ff = ffmpeg_exe()
    enc = [ff, "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(SR), "-ac", "1", "-i", "pipe:0",
           "-c:a", "libopus", "-b:a", f"{kbps}k", "-application", "voip", "-threads", "1",
           "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "ogg", "pipe:1"]
    p = subprocess.run(enc, input=np.ascontiguousarray(x, np.float32).tobytes(), capture_output=True)
    if p.returncode != 0:
        raise ComposeError(f"Opus encoding failed (does the bundled ffmpeg have libopus?): "
                           f"{p.stderr.decode(errors='replace').strip()[-200:]}")
    dec = [ff, "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(SR), "pipe:1"]
    q = subprocess.run(dec, input=p.stdout, capture_output=True)
    if q.returncode != 0:
        raise ComposeError(f"Opus decoding failed: {q.stderr.decode(errors='replace').strip()[-200:]}")
    y = np.frombuffer(q.stdout, np.float32)
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def _channel(x: np.ndarray, opts: ComposeOptions) -> np.ndarray:
    if opts.telephone:
        x = telephone(x)
    if opts.opus_kbps is not None:
        x = opus_round_trip(x, opts.opus_kbps)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def render(plan: Plan, clips: Sequence[Clip], seed: int, options: ComposeOptions) -> tuple[np.ndarray, dict]:
    """Mix the plan's clips with their gains, add noise, pass the channel. Deterministic."""
    by_id = {c.id: c for c in clips}
    n = round(plan.duration * SR)
    mix = np.zeros(n, np.float32)
    for u in plan.utterances:
        x = clip_audio(by_id[u.clip])
        g_db = options.level_dbfs + plan.gains_db[u.speaker] - active_level_db(x)
        a = round(u.start * SR)
        mix[a:a + len(x)] += x * np.float32(10 ** (g_db / 20))
    peak = float(np.max(np.abs(mix))) if n else 0.0
    headroom_db = 0.0
    if peak > 0.9:  # keep speech peaks under -1 dBFS, whatever the gains
        headroom_db = 20 * math.log10(0.9 / peak)
        mix *= np.float32(0.9 / peak)
    if options.noise_db is not None:
        # its own stream, so the noise does not change when the plan does
        mix += pink_noise(n, np.random.default_rng([seed, 1]), options.noise_db)
    out = _channel(mix, options)
    return out, {"headroom_db": round(headroom_db, 2)}


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def default_name(seed: int, n_speakers: int, minutes: float, language: str | Sequence[str] | None,
                 options: ComposeOptions) -> str:
    langs = parse_languages(language)
    lang = "any" if langs is None else "+".join(langs)
    name = f"{lang}_{n_speakers}spk_{minutes:g}min_seed{seed}"
    if options.telephone:
        name += "_tel"
    if options.opus_kbps is not None:
        name += f"_opus{options.opus_kbps}"
    if options.quiet_turn is not None:
        name += "_quiet"
    return name


def compose_meeting(
    clips: Sequence[Clip],
    seed: int,
    n_speakers: int,
    minutes: float,
    language: str | Sequence[str] | None = "en",
    options: ComposeOptions = ComposeOptions(),
    name: str | None = None,
) -> Meeting:
    """Compose a meeting of `n_speakers` real speakers lasting about `minutes`.

    `language`: one code ('en'), several ('en,fr,de': speakers drawn from all of them) or 'any'.
    Raises ComposeError when the catalogue cannot provide what is asked.
    """
    plan = plan_meeting(clips, seed, n_speakers, minutes, language, options)
    samples, rinfo = render(plan, clips, seed, options)
    by_id = {c.id: c for c in clips}
    used = [by_id[u.clip] for u in plan.utterances]
    languages = tuple(sorted({c.language for c in used}))
    speech, over, most = overlap_stats(plan.utterances)
    n_unique = len({c.id for c in used})
    per_spk = {s: round(sum(u.end - u.start for u in plan.utterances if u.speaker == s), 2) for s in plan.speakers}
    quiet = None
    if plan.quiet_turn is not None:
        qs = [u for u in plan.utterances if u.turn == plan.quiet_turn]
        quiet = {"speaker": plan.quiet_speaker, "start": round(qs[0].start, 3), "end": round(qs[-1].end, 3),
                 "seconds": round(qs[-1].end - qs[0].start, 3), "level_db": options.quiet_db}
    info = {
        "speech_seconds": round(speech, 3),
        "overlap_seconds": round(over, 3),
        "overlap_fraction": round(over / speech, 4) if speech else 0.0,
        "max_simultaneous_speakers": most,
        "turns": len({u.turn for u in plan.utterances}),
        "utterances": len(plan.utterances),
        "unique_clips": n_unique,
        "reused_placements": len(used) - n_unique,
        "speaking_seconds": per_spk,
        "quiet_turn": quiet,
        **rinfo,
    }
    if info["reused_placements"]:
        log.info("%d clip placements repeat a clip (not enough material for %g min)", info["reused_placements"], minutes)
    name = name or default_name(seed, len(plan.speakers), minutes, language, options)
    return Meeting(name, samples, plan, languages, seed, "meeting", options, info)


def compose_background(kind: str, seconds: float, seed: int = 0, noise_db: float = -40.0,
                       options: ComposeOptions = ComposeOptions(), name: str | None = None) -> Meeting:
    """A recording with no speech: digital silence, or pink noise at `noise_db` dBFS.

    The channel options (telephone, Opus) apply as in a meeting; the references are empty.
    """
    if kind not in ("silence", "noise"):
        raise ComposeError(f"kind must be 'silence' or 'noise', not {kind!r}")
    if seconds <= 0:
        raise ComposeError(f"seconds must be positive, not {seconds}")
    options.check()
    n = round(seconds * SR)
    x = np.zeros(n, np.float32)
    if kind == "noise":
        x = pink_noise(n, np.random.default_rng([seed, 1]), noise_db)
    if kind == "noise" or options.telephone or options.opus_kbps is not None:
        x = _channel(x, options)
    plan = Plan((), (), {}, n / SR, None, None)
    name = name or (f"silence_{seconds:g}s" if kind == "silence" else f"noise_{seconds:g}s_seed{seed}")
    info = {"speech_seconds": 0.0, "overlap_fraction": 0.0, "noise_db": noise_db if kind == "noise" else None}
    return Meeting(name, x, plan, (), seed, kind, options, info)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def meeting_record(m: Meeting, clips: Sequence[Clip], catalogue: Path | None = None) -> dict:
    """Everything NAME.json holds: what was asked, what was used, what was measured."""
    by_id = {c.id: c for c in clips}
    used = list(dict.fromkeys(u.clip for u in m.utterances))
    return {
        "name": m.name,
        "kind": m.kind,
        "generator": f"benchmarks/compose.py v{VERSION}",
        "seed": m.seed,
        "duration": round(m.duration, 3),
        "languages": list(m.languages),
        "speakers": [
            {"id": s, "gain_db": m.plan.gains_db[s], "quiet": s == m.plan.quiet_speaker,
             "languages": sorted({by_id[u.clip].language for u in m.utterances if u.speaker == s})}
            for s in m.speakers
        ],
        "options": asdict(m.options),
        "measured": dict(m.info),
        "reuse": ("no clip is used twice" if not m.info.get("reused_placements")
                  else f"{m.info['reused_placements']} placements repeat a clip: the catalogue has too "
                       "little material from these speakers for this length"),
        "catalogue": None if catalogue is None else {"path": str(catalogue), "sha256": _sha256(catalogue)},
        "clips": [
            {"id": c, "speaker": by_id[c].speaker, "language": by_id[c].language,
             "source": by_id[c].source, "licence": by_id[c].licence,
             "times_used": sum(u.clip == c for u in m.utterances)}
            for c in used
        ],
        "utterances": [asdict(u) for u in m.utterances],
    }


def write_meeting(m: Meeting, out_dir: Path | str, clips: Sequence[Clip] = (),
                  catalogue: Path | None = None, manifest: str | None = "manifest.jsonl") -> dict:
    """Write NAME.{wav,rttm,stm,uem,json} into out_dir; update out_dir/manifest; return its line."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_wav(out / f"{m.name}.wav", m.samples)
        (out / f"{m.name}.rttm").write_text(m.rttm(), encoding="utf-8")
        (out / f"{m.name}.stm").write_text(m.stm(), encoding="utf-8")
        (out / f"{m.name}.uem").write_text(m.uem(), encoding="utf-8")
        record = meeting_record(m, clips, catalogue)
        (out / f"{m.name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        line = {"audio": f"{m.name}.wav", "language": m.language, "stm": f"{m.name}.stm",
                "rttm": f"{m.name}.rttm", "uem": f"{m.name}.uem", "speakers": len(m.speakers),
                "duration": round(m.duration, 3), "info": f"{m.name}.json"}
        if manifest:
            path = out / manifest
            keep = []
            if path.exists():
                for ln in path.read_text(encoding="utf-8").splitlines():
                    if ln.strip() and json.loads(ln).get("audio") != line["audio"]:
                        keep.append(ln)
            keep.append(json.dumps(line, ensure_ascii=False))
            path.write_text("\n".join(keep) + "\n", encoding="utf-8")
    except OSError as e:
        raise ComposeError(f"cannot write into {out}: {e.strerror or e}") from None
    return line


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def _names(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compose.py", description="Compose a meeting from real single-speaker clips (deterministic).",
        epilog="Prints the manifest line on stdout. Errors: one 'Error: ...' line on stderr, exit code 2.")
    p.add_argument("-o", "--out", type=Path, help="output folder (created)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--speakers", type=int, default=0, help="number of speakers")
    p.add_argument("--minutes", type=float, default=2.0, help="about how long (default 2)")
    p.add_argument("--language", default="en", help="'en', 'fr', 'de', a list 'en,fr,de', or 'any' (default en)")
    p.add_argument("--name", help="file stem (default: from language, speakers, minutes, seed, options)")
    d = ComposeOptions()
    p.add_argument("--overlap", type=float, default=d.overlap, help=f"share of speech time overlapped (default {d.overlap})")
    p.add_argument("--pause", type=float, nargs=2, metavar=("MIN", "MAX"), default=d.pause, help="pause range between turns, s (default 0.2 1.5)")
    p.add_argument("--turn-seconds", type=float, default=d.turn_seconds, help=f"median turn length, s (default {d.turn_seconds})")
    p.add_argument("--gain-db", type=float, default=d.gain_db, help=f"speaker levels within +-this many dB (default {d.gain_db})")
    p.add_argument("--noise-db", default=None, help="pink noise RMS in dBFS, or 'none' (default -50; -40 with --noise)")
    p.add_argument("--telephone", action="store_true", help="telephone band (300-3400 Hz, 8 kHz, mu-law)")
    p.add_argument("--opus", type=int, nargs="?", const=16, metavar="KBPS", help="Opus round trip (default 16 kb/s)")
    p.add_argument("--quiet-turn", type=float, nargs="?", const=25.0, metavar="SECONDS",
                   help="one long turn (default 25 s) by a speaker at --quiet-db")
    p.add_argument("--quiet-db", type=float, default=d.quiet_db, help=f"the quiet speaker's level, dB (default {d.quiet_db})")
    p.add_argument("--speaker-set", type=_names, default=(), metavar="A,B,...", help="exactly these speakers")
    p.add_argument("--exclude-speakers", type=_names, default=(), metavar="A,B,...", help="never these speakers")
    p.add_argument("--allow-approximate", action="store_true", help="also use clips with approximate text")
    p.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="clip catalogue (default samples/clips.jsonl)")
    p.add_argument("--manifest", default="manifest.jsonl", help="manifest file in the output folder ('' for none)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--silence", type=float, metavar="SECONDS", help="no speech: digital silence")
    g.add_argument("--noise", type=float, metavar="SECONDS", help="no speech: pink noise at --noise-db")
    g.add_argument("--list-speakers", action="store_true", help="list speakers and seconds of clips per language")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list_speakers:
            for lang, by in speakers_by_language(load_clips(args.clips)).items():
                print(f"{lang}: {len(by)} speakers")
                for spk, secs in by.items():
                    print(f"  {spk:36s} {secs:7.1f} s")
            return 0
        if args.out is None:
            raise ComposeError("give an output folder with -o DIR")
        background = args.silence if args.silence is not None else args.noise
        if background is not None and (args.speakers or args.speaker_set or args.quiet_turn is not None):
            raise ComposeError("--silence/--noise make a recording without speakers; drop --speakers, --speaker-set and --quiet-turn")
        if args.noise_db is None:
            noise_db = -40.0 if args.noise is not None else ComposeOptions.noise_db
        elif args.noise_db.lower() == "none":
            if args.noise is not None:
                raise ComposeError("--noise needs a level: give --noise-db as a number")
            noise_db = None
        else:
            try:
                noise_db = float(args.noise_db)
            except ValueError:
                raise ComposeError(f"--noise-db must be a number of dBFS or 'none', not {args.noise_db!r}") from None
        opts = ComposeOptions(
            overlap=args.overlap, pause=tuple(args.pause), turn_seconds=args.turn_seconds,
            gain_db=args.gain_db, noise_db=noise_db, telephone=args.telephone, opus_kbps=args.opus,
            quiet_turn=args.quiet_turn, quiet_db=args.quiet_db, speaker_set=args.speaker_set,
            exclude_speakers=args.exclude_speakers, allow_approximate=args.allow_approximate)
        if background is not None:
            kind = "silence" if args.silence is not None else "noise"
            m = compose_background(kind, background, args.seed, noise_db if noise_db is not None else -40.0,
                                   options=opts, name=args.name)
            line = write_meeting(m, args.out, manifest=args.manifest or None)
        else:
            if not args.speakers and not args.speaker_set:
                raise ComposeError("give --speakers N (or --speaker-set A,B,...)")
            clips = load_clips(args.clips)
            m = compose_meeting(clips, args.seed, args.speakers, args.minutes, args.language, opts, args.name)
            line = write_meeting(m, args.out, clips, catalogue=args.clips.resolve(), manifest=args.manifest or None)
    except TranscribeError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(line, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
