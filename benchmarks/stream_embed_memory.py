#!/usr/bin/env python
"""Memory held by the stream's speaker embeddings: CAM++ over runs of speech of every length, with
oneDNN's cache of prepared convolutions bounded as `CamppEmbedder` bounds it, against oneDNN's
own default (1024), in one run.

    .venv/bin/python benchmarks/stream_embed_memory.py [--runs 400] [--seed 0] [--out FILE.json]

Each setting runs in a process of its own, since oneDNN reads the capacity once per process. The
process loads the embedder as `transcribe stream` does (CPU, one torch thread), then embeds:
- `--runs` stretches of a real recording (pyannote's sample, tiled) whose lengths are drawn
  between 0.5 and 12 s, as the stream's runs of final words come;
- then as many 3 s stretches: one length over and over, where a cache pays most.
It reports resident memory (VmRSS, MiB) after loading and after each part, and each part's CPU
time. The ratios are bounded / default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_description  # noqa: E402
from stream_latency import rss_mb  # noqa: E402

SR = 16000
DEFAULT = "1024"  # oneDNN's own capacity: what torch used before the stream set one


def child(runs: int, seed: int) -> dict:
    """Embed in this process; resident memory and CPU time of each part."""
    import numpy as np

    from transcribe.media import load_audio
    from transcribe.samples import pyannote_sample
    from transcribe.store import ModelStore
    from transcribe.streaming.speakers import CamppEmbedder

    audio = load_audio(pyannote_sample(".wav")).samples
    audio = np.tile(audio, 1 + 13 * SR // len(audio))
    embedder = CamppEmbedder(ModelStore().require_weights("campplus"), "cpu", threads=1)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(SR // 2, 12 * SR, runs)
    out = {"capacity": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"),
           "rss_mb_loaded": round(rss_mb(os.getpid()), 1)}
    for part, sizes in (("varied", lengths), ("same", [3 * SR] * runs)):
        t0 = time.process_time()
        for n in sizes:
            embedder(audio[:n])
        out[f"cpu_s_{part}"] = round(time.process_time() - t0, 2)
        out[f"rss_mb_after_{part}"] = round(rss_mb(os.getpid()), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=400, help="stretches of each kind (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the lengths drawn (default 0)")
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.runs, args.seed)))
        return

    from transcribe.streaming.speakers import ONEDNN_CACHE_CAPACITY

    results = {}
    for name, capacity in (("default", DEFAULT), ("bounded", None)):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
        if capacity is not None:
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
        cmd = [sys.executable, __file__, "--child", "--runs", str(args.runs), "--seed", str(args.seed)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        results[name]["capacity"] = capacity or str(ONEDNN_CACHE_CAPACITY)
    d, b = results["default"], results["bounded"]
    growth = {k: r["rss_mb_after_same"] - r["rss_mb_loaded"] for k, r in results.items()}
    figures = {
        "cpu": cpu_description(),
        "runs": args.runs,
        "rss_growth_mb_default": round(growth["default"], 1),
        "rss_growth_mb_bounded": round(growth["bounded"], 1),
        "rss_growth_ratio": round(growth["bounded"] / growth["default"], 3) if growth["default"] > 0 else None,
        "cpu_ratio_varied": round(b["cpu_s_varied"] / d["cpu_s_varied"], 3),
        "cpu_ratio_same": round(b["cpu_s_same"] / d["cpu_s_same"], 3),
    }
    print(f"{'capacity':<10} {'RSS loaded':>11} {'after varied':>13} {'after same':>11} {'CPU varied':>11} {'CPU same':>9}")
    for r in (d, b):
        print(f"{r['capacity']:<10} {r['rss_mb_loaded']:>7.1f} MiB {r['rss_mb_after_varied']:>9.1f} MiB "
              f"{r['rss_mb_after_same']:>7.1f} MiB {r['cpu_s_varied']:>9.1f} s {r['cpu_s_same']:>7.1f} s")
    for k, v in figures.items():
        print(f"{k:<24} {v}")
    if args.out:
        args.out.write_text(json.dumps({"figures": figures, "processes": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
