#!/usr/bin/env python
"""Replay a recording through the streaming engine on a simulated clock, to see why a caption
came when it did.

The engine is built as `transcribe stream` builds it (same models, warm-up and options) and fed
20 ms of audio at a time on a clock that moves on by the measured time of each pass, as the
stream's single worker thread does: the audio that arrived while a pass ran is there for the
next. There is no server, no socket and no second process, so a run is repeatable in a way the
end-to-end `stream_latency.py` is not, and every pass and probe is recorded (`--out`): when it
started and ended, the audio it had and the window it decoded, and what it sent. The figures are
`stream_latency.py`'s (first text after speech starts, final caption latency, WER) over the
captions as they left the engine; the end-to-end benchmark adds the server and the pipe
(about 0.1 to 0.2 s here) and is the one the targets are measured with.

    .venv/bin/python benchmarks/stream_replay.py /tmp/m7/en_3spk_4min_seed7.wav --out replay.json
    .venv/bin/python benchmarks/stream_replay.py replay.json --show 0.8   # utterances slower than 0.8 s

`--slower 3:5 --repeat 20` replays as a loaded machine would run the stream: each pass takes 3 to
5 times (drawn at random, `--seed`) its measured time, so more words are pending when others
become final and the windows fall elsewhere. It prints, for each repetition, the speaker labels
and the speaker-attributed cpWER (with NAME.stm beside the audio), then how many repetitions gave
as many labels as the reference has speakers:

    .venv/bin/python benchmarks/stream_replay.py "$(.venv/bin/python -c 'from transcribe.samples import \
        pyannote_sample as p; print(p(".wav"))')" --slower 3:5 --repeat 20
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import stream_latency as sl  # noqa: E402

SR = 16000
CHUNK = 320  # 20 ms, as stream_latency.py pushes


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def replay(audio, options, slower: tuple[float, float] = (1.0, 1.0), rng: random.Random | None = None) -> tuple[list, list, dict]:
    """(messages, trace, engine stats): messages as (time, caption dict) like the WebSocket
    client's; trace entries (start, end, kind, audio received to, window start, captions).
    Each pass takes its measured time times a factor drawn from `slower` (low, high)."""
    from transcribe.streaming.messages import caption_message
    from transcribe.streaming.session import StreamSession

    rng = rng or random.Random(0)
    clock = SimClock()
    engine = StreamSession(options, None, clock=clock).engine
    messages: list = []
    trace: list = []

    def run(kind: str, call) -> None:
        t0, passes, probes = clock.t, engine.stats.passes, engine.stats.probes
        wall = time.perf_counter()
        captions = call() or []
        clock.t += (time.perf_counter() - wall) * rng.uniform(*slower)
        messages.extend((clock.t, caption_message(c, 0)) for c in captions)
        decoded = engine.stats.passes > passes or engine.stats.probes > probes
        if kind == "work":
            kind = "probe" if engine.stats.probes > probes else "pass"
        if decoded or captions:
            trace.append((round(t0, 3), round(clock.t, 3), kind if decoded else kind + " (no pass)",
                          round(engine.ring.end / SR, 3), round(engine._start / SR, 3),
                          [f"{c.kind}: {c.text}" for c in captions]))

    fed = 0
    while fed < len(audio):
        while fed < len(audio) and fed + CHUNK <= clock.t * SR + 1:
            engine.feed(audio[fed:fed + CHUNK], (fed + CHUNK) / SR)
            fed += CHUNK
        if engine.ready() or engine.probe_ready():
            run("work", engine.work)
        else:
            clock.t += 0.005
    engine.close()
    for _ in range(20):
        if engine.finished:
            break
        run("pass", engine.step)
    return messages, trace, engine.stats.as_dict()


def show(saved: dict, slower_than: float) -> None:
    onsets = saved["onsets"]
    texts = [(t, m) for t, m in saved["messages"] if m.get("type") in ("partial", "final") and m.get("text")]
    for onset, first in zip(onsets, sl.first_text(texts, 0.0, onsets)):
        if first is not None and first < slower_than:
            continue
        print(f"speech at {onset:.2f} s: first text {'never' if first is None else f'+{first:.2f} s'}")
        until = onset + (first or 5.0)
        for t0, t1, kind, received, start, captions in saved["trace"]:
            if onset - 1.5 <= t0 <= until:
                print(f"  {t0:8.2f} to {t1:8.2f}  {kind:<15} audio to {received:8.2f}  window from {start:8.2f}  {captions}")


def repeat(audio_path: Path, audio, options, slower: tuple[float, float], times: int, seed: int) -> None:
    """Replay `times` times with passes `slower`; print the labels and cpWER of each."""
    from transcribe.attribution import build_segments
    from transcribe.evaluation.metrics import speaker_attributed_errors
    from transcribe.evaluation.readers import read_stm

    stm = audio_path.with_suffix(".stm")
    ref = read_stm(stm) if stm.is_file() else None
    want = len({s.speaker for s in ref}) if ref else None
    right = 0
    for k in range(times):
        messages, _, _ = replay(audio, options, slower, random.Random(seed + k))
        words = sl.final_words(messages)
        labels = sorted({w.speaker for w in words if w.speaker})
        right += len(labels) == want
        cp = f"  cpWER {speaker_attributed_errors(ref, build_segments(words), 'en')[0].rate:.3f}" if ref else ""
        print(f"repetition {k + 1}: {len(labels)} labels {labels}{cp}", flush=True)
    if want is not None:
        print(f"{right}/{times} repetitions gave {want} labels for {want} speakers")


def factors(text: str) -> tuple[float, float]:
    """`LO:HI` as two factors, 0 < LO <= HI."""
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI (two numbers), not {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 < LO <= HI, not {text!r}")
    return lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio", type=Path, help="a recording (with NAME.stm beside it for WER), or a saved replay (.json)")
    ap.add_argument("--out", type=Path, help="write figures, messages and the trace here (JSON)")
    ap.add_argument("--show", type=float, default=None, metavar="S",
                    help="print the trace around every utterance whose first text took S seconds or more")
    ap.add_argument("--slower", type=factors, default=(1.0, 1.0), metavar="LO:HI",
                    help="each pass takes LO to HI times its measured time (a loaded machine)")
    ap.add_argument("--repeat", type=int, default=0, metavar="N",
                    help="replay N times and print speaker labels and cpWER of each (no figures, no --out)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first repetition's slowdowns")
    args = ap.parse_args()
    if args.audio.suffix == ".json":
        show(json.loads(args.audio.read_text()), args.show if args.show is not None else 0.0)
        return

    from transcribe.media import load_audio
    from transcribe.streaming.session import StreamOptions

    audio = load_audio(args.audio).samples
    if args.repeat:
        repeat(args.audio, audio, StreamOptions(), args.slower, args.repeat, args.seed)
        return
    ref, _ = sl.offline_words(audio)
    onsets = sl.speech_onsets(audio)
    messages, trace, stats = replay(audio, StreamOptions(), args.slower, random.Random(args.seed))
    stm = args.audio.with_suffix(".stm")
    figures = sl.analyse(messages, 0.0, ref, len(audio) / SR + 1, onsets)
    figures.update(sl.wers(messages, ref, stm if stm.is_file() else None, 1))
    figures["engine"] = stats
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    saved = {"figures": figures, "onsets": onsets, "messages": messages, "trace": trace}
    if args.out:
        args.out.write_text(json.dumps(saved, indent=1))
    if args.show is not None:
        show(saved, args.show)


if __name__ == "__main__":
    main()
