"""Speaker assignment, segmentation and speaker names, on hand-made inputs with known answers."""

from __future__ import annotations

import copy
import random
import time

import pytest

from transcribe.attribution import (
    NameSpec,
    apply_speaker_names,
    assign_speakers,
    build_segments,
    ends_sentence,
    parse_speaker_names,
    speaker_mapping,
)
from transcribe.errors import UsageError
from transcribe.types import Segment, Transcript, Turn, Word


def W(start, end, text, speaker=None):
    return Word(start, end, text, 1.0, speaker)


def speakers(words):
    return [w.speaker for w in words]


# --------------------------------------------------------------------------- assign_speakers


def test_majority_overlap_wins():
    turns = [Turn(0.0, 1.0, "A"), Turn(1.0, 3.0, "B")]
    words = [W(0.1, 0.5, " one"), W(0.8, 1.5, " two"), W(0.6, 1.1, " three"), W(2.0, 2.5, " four")]
    assert speakers(assign_speakers(words, turns)) == ["A", "B", "A", "B"]


def test_overlap_is_summed_per_speaker():
    # 0.3 s of A, then 0.2 s of B, then 0.2 s of A: A has 0.5 s in all
    turns = [Turn(0.0, 1.3, "A"), Turn(1.3, 1.5, "B"), Turn(1.5, 3.0, "A")]
    (w,) = assign_speakers([W(1.0, 1.7, " word")], turns)
    assert w.speaker == "A"


def test_tie_goes_to_earlier_turn():
    turns = [Turn(0.0, 1.5, "A"), Turn(1.5, 3.0, "B")]
    (w,) = assign_speakers([W(1.0, 2.0, " even")], turns)
    assert w.speaker == "A"
    # independent of the order the turns are given in
    (w,) = assign_speakers([W(1.0, 2.0, " even")], list(reversed(turns)))
    assert w.speaker == "A"


def test_word_in_no_turn_gets_nearest_turn():
    turns = [Turn(0.0, 1.0, "A"), Turn(5.0, 6.0, "B")]
    words = [W(1.5, 2.0, " near-a"), W(4.0, 4.8, " near-b"), W(7.0, 7.5, " after"), W(-0.5, -0.1, " before")]
    assert speakers(assign_speakers(words, turns)) == ["A", "B", "B", "A"]


def test_nearest_tie_goes_to_earlier_turn():
    turns = [Turn(0.0, 1.0, "A"), Turn(3.0, 4.0, "B")]
    (w,) = assign_speakers([W(1.5, 2.5, " middle")], turns)
    assert w.speaker == "A"


def test_zero_length_word_inside_turn():
    turns = [Turn(0.0, 1.0, "A"), Turn(1.0, 2.0, "B")]
    assert speakers(assign_speakers([W(1.5, 1.5, " x"), W(0.2, 0.2, " y")], turns)) == ["B", "A"]


def test_no_turns_leaves_speaker_none():
    words = [W(0.0, 1.0, " hi")]
    out = assign_speakers(words, [])
    assert out == tuple(words)
    assert out[0].speaker is None


def test_overlapping_turns_are_handled():
    # a long turn of A with B talking over it
    turns = [Turn(0.0, 10.0, "A"), Turn(4.0, 4.5, "B"), Turn(6.0, 8.0, "C")]
    words = [W(1.0, 2.0, " a"), W(6.5, 7.0, " c"), W(11.0, 11.5, " late")]
    assert speakers(assign_speakers(words, turns)) == ["A", "A", "A"]
    # where only B overlaps beyond A's reach
    turns = [Turn(0.0, 5.0, "A"), Turn(4.0, 7.0, "B")]
    assert speakers(assign_speakers([W(4.5, 6.0, " b")], turns)) == ["B"]


def test_assign_does_not_change_inputs():
    words = [W(0.0, 1.0, " hi", "OLD"), W(1.0, 2.0, " there")]
    turns = [Turn(0.0, 2.0, "A")]
    before_w, before_t = copy.deepcopy(words), copy.deepcopy(turns)
    out = assign_speakers(words, turns)
    assert words == before_w and turns == before_t
    assert isinstance(out, tuple) and speakers(out) == ["A", "A"]


