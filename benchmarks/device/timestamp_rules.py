"""CTranslate2's generate on five 24 s windows of a composed meeting, on CUDA: one by one or batched,
with and without timestamp tokens, one model or four replicas (threads). Median of 3 after a warm-up.

    python3 benchmarks/device/timestamp_rules.py     (after `source benchmarks/device/setup.sh`)
"""

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import run_asr_regions  # noqa: F401  (the clips from the .npz)
import ctranslate2
import numpy as np
from compose import compose_meeting, load_clips
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from transcribe.store import ModelStore


def storage(a: np.ndarray):
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(a))


def main() -> int:
    path = str(ModelStore().require("base"))
    clips = load_clips(run_asr_regions.ROOT / "samples" / "clips.jsonl")
    m = compose_meeting(clips, 1, 6, 2.0, "en")
    windows = [m.samples[int(a * 16000) : int((a + 24) * 16000)] for a in (0, 24, 48, 72, 96)]
    for workers in (1, 4):
        model = WhisperModel(path, device="cuda", compute_type="float16", num_workers=workers)
        tok = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
        suppress = get_suppressed_tokens(tok, [-1])
        feats = np.stack([pad_or_trim(model.feature_extractor(w)[..., :-1], 3000) for w in windows])
        enc = model.model.encode(storage(feats), to_cpu=workers > 1)
        encs = [model.model.encode(storage(feats[k : k + 1]), to_cpu=workers > 1) for k in range(5)]

        def gen(e, n, timestamps=True):
            prompt = model.get_prompt(tok, [], without_timestamps=not timestamps)
            return model.model.generate(e, [prompt] * n, beam_size=5, max_length=400, suppress_blank=True,
                                        suppress_tokens=suppress, return_scores=True, return_no_speech_prob=True)

        cases = {
            "one by one": lambda: [gen(encs[k], 1) for k in range(5)],
            "batch of 5": lambda: gen(enc, 5),
            "batch of 5, no timestamps": lambda: gen(enc, 5, False),
            "one by one, no timestamps": lambda: [gen(encs[k], 1, False) for k in range(5)],
        }
        if workers > 1:
            pool = ThreadPoolExecutor(5)
            cases["5 threads, one window each"] = lambda: list(pool.map(lambda k: gen(encs[k], 1), range(5)))
        for name, fn in cases.items():
            fn()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            print(f"{workers} replica(s), {name}: {statistics.median(times) * 1000:.0f} ms", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
