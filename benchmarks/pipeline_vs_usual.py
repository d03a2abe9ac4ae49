"""Our pipeline against the usual one, in one run, on the same audio and the same model files.

    python benchmarks/pipeline_vs_usual.py MEETINGS.jsonl [-o results.json] [--model base]

MEETINGS.jsonl is a dataset manifest (audio, language, rttm, stm paths relative to it), such as
the one `benchmarks/compose.py` writes. Each system runs in its own process, one after the other,
so that peak memory is its own; the parent scores both with `transcribe.evaluation` and prints
speed ratios and quality deltas (WER, strict DER, cpWER), per file and pooled.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def run_system(system: str, audio_path: str, out_json: str, model: str, num_speakers: int | None) -> None:
    """Child process: transcribe one file with one system, write our JSON plus wall time and peak RSS."""
    from transcribe.media import load_audio
    from transcribe.writers import transcript_to_json

    t0 = time.perf_counter()
    audio = load_audio(audio_path)
    if system == "ours":
        from transcribe.pipeline import Pipeline, PipelineOptions

        transcript = Pipeline(PipelineOptions(model=model, num_speakers=num_speakers, device="cpu")).transcribe(audio)
    else:
        from usual_pipeline import run_usual

        transcript = run_usual(audio, model=model, num_speakers=num_speakers)
    data = transcript_to_json(transcript)
    data["stats"] = dict(data.get("stats", {}))
    data["stats"]["wall_s"] = round(time.perf_counter() - t0, 3)
    cpu = os.times()  # user + system time of every thread of this process: far less sensitive to load than wall time
    data["stats"]["cpu_s"] = round(cpu.user + cpu.system, 3)
    data["stats"]["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(out_json).write_text(json.dumps(data))


def score(item, hyp_json: Path) -> dict:
    from transcribe.evaluation.metrics import diarization_errors, speaker_attributed_errors, word_errors
    from transcribe.evaluation.readers import read_rttm, read_stm
    from transcribe.writers import transcript_from_json

    data = json.loads(hyp_json.read_text())
    hyp = transcript_from_json(data)
    ref_segments = read_stm(item["stm"])
    ref_text = " ".join(s.text for s in ref_segments)
    wer = word_errors(ref_text, " ".join(s.text for s in hyp.segments), item.get("language"))
    der = diarization_errors(read_rttm(item["rttm"]), hyp.turns)
    cp, _ = speaker_attributed_errors(ref_segments, hyp.segments, item.get("language"), timed=False)
    return {
        "wer": wer.rate,
        "deletions": wer.deletions,
        "insertions": wer.insertions,
        "ref_words": wer.ref_words,
        "der": der.der,
        "missed": der.missed_rate,
        "confusion": der.confusion_rate,
        "cpwer": cp.rate,
        "speakers": len(hyp.speakers),
        "wall_s": data["stats"]["wall_s"],
        "cpu_s": data["stats"]["cpu_s"],
        "timings": data["stats"].get("timings", {}),
        "peak_rss_mb": data["stats"]["peak_rss_mb"],
        "duration": hyp.duration,
        "_counts": {"wer": [wer.errors, wer.ref_words], "der": [der.missed + der.false_alarm + der.confusion, der.total], "cpwer": [cp.errors, cp.ref_words]},
    }


def load_items(manifest: Path) -> list[dict]:
    items = []
    for line in manifest.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            for key in ("audio", "rttm", "stm"):
                item[key] = str((manifest.parent / item[key]).resolve())
            items.append(item)
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path, nargs="?")
    ap.add_argument("-o", "--output", type=Path, default=HERE / "results" / "vs_usual.json")
    ap.add_argument("--model", default="base")
    ap.add_argument("--given-speakers", action="store_true", help="pass the true speaker count to both systems")
    ap.add_argument("--systems", default="usual,ours")
    ap.add_argument("--usual-max-minutes", type=float, default=None,
                    help="run the usual pipeline only on files up to this long (it is the slow one)")
    ap.add_argument("--child", nargs=3, metavar=("SYSTEM", "AUDIO", "OUT_JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--num-speakers", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_system(*args.child, model=args.model, num_speakers=args.num_speakers)
        return

    work = args.output.parent / (args.output.stem + "-outputs")
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in load_items(args.manifest):
        stem = Path(item["audio"]).stem
        row = {"file": stem}
        for system in args.systems.split(","):
            if system == "usual" and args.usual_max_minutes and item.get("duration", 0) > 60 * args.usual_max_minutes:
                continue
            out_json = work / f"{stem}.{system}.json"
            cmd = [sys.executable, __file__, "--model", args.model, "--child", system, item["audio"], str(out_json)]
            if args.given_speakers and item.get("speakers"):
                cmd += ["--num-speakers", str(item["speakers"])]
            subprocess.run(cmd, check=True)
            row[system] = score(item, out_json)
            print(f"{stem} {system}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in row[system].items() if not k.startswith("_") and k != "timings"), flush=True)
        rows.append(row)
    systems = args.systems.split(",")
    summary = {"model": args.model, "files": rows, "pooled": {s: pool([r[s] for r in rows if s in r]) for s in systems}}
    paired = [r for r in rows if "usual" in r and "ours" in r]
    if paired:  # speed-ups and deltas on the files both systems ran
        usual, ours = pool([r["usual"] for r in paired]), pool([r["ours"] for r in paired])
        summary["paired"] = {"files": [r["file"] for r in paired], "usual": usual, "ours": ours,
                             "speedup_wall": usual["wall_s"] / ours["wall_s"], "speedup_cpu": usual["cpu_s"] / ours["cpu_s"]}
    for system in systems:  # cost per audio minute against length, relative to the shortest file
        runs = sorted((r[system] for r in rows if system in r), key=lambda x: x["duration"])
        if runs:
            base = runs[0]
            summary.setdefault("scaling", {})[system] = [
                {"minutes": round(x["duration"] / 60, 2),
                 "wall_s_per_min": round(60 * x["wall_s"] / x["duration"], 2),
                 "cpu_s_per_min": round(60 * x["cpu_s"] / x["duration"], 2),
                 "cpu_cost_vs_shortest": round((x["cpu_s"] / x["duration"]) / (base["cpu_s"] / base["duration"]), 3),
                 "wall_cost_vs_shortest": round((x["wall_s"] / x["duration"]) / (base["wall_s"] / base["duration"]), 3),
                 "peak_rss_mb": x["peak_rss_mb"]}
                for x in runs]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))


def pool(runs: list[dict]) -> dict:
    """Error rates pooled over files (errors over reference size), total time, worst peak memory."""
    out: dict = {}
    for metric in ("wer", "der", "cpwer"):
        errors = sum(r["_counts"][metric][0] for r in runs)
        size = sum(r["_counts"][metric][1] for r in runs)
        out[metric] = errors / size if size else None
    wall, cpu, audio = (sum(r[k] for r in runs) for k in ("wall_s", "cpu_s", "duration"))
    return out | {"wall_s": wall, "cpu_s": cpu, "rtf": wall / audio if audio else None,
                  "peak_rss_mb": max((r["peak_rss_mb"] for r in runs), default=0.0)}

if __name__ == "__main__":
    main()
