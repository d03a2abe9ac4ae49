"""ASR over speech regions against sequential whole-file decoding, in one run, same model, same machine.

    python benchmarks/asr_regions.py [--seeds 1 2 3] [--speakers 3 5 8] [--minutes 4] [--diarize]
                                     [--reps 2] [--options KEY=VALUE] [--variant KEY=VALUE]
                                     [-o benchmarks/results/asr_regions.json]

Meetings are composed in memory by `benchmarks/compose.py` from `samples/clips.jsonl` (English,
default composer options: pauses, 5% overlap, +-6 dB speaker levels, pink noise at -50 dBFS), one
per (seed, speaker count), plus one with a long quiet turn (a speaker at -20 dB, a 25 s turn).
On each, with the same faster-whisper model (`Recognizer`, int8 on CPU, float16 with `--device cuda`)
and the same options:

- `usual`: faster-whisper's defaults (no VAD, conditioning on previous text) with word timestamps,
  the ASR of `benchmarks/usual_pipeline.py`: the insertions to beat;
- `sequential`: `Recognizer.__call__`, `--asr-mode whole` (whole file, VAD filter, word
  timestamps, no conditioning on previous text): the speed baseline;
- `regions`: `transcribe.regions` over the reference RTTM turns (isolates the ASR stage), with the
  library's `RegionOptions` or those changed by `--options KEY=VALUE` (then for every regions system
  below but the variants);
- `regions+vad`: over Silero VAD regions (`vad_regions`, what `--no-diarize` uses), VAD time included;
- `regions:KEY=VALUE` (with --variant KEY=VALUE): `regions` with those `RegionOptions` changed, for
  example `--variant previous_tokens=0` (no previous text in the prompts);
- `regions+diar` (with --diarize): over the turns of our diarization, overlaps kept, as `transcribe run`
  passes them (its time is not counted: the pipeline runs diarization anyway);
- `ceiling`: every reference clip transcribed on its own (`Recognizer`, the original clip audio);
- `ceiling_in_meeting` (with --ceiling-in-meeting): every reference turn's span of the meeting transcribed on its own (the
  same clip with the meeting's level, noise and overlapping neighbours: what perfect regions give).

Scores: WER (Whisper's English normalizer) with substitutions, deletions and insertions pooled over
the meetings; per reference turn (RTTM line) of >= 3 s, the share of its words recognised (words
whose middle lies in the turn), and the count of such turns under 50%; the deletions in turns that
overlap no other (`clean_deletions`: what skipped speech shows, apart from the second voice where
two people talk at once). Time: the ASR stage only,
`sequential` and `regions` alternated `--reps` times on each meeting (each variant then `--reps` times
too); the speed-up is the ratio of the summed best-of-reps times; the load average is recorded.
Then 60 s of digital silence and 60 s of pink noise (-40 dBFS): words from `sequential` and from
`regions` over Silero VAD regions (and over diarization with --diarize); the target is none.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from machine import cpu_description  # noqa: E402
from transcribe.asr import AsrOptions, Recognizer  # noqa: E402
from transcribe.devices import asr_device  # noqa: E402
from transcribe.errors import UsageError  # noqa: E402
from transcribe.evaluation.metrics import WordErrors, word_errors  # noqa: E402
from transcribe.regions import RegionOptions, plan_chunks, transcribe_chunks, vad_regions  # noqa: E402
from transcribe.store import ModelStore  # noqa: E402
from transcribe.types import Audio, Turn, Word  # noqa: E402

log = logging.getLogger("transcribe")


def score(utterances: Sequence[Any], words: Sequence[Word], language: str = "en") -> dict[str, Any]:
    """WER over the meeting, recall per reference turn of >= 3 s, deletions in turns without overlap."""
    ordered = sorted(utterances, key=lambda u: u.start)
    ref = " ".join(u.text for u in ordered)
    hyp = "".join(w.text for w in sorted(words, key=lambda w: w.start))
    we = word_errors(ref, hyp, language)
    turns = []
    for u in ordered:
        if u.end - u.start < 3.0:
            continue
        inside = "".join(w.text for w in words if u.start <= (w.start + w.end) / 2 <= u.end)
        e = word_errors(u.text, inside, language)
        hits = e.ref_words - e.substitutions - e.deletions
        turns.append({"start": round(u.start, 2), "end": round(u.end, 2), "speaker": u.speaker,
                      "words": e.ref_words, "recall": round(hits / e.ref_words, 3) if e.ref_words else 1.0})
    low = [t for t in turns if t["recall"] < 0.5]
    return {"errors": asdict(we), "wer": we.rate, "turns_3s": len(turns), "turns_under_half": len(low),
            "low_turns": low, "clean": clean_deletions(ordered, words, language)}


CLEAN_SLACK = 0.2  # seconds: a word's middle this far outside its turn still counts for it (alignment jitter)


def clean_deletions(utterances: Sequence[Any], words: Sequence[Word], language: str = "en") -> dict[str, int]:
    """Deletions in the turns that overlap no other turn, each scored on its own against the words
    whose middle lies in it (within `CLEAN_SLACK`).

    Where two people talk at once, one transcript of the mixture mostly gives one voice, and the
    meeting's WER, which aligns the words in time order against the turns one after another,
    counts any word of the other voice as misplaced: on 12 meetings (seeds 7-10, 3, 5 and 7
    speakers), about 60% of the words missing from our output lay in overlapped speech (word times
    estimated in proportion to characters), which holds 9% of the words. This count is the
    deletions where nobody talks over the speaker: what skipped speech shows.
    """
    ref_words = deletions = 0
    for u in utterances:
        if any(o is not u and o.start < u.end and o.end > u.start for o in utterances):
            continue
        lo, hi = u.start - CLEAN_SLACK, u.end + CLEAN_SLACK
        inside = "".join(w.text for w in words if lo <= (w.start + w.end) / 2 <= hi)
        e = word_errors(u.text, inside, language)
        ref_words += e.ref_words
        deletions += e.deletions
    return {"ref_words": ref_words, "deletions": deletions}


def pooled(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total = sum((WordErrors(**r["errors"]) for r in results), start=WordErrors(0, 0, 0, 0))
    clean = {k: sum(r["clean"][k] for r in results) for k in ("ref_words", "deletions")}
    return {
        "wer": round(total.rate or 0.0, 4),
        "ref_words": total.ref_words,
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "deletion_rate": round(total.deletions / max(total.ref_words, 1), 4),
        "turns_3s": sum(r["turns_3s"] for r in results),
        "turns_under_half": sum(r["turns_under_half"] for r in results),
        "clean_ref_words": clean["ref_words"],
        "clean_deletions": clean["deletions"],
        "clean_deletion_rate": round(clean["deletions"] / max(clean["ref_words"], 1), 4),
    }


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def compose_meetings(clips, seeds: Sequence[int], speakers: Sequence[int], minutes: float, quiet: bool = True) -> list:
    """The benchmark's meetings: one per (seed, speaker count), then the one with a long quiet turn."""
    from compose import ComposeOptions, compose_meeting

    meetings = [compose_meeting(clips, seed, n, minutes, "en") for seed in seeds for n in speakers]
    if quiet:
        meetings.append(compose_meeting(
            clips, 11, 0, minutes, "en",
            ComposeOptions(quiet_turn=25.0, speaker_set=("lj", "mfa_mcauliffe", "librivox_sonnets", "jfk"))))
    return meetings