def test_assign_is_fast_for_long_meetings():
    rng = random.Random(0)
    turns, t = [], 0.0
    for i in range(5_000):
        d = rng.uniform(0.5, 10.0)
        turns.append(Turn(t, t + d, f"S{i % 7}"))
        t += d + rng.uniform(0.0, 1.0)
    words = [W(x * 0.4, x * 0.4 + 0.3, " w") for x in range(int(t / 0.4))]
    began = time.perf_counter()
    out = assign_speakers(words, turns)
    assert time.perf_counter() - began < 10.0
    assert all(w.speaker is not None for w in out)
    assert len(out) == len(words)


# --------------------------------------------------------------------------- build_segments


def test_ends_sentence():
    for text in [" done.", " what?", " wow!", " so…", "终于。", "吗？", " \"yes.\"", " (no!)", " 了！」"]:
        assert ends_sentence(text), text
    for text in [" Mr", " 3,5", " and,", "", " ;"]:
        assert not ends_sentence(text), text


def test_segments_split_at_speaker_change_and_sentence_end():
    words = [
        W(0.0, 0.4, " Hello", "A"),
        W(0.4, 0.8, " there.", "A"),
        W(0.9, 1.2, " How", "A"),
        W(1.2, 1.5, " are", "A"),
        W(1.5, 1.8, " you", "B"),
        W(1.8, 2.0, " today?", "B"),
    ]
    segs = build_segments(words)
    assert [(s.speaker, s.text) for s in segs] == [
        ("A", "Hello there."),
        ("A", "How are"),
        ("B", "you today?"),
    ]
    assert (segs[0].start, segs[0].end) == (0.0, 0.8)
    assert segs[2].words == tuple(words[4:])


def test_segments_split_at_long_pause():
    words = [W(0.0, 0.5, " one", "A"), W(1.9, 2.2, " two", "A"), W(4.0, 4.5, " three", "A")]
    assert [s.text for s in build_segments(words, max_gap=1.5)] == ["one two", "three"]
    assert [s.text for s in build_segments(words, max_gap=2.0)] == ["one two three"]


def test_segments_split_at_max_duration():
    words = [W(float(i), i + 0.9, f" w{i}", "A") for i in range(10)]
    segs = build_segments(words, max_duration=3.0)
    assert [s.text for s in segs] == ["w0 w1 w2", "w3 w4 w5", "w6 w7 w8", "w9"]
    assert all(s.end - s.start <= 3.0 for s in segs)


def test_segments_keep_cjk_without_spaces():
    words = [W(0.0, 0.3, "我们", "A"), W(0.3, 0.6, "开会", "A"), W(0.6, 0.9, "。", "A"), W(1.0, 1.2, "好", "A")]
    assert [s.text for s in build_segments(words)] == ["我们开会。", "好"]


def test_segments_without_speakers_and_empty_input():
    words = [W(0.0, 0.5, " just"), W(0.5, 1.0, " words")]
    (seg,) = build_segments(words)
    assert seg.speaker is None and seg.text == "just words"
    assert build_segments([]) == ()


def test_build_segments_does_not_change_inputs():
    words = [W(0.0, 0.5, " a.", "A"), W(0.5, 1.0, " b", "B")]
    before = copy.deepcopy(words)
    build_segments(words)
    assert words == before


# --------------------------------------------------------------------------- speaker names


def test_parse_names_by_order():
    assert parse_speaker_names("Diane,Sheila") == NameSpec(names=("Diane", "Sheila"))
    assert parse_speaker_names(" Diane ,  Mary  Ann ") == NameSpec(names=("Diane", "Mary Ann"))


