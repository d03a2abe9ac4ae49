"""Speaker accuracy and enrollment (issue 5) through the `transcribe` command, real models on real
recordings: a meeting composed from samples/ clips, enrollment recordings made of *other* clips of
the same people."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import cli
from tests.conftest import REPO, run_cli
from transcribe.evaluation.metrics import diarization_errors
from transcribe.evaluation.readers import read_rttm

sys.path.insert(0, str(REPO))
from benchmarks import compose as C  # noqa: E402

pytestmark = pytest.mark.slow

# Enrolled people, each with clips kept out of the meeting; mfa_mcauliffe and jfk are in the meeting
# but not enrolled; eric_joanis is enrolled but not in the meeting.
ENROLL = {"Linda": ("lj", 3), "Will": ("librivox_sonnets", 2), "Eric": ("eric_joanis", 5)}
MEETING = ("lj", "librivox_sonnets", "mfa_mcauliffe", "jfk")


def _enrollment_wav(clips, speaker: str, n: int, path: Path) -> tuple[str, ...]:
    mine = [c for c in clips if c.speaker == speaker][:n]
    x = np.concatenate([np.concatenate([C.clip_audio(c), np.zeros(C.SR // 2, np.float32)]) for c in mine])
    C.write_wav(path, x)
    return tuple(c.id for c in mine)


@pytest.fixture(scope="module")
def meeting(tmp_path_factory, store):
    """A 4-speaker meeting without the enrollment clips, and one enrollment WAV per person."""
    folder = tmp_path_factory.mktemp("enroll")
    clips = C.load_clips()
    held_back: set[str] = set()
    enroll = {}
    for name, (speaker, n) in ENROLL.items():
        held_back |= set(_enrollment_wav(clips, speaker, n, folder / f"{name}.wav"))
        enroll[name] = folder / f"{name}.wav"
    rest = [c for c in clips if c.id not in held_back]
    m = C.compose_meeting(rest, seed=5, n_speakers=0, minutes=1.5, language="en",
                          options=C.ComposeOptions(speaker_set=MEETING), name="meeting")
    C.write_meeting(m, folder, rest, manifest=None)
    assert not {u.clip for u in m.utterances} & held_back
    return folder, enroll


def _speaker_of(hyp_label: str, hyp, ref) -> str | None:
    """The reference speaker a hypothesis speaker overlaps most."""
    overlap: dict[str, float] = {}
    for h in hyp:
        if h.speaker != hyp_label:
            continue
        for r in ref:
            ov = min(h.end, r.end) - max(h.start, r.start)
            if ov > 0:
                overlap[r.speaker] = overlap.get(r.speaker, 0.0) + ov
    return max(overlap, key=overlap.get) if overlap else None


@pytest.fixture(scope="module")
def enrolled_run(meeting):
    """One `transcribe run` of the meeting with the three enrollments, no speaker count given."""
    folder, enroll = meeting
    out = folder / "out"
    args = [f"{name}={path}" for name, path in enroll.items()]
    r = run_cli("run", folder / "meeting.wav", "-o", out, "--model", "tiny.en", "-f", "json,rttm,vtt", "-q",
                *[a for spec in args for a in ("--enroll", spec)])
    assert r.returncode == cli.EXIT_OK, r.stderr
    return folder, out


# The speakers the clustering was tuned on (benchmarks/RESULTS.md, issue 5): the report meetings
# leave them out, and so does the count test below.
TUNING_SPEAKERS = ("lj", "mfa_mcauliffe", "jfk", "librispeech_1272", "cmu_arctic_pysptk", "librivox_simplicissimus",
                   "eric_joanis", "picovoice_fr", "picovoice_it")


def test_speaker_count_of_a_meeting_of_unseen_voices(tmp_path: Path, store) -> None:
    """A 2-minute meeting of 5 speakers drawn as the benchmark draws its report meetings (seed 45,
    never used there): the count is found without being given, and the turns are right."""
    clips = C.load_clips()
    m = C.compose_meeting(clips, seed=45, n_speakers=5, minutes=2, language="en",
                          options=C.ComposeOptions(exclude_speakers=TUNING_SPEAKERS), name="unseen")
    C.write_meeting(m, tmp_path, clips, manifest=None)
    ref = read_rttm(tmp_path / "unseen.rttm")
    assert len({t.speaker for t in ref}) == 5
    r = run_cli("run", tmp_path / "unseen.wav", "-o", tmp_path / "out", "--model", "tiny.en", "-f", "rttm", "-q")
    assert r.returncode == cli.EXIT_OK, r.stderr
    hyp = read_rttm(tmp_path / "out" / "unseen.rttm")
    assert len({t.speaker for t in hyp}) == 5
    der = diarization_errors(ref, hyp)
    assert der.der <= 0.2, der


@pytest.mark.xfail(strict=True, reason="issue 5: 5 speakers found in this 4-speaker meeting (its MFA speaker, "
                   "recorded in several sessions, splits)")
def test_speaker_count_without_being_given(enrolled_run) -> None:
    folder, out = enrolled_run
    assert len({t.speaker for t in read_rttm(out / "meeting.rttm")}) == len(MEETING)


def test_enrolled_speakers_named_strangers_not(enrolled_run) -> None:
    folder, out = enrolled_run
    data = json.loads((out / "meeting.json").read_text())
    ref = read_rttm(folder / "meeting.rttm")
    hyp = read_rttm(out / "meeting.rttm")
    labels = {t.speaker for t in hyp}
    who = {label: _speaker_of(label, hyp, ref) for label in labels}
    assert who.get("Linda") == "lj", (who, data["stats"]["enrollment"])
    assert who.get("Will") == "librivox_sonnets", (who, data["stats"]["enrollment"])
    # eric_joanis is not in the meeting: his name lands on no one
    assert "Eric" not in labels and data["stats"]["enrollment"]["Eric"]["speaker"] is None
    # people in the meeting who did not enroll keep neutral labels
    others = {label for label, spk in who.items() if spk in ("mfa_mcauliffe", "jfk")}
    assert others and all(label.startswith("SPEAKER_") for label in others), who
    # the names reach the words and the subtitles too
    assert {w["speaker"] for s in data["segments"] for w in s["words"]} >= {"Linda", "Will"}
    assert "<v Linda>" in (out / "meeting.vtt").read_text()


def test_sample_without_speaker_count(sample: Path, tmp_path: Path, store) -> None:
    r = run_cli("run", sample, "-o", tmp_path, "--model", "tiny.en", "-f", "rttm", "-q")
    assert r.returncode == cli.EXIT_OK, r.stderr
    hyp = read_rttm(tmp_path / "sample.rttm")
    assert len({t.speaker for t in hyp}) == 2
    der = diarization_errors(read_rttm(sample.with_suffix(".rttm")), hyp)
    assert der.der <= 0.06, der


def test_real_meeting_excerpts_give_only_speakers_heard(tmp_path: Path, store) -> None:
    """Four 30 s excerpts of AMI meetings (2 to 4 speakers, overlapped speech), in one run. On one
    of them the segmentation hears two voices at once where the clustering found a single speaker;
    the label pyannote's reconstruction adds there (0.3 s) made the run fail (IndexError) and is no
    speaker: every speaker written is heard for at least the 1.5 s a speaker needs."""
    excerpts = sorted((REPO / "samples" / "ami").glob("ami_*.flac"))
    assert len(excerpts) == 4
    r = run_cli("run", *excerpts, "-o", tmp_path, "--model", "tiny.en", "-f", "json,rttm", "-q")
    assert r.returncode == cli.EXIT_OK, r.stderr
    for x in excerpts:
        hyp = read_rttm(tmp_path / f"{x.stem}.rttm")
        heard: dict[str, float] = {}
        for t in hyp:
            heard[t.speaker] = heard.get(t.speaker, 0.0) + t.end - t.start
        assert heard and min(heard.values()) >= 1.5, (x.name, heard)
        words = [w for s in json.loads((tmp_path / f"{x.stem}.json").read_text())["segments"] for w in s["words"]]
        assert words and {w["speaker"] for w in words} <= set(heard), x.name


def test_two_languages_keep_two_alike_voices_apart(tmp_path: Path, store) -> None:
    """A German and two English speakers, one minute (the held-out speaker pool): the CAM++ voices of
    picovoice_de and librispeech_61 lie close enough for the merge step, which joined them without
    Whisper's language detection (2 speakers found, measured). With it, they stay two people, and
    the German speaker's words are decoded in German."""
    clips = C.load_clips()
    speakers = ("picovoice_de", "librispeech_61", "librivox_sense_and_sensibility")
    m = C.compose_meeting(clips, seed=1, n_speakers=0, minutes=1.0, language="any",
                          options=C.ComposeOptions(speaker_set=speakers), name="meeting")
    C.write_meeting(m, tmp_path, clips, manifest=None)
    out = tmp_path / "out"
    r = run_cli("run", tmp_path / "meeting.wav", "-o", out, "--model", "base", "-f", "json,rttm", "-q")
    assert r.returncode == cli.EXIT_OK, r.stderr
    hyp = read_rttm(out / "meeting.rttm")
    ref = read_rttm(tmp_path / "meeting.rttm")
    who = {label: _speaker_of(label, hyp, ref) for label in {t.speaker for t in hyp}}
    assert sorted(who.values()) == sorted(speakers), who
    german = next(label for label, spk in who.items() if spk == "picovoice_de")
    data = json.loads((out / "meeting.json").read_text())
    assert data["stats"]["asr_regions"]["languages"].get(german) == "de", data["stats"]["asr_regions"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("Diane", "is not NAME=FILE"),
        ("Diane=/nonexistent/diane.wav", "no such file"),
        ("Diane={short}", "too short"),
    ],
)
def test_bad_enrollment_is_one_line_exit_2(spec, message, sample: Path, tmp_path: Path, store) -> None:
    short = tmp_path / "short.wav"
    C.write_wav(short, C.clip_audio(C.load_clips()[1]))  # 1.9 s of LJ
    r = run_cli("run", sample, "-o", tmp_path, "--model", "tiny.en", "--enroll", spec.format(short=short))
    assert r.returncode == cli.EXIT_INPUT, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], r.stderr
    assert not list(tmp_path.glob("sample.*"))
