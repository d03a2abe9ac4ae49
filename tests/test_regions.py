"""ASR over speech regions: chunk planning on hand-made turns; real models on composed meetings,
silence and noise."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transcribe.errors import UsageError
from transcribe.regions import (
    _schedule,
    Chunk,
    RegionOptions,
    _ownership,
    exclusive_turns,
    _pack,
    _uncovered,
    _Window,
    _Piece,
    _languages,
    _max_new_tokens,
    _unrepeated,
    plan_chunks,
)
from transcribe.types import SAMPLE_RATE, Audio, Turn, Word

REPO = Path(__file__).resolve().parent.parent


def speakers_inside(chunk: Chunk, turns: list[Turn]) -> set[str]:
    """Speakers of the turns that the chunk's speech overlaps."""
    return {t.speaker for t in turns for s, e in chunk.speech if min(e, t.end) - max(s, t.start) > 1e-6}


def covered(chunks, turns: list[Turn]) -> float:
    """Seconds of turn time that lie in some chunk's speech."""
    total = 0.0
    for t in turns:
        for c in chunks:
            for s, e in c.speech:
                total += max(0.0, min(e, t.end) - max(s, t.start))
    return total


# --------------------------------------------------------------------------- planning


def test_no_turns_no_chunks() -> None:
    assert plan_chunks([], 60.0) == ()


def test_speaker_change_cuts() -> None:
    turns = [Turn(1.0, 5.0, "A"), Turn(5.0, 9.0, "B"), Turn(9.5, 12.0, "A")]
    chunks = plan_chunks(turns, 20.0)
    assert [c.speaker for c in chunks] == ["A", "B", "A"]
    assert [c.speech for c in chunks] == [((1.0, 5.0),), ((5.0, 9.0),), ((9.5, 12.0),)]
    for c in chunks:
        assert speakers_inside(c, turns) == {c.speaker}
        assert c.start == pytest.approx(max(0.0, c.speech_start - 0.2))
        assert c.end == pytest.approx(c.speech_end + 0.2)


def test_same_speaker_merges_across_a_short_pause_only() -> None:
    turns = [Turn(0.5, 4.0, "A"), Turn(4.6, 8.0, "A"), Turn(12.0, 15.0, "A")]
    chunks = plan_chunks(turns, 20.0, options=RegionOptions(merge_gap=1.0))
    assert [c.speech for c in chunks] == [((0.5, 4.0), (4.6, 8.0)), ((12.0, 15.0),)]


def test_long_run_is_cut_at_pauses_within_the_limit() -> None:
    # 12 turns of 4 s with 0.5 s pauses: 53.5 s of one speaker
    turns = [Turn(i * 4.5, i * 4.5 + 4.0, "A") for i in range(12)]
    chunks = plan_chunks(turns, 60.0)
    assert len(chunks) >= 2
    for c in chunks:
        assert c.duration <= 30.0 + 1e-9
        assert c.speaker == "A"
    # every cut falls in a pause: each turn lies whole in one chunk
    for t in turns:
        assert sum((t.start, t.end) in c.speech for c in chunks) == 1
    assert covered(chunks, turns) == pytest.approx(sum(t.duration for t in turns))


def test_a_turn_longer_than_a_chunk_is_cut_at_its_quietest_moment() -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(70 * SAMPLE_RATE)).astype(np.float32)
    x[int(22.0 * SAMPLE_RATE) : int(22.4 * SAMPLE_RATE)] *= 0.001  # a pause at 22.0-22.4 s
    audio = Audio(x)
    chunks = plan_chunks([Turn(0.0, 70.0, "A")], audio.duration, audio=audio)
    assert all(c.duration <= 30.0 + 1e-9 for c in chunks)
    assert 22.0 <= chunks[0].speech_end <= 22.4
    assert covered(chunks, [Turn(0.0, 70.0, "A")]) == pytest.approx(70.0)
    # without audio it still fits, cut at the limit
    blind = plan_chunks([Turn(0.0, 70.0, "A")], 70.0)
    assert [round(c.speech_end - c.speech_start, 3) for c in blind] == [29.6, 29.6, 10.8]