def test_parse_names_by_label():
    spec = parse_speaker_names("SPEAKER_00=Diane, SPEAKER_01 = Sheila")
    assert spec == NameSpec(labels=(("SPEAKER_00", "Diane"), ("SPEAKER_01", "Sheila")))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "--speaker-names is empty: give names like 'Diane,Sheila' or 'SPEAKER_00=Diane,SPEAKER_01=Sheila'"),
        ("   ", "--speaker-names is empty: give names like 'Diane,Sheila' or 'SPEAKER_00=Diane,SPEAKER_01=Sheila'"),
        ("Diane,,Sheila", "--speaker-names has an empty name in 'Diane,,Sheila': give names like 'Diane,Sheila' or 'SPEAKER_00=Diane,SPEAKER_01=Sheila'"),
        ("Diane,", "--speaker-names has an empty name in 'Diane,': give names like 'Diane,Sheila' or 'SPEAKER_00=Diane,SPEAKER_01=Sheila'"),
        ("SPEAKER_00=Diane,Sheila", "--speaker-names mixes plain names and LABEL=Name pairs in 'SPEAKER_00=Diane,Sheila': use one form"),
        ("SPEAKER_00=Di=ane", "--speaker-names: 'SPEAKER_00=Di=ane' is not LABEL=Name"),
        ("SPEAKER_00=", "--speaker-names: 'SPEAKER_00=' needs both a label and a name"),
        ("=Diane", "--speaker-names: '=Diane' needs both a label and a name"),
        ("Diane,Sheila,diane", "--speaker-names gives the name 'diane' twice"),
        ("SPEAKER_00=Diane,SPEAKER_01=Diane", "--speaker-names gives the name 'Diane' twice"),
        ("SPEAKER_00=Diane,SPEAKER_00=Sheila", "--speaker-names names SPEAKER_00 twice"),
        ("Diane\nSheila", "--speaker-names must not contain control characters or line breaks"),
    ],
)
def test_bad_specs_raise_usage_error(spec, message):
    with pytest.raises(UsageError) as err:
        parse_speaker_names(spec)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def _transcript():
    words_a = (W(1.0, 1.5, " Hi.", "SPEAKER_01"),)
    words_b = (W(2.0, 2.5, " Hello.", "SPEAKER_00"),)
    words_c = (W(3.0, 3.5, " Bye.", "SPEAKER_02"),)
    segs = (
        Segment(1.0, 1.5, "Hi.", "SPEAKER_01", words_a),
        Segment(2.0, 2.5, "Hello.", "SPEAKER_00", words_b),
        Segment(3.0, 3.5, "Bye.", "SPEAKER_02", words_c),
    )
    turns = (
        Turn(0.9, 1.6, "SPEAKER_01"),
        Turn(1.9, 2.6, "SPEAKER_00"),
        Turn(2.9, 3.6, "SPEAKER_02"),
        Turn(4.0, 4.5, "SPEAKER_03"),  # spoke, but no words were recognised
    )
    return Transcript("m.wav", 5.0, "en", segs, turns)


def _all_speakers(t):
    return (
        [s.speaker for s in t.segments],
        [w.speaker for w in t.words],
        [x.speaker for x in t.turns],
    )


def test_names_by_order_of_first_appearance():
    t = _transcript()
    before = copy.deepcopy(t)
    named = apply_speaker_names(t, "Diane,Sheila")
    segs, words, turns = _all_speakers(named)
    assert segs == ["Diane", "Sheila", "SPEAKER_02"]
    assert words == segs
    assert turns == ["Diane", "Sheila", "SPEAKER_02", "SPEAKER_03"]
    assert t == before  # input unchanged


def test_names_by_label():
    named = apply_speaker_names(_transcript(), "SPEAKER_00=Diane,SPEAKER_03=Eve")
    segs, words, turns = _all_speakers(named)
    assert segs == ["SPEAKER_01", "Diane", "SPEAKER_02"] == words
    assert turns == ["SPEAKER_01", "Diane", "SPEAKER_02", "Eve"]


def test_more_names_than_speakers_is_fine():
    named = apply_speaker_names(_transcript(), "A,B,C,D,E,F")
    assert named.speakers == ("A", "B", "C", "D")


def test_unknown_label_is_ignored():
    named = apply_speaker_names(_transcript(), "SPEAKER_09=Zed,SPEAKER_02=Carol")
    assert _all_speakers(named)[0] == ["SPEAKER_01", "SPEAKER_00", "Carol"]


def test_name_that_would_merge_two_speakers_is_refused():
    with pytest.raises(UsageError, match=r"would merge it with speaker SPEAKER_02"):
        apply_speaker_names(_transcript(), "SPEAKER_00=SPEAKER_02")


def test_swapping_labels_is_allowed():
    mapping = speaker_mapping(
        parse_speaker_names("SPEAKER_00=SPEAKER_01,SPEAKER_01=SPEAKER_00"), ["SPEAKER_00", "SPEAKER_01"]
    )
    assert mapping == {"SPEAKER_00": "SPEAKER_01", "SPEAKER_01": "SPEAKER_00"}


def test_names_on_transcript_without_speakers():
    t = Transcript("m.wav", 1.0, "en", (Segment(0.0, 1.0, "hi", None, (W(0.0, 1.0, " hi"),)),))
    assert apply_speaker_names(t, "Diane") == t
