"""Decode every recording that asr_regions' meetings take clips from, into one .npz keyed by path
under samples/ (`key`).

    python benchmarks/device/clips.py OUT.npz [--seeds 1 2 3] [--speakers 3 6] [--minutes 2]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import compose  # noqa: E402


def key(path: str) -> str:
    """A recording's name in the .npz: its path under samples/."""
    return str(Path(path).resolve().relative_to(ROOT / "samples"))


def main(argv=None) -> None:
    from asr_regions import compose_meetings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--speakers", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--minutes", type=float, default=2.0)
    args = ap.parse_args(argv)
    used = {}
    decode = compose._decode

    def recording(path: str) -> np.ndarray:
        x = decode(path)
        used[key(path)] = x
        return x

    compose._decode = recording
    clips = compose.load_clips(ROOT / "samples" / "clips.jsonl")
    by_id = {c.id: c for c in clips}
    for m in compose_meetings(clips, args.seeds, args.speakers, args.minutes):
        for u in m.utterances:
            compose.clip_audio(by_id[u.clip])  # the ceiling's clips, whole
    np.savez_compressed(args.out, **used)
    print(f"{len(used)} recordings, {sum(x.nbytes for x in used.values()) / 1e6:.1f} MB decoded -> {args.out}")


if __name__ == "__main__":
    main()
