"""Speaker-count estimation on hand-made embeddings (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from transcribe.diarize import DiarizationOptions, eigengap_count
from transcribe.errors import UsageError


def _clusters(k: int, per: int, noise: float, seed: int = 0, dim: int = 192) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    sizes = [per + i * 3 for i in range(k)]  # unequal sizes, as speakers talk unequally
    return np.concatenate([c + noise * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_eigengap_finds_the_number_of_groups(k):
    x = _clusters(k, 20, noise=0.8, seed=k)
    assert eigengap_count(x, 1, 15) == k


def test_eigengap_respects_bounds():
    x = _clusters(5, 20, noise=0.8)
    assert eigengap_count(x, 1, 3) <= 3
    assert eigengap_count(x, 6, 10) >= 6


def test_unknown_count_method_is_refused():
    with pytest.raises(UsageError):
        DiarizationOptions(count_method="guess")
