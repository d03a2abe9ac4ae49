"""Enrollment logic on hand-made inputs: parsing, checking, one-to-one matching, renaming."""

from __future__ import annotations

import numpy as np
import pytest

from transcribe.enroll import (
    MIN_SPEECH_SECONDS,
    Enrollment,
    check_enrollment,
    match_speakers,
    name_speakers,
    parse_enroll,
    speech_seconds,
)
from transcribe.errors import InputError, UsageError
from transcribe.pipeline import PipelineOptions
from transcribe.types import SAMPLE_RATE, Audio, Segment, Transcript, Turn, Word


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float64)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------ parsing


def test_parse_enroll_reads_name_and_file(tmp_path):
    f = tmp_path / "diane.wav"
    f.write_bytes(b"x")
    (e,) = parse_enroll([f"  Diane  Smith = {f}"])
    assert e == Enrollment("Diane Smith", f)


@pytest.mark.parametrize("spec", ["Diane", "=x.wav", "Diane=", " = ", "SPEAKER_01=x.wav", "A,B=x.wav", "Di\nane=x.wav"])
def test_parse_enroll_refuses_bad_specs(spec, tmp_path):
    with pytest.raises(UsageError) as exc:
        parse_enroll([spec])
    assert "--enroll" in str(exc.value) and "\n" not in str(exc.value)


def test_parse_enroll_refuses_missing_file_and_duplicates(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse_enroll([f"Diane={tmp_path / 'nope.wav'}"])
    with pytest.raises(InputError, match="directory"):
        parse_enroll([f"Diane={tmp_path}"])
    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    with pytest.raises(UsageError, match="twice"):
        parse_enroll([f"Diane={f}", f"diane={f}"])


def test_pipeline_options_check_enroll_before_work(tmp_path):
    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    with pytest.raises(UsageError, match="no-diarize"):
        PipelineOptions(enroll=(f"Diane={f}",), diarize=False)
    with pytest.raises(UsageError, match="not both"):
        PipelineOptions(enroll=(f"Diane={f}",), speaker_names="Diane")
    with pytest.raises(InputError):
        PipelineOptions(enroll=(f"Diane={tmp_path / 'missing.wav'}",))


# ------------------------------------------------------------------ checking


def _tone(seconds: float, silence: float = 0.0) -> Audio:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return Audio(np.concatenate([x, np.zeros(int(silence * SAMPLE_RATE), np.float32)]), "x.wav")


def test_speech_seconds_counts_sound_not_silence():
    assert speech_seconds(_tone(12.0, silence=20.0).samples) == pytest.approx(12.0, abs=0.1)
    assert speech_seconds(np.zeros(SAMPLE_RATE * 5, np.float32)) == 0.0


def test_check_enrollment_refuses_too_little_speech(tmp_path):
    e = Enrollment("Diane", tmp_path / "d.wav")
    with pytest.raises(InputError, match="too short"):
        check_enrollment(e, _tone(MIN_SPEECH_SECONDS - 2, silence=30.0))  # long file, little speech
    assert check_enrollment(e, _tone(15.0)).duration == pytest.approx(15.0)
    assert check_enrollment(e, _tone(200.0)).duration == pytest.approx(120.0)


# ------------------------------------------------------------------ matching


def test_match_is_one_to_one_and_thresholded():
    centroids = {"SPEAKER_00": _unit(1, 0.1, 0), "SPEAKER_01": _unit(0.9, 0.3, 0), "SPEAKER_02": _unit(0, 0, 1)}
    enrolled = {"Diane": _unit(1, 0, 0), "Sheila": _unit(0.8, 0.6, 0), "Stranger": _unit(-1, 0, 0.1)}
    got = match_speakers(centroids, enrolled, threshold=0.5)
    # Greedy would give SPEAKER_00 and SPEAKER_01 both their best name, Diane; Hungarian splits them.
    assert {lab: name for lab, (name, _) in got.items()} == {"SPEAKER_00": "Diane", "SPEAKER_01": "Sheila"}
    assert all(sim >= 0.5 for _, sim in got.values())
    assert match_speakers(centroids, enrolled, threshold=0.999) == {}


def test_match_ignores_empty_centroids_and_handles_nothing():
    assert match_speakers({"SPEAKER_00": np.zeros(3)}, {"Diane": _unit(1, 0, 0)}) == {}
    assert match_speakers({}, {"Diane": _unit(1, 0, 0)}) == {}
    assert match_speakers({"SPEAKER_00": _unit(1, 0, 0)}, {}) == {}


def test_name_speakers_renames_everywhere_and_reports():
    words = (Word(0.0, 0.5, " Hello", speaker="SPEAKER_00"), Word(1.0, 1.5, " Hi", speaker="SPEAKER_01"))
    segs = tuple(Segment(w.start, w.end, w.text.strip(), w.speaker, (w,)) for w in words)
    tr = Transcript(source="m.wav", duration=2.0, language="en", segments=segs,
                    turns=(Turn(0.0, 0.6, "SPEAKER_00"), Turn(0.9, 1.6, "SPEAKER_01")), models=(), options={}, stats={})
    centroids = {"SPEAKER_00": _unit(1, 0, 0), "SPEAKER_01": _unit(0, 1, 0)}
    named, report = name_speakers(tr, centroids, {"Diane": _unit(0, 1, 0.1), "Bob": _unit(0, 0, 1)})
    assert [s.speaker for s in named.segments] == ["SPEAKER_00", "Diane"]
    assert [w.speaker for s in named.segments for w in s.words] == ["SPEAKER_00", "Diane"]
    assert [t.speaker for t in named.turns] == ["SPEAKER_00", "Diane"]
    assert report["Diane"]["speaker"] == "SPEAKER_01" and report["Bob"]["speaker"] is None
    assert tr.segments[1].speaker == "SPEAKER_01"  # the input is unchanged