def run_regions(rec: Recognizer, audio: Audio, turns: Sequence[Turn], options: AsrOptions, ropts: RegionOptions):
    chunks = plan_chunks(turns, audio.duration, options=ropts, audio=audio)
    return transcribe_chunks(rec, audio, chunks, options, region_options=ropts)


def run_usual_asr(rec: Recognizer, audio: Audio, options: AsrOptions) -> list[Word]:
    """The usual pipeline's ASR (benchmarks/usual_pipeline.py): faster-whisper's defaults (no VAD,
    conditioning on previous text) plus word timestamps; the insertions to beat."""
    segments, _ = rec.model.transcribe(audio.samples, language=options.language, word_timestamps=True)
    return [Word(w.start, w.end, w.word, w.probability) for s in segments for w in s.words or ()]


def parse_variant(text: str) -> RegionOptions:
    """RegionOptions with the fields named in "key=value,key=value" changed (typed as the defaults)."""
    defaults = RegionOptions()
    changes: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not hasattr(defaults, key.strip()):
            raise SystemExit(f"{text!r}: expected KEY=VALUE with a RegionOptions field as KEY")
        key = key.strip()
        kind = type(getattr(defaults, key))
        try:
            changes[key] = value.strip().lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise SystemExit(f"{text!r}: {key} takes a {kind.__name__}, not {value!r}") from None
    return RegionOptions(**changes)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--speakers", type=int, nargs="+", default=[3, 5, 8])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--model", default="base")
    ap.add_argument("--language", default="en", help="given to every system ('' to detect)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions of sequential and regions")
    ap.add_argument("--diarize", action="store_true", help="also regions from our diarization")
    ap.add_argument("--no-quiet", action="store_true", help="leave out the meeting with a quiet turn")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--ceiling-in-meeting", action="store_true",
                    help="also each reference turn's span of the meeting on its own (slow)")
    ap.add_argument("--clips", type=Path, default=HERE.parent / "samples" / "clips.jsonl")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for CTranslate2 (0: its default)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where Whisper runs [cpu]")
    ap.add_argument("--compute-type", default=None, help="CTranslate2 precision [int8 on cpu, float16 on cuda]")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="also regions over the reference turns with these RegionOptions changed, as system "
                         "'regions:KEY=VALUE' (repeatable; e.g. previous_tokens=0)")
    ap.add_argument("--options", default="", metavar="KEY=VALUE[,KEY=VALUE]",
                    help="RegionOptions of every regions system but the variants (default: the library's defaults)")
    ap.add_argument("--words", action="store_true",
                    help="also keep every system's words and the reference turns in the JSON (to see where errors are)")
    ap.add_argument("-o", "--output", type=Path, default=HERE / "results" / "asr_regions.json")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    from compose import clip_audio, compose_background, load_clips

    clips = load_clips(args.clips)
    by_id = {c.id: c for c in clips}
    store = ModelStore()
    try:
        device, compute_type = asr_device(args.device, args.device, args.compute_type)
    except UsageError as exc:
        raise SystemExit(str(exc)) from None
    rec = Recognizer(store.require(args.model), device, compute_type, args.threads)
    options = AsrOptions(language=args.language or None)
    ropts = parse_variant(args.options) if args.options else RegionOptions()
    variants = {f"regions:{v}": parse_variant(v) for v in args.variant}
    diarizer = None
    if args.diarize:
        from transcribe.diarize import DiarizationOptions, Diarizer

        diarizer = Diarizer(store.require_weights("segmentation-3.0"), store.require_weights("campplus"))

    meetings = compose_meetings(clips, args.seeds, args.speakers, args.minutes, quiet=not args.no_quiet)

    systems = ["usual", "sequential", "regions", "regions+vad"] + (["regions+diar"] if diarizer else [])
    systems += list(variants)
    systems += [] if args.no_ceiling else ["ceiling"] + (["ceiling_in_meeting"] if args.ceiling_in_meeting else [])
    load_before = os.getloadavg()
    per_meeting: list[dict[str, Any]] = []
    for m in meetings:
        audio = Audio(m.samples, m.name)
        ref_turns = [Turn(u.start, u.end, u.speaker) for u in m.utterances]
        row: dict[str, Any] = {"name": m.name, "duration": round(audio.duration, 1), "speakers": len(m.speakers),
                               "speech_seconds": m.info["speech_seconds"], "quiet_turn": m.info.get("quiet_turn")}
        times: dict[str, list[float]] = {"sequential": [], "regions": []}
        for _ in range(args.reps):
            seq, dt = timed(rec, audio, options)
            times["sequential"].append(dt)
            reg, dt = timed(run_regions, rec, audio, ref_turns, options, ropts)
            times["regions"].append(dt)
        row["sequential"] = score(m.utterances, seq.words) | {"seconds": [round(t, 2) for t in times["sequential"]]}
        row["regions"] = score(m.utterances, reg.words) | {"seconds": [round(t, 2) for t in times["regions"]],
                                                           "stats": dict(reg.stats)}
        kept: dict[str, Sequence[Word]] = {}
        for name, v_opts in variants.items():
            v_times = []
            for _ in range(args.reps):
                var, dt = timed(run_regions, rec, audio, ref_turns, options, v_opts)
                v_times.append(dt)
            kept[name] = var.words
            row[name] = score(m.utterances, var.words) | {"seconds": [round(t, 2) for t in v_times],
                                                          "stats": dict(var.stats)}
        vad, dt = timed(lambda: run_regions(rec, audio, vad_regions(audio), options, ropts))
        row["regions+vad"] = score(m.utterances, vad.words) | {"seconds": [round(dt, 2)], "stats": dict(vad.stats)}
        if diarizer:
            d, d_dt = timed(diarizer, audio, DiarizationOptions())
            regd, dt = timed(run_regions, rec, audio, d.turns, options, ropts)
            row["regions+diar"] = score(m.utterances, regd.words) | {
                "seconds": [round(dt, 2)], "diarization_seconds": round(d_dt, 2), "stats": dict(regd.stats)}
        usual, dt = timed(run_usual_asr, rec, audio, options)
        row["usual"] = score(m.utterances, usual) | {"seconds": [round(dt, 2)]}
        if not args.no_ceiling:
            words: list[Word] = []
            t0 = time.perf_counter()
            for u in m.utterances:
                clip = Audio(np.asarray(clip_audio(by_id[u.clip]), dtype=np.float32))
                for w in rec(clip, options).words:
                    words.append(Word(u.start + w.start, u.start + w.end, w.text, w.probability))
            row["ceiling"] = score(m.utterances, words) | {"seconds": [round(time.perf_counter() - t0, 2)]}
        if args.ceiling_in_meeting:
            words = []
            t0 = time.perf_counter()
            for u in m.utterances:
                a, b = round(u.start * audio.sample_rate), round(u.end * audio.sample_rate)
                for w in rec(Audio(audio.samples[a:b]), options).words:
                    words.append(Word(u.start + w.start, u.start + w.end, w.text, w.probability))
            row["ceiling_in_meeting"] = score(m.utterances, words) | {"seconds": [round(time.perf_counter() - t0, 2)]}
        row["speedup"] = round(min(times["sequential"]) / min(times["regions"]), 3)
        if args.words:
            row["reference"] = [[round(u.start, 2), round(u.end, 2), u.speaker, u.text] for u in m.utterances]
            found = {"sequential": seq.words, "regions": reg.words, "regions+vad": vad.words, "usual": usual}
            found |= {"ceiling": words} if not args.no_ceiling and not args.ceiling_in_meeting else {}
            found |= kept | ({"regions+diar": regd.words} if diarizer else {})
            row["words"] = {k: [[round(w.start, 2), round(w.end, 2), w.text] for w in ws] for k, ws in found.items()}
        per_meeting.append(row)
        line = "  ".join(f"{s} wer {row[s]['wer']:.3f} del {row[s]['errors']['deletions']} "
                         f"ins {row[s]['errors']['insertions']} low {row[s]['turns_under_half']}" for s in systems)
        print(f"{m.name}: {line}  speed-up {row['speedup']:.2f}", file=sys.stderr, flush=True)

    background = []
    for x in (compose_background("silence", 60.0), compose_background("noise", 60.0, seed=1)):
        audio = Audio(x.samples, x.name)
        item = {"name": x.name, "sequential_words": len(rec(audio, options).words),
                "usual_words": len(run_usual_asr(rec, audio, options))}
        vad = vad_regions(audio)
        item["vad_regions"] = len(vad)
        r = run_regions(rec, audio, vad, options, ropts)
        item["regions_words"] = len(r.words)
        item["regions_stats"] = dict(r.stats)
        if diarizer:
            d = diarizer(audio, DiarizationOptions())
            item["diarization_turns"] = len(d.turns)
            item["regions+diar_words"] = len(run_regions(rec, audio, d.turns, options, ropts).words)
        background.append(item)

    summary = {s: pooled([r[s] for r in per_meeting]) for s in systems}
    best = {s: sum(min(r[s]["seconds"]) for r in per_meeting) for s in ("sequential", "regions", *variants)}
    summary["asr_seconds_best_of_reps"] = {k: round(v, 2) for k, v in best.items()}
    summary["speedup"] = round(best["sequential"] / best["regions"], 3)
    summary["speedup_variants"] = {v: round(best["sequential"] / best[v], 3) for v in variants}
    result = {
        "command": " ".join(["python", "benchmarks/asr_regions.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "device": device,
        "compute_type": compute_type,
        "cpus": os.cpu_count(),
        "cpu": cpu_description(),
        "load_average_before_after": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "language": args.language or None,
        "region_options": asdict(ropts),
        "summary": summary,
        "background": background,
        "meetings": per_meeting,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    print(f"\n{len(per_meeting)} meetings, {sum(r['duration'] for r in per_meeting) / 60:.1f} min, model {args.model}")
    print(f"| system | WER | subs | dels (rate) | dels in turns without overlap | ins | turns >=3 s under 50% "
          f"| ASR s (best of {args.reps}) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in systems:
        p = summary[s]
        t = f"{best[s]:.1f}" if s in best else "—"
        print(f"| {s} | {p['wer']:.3f} | {p['substitutions']} | {p['deletions']} ({p['deletion_rate']:.1%}) | "
              f"{p['clean_deletions']} / {p['clean_ref_words']} ({p['clean_deletion_rate']:.1%}) | "
              f"{p['insertions']} | {p['turns_under_half']} / {p['turns_3s']} | {t} |")
    print(f"speed-up of the ASR stage (sequential / regions): {summary['speedup']:.2f}x")
    for v, x in summary["speedup_variants"].items():
        print(f"speed-up of {v}: {x:.2f}x")
    print(f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) before {result['load_average_before_after'][:3]}, "
          f"after {result['load_average_before_after'][3:]}")
    for b in background:
        print(f"{b['name']}: usual {b['usual_words']} words, sequential {b['sequential_words']} words, "
              f"regions (VAD) {b['regions_words']} words"
              + (f", regions (diarization) {b['regions+diar_words']} words" if "regions+diar_words" in b else ""))
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
