"""The clustering steps around pyannote's: split speakers merged back, small clusters kept or dissolved,
speakers split where their own turns are two voices."""

from __future__ import annotations

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from transcribe.diarize import (
    cluster_speech,
    dissolve_small_speakers,
    merge_split_clusters,
    speaker_spans,
    split_speakers_by_turns,
)
from transcribe.types import Turn


def _case(alike: float, together: bool, chunks: int = 12, frames: int = 50):
    """Three clusters over `chunks` chunks of two local speakers: cluster 0 alone in the first half;
    clusters 1 and 2, `alike` in cosine similarity, in the second half, sharing every chunk
    (`together`) or taking turns, one chunk each."""
    rng = np.random.default_rng(0)
    dim = 16
    base = np.eye(dim)
    voice = {0: base[0], 1: base[1], 2: alike * base[1] + np.sqrt(1 - alike**2) * base[2]}
    seg = np.zeros((chunks, frames, 2))
    emb = np.full((chunks, 2, dim), np.nan)
    hard = np.full((chunks, 2), -2, dtype=np.int8)
    half = chunks // 2
    for c in range(chunks):
        if c < half:
            who = [(0, 0)]
        elif together:
            who = [(0, 1), (1, 2)]
        else:
            who = [(0, 1 if c % 2 else 2)]
        for local, k in who:
            if len(who) == 2:  # each speaks alone for part of the chunk (clean frames)
                seg[c, local * frames // 2 : (local + 1) * frames // 2, local] = 1
            else:
                seg[c, :, local] = 1
            emb[c, local] = voice[k] + 0.01 * rng.standard_normal(dim)
            hard[c, local] = k
    centroids = np.stack([voice[k] for k in range(3)])
    return emb, SlidingWindowFeature(seg, SlidingWindow(start=0, duration=10, step=1)), hard, centroids


def test_a_split_speaker_is_merged() -> None:
    emb, seg, hard, centroids = _case(alike=0.6, together=False)  # 0.4 apart, never in one chunk
    out, cents = merge_split_clusters(emb, seg, hard, centroids, max_distance=0.5, max_cooccurrence=0.5)
    assert len(cents) == 2
    assert set(out[6:].ravel()) - {-2} == {1}  # the two halves of the speaker are one cluster
    assert set(out[:6].ravel()) - {-2} == {0}


def test_two_people_heard_together_stay_apart() -> None:
    emb, seg, hard, centroids = _case(alike=0.66, together=True)  # as alike as pyannote's sample pair
    out, cents = merge_split_clusters(emb, seg, hard, centroids, max_distance=0.5, max_cooccurrence=0.5)
    assert len(cents) == 3 and (out == hard).all()


def test_two_languages_are_two_people() -> None:
    """A pair that would merge stays apart when its clusters are heard in two languages, and merges
    when one of them is unsure (None) or both speak the same; the language is asked only for the
    clusters of such a pair, on the speech where each is heard alone."""
    asked: list[int] = []

    def languages(said: dict[int, str | None]):
        def language_of(spans):
            k = 1 if spans[0][0] == 7.0 else 2  # cluster 1 speaks in the odd chunks from 7 s, cluster 2 from 6 s
            asked.append(k)
            return said[k]

        return language_of

    emb, seg, hard, centroids = _case(alike=0.6, together=False)
    out, cents = merge_split_clusters(emb, seg, hard, centroids, 0.5, 0.5, language_of=languages({1: "de", 2: "en"}))
    assert len(cents) == 3 and (out == hard).all()
    assert sorted(asked) == [1, 2]  # cluster 0, far from both, is never asked about
    for said in ({1: "de", 2: None}, {1: "fr", 2: "fr"}):
        assert len(merge_split_clusters(emb, seg, hard, centroids, 0.5, 0.5, language_of=languages(said))[1]) == 2


def test_cluster_speech_is_where_the_cluster_is_heard_alone() -> None:
    """Frames of the cluster's local speakers with no other voice in the chunk, joined across chunks."""
    frames = 100  # 0.1 s each in a 10 s chunk
    seg = np.zeros((3, frames, 2))
    seg[0, 20:60, 0] = 1  # chunk 0 (0-10 s): cluster 5 from 2 to 6 s ...
    seg[0, 40:80, 1] = 1  # ... with another voice from 4 to 8 s: alone from 2 to 4 s
    seg[2, 0:30, 0] = 1  # chunk 2 (2-12 s): cluster 5 alone from 2 to 5 s
    hard = np.array([[5, 1], [-2, -2], [5, -2]])
    spans = cluster_speech(SlidingWindowFeature(seg, SlidingWindow(start=0, duration=10, step=1)), hard, 5)
    assert spans == [(2.0, 5.0)]
    assert cluster_speech(SlidingWindowFeature(seg, SlidingWindow(start=0, duration=10, step=1)), hard, 1) == [(6.0, 8.0)]


def test_distant_clusters_and_the_minimum_are_kept() -> None:
    emb, seg, hard, centroids = _case(alike=0.3, together=False)  # 0.7 apart: two people
    assert len(merge_split_clusters(emb, seg, hard, centroids, 0.5, 0.5)[1]) == 3
    emb, seg, hard, centroids = _case(alike=0.6, together=False)
    assert len(merge_split_clusters(emb, seg, hard, centroids, 0.5, 0.5, min_clusters=3)[1]) == 3


# --------------------------------------------------------------------------- SpeakerClustering


def _voices(sizes: dict[int, int], alike: dict[int, tuple[int, float]], dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of voices `sizes` (voice -> how many); a voice in `alike` is (other voice, cosine
    similarity) of another. Returns the embeddings and each one's voice."""
    rng = np.random.default_rng(1)
    base = np.eye(dim)
    voice = {k: base[k] for k in sizes}
    for k, (other, sim) in alike.items():
        voice[k] = sim * base[other] + np.sqrt(1 - sim**2) * base[k]
    emb = [voice[k] + 0.02 * rng.standard_normal(dim) for k, n in sizes.items() for _ in range(n)]
    truth = [k for k, n in sizes.items() for _ in range(n)]
    return np.array(emb), np.array(truth)


def _clusters(emb: np.ndarray, keep_distance: float, min_size: int = 4, **bounds) -> np.ndarray:
    from transcribe.diarize import SpeakerClustering

    c = SpeakerClustering(keep_distance)
    c.instantiate({"method": "centroid", "min_cluster_size": min_size, "threshold": 0.75})
    n = len(emb)
    return c.cluster(emb.copy(), bounds.get("min_clusters", 1), bounds.get("max_clusters", n), bounds.get("num_clusters"))


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_a_small_cluster_far_from_the_others_is_kept() -> None:
    emb, truth = _voices({0: 20, 1: 20, 2: 3}, {})  # voice 2 says little, and sounds like no one else
    assert same_partition(_clusters(emb, keep_distance=0.55), truth)
    assert len(set(_clusters(emb, keep_distance=0.0).tolist())) == 2  # pyannote: given to a large one


def test_a_small_piece_of_a_large_cluster_joins_it() -> None:
    # voice 2 is close to voice 1 (0.4 apart): split by the linkage, too close to be kept
    emb, truth = _voices({0: 20, 1: 20, 2: 3}, {2: (1, 0.6)})
    out = _clusters(emb, keep_distance=0.55)
    assert len(set(out.tolist())) == 2 and len(set(out[truth == 2].tolist())) == 1
    assert out[truth == 2][0] == out[truth == 1][0]


def test_keeping_is_pyannotes_clustering_when_nothing_is_far_or_a_count_is_given() -> None:
    emb, truth = _voices({0: 20, 1: 20, 2: 3, 3: 1}, {2: (1, 0.6)})
    assert (_clusters(emb, keep_distance=0.55) == _clusters(emb, keep_distance=0.0)).all()
    emb, truth = _voices({0: 20, 1: 20, 2: 3}, {})
    assert len(set(_clusters(emb, keep_distance=0.55, num_clusters=2).tolist())) == 2
    assert len(set(_clusters(emb, keep_distance=0.55, max_clusters=2).tolist())) == 2
    # a lone embedding is never a speaker of its own
    emb, truth = _voices({0: 20, 1: 20, 2: 1}, {})
    assert len(set(_clusters(emb, keep_distance=0.55).tolist())) == 2


def _ghost_case():
    """Clusters 0 and 1, two voices; cluster 2, two local speakers of voice 1 (one with an embedding
    close to voice 1, one without an embedding), and cluster 3, one of voice 0."""
    voice = np.eye(2)
    hard = np.array([[0, 1], [0, 2], [2, 1], [3, -2]], dtype=np.int8)
    emb = np.full((4, 2, 4), np.nan)
    for c, s in zip(*np.nonzero(hard >= 0)):
        emb[c, s, :2] = voice[0 if hard[c, s] in (0, 3) else 1]
        emb[c, s, 2:] = 0.1
    emb[2, 0] = np.nan  # too short for an embedding: its cluster's centroid stands for it
    centroids = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.2, 1, 0, 0], [1, 0.1, 0, 0]], dtype=float)
    return hard, emb, centroids


