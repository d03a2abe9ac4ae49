"""A bounded buffer of the session's most recent audio, addressed by absolute sample index.

Sample index 0 is the start of the session; indices only grow, also across reconnections (a gap
in the source advances the index without storing samples). Writing past the capacity drops the
oldest samples, so memory stays flat however long the session runs and however far behind the
recognizer falls; the number of samples dropped unread is counted.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from transcribe.types import SAMPLE_RATE

__all__ = ["AudioRing"]


class AudioRing:
    """Float32 mono samples [start, end) of the session, at most `capacity` of them.

    `write` (the event loop) and `read` (the recognizer thread) may run in different threads.
    Each write also records when it arrived, so the recognizer can tell how long ago any sample
    reached the server (`arrival`).
    """

    def __init__(self, capacity_seconds: float, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = sample_rate
        self.capacity = int(capacity_seconds * sample_rate)
        if self.capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._lock = threading.Lock()
        self.start = 0  # oldest sample still held
        self.end = 0  # one past the newest sample
        self.overwritten = 0  # samples dropped by writes before anyone asked to keep them
        self.protected = 0  # samples before this index may be dropped silently
        # (end index of a write, wall time it arrived): enough to date any sample held
        self._arrivals: deque[tuple[int, float]] = deque()

    @property
    def seconds(self) -> float:
        return self.end / self.sample_rate

    def write(self, samples: np.ndarray, arrived: float) -> None:
        n = len(samples)
        if n == 0:
            return
        with self._lock:
            if n > self.capacity:
                samples = samples[-self.capacity:]
                self.overwritten += n - self.capacity
                self.end += n - self.capacity
                self.start = self.end
                n = self.capacity
            pos = self.end % self.capacity
            first = min(n, self.capacity - pos)
            self._data[pos:pos + first] = samples[:first]
            self._data[: n - first] = samples[first:]
            self.end += n
            new_start = max(self.start, self.end - self.capacity)
            if new_start > self.start:
                lost = max(0, min(new_start, self.end) - max(self.start, self.protected))
                self.overwritten += lost
                self.start = new_start
            self._arrivals.append((self.end, arrived))
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= self.start:
                self._arrivals.popleft()

    def skip(self, n: int) -> None:
        """Advance the clock by `n` samples that never arrived (a gap in the source); they read
        as silence while they are held."""
        if n <= 0:
            return
        with self._lock:
            first = max(self.end, self.end + n - self.capacity)
            self.end += n
            self.start = max(self.start, self.end - self.capacity)
            idx = np.arange(first, self.end) % self.capacity
            self._data[idx] = 0.0

    def read(self, start: int, end: int | None = None) -> np.ndarray:
        """A copy of samples [start, end) (clipped to what is held)."""
        with self._lock:
            end = self.end if end is None else min(end, self.end)
            start = max(start, self.start)
            if end <= start:
                return np.zeros(0, dtype=np.float32)
            a, n = start % self.capacity, end - start
            if a + n <= self.capacity:
                return self._data[a:a + n].copy()
            return np.concatenate([self._data[a:], self._data[: a + n - self.capacity]])

    def keep_from(self, index: int) -> None:
        """Say that samples before `index` are no longer needed (they may be dropped quietly)."""
        with self._lock:
            self.protected = max(self.protected, index)

    @property
    def last_arrival(self) -> float | None:
        """Wall time of the newest write, or None before any."""
        with self._lock:
            return self._arrivals[-1][1] if self._arrivals else None

    def arrival(self, index: int) -> float | None:
        """Wall time at which the sample at `index` (or the write that held it) arrived."""
        with self._lock:
            for end, when in self._arrivals:
                if end > index:
                    return when
            return None
