"""Evaluation: metrics with answers computed by hand, readers on small files, scoring, comparison."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from transcribe.evaluation import metrics as m
from transcribe.evaluation.cli import app
from transcribe.evaluation.errors import EvalError
from transcribe.evaluation.normalize import normalize
from transcribe.evaluation.readers import (
    read_json,
    read_rttm,
    read_srt,
    read_stm,
    read_text,
    read_uem,
    read_vtt,
)
from transcribe.evaluation.report import (
    compare,
    comparison_table,
    load_results,
    result_rows,
    results_table,
    write_csv,
    write_json,
)
from transcribe.evaluation.score import (
    DatasetItem,
    FileResult,
    ScoreResults,
    find_hypotheses,
    load_dataset,
    read_hypothesis,
    score,
)
from transcribe.samples import pyannote_sample
from transcribe.types import Segment, Transcript, Turn, Word

runner = CliRunner(env={"COLUMNS": "300"})  # wide enough that rich wraps no cell
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render(renderable) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def rttm(turns: list[tuple[float, float, str]], uri: str = "a") -> str:
    return "".join(f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {spk} <NA> <NA>\n" for s, e, spk in turns)


# --------------------------------------------------------------------------- normalization


def test_english_normalizer_is_whispers():
    assert normalize("Mr. Smith paid twenty-one dollars.", "en") == normalize("mister smith paid $21", "en")
    assert normalize("I didn't know you were there.", "en") == "i did not know you were there"


def test_french_elisions_numbers_and_punctuation():
    assert normalize("L'homme", "fr") == normalize("l’homme", "fr") == "l homme"
    assert normalize("J'ai vingt et un ans.", "fr") == normalize("j ai 21 ans", "fr") == "j ai 21 ans"
    assert normalize("Il a un chat.", "fr") == normalize("il a 1 chat", "fr")
    assert normalize("quatre-vingt-dix-neuf", "fr") == "99"
    assert normalize("« Peut-être », dit-il [rires]", "fr") == "peut être dit il"
    assert normalize("10 000 euros, 3.5 %", "fr") == normalize("dix mille euros, trois virgule cinq pour cent", "fr")


def test_german_keeps_umlauts_and_sharp_s():
    assert normalize("Größe, Ärger und Übermut!", "de") == "größe ärger und übermut"
    assert normalize("Er hat einundzwanzig Äpfel, äh, 1 Birne", "de") == "er hat 21 äpfel 1 birne"


def test_unknown_language_uses_basic_normalizer():
    assert normalize("Hola, ¿qué tal?", "es") == "hola qué tal"
    assert normalize("Hello, World!", None) == "hello world"


# --------------------------------------------------------------------------- WER


def test_wer_with_exactly_one_substitution():
    w = m.word_errors("The cat sat on the mat.", "the cat sat on a mat", "en")
    assert (w.ref_words, w.substitutions, w.deletions, w.insertions) == (6, 1, 0, 0)
    assert w.rate == pytest.approx(1 / 6)


def test_wer_deletions_insertions_and_empty_sides():
    w = m.word_errors("one two three four", "one three four five six", None)
    assert (w.substitutions, w.deletions, w.insertions) == (0, 1, 2)
    assert m.word_errors("a b c", "", None) == m.WordErrors(3, 0, 3, 0)
    empty_ref = m.word_errors("", "a b", None)
    assert empty_ref.insertions == 2 and empty_ref.rate is None


def test_wer_is_fair_across_french_spellings():
    assert m.word_errors("Aujourd'hui, l'homme a vingt et un ans.", "aujourd hui l homme a 21 ans", "fr").errors == 0


# --------------------------------------------------------------------------- DER / JER


def T(*turns):
    return [Turn(s, e, spk) for s, e, spk in turns]


def test_der_confusion_by_hand():
    ref = T((0, 10, "A"), (10, 20, "B"))
    hyp = T((0, 12, "X"), (12, 20, "Y"))
    strict = m.diarization_errors(ref, hyp, collar=0.0, skip_overlap=False)
    assert (strict.total, strict.missed, strict.false_alarm, strict.confusion) == (20, 0, 0, pytest.approx(2))
    assert strict.der == pytest.approx(0.10)
    # JER: A~X: (FA 2) / union 12; B~Y: (miss 2) / union 10; mean of the two
    assert strict.jer == pytest.approx((2 / 12 + 2 / 10) / 2)
    # A +/-0.25 s collar takes 0.25 s of the 2 s error and 1 s of scored time (at 0, 10, 20):
    # a boundary 2 s off is not forgiven.
    forgiving = m.diarization_errors(ref, hyp, collar=0.5, skip_overlap=True)
    assert forgiving.total == pytest.approx(19)
    assert forgiving.confusion == pytest.approx(1.75)


def test_forgiving_collar_removes_a_small_boundary_error():
    ref = T((0, 10, "A"), (10, 20, "B"))
    hyp = T((0, 10.2, "X"), (10.2, 20, "Y"))
    assert m.diarization_errors(ref, hyp).der == pytest.approx(0.2 / 20)
    assert m.diarization_errors(ref, hyp, collar=0.5, skip_overlap=True).der == 0.0


def test_missed_speech_and_false_alarm():
    missed = m.diarization_errors(T((0, 10, "A")), T((0, 8, "X")))
    assert (missed.missed, missed.false_alarm, missed.confusion) == (pytest.approx(2), 0, 0)
    assert missed.der == pytest.approx(0.2) and missed.missed_rate == pytest.approx(0.2)

    ref, hyp = T((0, 10, "A")), T((0, 10, "X"), (12, 14, "Y"))
    fa = m.diarization_errors(ref, hyp)  # scored: the union of both extents, 0-14
    assert (fa.total, fa.missed, fa.false_alarm, fa.confusion) == (10, 0, pytest.approx(2), 0)
    assert fa.der == pytest.approx(0.2) and fa.false_alarm_rate == pytest.approx(0.2)
    assert m.diarization_errors(ref, hyp, uem=[(0, 10)]).der == 0.0  # the UEM leaves it out


def test_overlap_scored_then_skipped():
    ref = T((0, 10, "A"), (8, 12, "B"))  # both speak from 8 to 10
    hyp = T((0, 10, "X"), (10, 12, "Y"))  # one speaker at a time
    scored = m.diarization_errors(ref, hyp, skip_overlap=False)
    assert scored.total == pytest.approx(14) and scored.missed == pytest.approx(2)
    assert scored.der == pytest.approx(2 / 14)
    skipped = m.diarization_errors(ref, hyp, skip_overlap=True)
    assert skipped.total == pytest.approx(10) and skipped.der == 0.0


def test_pooled_der_and_jer_equal_pyannotes_abs():
    from pyannote.core import Annotation, Segment as PSegment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    files = [
        (T((0, 10, "A"), (10, 20, "B")), T((0, 12, "X"), (12, 20, "Y"))),
        (T((0, 5, "A"), (3, 9, "B"), (9, 30, "C")), T((0, 6, "1"), (6, 25, "2"))),
    ]
    der, jer = DiarizationErrorRate(), JaccardErrorRate()
    ours = m.DiarizationErrors()
    for ref, hyp in files:
        r, h = Annotation(), Annotation()
        for i, t in enumerate(ref):
            r[PSegment(t.start, t.end), i] = t.speaker
        for i, t in enumerate(hyp):
            h[PSegment(t.start, t.end), i] = t.speaker
        ends = [t.end for t in (*ref, *hyp)]
        uem = Timeline([PSegment(0, max(ends))])
        der(r, h, uem=uem)
        jer(r, h, uem=uem)
        ours = ours + m.diarization_errors(ref, hyp)
    assert ours.der == pytest.approx(abs(der))
    assert ours.jer == pytest.approx(abs(jer))


# --------------------------------------------------------------------------- cpWER / tcpWER / attribution


REF = [
    Segment(0.0, 2.0, "hello there", "A"),
    Segment(2.0, 5.0, "good morning everyone", "B"),
    Segment(5.0, 7.0, "shall we start", "A"),
]


def test_cpwer_ignores_label_names():
    permuted = [Segment(s.start, s.end, s.text, {"A": "spk1", "B": "spk0"}[s.speaker]) for s in REF]
    cp, tcp = m.speaker_attributed_errors(REF, permuted, "en")
    assert cp.errors == 0 and tcp.errors == 0
    # with one substitution, cpWER equals the plain WER
    wrong = [*permuted[:2], Segment(5.0, 7.0, "shall we stop", "spk1")]
    cp, _ = m.speaker_attributed_errors(REF, wrong, "en")
    plain = m.word_errors(" ".join(s.text for s in REF), " ".join(s.text for s in wrong), "en")
    assert cp == plain == m.WordErrors(8, 1, 0, 0)


def test_cpwer_counts_words_given_to_the_wrong_speaker():
    hyp = [
        Segment(0.0, 2.8, "hello there good", "X"),  # "good" belongs to B
        Segment(2.8, 5.0, "morning everyone", "Y"),
        Segment(5.0, 7.0, "shall we start", "X"),
    ]
    plain = m.word_errors(" ".join(s.text for s in REF), " ".join(s.text for s in hyp), "en")
    cp, tcp = m.speaker_attributed_errors(REF, hyp, "en")
    assert plain.errors == 0
    assert cp.errors == 2 and cp.rate == pytest.approx(2 / 8)  # one insertion for A, one deletion for B
    assert tcp.errors == 2


def test_tcpwer_punishes_words_far_from_their_time():
    moved = [Segment(s.start + 60, s.end + 60, s.text, s.speaker) for s in REF]
    cp, tcp = m.speaker_attributed_errors(REF, moved, "en", tcp_collar=5.0)
    assert cp.errors == 0
    assert (tcp.deletions, tcp.insertions) == (8, 8)
    _, untimed = m.speaker_attributed_errors(REF, moved, "en", timed=False)
    assert untimed is None


def test_speaker_attribution_share():
    words = [
        Word(0.2, 0.6, " hello", speaker="X"),
        Word(0.8, 1.2, " there", speaker="X"),
        Word(2.2, 2.6, " good", speaker="X"),  # B's word given to X
        Word(2.8, 3.4, " morning", speaker="Y"),
        Word(3.6, 4.4, " everyone", speaker="Y"),
        Word(5.2, 5.5, " shall", speaker="X"),
        Word(5.6, 5.9, " we", speaker="X"),
        Word(6.0, 6.5, " stop", speaker="X"),  # not in the reference: not matched
    ]
    sa = m.speaker_attribution(REF, words, "en")
    assert (sa.ref_words, sa.matched, sa.correct) == (8, 7, 6)
    assert sa.rate == pytest.approx(6 / 7) and sa.coverage == pytest.approx(7 / 8)


def test_speaker_attribution_after_mapping_and_tolerance():
    words = m.pseudo_words([Segment(s.start, s.end, s.text, s.speaker + "_hyp") for s in REF])
    assert m.speaker_attribution(REF, words, "en").rate == 1.0
    late = [Word(w.start + 0.2, w.end + 0.2, w.text, speaker=w.speaker) for w in words]
    assert m.speaker_attribution(REF, late, "en", tolerance=0.25).matched == 8


def test_speed_from_stats():
    sp = m.speed({"timings": {"asr": 3.0, "diarization": 1.5}, "peak_rss_mb": 900.0}, 30.0)
    assert sp.rtf == pytest.approx(0.15) and sp.stage_rtf("asr") == pytest.approx(0.1)
    pooled = sp + m.speed({"timings": {"asr": 1.0}, "peak_rss_mb": 1200.0}, 10.0)
    assert pooled.rtf == pytest.approx(5.5 / 40) and pooled.peak_rss_mb == 1200.0
    assert m.speed({}, 30.0) is None


# --------------------------------------------------------------------------- readers


def test_vtt_voice_spans(tmp_path):
    p = write(
        tmp_path / "a.vtt",
        "WEBVTT - meeting\nKind: captions\n\n"
        "NOTE written by hand\n\n"
        "cue-1\n00:00:01.000 --> 00:00:02.500 align:start\n<v Diane>Hello <i>there</i>?</v>\n\n"
        "00:03.000 --> 00:04.000\n<v.loud Sheila Smith>Fish &amp; chips</v>\n\n"
        "00:00:05.000 --> 00:00:07.000\n<v Diane>Yes.</v> <v Sheila Smith>No!</v>\n\n"
        "00:00:08.000 --> 00:00:09.000\nno voice here\n",
    )
    segs = read_vtt(p)
    assert [(s.speaker, s.text) for s in segs] == [
        ("Diane", "Hello there?"),
        ("Sheila Smith", "Fish & chips"),
        ("Diane", "Yes."),
        ("Sheila Smith", "No!"),
        (None, "no voice here"),
    ]
    assert (segs[0].start, segs[0].end) == (1.0, 2.5)
    assert segs[2].start == 5.0 and segs[3].end == 7.0 and segs[2].end == pytest.approx(5 + 2 * 4 / 7)  # shared by length


def test_srt_speaker_prefix(tmp_path):
    p = write(
        tmp_path / "a.srt",
        "1\n00:00:01,000 --> 00:00:02,000\nDiane: Hello there.\n\n"
        "2\n00:00:02,500 --> 00:00:03,000\n<i>How are you?</i>\n\n"
        "3\n00:00:03,000 --> 00:00:05,000\n[SPEAKER_01]: Fine.\n- Diane: Good.\n",
    )
    segs = read_srt(p)
    assert [(s.speaker, s.text) for s in segs] == [
        ("Diane", "Hello there."),
        ("Diane", "How are you?"),  # no prefix: the speaker goes on
        ("SPEAKER_01", "Fine."),
        ("Diane", "Good."),
    ]
    assert segs[0].start == 1.0 and segs[3].end == 5.0


def test_stm_rttm_uem_and_text(tmp_path):
    stm = write(
        tmp_path / "a.stm",
        ";; comment\n"
        "a 1 Diane 0.5 1.5 <o,f0,female> Hello there\n"
        "a 1 inter_segment_gap 1.5 2.0\n"
        "a 1 Sheila 2.0 3.0 Hi\n",
    )
    assert read_stm(stm) == (Segment(0.5, 1.5, "Hello there", "Diane"), Segment(2.0, 3.0, "Hi", "Sheila"))
    r = write(tmp_path / "all.rttm", rttm([(0, 1, "A")], "a") + rttm([(5, 6, "B")], "b"))
    assert read_rttm(r, "b") == (Turn(5, 6, "B"),)
    with pytest.raises(EvalError, match=r"all.rttm: holds recordings a, b but none named 'c'"):
        read_rttm(r, "c")
    assert read_uem(write(tmp_path / "a.uem", "a 1 0.00 10.00\na 1 20 30\n")) == ((0.0, 10.0), (20.0, 30.0))
    txt = write(tmp_path / "a.txt", "Diane: Hello there.\n\nSheila: Hi.\n")
    assert [(s.speaker, s.text) for s in read_text(txt)] == [("Diane", "Hello there."), ("Sheila", "Hi.")]
    plain = write(tmp_path / "b.txt", "Note: this is text.\nAnd more.\n")
    assert [(s.speaker, s.text) for s in read_text(plain)] == [(None, "Note: this is text."), (None, "And more.")]


def _transcript() -> Transcript:
    words = (
        Word(0.5, 0.9, " Hello", 0.9, "Diane"),
        Word(1.0, 1.4, " there.", 0.8, "Diane"),
        Word(2.0, 2.5, " Hi.", 0.95, "Sheila"),
    )
    return Transcript(
        source="/x/a.wav",
        duration=30.0,
        language="en",
        segments=(
            Segment(0.5, 1.4, "Hello there.", "Diane", words[:2]),
            Segment(2.0, 2.5, "Hi.", "Sheila", words[2:]),
        ),
        turns=(Turn(0.4, 1.6, "Diane"), Turn(1.9, 2.7, "Sheila")),
        stats={"timings": {"asr": 3.0, "diarization": 6.0}, "peak_rss_mb": 800.0},
    )


def test_our_json(tmp_path):
    from transcribe.writers import write_outputs

    write_outputs(_transcript(), tmp_path / "a", ["json", "vtt", "txt"])
    t = read_json(tmp_path / "a.json")
    assert t.segments == _transcript().segments and t.turns == _transcript().turns
    hyp = read_hypothesis("a", find_hypotheses(tmp_path)["a"])
    assert hyp.sources == {"text": str(tmp_path / "a.json"), "turns": str(tmp_path / "a.json")}
    assert hyp.transcript is not None and m.speed(hyp.transcript.stats, 30.0).rtf == pytest.approx(0.3)
    # our own VTT and TXT read back to the same speakers and words
    vtt = read_hypothesis("a", find_hypotheses(tmp_path, ["vtt"])["a"])
    assert [(s.speaker, s.text) for s in vtt.text] == [("Diane", "Hello there."), ("Sheila", "Hi.")]
    txt = read_text(tmp_path / "a.txt")
    assert [(s.speaker, s.text) for s in txt] == [("Diane", "Hello there."), ("Sheila", "Hi.")]


@pytest.mark.parametrize(
    "name, content, reader, message",
    [
        ("refs/a.rttm", rttm([(0, 1, "A")]) + "\nSPEAKER a 1 0.5 1.0 <NA> <NA>\n", read_rttm, "refs/a.rttm:3: expected 10 fields, got 7"),
        ("a.rttm", "SPEAKER a 1 zero 1.0 <NA> <NA> A <NA> <NA>\n", read_rttm, "a.rttm:1: start time (field 4) must be a number, got 'zero'"),
        ("a.stm", "a 1 A 0 1 ok\na 1 B 3.0 2.0 bad\n", read_stm, "a.stm:2: end time 2.0 is before start time 3.0"),
        ("a.stm", "a 1 A 0\n", read_stm, "a.stm:1: expected at least 5 fields (file channel speaker start end), got 4"),
        ("a.uem", "a 1 0 10 extra\n", read_uem, "a.uem:1: expected 4 fields (file channel start end), got 5"),
        ("a.vtt", "Hello\n", read_vtt, "a.vtt:1: expected the WEBVTT header"),
        ("a.vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nok\n\n00:00:03.000 -> 00:00:04.000\nbad\n", read_vtt, "a.vtt:6: expected a cue timing line 'start --> end', got '00:00:03.000 -> 00:00:04.000'"),
        ("a.vtt", "WEBVTT\n\n00:00:01.000 --> 00:0x:02.000\nbad\n", read_vtt, "a.vtt:3: bad timestamp '00:0x:02.000' (expected hh:mm:ss.mmm)"),
        ("a.srt", "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\nno timing here\n", read_srt, "a.srt:6: expected a timing line 'start --> end' after the cue number"),
        ("a.json", '{\n  "version": 1,\n  "segments": [,]\n}\n', read_json, "a.json:3: not valid JSON: Expecting value"),
        ("a.json", '{"hello": 1}', read_json, "a.json: not a transcript written by transcribe: no version or segments"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, reader, message):
    path = write(tmp_path / name, content)
    with pytest.raises(EvalError) as info:
        reader(path)
    assert str(info.value) == f"{tmp_path}/{message}"
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "a.stm"
    bad.write_bytes(b"a 1 A 0 1 caf\xe9\n")
    with pytest.raises(EvalError, match=r"a.stm: not UTF-8 text"):
        read_stm(bad)


# --------------------------------------------------------------------------- datasets and scoring


def test_manifest(tmp_path):
    write(tmp_path / "refs/x.stm", "x 1 A 0 1 hi\n")
    man = write(
        tmp_path / "dev.jsonl",
        '{"audio": "audio/x.wav", "language": "fr", "stm": "refs/x.stm"}\n\n{"id": "y", "text": "refs/y.txt"}\n',
    )
    items = load_dataset(man, language="en")
    assert items == (
        DatasetItem("x", tmp_path / "audio/x.wav", "fr", stm=tmp_path / "refs/x.stm"),
        DatasetItem("y", None, "en", text=tmp_path / "refs/y.txt"),
    )
    bad = write(tmp_path / "bad.jsonl", '{"audio": "a.wav"}\n{"audio": "b.wav", "rtm": "b.rttm"}\n')
    with pytest.raises(EvalError, match=r"bad.jsonl:2: unknown key 'rtm'"):
        load_dataset(bad)


def test_manifest_reads_past_what_the_samples_and_the_composer_write_for_people(tmp_path):
    """samples/dev.jsonl and benchmarks/compose.py add `speakers`, `duration` and `info`; refused
    as unknown keys, they stopped the README's `transcribe eval run samples/dev.jsonl` at line 1."""
    items = load_dataset(SAMPLES / "dev.jsonl")
    assert len(items) == len((SAMPLES / "dev.jsonl").read_text().splitlines()) >= 80
    assert all(i.num_speakers is None for i in items)  # `speakers` is not handed to the pipeline
    man = write(tmp_path / "m.jsonl", '{"audio": "a.wav", "speakers": 3, "duration": 60.0, "info": "a.json"}\n')
    assert load_dataset(man) == (DatasetItem("a", tmp_path / "a.wav", None),)


