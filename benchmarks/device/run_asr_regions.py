"""benchmarks/asr_regions.py with the meetings' clips read from $TRANSCRIBE_CLIPS_NPZ (clips.py)
instead of decoded with ffmpeg, which the GPU machine lacks. Same arguments."""

import functools
import os
import sys

import numpy as np
from clips import ROOT, compose, key  # noqa: F401  (ROOT for the scripts beside)

_DATA = np.load(os.environ["TRANSCRIBE_CLIPS_NPZ"])


@functools.lru_cache(maxsize=None)
def _decode(path: str) -> np.ndarray:
    x = _DATA[key(path)].copy()
    x.setflags(write=False)
    return x


compose._decode = _decode

if __name__ == "__main__":
    import asr_regions

    raise SystemExit(asr_regions.main(sys.argv[1:]))
