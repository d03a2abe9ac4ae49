"""Decode every recording that asr_regions' meetings (seeds 1-3, 3 and 6 speakers, 2 min, and the
quiet-turn meeting) take clips from, into one .npz keyed by path under samples/."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import compose  # noqa: E402


def main(out: Path) -> None:
    used = {}
    decode = compose._decode

    def recording(path: str) -> np.ndarray:
        x = decode(path)
        used[str(Path(path).resolve().relative_to(ROOT / "samples"))] = x
        return x

    compose._decode = recording
    clips = compose.load_clips(ROOT / "samples" / "clips.jsonl")
    meetings = [compose.compose_meeting(clips, s, n, 2.0, "en") for s in (1, 2, 3) for n in (3, 6)]
    meetings.append(compose.compose_meeting(clips, 11, 0, 2.0, "en", compose.ComposeOptions(
        quiet_turn=25.0, speaker_set=("lj", "mfa_mcauliffe", "librivox_sonnets", "jfk"))))
    by_id = {c.id: c for c in clips}
    for m in meetings:
        for u in m.utterances:
            compose.clip_audio(by_id[u.clip])
    np.savez_compressed(out, **used)
    print(f"{len(used)} recordings, {sum(x.nbytes for x in used.values()) / 1e6:.1f} MB decoded -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