def _good_and_bad(tmp_path: Path) -> tuple[Path, Path]:
    refs, hyp = tmp_path / "refs", tmp_path / "hyp"
    write(refs / "good.stm", "good 1 A 0 2 hello there\ngood 1 B 2 4 good morning\n")
    write(refs / "good.rttm", rttm([(0, 2, "A"), (2, 4, "B")], "good"))
    write(refs / "good.wav", "")  # audio beside the references is ignored by `score`
    write(refs / "bad.stm", "bad 1 A 0 2 hello\n")
    write(hyp / "good.vtt", "WEBVTT\n\n00:00.000 --> 00:02.000\n<v S1>hello there</v>\n\n00:02.000 --> 00:04.000\n<v S2>good evening</v>\n")
    write(hyp / "bad.rttm", "SPEAKER bad 1 0.0 2.0 <NA> <NA>\n")
    write(hyp / "stray.srt", "1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    return refs, hyp


def test_score_goes_on_after_a_bad_file(tmp_path):
    refs, hyp = _good_and_bad(tmp_path)
    results = score(load_dataset(refs, language="en"), find_hypotheses(hyp))
    by = {r.stem: r for r in results.files}
    assert by["bad"].error == f"{hyp}/bad.rttm:1: expected 10 fields, got 7"
    good = by["good"]
    assert good.error is None and good.wer == m.WordErrors(4, 1, 0, 0)
    assert good.cpwer == m.WordErrors(4, 1, 0, 0) and good.der_strict.der == 0.0
    assert good.speaker_attribution.rate == 1.0
    assert results.failed == (by["bad"],) and results.unmatched_hypotheses == ("stray",)
    assert results.overall.files == 1 and results.overall.wer.rate == pytest.approx(0.25)


def test_score_command(tmp_path):
    refs, hyp = _good_and_bad(tmp_path)
    res = runner.invoke(app, ["score", "--ref", str(refs), "--hyp", str(hyp), "-o", str(tmp_path / "res"), "-l", "en"])
    assert res.exit_code == 5, res.output  # the main CLI's EXIT_PARTIAL
    assert "Error: 1 of 2 files could not be scored" in res.stderr
    assert "bad.rttm:1: expected 10 fields, got 7" in res.stdout and "Traceback" not in res.output
    rows = list(csv.DictReader((tmp_path / "res/results.csv").open()))
    assert [r["file"] for r in rows] == ["bad", "good", "overall"]
    assert rows[1]["wer"] == "0.25" and rows[0]["error"].endswith("expected 10 fields, got 7")
    data = json.loads((tmp_path / "res/results.json").read_text())
    assert data["failed"] == 1 and data["overall"]["wer"]["substitutions"] == 1
    # results are not overwritten without --overwrite, before any work
    again = runner.invoke(app, ["score", "--ref", str(refs), "--hyp", str(hyp), "-o", str(tmp_path / "res")])
    assert again.exit_code == 4 and again.stderr.startswith("Error: ") and "--overwrite" in again.stderr


def test_score_command_clean_exit_and_usage_errors(tmp_path):
    refs, hyp = _good_and_bad(tmp_path)
    (refs / "bad.stm").unlink()
    ok = runner.invoke(app, ["score", "--ref", str(refs), "--hyp", str(hyp)])
    assert ok.exit_code == 0, ok.output
    assert "good" in ok.stdout and "25.0%" in ok.stdout
    missing = runner.invoke(app, ["score", "--ref", str(tmp_path / "nope"), "--hyp", str(hyp)])
    assert missing.exit_code == 2 and missing.stderr.strip() == f"Error: {tmp_path}/nope: no such file or folder"
    fmt = runner.invoke(app, ["score", "--ref", str(refs), "--hyp", str(hyp), "--hyp-format", "docx"])
    assert fmt.exit_code == 2 and "unknown hypothesis format 'docx'" in fmt.stderr


def test_mounted_in_the_main_command(tmp_path):
    from conftest import run_cli

    refs, hyp = _good_and_bad(tmp_path)
    res = run_cli("eval", "score", "--ref", refs, "--hyp", hyp, env={"COLUMNS": "300"})
    assert res.returncode == 5
    assert res.stderr == "Error: 1 of 2 files could not be scored (see 'Could not score')\n"
    assert "expected 10 fields, got 7" in res.stdout


def test_every_command_has_help():
    for name in ("score", "run", "compare"):
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0 and len(res.stdout) > 200


def test_pyannote_sample_against_itself(tmp_path):
    refs, hyp = tmp_path / "refs", tmp_path / "hyp"
    refs.mkdir()
    hyp.mkdir()
    for suffix in (".rttm", ".stm"):
        shutil.copy(pyannote_sample(suffix), refs)
        shutil.copy(pyannote_sample(suffix), hyp)
    results = score(load_dataset(refs, language="en"), find_hypotheses(hyp))
    (r,) = results.files
    assert r.error is None and r.wer.ref_words > 80
    assert r.wer.rate == 0.0 and r.cpwer.rate == 0.0 and r.tcpwer.rate == 0.0
    assert r.der_strict.der == 0.0 and r.der_forgiving.der == 0.0 and r.der_strict.jer == 0.0
    assert r.speaker_attribution.rate == 1.0 and r.speaker_attribution.coverage == 1.0
    # RTTM as our own writer writes it, with other labels: still no error
    turns = read_rttm(pyannote_sample(".rttm"))
    relabelled = [Turn(t.start, t.end, {"speaker90": "SPEAKER_01", "speaker91": "SPEAKER_00"}[t.speaker]) for t in turns]
    assert m.diarization_errors(turns, relabelled).der == 0.0


# --------------------------------------------------------------------------- results files and comparison


def _result(stem, wer, der, attributed=None, error=None) -> FileResult:
    if error:
        return FileResult(stem, "en", error=error)
    return FileResult(
        stem,
        "en",
        wer=m.WordErrors(10, wer, 0, 0),
        der_strict=m.DiarizationErrors(total=100.0, confusion=der),
        der_forgiving=m.DiarizationErrors(total=90.0, confusion=der / 2),
        speaker_attribution=m.SpeakerAttribution(10, 10, attributed) if attributed is not None else None,
    )


def test_results_round_trip(tmp_path):
    results = ScoreResults((_result("a", 2, 10.0, 8), _result("b", 1, 0.0), _result("c", 0, 0, error="x.rttm:1: bad")))
    assert results.overall.wer.rate == pytest.approx(3 / 20)
    assert results.overall.der_strict.der == pytest.approx(10 / 200)
    write_json(results, tmp_path / "r.json")
    write_csv(results, tmp_path / "r.csv")
    assert load_results(tmp_path / "r.json") == results
    assert result_rows(results)[-1]["file"] == "overall"
    text = render(results_table(results))
    assert "Could not score (1)" in text and "x.rttm:1: bad" in text
    bad = write(tmp_path / "bad.json", '{"files": [{"wer": 3}]}')
    with pytest.raises(EvalError, match=r"bad.json: not results written by `transcribe eval`"):
        load_results(bad)


def test_compare(tmp_path):
    old = ScoreResults((_result("a", 2, 10.0, 7), _result("b", 1, 0.0), _result("gone", 1, 0.0)))
    new = ScoreResults((_result("a", 1, 12.0, 9), _result("b", 1, 0.0), _result("added", 0, 0.0)))
    cmp = compare(old, new)
    a = next(f for f in cmp.files if f.stem == "a")
    assert a.delta("wer").verdict == "better" and a.delta("wer").change == pytest.approx(-0.1)
    assert a.delta("der_strict").verdict == "worse"
    assert a.delta("speaker_attribution").verdict == "better"
    assert next(f for f in cmp.files if f.stem == "b").delta("wer").verdict == "same"
    notes = {f.stem: f.note for f in cmp.files if f.note}
    assert notes == {"gone": "only in the old run", "added": "only in the new run"}
    # overall pools a and b only, the files both runs scored
    assert cmp.common == 2
    assert cmp.overall.delta("wer").old == pytest.approx(3 / 20) and cmp.overall.delta("wer").new == pytest.approx(2 / 20)
    text = render(comparison_table(cmp))
    assert "better" in text and "worse" in text and "only in the new run" in text

    for name, res in (("yesterday", old), ("today", new)):
        (tmp_path / name).mkdir()
        write_json(res, tmp_path / name / "results.json")
    out = runner.invoke(app, ["compare", str(tmp_path / "yesterday"), str(tmp_path / "today")])
    assert out.exit_code == 0, out.output
    assert "WER" in out.stdout and "20.0%" in out.stdout and "10.0%" in out.stdout and "-10.0" in out.stdout
    every = runner.invoke(app, ["compare", "--all", str(tmp_path / "yesterday"), str(tmp_path / "today")])
    assert every.exit_code == 0 and "same" in every.stdout
    missing = runner.invoke(app, ["compare", str(tmp_path / "yesterday"), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and f"Error: {tmp_path}/nope: no such file" in missing.stderr


# --------------------------------------------------------------------------- the pipeline over a dataset


@pytest.mark.slow
def test_run_scores_our_pipeline_on_the_sample(tmp_path, store):
    for suffix in (".wav", ".rttm", ".stm"):
        shutil.copy(pyannote_sample(suffix), tmp_path)
    manifest = write(
        tmp_path / "dev.jsonl",
        '{"audio": "sample.wav", "language": "en", "stm": "sample.stm", "rttm": "sample.rttm"}\n',
    )
    res = runner.invoke(app, ["run", str(manifest), "-o", str(tmp_path / "runs/today"), "-m", "tiny.en"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "runs/today/out").iterdir()) == ["sample.json", "sample.rttm", "sample.vtt"]
    (r,) = load_results(tmp_path / "runs/today").files
    assert r.error is None
    assert r.wer.rate < 0.3 and r.cpwer.rate < 0.4 and r.der_forgiving.der < 0.2
    assert r.speed is not None and r.speed.rtf > 0 and r.speed.peak_rss_mb > 0
    assert set(r.speed.stages) >= {"asr", "diarization"}


@pytest.mark.slow
def test_eval_run_takes_lines_of_the_samples_manifest_as_they_are(tmp_path, store):
    """`transcribe eval run` through the installed command on three lines of samples/dev.jsonl
    (two English recordings, one German), every key kept; only the paths point back into samples/.
    Tables and the lines that say where results went, nothing else: no third-party warnings
    (numpy's "Mean of empty slice" from pyannote's clustering of a 1.9 s file; meeteval's guess
    that a 9.6 s segment means times in the wrong unit)."""
    from conftest import run_cli

    lines = []
    for line in (SAMPLES / "dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["audio"] in ("ljspeech/LJ001-0001.flac", "ljspeech/LJ001-0002.flac", "picovoice/leopard_de.flac"):
            assert {"speakers", "duration"} <= set(row)
            lines.append(json.dumps(row | {k: str(SAMPLES / row[k]) for k in ("audio", "stm", "rttm")}))
    assert len(lines) == 3
    manifest = write(tmp_path / "three.jsonl", "\n".join(lines) + "\n")
    res = run_cli("eval", "run", manifest, "-o", tmp_path / "run", env={"COLUMNS": "300"})
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "word length" not in res.stderr, res.stderr
    results = {r.stem: r for r in load_results(tmp_path / "run").files}
    assert sorted(results) == ["LJ001-0001", "LJ001-0002", "leopard_de"]
    for r in results.values():
        assert r.error is None and r.wer.rate <= 0.3, r