def test_overlapping_speakers_share_the_overlap() -> None:
    # B's second turn lies inside B's first; C's (a backchannel) inside A's
    turns = [Turn(0.0, 6.0, "A"), Turn(5.0, 10.0, "B"), Turn(7.0, 8.0, "B"), Turn(10.5, 12.0, "A"),
             Turn(11.0, 11.5, "C")]
    assert exclusive_turns(turns) == (Turn(0.0, 5.5, "A"), Turn(5.5, 10.0, "B"), Turn(10.5, 12.0, "A"))
    chunks = plan_chunks(turns, 12.0)
    assert [(c.speaker, c.speech) for c in chunks] == [
        ("A", ((0.0, 5.5),)), ("B", ((5.5, 10.0),)), ("A", ((10.5, 12.0),))
    ]
    assert _ownership(chunks) == [(0.0, 5.5), (5.5, 10.2), (10.3, 12.0)]  # padding ends before the middle


@pytest.mark.parametrize("loud_first", [True, False])
def test_the_louder_voice_keeps_an_overlap(loud_first: bool) -> None:
    rng = np.random.default_rng(0)
    x = np.zeros(10 * SAMPLE_RATE, np.float32)
    a, b = (0.3, 0.003) if loud_first else (0.003, 0.3)  # 40 dB apart
    x[: 6 * SAMPLE_RATE] += a * rng.standard_normal(6 * SAMPLE_RATE)
    x[5 * SAMPLE_RATE :] += b * rng.standard_normal(5 * SAMPLE_RATE)
    turns = [Turn(0.0, 6.0, "A"), Turn(5.0, 10.0, "B")]
    got = exclusive_turns(turns, 10.0, Audio(x))
    cut = 6.0 if loud_first else 5.0
    assert got == (Turn(0.0, cut, "A"), Turn(cut, 10.0, "B"))


def test_short_turn_is_widened_but_stays_in_the_recording() -> None:
    chunks = plan_chunks([Turn(0.1, 0.3, "A"), Turn(9.8, 9.9, "B")], 10.0, options=RegionOptions(min_chunk=1.0))
    assert [(c.start, c.end) for c in chunks] == [(0.0, 1.0), (9.0, 10.0)]
    assert chunks[0].speech == ((0.1, 0.3),)


def test_turns_are_clipped_to_the_recording_and_empty_ones_dropped() -> None:
    chunks = plan_chunks([Turn(-1.0, 2.0, "A"), Turn(3.0, 3.0, "B"), Turn(9.0, 12.0, "C")], 10.0)
    assert [(c.speaker, c.speech) for c in chunks] == [("A", ((0.0, 2.0),)), ("C", ((9.0, 10.0),))]


def test_vad_turns_have_no_speaker() -> None:
    chunks = plan_chunks([Turn(1.0, 3.0, ""), Turn(3.2, 5.0, "")], 10.0)
    assert [c.speaker for c in chunks] == [None]


def test_planning_is_pure() -> None:
    turns = (Turn(1.0, 5.0, "A"), Turn(5.0, 40.0, "B"))
    assert plan_chunks(turns, 50.0) == plan_chunks(turns, 50.0)
    assert turns == (Turn(1.0, 5.0, "A"), Turn(5.0, 40.0, "B"))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_chunk": 31.0}, {"max_chunk": 0.5}, {"pad": -0.1}, {"pad": 15.0}, {"batch_size": 0}, {"min_window": 40.0}],
)
def test_bad_options_are_refused(kwargs) -> None:
    with pytest.raises(UsageError):
        RegionOptions(**kwargs)


# --------------------------------------------------------------------------- packing and coverage


def test_ownership_splits_pauses_in_the_middle() -> None:
    chunks = plan_chunks([Turn(1.0, 5.0, "A"), Turn(6.0, 9.0, "B"), Turn(9.0, 12.0, "A")], 20.0)
    owned = _ownership(chunks)
    assert owned == [(0.8, 5.2), (5.8, 9.0), (9.0, 12.2)]
    for (lo, hi), c in zip(owned, chunks):
        assert c.start <= lo <= c.speech_start and c.speech_end <= hi <= c.end


