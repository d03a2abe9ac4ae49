"""Enrollment: name the speakers whose voice matches a short recording of a known person.

    transcribe run meeting.wav --enroll Diane=diane.wav --enroll Sheila=sheila.m4a

Each enrollment recording (10 to 30 s of one person speaking) becomes one CAM++ embedding: the
recording is cut into the same 10 s windows the diarization embeds, each window embedded and
unit-normalised, and the mean taken. Each speaker the diarization found has a centroid in the
same space. Names go to speakers by a one-to-one assignment (Hungarian, on cosine similarity),
and only where the similarity reaches a calibrated threshold: a speaker who matches no one keeps
a neutral label, and an enrolled person who is not in the meeting names no one.

Parsing and checking the enrollment input are pure functions (`parse_enroll`, `check_enrollment`);
`match_speakers` is a pure function of embeddings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from transcribe.errors import InputError, UsageError
from transcribe.types import SAMPLE_RATE, Audio

# Cosine similarity between an enrollment embedding and a diarization centroid at or above which
# they are taken for the same person. On the tuning meetings (benchmarks/speakers.py enroll) the same
# person scored 0.57 to 0.98, different people at most 0.32: 0.5 sits in the gap.
DEFAULT_ENROLL_THRESHOLD = 0.5
MIN_SPEECH_SECONDS = 8.0  # below this an embedding is unreliable; 10 to 30 s is asked for
MAX_SECONDS = 120.0  # only the first two minutes of a longer recording are used
WINDOW_SECONDS = 10.0  # the diarization's chunk length: the same kind of embedding
_FORM = "give --enroll NAME=FILE, e.g. --enroll Diane=diane.wav"

__all__ = [
    "DEFAULT_ENROLL_THRESHOLD",
    "Enrollment",
    "best_similarities",
    "check_enrollment",
    "embed_enrollment",
    "load_enrollments",
    "match_speakers",
    "name_speakers",
    "parse_enroll",
    "speech_seconds",
]


@dataclass(frozen=True)
class Enrollment:
    """One `--enroll NAME=FILE`."""

    name: str
    path: Path


def parse_enroll(specs: Sequence[str]) -> tuple[Enrollment, ...]:
    """Parse `--enroll` values ("Diane=diane.wav"); raise UsageError for a bad spec, InputError
    for a file that does not exist. Names must be unique (case-insensitive)."""
    out: list[Enrollment] = []
    seen: set[str] = set()
    for spec in specs:
        if any(unicodedata.category(c) == "Cc" for c in spec):
            raise UsageError("--enroll must not contain control characters or line breaks")
        name, sep, file = spec.partition("=")
        name = unicodedata.normalize("NFC", re.sub(r"\s+", " ", name).strip())
        file = file.strip()
        if not sep or not name or not file:
            raise UsageError(f"--enroll {spec!r} is not NAME=FILE: {_FORM}")
        if "," in name:
            raise UsageError(f"--enroll {spec!r}: a name cannot contain a comma")
        if re.fullmatch(r"SPEAKER_\d+", name):
            raise UsageError(f"--enroll {spec!r}: {name} is a neutral label, not a name")
        if name.casefold() in seen:
            raise UsageError(f"--enroll gives the name {name!r} twice")
        seen.add(name.casefold())
        path = Path(file).expanduser()
        if not path.exists():
            raise InputError(f"--enroll {name}: {path}: no such file")
        if path.is_dir():
            raise InputError(f"--enroll {name}: {path}: is a directory, not a recording")
        out.append(Enrollment(name, path))
    return tuple(out)


def speech_seconds(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds of 30 ms frames loud enough to be speech: above -50 dBFS and within 35 dB of the
    loudest frames (the 95th percentile), so that silence and a noise floor do not count."""
    frame = int(0.03 * sample_rate)
    n = len(samples) // frame
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    floor = max(-50.0, float(np.percentile(db, 95)) - 35.0)
    return float(np.count_nonzero(db > floor)) * frame / sample_rate


def check_enrollment(enrollment: Enrollment, audio: Audio) -> Audio:
    """The decoded recording, cut to MAX_SECONDS; InputError when it holds too little speech."""
    speech = speech_seconds(audio.samples, audio.sample_rate)
    if speech < MIN_SPEECH_SECONDS:
        raise InputError(
            f"--enroll {enrollment.name}: {enrollment.path} holds {speech:.1f} s of speech, too short: "
            f"give 10 to 30 s of {enrollment.name} speaking alone"
        )
    limit = int(MAX_SECONDS * audio.sample_rate)
    if len(audio.samples) > limit:
        return Audio(audio.samples[:limit], audio.source, audio.sample_rate)
    return audio