def test_clusters_heard_too_little_go_to_the_nearest_speaker() -> None:
    hard, emb, centroids = _ghost_case()
    heard = {0: 40.0, 1: 30.0, 2: 0.3, 3: 1.2}
    assert dissolve_small_speakers(hard, emb, centroids, heard, min_speech=1.5)
    np.testing.assert_array_equal(hard, [[0, 1], [0, 1], [1, 1], [0, -2]])


def test_dissolving_keeps_the_minimum_and_the_speakers_heard_enough() -> None:
    hard, emb, centroids = _ghost_case()
    # every cluster heard enough: nothing changes
    assert not dissolve_small_speakers(hard, emb, centroids, {0: 40.0, 1: 30.0, 2: 2.0, 3: 1.6}, min_speech=1.5)
    np.testing.assert_array_equal(hard, _ghost_case()[0])
    # at least 3 speakers asked for: only the smallest cluster goes
    assert dissolve_small_speakers(hard, emb, centroids, {0: 40.0, 1: 30.0, 2: 0.3, 3: 1.2}, 1.5, min_speakers=3)
    np.testing.assert_array_equal(hard, [[0, 1], [0, 1], [1, 1], [3, -2]])
    # nothing but small clusters: the largest stays, the others join it
    hard = _ghost_case()[0]
    assert dissolve_small_speakers(hard, emb, centroids, {0: 0.5, 1: 0.4, 2: 0.3, 3: 1.2}, 1.5)
    assert set(np.unique(hard[hard >= 0])) == {3}