class LoudnessLanguages:
    """Whisper's language detection as `_languages` calls it, where the level of the audio
    says the language: 0.1 English, 0.2 German, 0.3 Spanish but unsure, silence English."""

    class feature_extractor:  # noqa: N801 - the attribute faster-whisper's model has
        sampling_rate = SAMPLE_RATE
        hop_length = 1  # a frame a sample: the "features" are the samples

        def __new__(cls, x):
            return np.asarray(x, dtype=np.float32)[None]

    LEVELS = {1: [("<|en|>", 0.95), ("<|de|>", 0.05)], 2: [("<|de|>", 0.9), ("<|en|>", 0.1)],
              3: [("<|es|>", 0.55), ("<|en|>", 0.45)], 0: [("<|en|>", 0.6), ("<|fr|>", 0.4)]}

    def __init__(self):
        self.model = self
        self.seen: list[float] = []

    def encode(self, feats):
        return feats

    def detect_language(self, encoded):
        level = int(round(float(np.abs(encoded).max()) * 10))
        self.seen.append(len(encoded[0][0]) / SAMPLE_RATE)
        return [self.LEVELS[level]]


def speakers_audio(*turns: tuple[str, float, float, float]) -> tuple[Audio, list[Chunk]]:
    """(speaker, start, end, level) turns, each its own chunk, over silence."""
    samples = np.zeros(int(max(t[2] for t in turns) * SAMPLE_RATE) + SAMPLE_RATE, dtype=np.float32)
    for _, s, e, level in turns:
        samples[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] = level
    chunks = [Chunk(s, e, who, ((s, e),)) for who, s, e, _ in turns]
    return Audio(samples), chunks


def test_each_speaker_gets_the_language_whisper_is_sure_of() -> None:
    audio, chunks = speakers_audio(("A", 0, 20, 0.1), ("B", 21, 31, 0.2), ("C", 32, 40, 0.3), ("A", 41, 61, 0.1))
    main, prob, spoken = _languages(LoudnessLanguages(), audio, chunks, RegionOptions())
    # A: 40 s of English; B: 10 s of German, sure; C: 8 s of Spanish at 0.55, below 0.65: English
    assert (main, spoken) == ("en", {"A": "en", "B": "de", "C": "en"})
    assert prob == pytest.approx((40 * 0.95 + 10 * 0.1 + 8 * 0.45) / 58)


def test_a_speaker_with_little_speech_takes_the_main_language() -> None:
    audio, chunks = speakers_audio(("A", 0, 20, 0.2), ("B", 21, 24, 0.1))
    model = LoudnessLanguages()
    assert _languages(model, audio, chunks, RegionOptions())[::2] == ("de", {"A": "de", "B": "de"})
    assert model.seen == [20.0]  # B's 3 s were not detected on their own
    # nobody with enough speech: all of it at once (the German 2 s is the loudest)
    audio, chunks = speakers_audio(("A", 0, 2, 0.2), ("B", 3, 5, 0.1))
    assert _languages(model, audio, chunks, RegionOptions())[::2] == ("de", {"A": "de", "B": "de"})


def test_one_language_for_all_when_asked() -> None:
    audio, chunks = speakers_audio(("A", 0, 20, 0.1), ("B", 21, 61, 0.2))
    model = LoudnessLanguages()
    main, _, spoken = _languages(model, audio, chunks, RegionOptions(speaker_languages=False))
    assert (main, spoken) == ("de", {"A": "de", "B": "de"})
    assert model.seen == [30.0]  # one detection, on the longest 30 s of speech (B's)


def test_packing_fills_windows_in_time_order() -> None:
    turns = [Turn(i * 7.0, i * 7.0 + 6.0, "AB"[i % 2]) for i in range(10)]  # 10 turns of 6 s
    chunks = plan_chunks(turns, 80.0)
    opts = RegionOptions()
    out, owned, windows = _pack(chunks, _ownership(chunks), opts)
    assert out == chunks  # nothing to split
    assert [w.chunks for w in windows] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    for w in windows:
        assert w.length <= 30.0 - opts.tail
        offsets = [p.offset for p in w.pieces]
        assert offsets == sorted(offsets)
    one_each = _pack(chunks, _ownership(chunks), RegionOptions(pack=False))[2]
    assert [w.chunks for w in one_each] == [(i,) for i in range(10)]


