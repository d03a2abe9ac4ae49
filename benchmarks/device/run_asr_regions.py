"""benchmarks/asr_regions.py with the meetings' clips read from $TRANSCRIBE_CLIPS_NPZ (clips.py)
instead of decoded with ffmpeg, which the GPU machine lacks. Same arguments."""

import functools
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import compose  # noqa: E402

_DATA = np.load(os.environ["TRANSCRIBE_CLIPS_NPZ"])


@functools.lru_cache(maxsize=None)
def _decode(path: str) -> np.ndarray:
    x = _DATA[str(Path(path).resolve().relative_to(ROOT / "samples"))].copy()
    x.setflags(write=False)
    return x


compose._decode = _decode

if __name__ == "__main__":
    import asr_regions

    raise SystemExit(asr_regions.main(sys.argv[1:]))