def test_labels_without_a_cluster_are_left_to_the_caller() -> None:
    # pyannote's reconstruction adds label 4 where more voices are heard at once than there are
    # clusters: no centroid, no local speaker; dissolving neither fails on it nor keeps it as a target
    hard, emb, centroids = _ghost_case()
    heard = {0: 40.0, 1: 30.0, 2: 0.3, 3: 1.2, 4: 0.3}
    assert dissolve_small_speakers(hard, emb, centroids, heard, min_speech=1.5)
    np.testing.assert_array_equal(hard, [[0, 1], [0, 1], [1, 1], [0, -2]])
    hard = _ghost_case()[0]
    assert not dissolve_small_speakers(hard, emb, centroids, {0: 40.0, 1: 30.0, 2: 2.0, 3: 2.0, 4: 0.3}, 1.5)
    np.testing.assert_array_equal(hard, _ghost_case()[0])


VOICES = np.eye(4)  # four voices, unit vectors: 1.0 apart in cosine distance


def _voices_by_start(voice_at: dict[float, int]):
    """vector_of for split_speakers_by_turns: the voice of the span that starts at `start`, and the
    spans asked for."""
    asked = []

    def vector_of(start: float, end: float) -> np.ndarray:
        asked.append((start, end))
        return VOICES[voice_at[start]]

    return vector_of, asked


