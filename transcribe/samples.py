"""Real recordings that ship with our dependencies: the demo's input and the tests' first case.

pyannote.audio's wheel carries `sample/sample.wav` (30 s, two speakers, Diane and Sheila) with its
reference diarization `sample.rttm` and transcript `sample.stm`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def pyannote_sample(suffix: str = ".wav") -> Path:
    """Path of pyannote's sample with the given suffix (.wav, .rttm, .stm), found without importing pyannote."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pyannote.audio is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "sample" / f"sample{suffix}"


if __name__ == "__main__":  # `python -m transcribe.samples sample` prints the path, for the Makefile
    print(pyannote_sample(".wav" if len(sys.argv) < 3 else sys.argv[2]))