def test_packing_splits_a_chunk_at_a_pause_to_fill_a_window() -> None:
    # A: 20 s; B: four 4.5 s turns with 0.5 s pauses (19.5 s): B's head fills A's window
    turns = [Turn(0.0, 20.0, "A")] + [Turn(21.0 + 5 * i, 25.5 + 5 * i, "B") for i in range(4)]
    chunks = plan_chunks(turns, 45.0)
    assert len(chunks) == 2
    out, owned, windows = _pack(chunks, _ownership(chunks), RegionOptions())
    assert [c.speaker for c in out] == ["A", "B", "B"]
    assert out[1].speech == ((21.0, 25.5),) and out[2].speech[0] == (26.0, 30.5)
    assert [w.chunks for w in windows] == [(0, 1), (2,)]
    # the split keeps every second of speech, and ownership still tiles without overlap
    assert covered(out, turns) == pytest.approx(sum(t.duration for t in turns))
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(owned, owned[1:]))


def test_window_maps_words_back_to_their_chunk() -> None:
    w = _Window((_Piece(0, 10.0, 15.0, 0.0), _Piece(1, 40.0, 42.0, 5.5)))
    assert w.to_recording(1.0, 1.5) == (0, 11.0, 11.5)
    assert w.to_recording(6.0, 6.4) == (1, 40.5, 40.9)
    # a word over the silence between pieces goes to the nearer piece, clamped into it
    assert w.to_recording(5.0, 5.6) == (1, 40.0, 40.1)
    assert w.to_recording(4.8, 5.6) == (0, 14.8, 15.0)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 9, 20, 21, 60])
def test_schedule_decodes_each_window_after_the_one_before(n: int) -> None:
    """With previous text, every window is decoded once, after its predecessor (whose text it
    is prompted with) unless it starts a stream; at most `batch_size` rows per batch."""
    opts = RegionOptions(previous_tokens=223)
    batches = _schedule([29.5] * n, opts)
    order = [k for b in batches for k in b]
    assert sorted(order) == list(range(n))
    assert all(len(b) <= opts.batch_size for b in batches)
    when = {k: j for j, b in enumerate(batches) for k in b}
    starts = [k for k in range(n) if k == 0 or when[k - 1] >= when[k]]
    assert len(starts) == (len(batches[0]) if n else 0)
    assert all(when[k - 1] == when[k] - 1 for k in range(n) if k not in starts)
    if n >= 2 * opts.stream_windows:  # long enough to batch: streams of at least stream_windows
        assert 1 < len(starts) and n // len(starts) >= opts.stream_windows


def test_schedule_without_previous_text_batches_similar_lengths() -> None:
    batches = _schedule([10.0, 29.0, 12.0, 28.0], RegionOptions(previous_tokens=0, batch_size=2))
    assert batches == [[1, 3], [2, 0]]


def test_uncovered_finds_speech_without_words() -> None:
    words = [Word(1.0, 1.4, " a"), Word(1.5, 2.0, " b"), Word(9.0, 9.5, " c")]
    speech = [(0.5, 10.0), (12.0, 13.0)]
    assert _uncovered(speech, words, min_len=2.0) == [(2.5, 8.5)]
    assert _uncovered(speech, words, min_len=0.5) == [(2.5, 8.5), (12.0, 13.0)]
    assert _uncovered(speech, [], min_len=2.0) == [(0.5, 10.0)]


def test_short_turns_without_words_add_up_to_an_uncovered_stretch() -> None:
    """Seen on a composed meeting: four turns of one speaker, 1.2 to 1.7 s each with short pauses,
    no word in any; each alone is under `min_len`, together they are 7 s of lost speech."""
    speech = [(39.7, 41.41), (41.76, 42.91), (43.48, 44.88), (45.46, 46.69), (48.5, 49.0)]
    words = [Word(46.7, 47.1, " a"), Word(47.1, 47.2, " word")]
    assert _uncovered(speech, words, min_len=2.0) == [(39.7, 46.2)]
    assert _uncovered(speech, words, min_len=2.0, pause=0.3) == []