def test_speaker_spans_join_one_speakers_turns_across_short_gaps() -> None:
    turns = [Turn(0.0, 2.0, "A"), Turn(2.3, 4.0, "A"), Turn(4.0, 6.0, "B"), Turn(6.1, 8.0, "A"), Turn(9.0, 10.0, "A")]
    assert speaker_spans(turns) == [Turn(0.0, 4.0, "A"), Turn(4.0, 6.0, "B"), Turn(6.1, 8.0, "A"), Turn(9.0, 10.0, "A")]


def test_a_turn_in_another_speakers_voice_goes_to_them() -> None:
    # A's third turn is B's voice: it goes to B; A's short turn follows most of A's long turns
    exclusive = [Turn(0, 5, "A"), Turn(5, 9, "B"), Turn(9, 13, "A"), Turn(13, 17, "B"), Turn(17, 21, "A"),
                 Turn(23, 24, "A")]
    vector_of, asked = _voices_by_start({0: 0, 5: 1, 9: 0, 13: 1, 17: 1})
    turns, excl, means = split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5)
    assert [t.speaker for t in excl] == ["A", "B", "A", "B", "A"]  # 13-21 joined into one B turn
    assert excl[3] == Turn(13, 21, "B")
    assert (23, 24) not in asked  # too short to embed
    np.testing.assert_allclose(means["B"], VOICES[1])


def test_two_voices_under_one_label_become_two_speakers_and_overlaps_are_cut_between_them() -> None:
    # "A" holds two voices far apart and the one with less time is near no other speaker: it gets
    # a label of its own, "A+1"; A's turn over B's (with overlap) is cut halfway between A's spans
    exclusive = [Turn(0, 6, "A"), Turn(6, 10, "B"), Turn(10, 13, "A"), Turn(13, 20, "B"), Turn(20, 26, "A")]
    heard = [Turn(0, 6, "A"), Turn(5, 10, "B"), Turn(9.5, 13.4, "A"), Turn(13, 20, "B"), Turn(20, 26, "A")]
    vector_of, _ = _voices_by_start({0: 0, 6: 1, 10: 2, 13: 1, 20: 0})
    turns, excl, means = split_speakers_by_turns(heard, exclusive, vector_of, 0.7, 0.5, 1.5)
    assert {t.speaker for t in excl} == {"A", "B", "A+1"}
    assert [t for t in excl if t.speaker == "A+1"] == [Turn(10, 13, "A+1")]
    # the turn heard 9.5-13.4 lies between A's spans 0-6 (A) and 10-13 (A+1), then 20-26 (A)
    assert Turn(9.5, 13.4, "A+1") in turns
    assert Turn(0, 6, "A") in turns
    np.testing.assert_allclose(means["A+1"], VOICES[2])
    np.testing.assert_allclose(means["A"], VOICES[0])


def test_two_speakers_of_one_voice_are_never_joined_whole() -> None:
    # different people's turns can be as close as one person's: only a part of a speaker moves
    exclusive = (Turn(0, 5, "A"), Turn(5, 8, "C"), Turn(8, 13, "A"), Turn(13, 15, "C"))
    vector_of, _ = _voices_by_start({0: 0, 5: 0, 8: 0, 13: 0})
    assert split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5) == (exclusive, exclusive, {})


def test_splitting_changes_nothing_without_two_long_turns_or_beyond_the_bounds() -> None:
    exclusive = (Turn(0, 5, "A"), Turn(5, 6, "B"), Turn(6, 7, "A"))
    vector_of, _ = _voices_by_start({0: 0})
    assert split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5) == (exclusive, exclusive, {})
    # splitting A would make three where at most two are asked for
    exclusive = (Turn(0, 5, "A"), Turn(5, 8, "C"), Turn(8, 13, "A"))
    vector_of, _ = _voices_by_start({0: 0, 5: 1, 8: 2})
    assert split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5, max_speakers=2) == (
        exclusive, exclusive, {})
    assert {t.speaker for t in split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5)[1]} == {
        "A", "C", "A+1"}
    # one speaker's turns within the split distance stay together
    vector_of, _ = _voices_by_start({0: 0, 5: 1, 8: 0})
    assert split_speakers_by_turns(exclusive, exclusive, vector_of, 0.7, 0.5, 1.5) == (exclusive, exclusive, {})
