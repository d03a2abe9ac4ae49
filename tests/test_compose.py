"""benchmarks/compose.py: determinism, references that match the audio, options that do what they say.

Runs on the real clips in samples/ (a few seconds in all).
"""

from __future__ import annotations

import json
import sys
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import compose as C  # noqa: E402

SR = C.SR


@pytest.fixture(scope="module")
def clips():
    return C.load_clips()


@pytest.fixture(scope="module")
def meeting(clips):
    """A 1-minute, 4-speaker English meeting with 10 % overlap and quiet noise."""
    opts = C.ComposeOptions(overlap=0.1, noise_db=-60.0)
    return C.compose_meeting(clips, seed=3, n_speakers=4, minutes=1.0, language="en", options=opts)


def frame_db(x: np.ndarray, win: int = 320) -> np.ndarray:
    n = len(x) // win
    return 10 * np.log10(np.mean(x[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1) + 1e-12)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767


# ------------------------------------------------------------------------------------------
# catalogue
# ------------------------------------------------------------------------------------------


def test_catalogue_is_consistent(clips):
    samples = ROOT / "samples"
    assert len(clips) >= 90
    assert len({c.id for c in clips}) == len(clips)
    for c in clips:
        assert c.path.is_file(), c.path
        assert 0 <= c.start < c.end and c.text.strip() and c.language in {"en", "fr", "de", "es", "it"}
    by_lang = C.speakers_by_language(clips)
    assert len(by_lang["en"]) >= 8 and len(by_lang["fr"]) >= 2 and len(by_lang["de"]) >= 2
    for line in (samples / "dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key in ("audio", "stm", "rttm", "uem", "text"):
            if key in row:
                assert (samples / row[key]).is_file(), row[key]


# ------------------------------------------------------------------------------------------
# determinism
# ------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different(clips, tmp_path):
    opts = C.ComposeOptions(overlap=0.1)
    a = C.compose_meeting(clips, 11, 3, 0.5, "en", opts)
    b = C.compose_meeting(clips, 11, 3, 0.5, "en", opts)
    c = C.compose_meeting(clips, 12, 3, 0.5, "en", opts)
    for m, d in ((a, "a"), (b, "b"), (c, "c")):
        C.write_meeting(m, tmp_path / d, clips, manifest=None)
    name_a, name_c = a.name, c.name
    for ext in ("wav", "rttm", "stm", "uem", "json"):
        assert (tmp_path / "a" / f"{name_a}.{ext}").read_bytes() == (tmp_path / "b" / f"{name_a}.{ext}").read_bytes()
    assert (tmp_path / "a" / f"{name_a}.wav").read_bytes() != (tmp_path / "c" / f"{name_c}.wav").read_bytes()
    assert a.rttm() != c.rttm()


# ------------------------------------------------------------------------------------------
# references match the audio
# ------------------------------------------------------------------------------------------


def test_rttm_marks_where_the_energy_is(meeting):
    """Every utterance is loud above the noise floor; outside all utterances only noise is left."""
    db = frame_db(meeting.samples)
    t = (np.arange(len(db)) + 0.5) * 320 / SR
    inside = np.zeros(len(db), bool)
    for u in meeting.utterances:
        seg = (t >= u.start) & (t < u.end)
        inside |= seg
        assert db[seg].max() > -60.0 + 25.0, u  # speech is 25 dB over the -60 dBFS noise
    outside = ~(inside | np.roll(inside, 1) | np.roll(inside, -1))  # frames clear of every edge
    assert outside.sum() > 50
    assert db[outside].max() < -60.0 + 8.0  # the pink noise alone (20 ms frames vary a little)


def test_stm_text_is_the_clip_text_and_matches_rttm(meeting, clips):
    by_id = {c.id: c for c in clips}
    stm = [ln.split(" ", 5) for ln in meeting.stm().splitlines()]
    rttm = [ln.split() for ln in meeting.rttm().splitlines()]
    assert len(stm) == len(rttm) == len(meeting.utterances)
    for u, s, r in zip(meeting.utterances, stm, rttm):
        clip = by_id[u.clip]
        assert s[5] == clip.text and s[2] == r[7] == clip.speaker == u.speaker
        assert s[0] == r[1] == meeting.name
        assert float(s[3]) == pytest.approx(float(r[3]), abs=1e-3) == pytest.approx(u.start, abs=1e-3)
        assert float(s[4]) == pytest.approx(float(r[3]) + float(r[4]), abs=2e-3)
        assert u.end - u.start == pytest.approx(clip.duration, abs=1e-3)


def test_each_utterance_is_its_clip_at_the_stated_time(clips):
    """Without noise or overlap the meeting is the clips, scaled, at exactly the RTTM times."""
    m = C.compose_meeting(clips, 13, 3, 0.5, "en", C.ComposeOptions(overlap=0.0, noise_db=None))
    by_id = {c.id: c for c in clips}
    for u in m.utterances:
        clip = C.clip_audio(by_id[u.clip]).astype(np.float64)
        got = m.samples[round(u.start * SR):round(u.end * SR)].astype(np.float64)
        assert len(got) == len(clip)
        assert np.corrcoef(got, clip)[0, 1] > 0.9999


def test_speaker_count_is_exact(clips):
    for n, minutes in ((1, 0.5), (2, 0.5), (5, 1.0), (8, 1.0)):
        plan = C.plan_meeting(clips, seed=n, n_speakers=n, minutes=minutes, language="en")
        assert len(plan.speakers) == n
        assert len({u.speaker for u in plan.utterances}) == n


def test_overlap_fraction_is_roughly_as_asked(clips):
    for target in (0.0, 0.1, 0.2):
        plan = C.plan_meeting(clips, 5, 4, 4.0, "en", C.ComposeOptions(overlap=target))
        speech, over, most = C.overlap_stats(plan.utterances)
        assert most <= (1 if target == 0 else 2)
        assert over / speech == pytest.approx(target, abs=0.04)


def test_pauses_and_gains_within_range(clips):
    opts = C.ComposeOptions(overlap=0.0, pause=(0.2, 1.5), gain_db=6.0)
    plan = C.plan_meeting(clips, 9, 5, 2.0, "en", opts)
    assert all(-6.0 <= g <= 6.0 for g in plan.gains_db.values())
    turns = {}
    for u in plan.utterances:
        s, e = turns.get(u.turn, (u.start, u.end))
        turns[u.turn] = (min(s, u.start), max(e, u.end))
    spans = [turns[k] for k in sorted(turns)]
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    assert min(gaps) >= 0.2 - 1e-3 and max(gaps) <= 1.5 + 1e-3


def test_speaker_levels_follow_the_gains(clips):
    opts = C.ComposeOptions(overlap=0.0, noise_db=None, gain_db=6.0)
    m = C.compose_meeting(clips, 21, 3, 1.0, "en", opts)
    level = {}
    for spk in m.speakers:
        parts = [m.samples[round(u.start * SR):round(u.end * SR)] for u in m.utterances if u.speaker == spk]
        level[spk] = C.active_level_db(np.concatenate(parts))
    spread = max(level.values()) - min(level.values())
    want = max(m.plan.gains_db.values()) - min(m.plan.gains_db.values())
    assert spread == pytest.approx(want, abs=2.0)


def test_quiet_turn(clips):
    opts = C.ComposeOptions(quiet_turn=25.0, quiet_db=-20.0, noise_db=-70.0)
    m = C.compose_meeting(clips, 4, 3, 1.5, "en", opts)
    q = m.info["quiet_turn"]
    assert q["speaker"] == m.plan.quiet_speaker and q["seconds"] >= 25.0
    assert m.plan.gains_db[q["speaker"]] == -20.0
    x = m.samples[round(q["start"] * SR):round(q["end"] * SR)]
    assert C.active_level_db(x) == pytest.approx(-26.0 - 20.0, abs=2.0)
    # no one talks over the quiet turn
    others = [u for u in m.utterances if u.speaker != q["speaker"]]
    assert all(u.end <= q["start"] or u.start >= q["end"] for u in others)


def test_languages_and_speaker_sets(clips):
    fr = C.plan_meeting(clips, 1, 2, 0.5, "fr")
    assert {c.language for c in clips if c.id in {u.clip for u in fr.utterances}} == {"fr"}
    mixed = C.compose_meeting(clips, 2, 4, 0.5, "en,fr,de")
    assert mixed.language is None or mixed.language in {"en", "fr", "de"}
    chosen = ("lj", "jfk", "eric_joanis")
    p = C.plan_meeting(clips, 3, 0, 0.5, "en,fr", C.ComposeOptions(speaker_set=chosen))
    assert set(p.speakers) == set(chosen)
    p = C.plan_meeting(clips, 3, 3, 0.5, "en", C.ComposeOptions(exclude_speakers=("lj", "mfa_mcauliffe")))
    assert not {"lj", "mfa_mcauliffe"} & set(p.speakers)


def test_too_many_speakers_is_a_clear_error(clips):
    with pytest.raises(C.ComposeError, match="only .* have usable clips"):
        C.plan_meeting(clips, 0, 3, 1.0, "de")


def test_thirty_minutes_reuses_clips_and_says_so(clips):
    plan = C.plan_meeting(clips, 30, 8, 30.0, "en")
    assert 29.0 * 60 <= plan.duration <= 31.5 * 60
    ids = [u.clip for u in plan.utterances]
    assert len(ids) > len(set(ids))  # reuse was needed
    for t in {u.turn for u in plan.utterances}:  # but never within a turn
        in_turn = [u.clip for u in plan.utterances if u.turn == t]
        assert len(in_turn) == len(set(in_turn))


# ------------------------------------------------------------------------------------------
# channel options and speech-free recordings
# ------------------------------------------------------------------------------------------


def band_share(x: np.ndarray, lo: float, hi: float) -> float:
    """Share of the signal's power between lo and hi Hz (Welch spectrum)."""
    from scipy.signal import welch

    f, p = welch(x.astype(np.float64), fs=SR, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


def test_telephone_removes_what_a_phone_line_cannot_carry(clips):
    opts = C.ComposeOptions(noise_db=-60.0)
    wide = C.compose_meeting(clips, 8, 2, 0.5, "en", opts)
    tel = C.compose_meeting(clips, 8, 2, 0.5, "en", replace(opts, telephone=True))
    assert tel.utterances == wide.utterances
    assert band_share(wide.samples, 4200, 8000) > 1e-3
    assert band_share(tel.samples, 4200, 8000) < band_share(wide.samples, 4200, 8000) / 100
    assert band_share(tel.samples, 0, 150) < band_share(wide.samples, 0, 150) / 10


def test_opus_round_trip_keeps_time_alignment_and_is_deterministic(clips):
    opts = C.ComposeOptions(noise_db=-60.0, opus_kbps=16)
    a = C.compose_meeting(clips, 8, 2, 0.5, "en", opts)
    b = C.compose_meeting(clips, 8, 2, 0.5, "en", opts)
    clean = C.compose_meeting(clips, 8, 2, 0.5, "en", replace(opts, opus_kbps=None))
    assert np.array_equal(a.samples, b.samples)
    assert len(a.samples) == len(clean.samples)
    lag = np.argmax(np.correlate(a.samples[SR:3 * SR], clean.samples[SR + 100:3 * SR - 100], "valid")) - 100
    assert abs(lag) <= 2
    assert not np.array_equal(a.samples, clean.samples)


def test_silence_and_noise(tmp_path):
    s = C.compose_background("silence", 60.0)
    assert s.duration == 60.0 and not s.samples.any() and s.rttm() == "" and s.stm() == ""
    n = C.compose_background("noise", 60.0, seed=2, noise_db=-40.0)
    assert 10 * np.log10(np.mean(n.samples.astype(np.float64) ** 2)) == pytest.approx(-40.0, abs=0.5)
    line = C.write_meeting(n, tmp_path)
    assert line["speakers"] == 0 and (tmp_path / line["rttm"]).read_text() == ""
    assert (tmp_path / line["uem"]).read_text() == f"{n.name} 1 0.000 60.000\n"


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def test_cli_writes_files_and_manifest(tmp_path, capsys):
    out = tmp_path / "m"
    args = ["--seed", "7", "--speakers", "3", "--minutes", "0.5", "--language", "en", "-o", str(out), "--overlap", "0.1"]
    assert C.main(args) == 0
    line = json.loads(capsys.readouterr().out)
    name = Path(line["audio"]).stem
    for ext in ("wav", "rttm", "stm", "uem", "json"):
        assert (out / f"{name}.{ext}").is_file()
    x = read_wav(out / line["audio"])
    assert len(x) / SR == pytest.approx(line["duration"], abs=1e-3)
    info = json.loads((out / f"{name}.json").read_text())
    assert info["seed"] == 7 and len(info["speakers"]) == 3 and info["options"]["overlap"] == 0.1
    assert C.main(args) == 0  # again: the manifest keeps one line per recording
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 1 and json.loads(manifest[0])["stm"] == f"{name}.stm"
    assert C.main(["--silence", "5", "-o", str(out)]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("args, message", [
    (["--speakers", "9", "--language", "de"], "only 2 have usable clips"),
    (["--silence", "5", "--speakers", "2"], "without speakers"),
    (["--speakers", "2", "--overlap", "0.9"], "overlap must be"),
    (["--speakers", "2", "--speaker-set", "nobody"], "nobody"),
    (["--speakers", "2"], "output folder"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    if "output folder" not in message:
        args = args + ["-o", str(tmp_path)]
    assert C.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and err.count("\n") == 1