def test_a_word_stretched_over_skipped_speech_does_not_cover_it() -> None:
    """The alignment puts a word over speech that Whisper skipped: only its ends count as heard."""
    speech = [(0.0, 30.0)]
    stretched = [Word(1.0, 2.0, " So"), Word(13.3, 26.5, " Mr."), Word(26.6, 27.0, " Quilter")]
    assert _uncovered(speech, stretched, min_len=2.0) == [(2.5, 12.8), (13.8, 26.0), (27.5, 30.0)]
    said_slowly = [Word(1.0, 2.0, " So"), Word(2.2, 4.0, " um"), Word(4.2, 5.0, " yes")]
    assert _uncovered([(0.5, 5.5)], said_slowly, min_len=1.0) == []


def test_a_phrase_said_twice_in_a_row_is_kept_once() -> None:
    sentence = " I'm not sure if this is the sick boy that's having a cold.".split(" ")[1:]
    loop = [Word(float(k), k + 0.5, " " + w, 0.5) for k, w in enumerate(sentence * 2 + ["Hey!"])]
    kept = _unrepeated(loop)
    assert [w.text.strip() for w in kept] == sentence + ["Hey!"]
    assert kept[: len(sentence)] == loop[: len(sentence)]  # the first copy stays
    # case and punctuation do not hide a repeat; four copies become one
    said = ["so", "this", "is", "the", "sick", "corpus,", "So", "this", "is", "the", "sick", "corpus."] * 2
    assert [w.text for w in _unrepeated([Word(0.0, 0.1, w) for w in said])] == said[:6]


def test_short_repeats_of_real_speech_are_kept() -> None:
    said = "no no no I said I said we will we will fight we will fight on the beaches".split()
    words = [Word(float(k), k + 0.5, w) for k, w in enumerate(said)]
    assert _unrepeated(words) == words


def test_benchmark_counts_deletions_only_in_turns_nobody_talks_over() -> None:
    """benchmarks/asr_regions.py's `clean_deletions`: turns that overlap another are left out,
    each other turn is scored against the words whose middle lies in it (0.2 s of slack)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from types import SimpleNamespace as Utterance

    from benchmarks.asr_regions import clean_deletions

    turns = [
        Utterance(start=0.0, end=3.0, text="red green blue black"),
        Utterance(start=4.0, end=7.0, text="cat dog cow"),  # overlaps the next turn
        Utterance(start=6.5, end=9.0, text="oak elm"),
    ]
    words = [Word(0.1, 0.5, " red"), Word(0.6, 1.0, " green"), Word(2.9, 3.3, " black"),  # middle 3.1 s: in
             Word(5.0, 5.5, " cat")]
    assert clean_deletions(turns, words) == {"ref_words": 4, "deletions": 1}
    assert clean_deletions(turns, words[:2]) == {"ref_words": 4, "deletions": 2}  # "black" now missing too
    assert clean_deletions(turns[1:], []) == {"ref_words": 0, "deletions": 0}


def test_no_clip_needs_more_tokens_than_a_decode_may_write(store) -> None:
    """The loop cut-off leaves room for the fastest real speech of samples/ (timestamps included)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(store.require("base") / "tokenizer.json"))
    for line in CLIPS.read_text().splitlines():
        clip = json.loads(line)
        tokens = len(tokenizer.encode(" " + clip["text"]).ids) + 2 * math.ceil(clip["duration"] / 5)
        assert tokens <= 0.8 * _max_new_tokens(clip["duration"]), clip["id"]


# --------------------------------------------------------------------------- real models

COMPOSE = REPO / "benchmarks" / "compose.py"
CLIPS = REPO / "samples" / "clips.jsonl"