def embed_enrollment(model, audio: Audio) -> np.ndarray:
    """One unit-norm CAM++ embedding: the mean of unit-normalised 10 s window embeddings (5 s hop)."""
    from transcribe.campplus import unit_embedding

    win = int(WINDOW_SECONDS * audio.sample_rate)
    samples = audio.samples.astype(np.float32)
    if len(samples) <= win:
        windows = [samples]
    else:
        hop = win // 2
        starts = list(range(0, len(samples) - win + 1, hop))
        if starts[-1] + win < len(samples):
            starts.append(len(samples) - win)
        windows = [samples[s : s + win] for s in starts]
    vectors = [unit_embedding(model, w) for w in windows]
    mean = np.mean(vectors, axis=0)
    return mean / (np.linalg.norm(mean) + 1e-12)


def match_speakers(
    centroids: Mapping[str, np.ndarray],
    enrolled: Mapping[str, np.ndarray],
    threshold: float = DEFAULT_ENROLL_THRESHOLD,
) -> dict[str, tuple[str, float]]:
    """Speaker label -> (enrolled name, cosine similarity), one to one.

    The assignment maximises the summed similarity (Hungarian); a pair below `threshold` is
    dropped, so a speaker who matches no one keeps a neutral label. Labels with a zero or
    non-finite centroid are never named.
    """
    from scipy.optimize import linear_sum_assignment

    labels, names, sim = _similarities(centroids, enrolled)
    if not labels or not names:
        return {}
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return {
        labels[r]: (names[c], round(float(sim[r, c]), 4)) for r, c in zip(rows, cols) if sim[r, c] >= threshold
    }


def load_enrollments(specs: Sequence[str]) -> tuple[tuple[Enrollment, Audio], ...]:
    """Parse, decode and check every `--enroll NAME=FILE`; InputError or UsageError on bad input."""
    from transcribe.media import load_audio

    out = []
    for enrollment in parse_enroll(specs):
        try:
            audio = load_audio(enrollment.path)
        except InputError as exc:
            raise InputError(f"--enroll {enrollment.name}: {exc}") from None
        out.append((enrollment, check_enrollment(enrollment, audio)))
    return tuple(out)


def name_speakers(
    transcript, centroids: Mapping[str, np.ndarray], enrolled: Mapping[str, np.ndarray],
    threshold: float = DEFAULT_ENROLL_THRESHOLD,
):
    """(`transcript` with matched speakers renamed everywhere, {name: {speaker, similarity}}).

    Names are given through `attribution.rename_speakers`, so every writer sees them. Enrolled
    names not matched are reported with speaker None and their best similarity."""
    from transcribe.attribution import rename_speakers

    matches = match_speakers(centroids, enrolled, threshold)
    report: dict[str, dict] = {name: {"speaker": None, "similarity": None} for name in enrolled}
    for label, (name, sim) in matches.items():
        report[name] = {"speaker": label, "similarity": sim}
    best = best_similarities(centroids, enrolled)
    for name, entry in report.items():
        entry["best_similarity"] = best.get(name)
    return rename_speakers(transcript, {label: name for label, (name, _) in matches.items()}), report


def best_similarities(centroids: Mapping[str, np.ndarray], enrolled: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each enrolled name's highest cosine similarity to any centroid (for the record)."""
    labels, names, sim = _similarities(centroids, enrolled)
    if not labels or not names:
        return {}
    return {name: round(float(sim[:, j].max()), 4) for j, name in enumerate(names)}


def _similarities(
    centroids: Mapping[str, np.ndarray], enrolled: Mapping[str, np.ndarray]
) -> tuple[list[str], list[str], np.ndarray]:
    """(labels, names, cosine similarity matrix labels x names); labels with a zero or non-finite
    centroid are left out."""
    labels = [lab for lab, c in centroids.items() if np.all(np.isfinite(c)) and np.linalg.norm(c) > 0]
    names = list(enrolled)
    if not labels or not names:
        return labels, names, np.zeros((len(labels), len(names)))

    def unit(rows):
        m = np.stack([np.asarray(r, dtype=np.float64) for r in rows])
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    return labels, names, unit([centroids[lab] for lab in labels]) @ unit([enrolled[n] for n in names]).T
