"""Time CAM++ `embed` (trunk once, pool per speaker) against one full pass per speaker mask.

    python benchmarks/campplus_embed.py [WEIGHTS] [--batch 32] [--speakers 3] [--threads 2]
                                        [--device cpu|cuda] [--audio 16k-mono.wav]

Chunks are 10 s windows of a real recording (pyannote's sample, tiled), masks are random
runs of speech at pyannote's segmentation frame rate (589 frames per 10 s). The two ways run
in turn, `--repeat` times each; the best time of each and their ratio are reported.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.io import wavfile

from transcribe.campplus import embed, load_campplus

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "models" / "campplus" / "campplus_cn_en_common.pt"
SAMPLE = Path("/work/shared/data/pyannote_sample/src/pyannote/audio/sample/sample.wav")


def chunks(audio_path: Path, batch: int, seconds: float = 10.0, step: float = 1.0) -> torch.Tensor:
    """(batch, 1, N) windows of a 16 kHz 16-bit mono recording, tiled to be long enough."""
    rate, data = wavfile.read(audio_path)
    repeats = 1 + int((batch * step + seconds) * rate / len(data))
    audio = np.tile(data.astype(np.float32) / 32768, repeats)
    n, hop = int(seconds * rate), int(step * rate)
    return torch.from_numpy(np.stack([audio[i * hop : i * hop + n] for i in range(batch)]))[:, None]


def masks(batch: int, speakers: int, frames: int = 589, seed: int = 0) -> torch.Tensor:
    """(batch, speakers, frames) binary masks, each a few random runs of activity."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(batch, speakers, frames)
    for b in range(batch):
        for s in range(speakers):
            for _ in range(3):
                start = int(torch.randint(0, frames - 50, (1,), generator=gen))
                length = int(torch.randint(20, 200, (1,), generator=gen))
                w[b, s, start : start + length] = 1
    return w


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--audio", type=Path, default=SAMPLE)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_campplus(args.weights, device)
    x = chunks(args.audio, args.batch).to(device)
    w = masks(args.batch, args.speakers).to(device)
    embed(model, x[:2], w[:2])  # warm-up

    def shared_trunk() -> None:
        embed(model, x, w)

    def pass_per_mask() -> None:
        for s in range(args.speakers):
            embed(model, x, w[:, s : s + 1])

    times: dict[str, list[float]] = {"shared": [], "per_mask": []}
    for _ in range(args.repeat):
        times["shared"].append(timed(shared_trunk, device))
        times["per_mask"].append(timed(pass_per_mask, device))
    shared, per_mask = min(times["shared"]), min(times["per_mask"])
    same = torch.cat([embed(model, x, w[:, s : s + 1]) for s in range(args.speakers)], dim=1)
    diff = (embed(model, x, w) - same).abs().max().item()
    print(
        f"{args.batch} x 10 s chunks, {args.speakers} masks, {args.device}, "
        f"{args.threads} threads: "
        f"embed (trunk once) {shared:.2f} s, one full pass per mask {per_mask:.2f} s, "
        f"ratio {per_mask / shared:.2f}x; max |difference| {diff:.1e}"
    )


if __name__ == "__main__":
    main()