def compose(tmp: Path, *args: str) -> dict:
    """Run the meeting composer as a user would; the manifest line of what it wrote."""
    r = subprocess.run([sys.executable, str(COMPOSE), "-o", str(tmp), "--clips", str(CLIPS), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def quiet_meeting(tmp_path_factory) -> tuple[Path, dict]:
    """90 s, four real speakers; one speaks at -20 dB, with a turn of at least 20 s."""
    out = tmp_path_factory.mktemp("quiet")
    line = compose(out, "--seed", "3", "--minutes", "1.5", "--quiet-turn", "20",
                   "--speaker-set", "lj,mfa_mcauliffe,librivox_sonnets,jfk")
    info = json.loads((out / line["info"]).read_text())
    return out / line["audio"], info


def recall(reference: str, words, language: str = "en") -> float:
    """Share of the reference words recognised (neither deleted nor misheard)."""
    from transcribe.evaluation.metrics import word_errors

    e = word_errors(reference, "".join(w.text for w in words), language)
    return (e.ref_words - e.substitutions - e.deletions) / e.ref_words


def heard(reference: str, words, language: str = "en") -> float:
    """Share of the reference words that got a word (not deleted), right or misheard."""
    from transcribe.evaluation.metrics import word_errors

    e = word_errors(reference, "".join(w.text for w in words), language)
    return 1.0 - e.deletions / e.ref_words


@pytest.mark.slow
def test_cli_keeps_the_words_of_a_long_quiet_turn(quiet_meeting, tmp_path: Path, store) -> None:
    import cli
    from conftest import run_cli
    from transcribe.writers import transcript_from_json

    wav, info = quiet_meeting
    quiet = info["measured"]["quiet_turn"]
    assert quiet["seconds"] >= 20 and quiet["level_db"] == -20
    r = run_cli("run", wav, "-o", tmp_path, "--quiet", "--language", "en", "-f", "json,vtt")
    assert r.returncode == cli.EXIT_OK, r.stderr
    transcript = transcript_from_json(json.loads((tmp_path / f"{wav.stem}.json").read_text()))

    # the turn's times are rounded to the millisecond in the info file, its utterances' are not
    utts = [u for u in info["utterances"] if quiet["start"] - 0.01 <= u["start"] and u["end"] <= quiet["end"] + 0.01]
    assert sum(u["end"] - u["start"] for u in utts) >= 20
    ref = " ".join(u["text"] for u in utts)
    inside = [w for w in transcript.words if quiet["start"] <= (w.start + w.end) / 2 <= quiet["end"]]
    # No speech lost: measured, 0.93 of the turn's words get a word here, 0.75 with `--asr-mode
    # whole` (it skips a stretch); 0.70 and 0.64 recognised right (Whisper base on a -20 dB voice).
    assert heard(ref, inside) >= 0.85, (ref, "".join(w.text for w in inside))
    assert recall(ref, inside) >= 0.6, (ref, "".join(w.text for w in inside))
    # ... and every turn of 3 s or more by the quiet speaker has at least half its words
    for u in info["utterances"]:
        if u["speaker"] == quiet["speaker"] and u["end"] - u["start"] >= 3.0:
            got = [w for w in transcript.words if u["start"] <= (w.start + w.end) / 2 <= u["end"]]
            assert recall(u["text"], got) >= 0.5, (u, "".join(w.text for w in got))
    stats = transcript.stats["asr_regions"]
    assert stats["chunks"] >= 4 and stats["uncovered_seconds"] <= 5.0
    assert {"redecoded", "recovered_words", "dropped_outside_speech", "dropped_no_speech"} <= set(stats)
    assert stats["prompted_windows"] == 0  # by default no window waits for the text of the one before


@pytest.mark.slow
def test_cli_prompts_each_window_with_the_text_before_it_when_asked(quiet_meeting, tmp_path: Path, store) -> None:
    """`--previous-text`: every window but the first of its stream is decoded after the text of the
    window before it, as Whisper decodes a recording, and the coverage check still holds."""
    import cli
    from conftest import run_cli
    from transcribe.evaluation.metrics import word_errors
    from transcribe.writers import transcript_from_json

    wav, info = quiet_meeting
    r = run_cli("run", wav, "-o", tmp_path, "--quiet", "--language", "en", "-f", "json", "--previous-text")
    assert r.returncode == cli.EXIT_OK, r.stderr
    doc = json.loads((tmp_path / f"{wav.stem}.json").read_text())
    assert doc["options"]["condition_on_previous_text"] is True
    transcript = transcript_from_json(doc)
    stats = transcript.stats["asr_regions"]
    # the 90 s meeting fills 4 windows, one stream (fewer than `stream_windows`): 3 follow another
    assert stats["windows"] >= 3 and stats["prompted_windows"] == stats["windows"] - 1, stats
    assert stats["uncovered_seconds"] <= 5.0
    ref = " ".join(u["text"] for u in sorted(info["utterances"], key=lambda u: u["start"]))
    # measured: WER 0.195 (0.205 without previous text; Whisper base, a voice at -20 dB, a cold)
    assert word_errors(ref, "".join(w.text for w in transcript.words), "en").rate <= 0.25
    quiet = info["measured"]["quiet_turn"]
    utts = [u for u in info["utterances"] if quiet["start"] - 0.01 <= u["start"] and u["end"] <= quiet["end"] + 0.01]
    inside = [w for w in transcript.words if quiet["start"] <= (w.start + w.end) / 2 <= quiet["end"]]
    assert heard(" ".join(u["text"] for u in utts), inside) >= 0.85


@pytest.mark.slow
def test_cli_decodes_each_speaker_in_their_own_language(tmp_path: Path, store) -> None:
    """A meeting in which one speaks English and the other German, the language not given: each
    speaker is decoded in theirs. With one language for the recording, the other's words come out
    translated or garbled."""
    import cli
    from conftest import run_cli
    from transcribe.writers import transcript_from_json

    line = compose(tmp_path, "--seed", "5", "--minutes", "1.5", "--language", "en,de",
                   "--speaker-set", "lj,librivox_simplicissimus")
    wav = tmp_path / line["audio"]
    info = json.loads((tmp_path / line["info"]).read_text())
    r = run_cli("run", wav, "-o", tmp_path / "out", "--quiet", "--num-speakers", "2", "--speaker-names", "Ann,Bob", "-f", "json")
    assert r.returncode == cli.EXIT_OK, r.stderr
    transcript = transcript_from_json(json.loads((tmp_path / "out" / f"{wav.stem}.json").read_text()))
    languages = transcript.stats["asr_regions"]["languages"]  # by the names the outputs show
    assert sorted(languages) == ["Ann", "Bob"] and sorted(languages.values()) == ["de", "en"]
    for speaker, language in (("lj", "en"), ("librivox_simplicissimus", "de")):
        utts = [u for u in info["utterances"] if u["speaker"] == speaker]
        ref = " ".join(u["text"] for u in utts)
        said = [w for w in transcript.words if any(u["start"] <= (w.start + w.end) / 2 <= u["end"] for u in utts)]
        assert recall(ref, said, language) >= 0.6, (language, "".join(w.text for w in said))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "diarize"), [("silence", "--no-diarize"), ("noise", "--no-diarize"), ("noise", "--diarize")]
)
def test_cli_writes_no_words_for_silence_or_noise(kind: str, diarize: str, tmp_path: Path, store) -> None:
    """60 s of digital silence or of pink noise: no words, and every output valid and empty.
    (Silence with diarization: tests/test_cli_inputs.py.)"""
    import webvtt

    import cli
    from conftest import run_cli
    from transcribe.writers import transcript_from_json

    line = compose(tmp_path, f"--{kind}", "60", *(["--noise-db", "-35"] if kind == "noise" else []))
    wav = tmp_path / line["audio"]
    out = tmp_path / "out"
    r = run_cli("run", wav, "-o", out, "--quiet", "-m", "tiny.en", diarize, "-f", "json,vtt,srt,rttm,txt,md")
    assert r.returncode == cli.EXIT_OK, r.stderr
    data = json.loads((out / f"{wav.stem}.json").read_text())
    assert data["segments"] == [] and data["duration"] == pytest.approx(60.0, abs=0.05)
    transcript = transcript_from_json(data)
    assert transcript.words == () and transcript.stats["words"] == 0
    assert transcript.options["asr_mode"] == "regions"
    assert transcript.stats["asr_regions"]["uncovered_seconds"] == 0.0
    vtt = (out / f"{wav.stem}.vtt").read_text()
    assert vtt.strip() == "WEBVTT" and len(webvtt.read(str(out / f"{wav.stem}.vtt"))) == 0
    for ext in ("srt", "rttm", "txt"):
        assert (out / f"{wav.stem}.{ext}").read_text().strip() == "", ext
    assert "No speech was detected" in (out / f"{wav.stem}.md").read_text()


def test_cli_refuses_an_unknown_asr_mode(tmp_path: Path) -> None:
    import cli
    from conftest import run_cli

    r = run_cli("run", REPO / "samples" / "misc" / "jfk.flac", "-o", tmp_path, "--asr-mode", "fast")
    assert r.returncode == cli.EXIT_INPUT
    assert r.stderr.strip().splitlines() == ["Error: --asr-mode must be one of regions, whole, got 'fast'"]
    assert list(tmp_path.iterdir()) == []


def test_words_keep_their_chunk_speaker_and_others_get_the_turn_they_overlap() -> None:
    from transcribe.pipeline import _attributed

    turns = (Turn(0.0, 2.0, "A"), Turn(2.0, 4.0, "B"))
    words = (Word(1.8, 2.6, " x", speaker="A"), Word(1.8, 2.6, " y"), Word(0.1, 0.3, " z"))
    assert [w.speaker for w in _attributed(words, turns)] == ["A", "B", "A"]
    assert words[1].speaker is None  # pure: the input is unchanged


def test_vad_regions_find_the_speech_of_a_real_recording() -> None:
    from transcribe.media import load_audio
    from transcribe.regions import vad_regions

    audio = load_audio(REPO / "samples" / "misc" / "jfk.flac")
    turns = vad_regions(audio)
    assert turns and all(t.speaker == "" for t in turns)
    speech = sum(t.duration for t in turns)
    assert 7.0 <= speech <= audio.duration
    # the reference speech (samples/misc/jfk.rttm) lies inside what VAD found, give or take 0.3 s
    assert turns[0].start <= 0.3 + 0.3 and turns[-1].end >= 10.6 - 0.3
    quiet = Audio((audio.samples * 10 ** (-30 / 20)).astype(np.float32))  # 30 dB quieter
    assert sum(t.duration for t in vad_regions(quiet)) == pytest.approx(speech, abs=1.0)
    assert vad_regions(Audio(np.zeros(5 * SAMPLE_RATE, np.float32))) == ()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_regions_over_vad_find_no_words_in_silence_or_noise(kind: str, store) -> None:
    from transcribe.asr import AsrOptions, Recognizer
    from transcribe.regions import transcribe_regions

    rng = np.random.default_rng(1)
    n = 60 * SAMPLE_RATE
    if kind == "silence":
        x = np.zeros(n, np.float32)
    else:  # white noise at -30 dBFS, and a few clicks
        x = (10 ** (-30 / 20) * rng.standard_normal(n)).astype(np.float32)
        x[rng.integers(0, n, 20)] = 0.9
    rec = Recognizer(store.require("base"))
    result = transcribe_regions(rec, Audio(x), None, AsrOptions())
    assert result.words == ()
    # the diarization may hear speech in noise: words there must still not come out
    fake = [Turn(5.0, 20.0, "SPEAKER_00"), Turn(30.0, 55.0, "SPEAKER_01")]
    result = transcribe_regions(rec, Audio(x), fake, AsrOptions(language="en"))
    assert result.words == (), result.words
    assert result.stats["chunks"] == 2


def test_windows_are_decoded_without_timestamp_tokens_unless_asked(store) -> None:
    """CTranslate2 applies Whisper's timestamp rules row by row: on an H100 they made a batch of five
    windows decode 8x slower (benchmarks/RESULTS.md, session 14). Every prompt of a batch, with
    previous text or without, asks for no timestamps by default, and for them when asked."""
    from transcribe.asr import AsrOptions, Recognizer
    from transcribe.regions import _decoder

    model = Recognizer(store.require("tiny.en")).model
    previous = [[50, 51, 52], [60, 61]]
    dec = _decoder(model, "en", AsrOptions(), RegionOptions().timestamp_tokens)
    no_ts = dec.tokenizer.no_timestamps
    assert no_ts in dec.prompt
    assert all(no_ts in p for p in dec.prompts(previous))
    with_ts = _decoder(model, "en", AsrOptions(), timestamp_tokens=True)
    assert no_ts not in with_ts.prompt
    assert not any(no_ts in p for p in with_ts.prompts(previous))
