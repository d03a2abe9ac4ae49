"""Speaker accuracy (issue 5): calibrate the clustering on a tuning set, report on a held-out set.

    python benchmarks/speakers.py features MANIFEST.jsonl [--cache DIR]     # networks, once per meeting
    python benchmarks/speakers.py sweep TUNING.jsonl [--cache DIR] [--languages]  # clustering choices, from the cache
    python benchmarks/speakers.py compare HELDOUT.jsonl [MORE.jsonl ...] [--cache DIR] [--model base] [-o results.json]
    python benchmarks/speakers.py languages MANIFEST.jsonl [--model base]   # language of each speaker
    python benchmarks/speakers.py cost MANIFEST.jsonl [-o results.json]      # time of the turn step

`features` runs segmentation-3.0 and CAM++ once per meeting and keeps the result (pickle) in the
cache; `sweep` re-clusters the cached features under every threshold / minimum cluster size /
count estimator and scores strict DER and the speaker count, so that tuning costs no network time.
`compare` scores ours against the usual pipeline (pyannote 3.1 clustering settings, words to the
speaker they overlap most in the non-exclusive diarization, plain faster-whisper defaults) on the
same audio and the same model files, in one run: WER, strict DER, cpWER, speakers found.
Both diarizations start from the same cached embeddings: pyannote's once-per-speaker embedding
equals our once-per-chunk one to 1e-4 (benchmarks/RESULTS.md, issue 3), so only the clustering,
the attribution and the ASR settings differ, which is what this benchmark is about.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

DEFAULT_CACHE = HERE / "results" / "speaker-features"

from pipeline_vs_usual import load_items  # noqa: E402  (manifest paths made absolute)


def manifest_items(manifests: list[Path]) -> list[dict]:
    """The meetings of every manifest, in order; each item's "set" is its manifest's folder name."""
    return [item | {"set": m.resolve().parent.name} for m in manifests for item in load_items(m)]


def diarizer():
    from transcribe.diarize import Diarizer
    from transcribe.store import ModelStore

    store = ModelStore()
    return Diarizer(store.require_weights("segmentation-3.0"), store.require_weights("campplus"), "cpu")


def cached_features(item: dict, cache: Path, d=None):
    """The meeting's SpeakerFeatures, computed once and kept in `cache`."""
    path = cache / (Path(item["audio"]).stem + ".features.pkl")
    if path.is_file():
        return pickle.loads(path.read_bytes())
    from transcribe.media import load_audio

    d = d or diarizer()
    t0 = time.perf_counter()
    features = d.features(load_audio(item["audio"]))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(features))
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return features


def cmd_features(args) -> None:
    d = diarizer()
    for item in manifest_items(args.manifest):
        cached_features(item, args.cache, d)


def score_diarization(item: dict, turns) -> dict:
    from transcribe.evaluation.metrics import diarization_errors
    from transcribe.evaluation.readers import read_rttm

    ref = read_rttm(Path(item["rttm"]))
    der = diarization_errors(ref, turns)
    found = len({t.speaker for t in turns})
    return {
        "der": der.der, "missed": der.missed_rate, "false_alarm": der.false_alarm_rate,
        "confusion": der.confusion_rate, "speakers": found, "true_speakers": len({t.speaker for t in ref}),
        "_der": [der.missed + der.false_alarm + der.confusion, der.total],
    }


def pooled(rows: list[dict]) -> dict:
    err = sum(r["_der"][0] for r in rows)
    tot = sum(r["_der"][1] for r in rows)
    right = sum(r["speakers"] == r["true_speakers"] for r in rows)
    off = sum(abs(r["speakers"] - r["true_speakers"]) for r in rows)
    return {"der": err / tot, "count_right": right / len(rows), "count_abs_error": off / len(rows)}


def sweep_grid() -> list[dict]:
    """Every clustering choice the sweep scores (DiarizationOptions keyword arguments)."""
    grid = [{"threshold": th, "min_cluster_size": mcs}
            for th in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9) for mcs in (4, 8, 12, 16)]
    grid += [{"count_method": "eigengap", "eigengap_keep": keep, "min_cluster_size": mcs}
             for keep in (0.1, 0.2, 0.3) for mcs in (2, 4, 8, 12)]
    return grid


def cmd_sweep(args) -> None:
    import itertools

    from transcribe.diarize import DiarizationOptions

    d = diarizer()
    items = manifest_items(args.manifest)
    if args.cached_only:
        items = [it for it in items if (args.cache / (Path(it["audio"]).stem + ".features.pkl")).is_file()]
    from transcribe.media import load_audio

    feats = [cached_features(it, args.cache, d) for it in items]
    audios = [load_audio(it["audio"]) for it in items]  # the turns' own embeddings (split_speakers_by_turns)
    spoken = [None] * len(items)
    if args.languages:  # the merge step asks Whisper's language detection, as the pipeline does
        from transcribe.asr import Recognizer
        from transcribe.regions import speech_language
        from transcribe.store import ModelStore

        rec = Recognizer(ModelStore().require(args.model), "cpu", "int8")
        spoken = [speech_language(rec, audio) for audio in audios]
    results = []
    extra = json.loads(args.extra) if args.extra else [{}]
    grid = json.loads(args.grid) if args.grid else sweep_grid()
    for choice, ex in itertools.product(grid, extra):
        opts = DiarizationOptions(**(choice | ex))
        rows = [score_diarization(it, d.cluster(f, opts, lang, audio).turns)
                for it, f, lang, audio in zip(items, feats, spoken, audios)]
        summary = {**choice, **ex, **pooled(rows),
                   "per_file": [(r["true_speakers"], r["speakers"], round(r["der"], 3)) for r in rows]}
        results.append(summary)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}), flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))


class CachedDiarizer:
    """Stands in for the pipeline's Diarizer: clusters the cached features instead of running the
    networks again (the same `Diarizer.cluster` the pipeline's own call ends in)."""

    def __init__(self, diarizer, features):
        self.diarizer, self.features = diarizer, features
        self.pipeline = diarizer.pipeline  # enrollment reaches the embedding model through it

    def __call__(self, audio, options, hook=None, language_of=None):
        return self.diarizer.cluster(self.features, options, language_of, audio)


def usual_words(item: dict, model: str, cache: Path):
    """Plain faster-whisper defaults with word timestamps (benchmarks/usual_pipeline.py), cached."""
    from transcribe.types import Word

    path = cache / f"{Path(item['audio']).stem}.usual-asr.{model}.json"
    if not path.is_file():
        from faster_whisper import WhisperModel

        from transcribe.asr import seed_sampling
        from transcribe.media import load_audio
        from transcribe.store import ModelStore

        t0 = time.perf_counter()
        seed_sampling()  # its temperature fallback samples, as ours does
        whisper = WhisperModel(str(ModelStore().require(model)), device="cpu", compute_type="int8")
        segments, info = whisper.transcribe(load_audio(item["audio"]).samples, word_timestamps=True)
        words = [[round(w.start, 3), round(w.end, 3), w.word, round(w.probability, 4)]
                 for seg in segments for w in seg.words or ()]
        path.write_text(json.dumps({"language": info.language, "words": words, "asr_s": time.perf_counter() - t0}))
    data = json.loads(path.read_text())
    return data["language"], tuple(Word(*w) for w in data["words"])


def score_transcript(item: dict, segments, turns) -> dict:
    from transcribe.evaluation.metrics import speaker_attributed_errors, word_errors
    from transcribe.evaluation.readers import read_stm

    ref_segments = read_stm(Path(item["stm"]))
    wer = word_errors(" ".join(s.text for s in ref_segments), " ".join(s.text for s in segments), item.get("language"))
    cp, _ = speaker_attributed_errors(ref_segments, segments, item.get("language"), timed=False)
    row = score_diarization(item, turns)
    return row | {"wer": wer.rate, "cpwer": cp.rate, "_wer": [wer.errors, wer.ref_words], "_cpwer": [cp.errors, cp.ref_words]}


def pooled_all(rows: list[dict]) -> dict:
    out = pooled(rows)
    for m in ("wer", "cpwer"):
        out[m] = sum(r[f"_{m}"][0] for r in rows) / sum(r[f"_{m}"][1] for r in rows)
    return out


def targets(usual: dict, ours: dict) -> dict:
    """Issue 5's targets from pooled figures."""
    return {
        "der_ratio (<= 0.667)": ours["der"] / usual["der"],
        "cpwer_ratio (<= 0.5)": ours["cpwer"] / usual["cpwer"],
        "cpwer_over_own_wer (<= 1.5)": ours["cpwer"] / ours["wer"],
        "count_right (>= 0.8)": ours["count_right"],
    }


def cmd_compare(args) -> None:
    from transcribe.attribution import assign_speakers, build_segments
    from transcribe.diarize import DiarizationOptions
    from transcribe.media import load_audio
    from transcribe.pipeline import Pipeline, PipelineOptions

    sys.path.insert(0, str(HERE))
    from usual_pipeline import PARAMS_3_1

    d = diarizer()
    usual_opts = DiarizationOptions(
        threshold=PARAMS_3_1["clustering"]["threshold"],
        min_cluster_size=PARAMS_3_1["clustering"]["min_cluster_size"],
        count_method="threshold",
        merge_distance=0.0,  # pyannote's clustering as it is: none of our steps around it
        keep_distance=0.0,
        min_speaker_speech=0.0,
    )
    ours = Pipeline(PipelineOptions(model=args.model, device="cpu"))
    rows = {"usual": [], "ours": []}
    for item in manifest_items(args.manifest):
        if args.cached_only and not (args.cache / (Path(item["audio"]).stem + ".features.pkl")).is_file():
            continue
        features = cached_features(item, args.cache, d)
        stem = Path(item["audio"]).stem
        # usual: pyannote 3.1 clustering, words to the speaker they overlap most (overlap kept)
        usual_d = d.cluster(features, usual_opts)
        _, words = usual_words(item, args.model, args.cache)
        segs = build_segments(assign_speakers(words, usual_d.turns))
        rows["usual"].append(score_transcript(item, segs, usual_d.turns) | {"file": stem, "set": item["set"]})
        # ours: the pipeline as `transcribe run` runs it, its networks' output taken from the cache
        ours._diarizer = CachedDiarizer(d, features)
        t0 = time.perf_counter()
        tr = ours.transcribe(load_audio(item["audio"]))
        rows["ours"].append(score_transcript(item, tr.segments, tr.turns)
                            | {"file": stem, "set": item["set"], "asr_s": time.perf_counter() - t0})
        for system in ("usual", "ours"):
            r = rows[system][-1]
            print(f"{stem} {system}: speakers {r['speakers']}/{r['true_speakers']} DER {r['der']:.3f} "
                  f"(miss {r['missed']:.3f} fa {r['false_alarm']:.3f} conf {r['confusion']:.3f}) "
                  f"WER {r['wer']:.3f} cpWER {r['cpwer']:.3f}", flush=True)
    summary = {system: pooled_all(r) for system, r in rows.items()}
    summary["targets"] = targets(summary["usual"], summary["ours"])
    sets = list(dict.fromkeys(r["set"] for r in rows["ours"]))
    if len(sets) > 1:  # each manifest on its own too: how much the pooled figures rest on one set
        summary["per_set"] = {}
        for name in sets:
            part = {system: pooled_all([r for r in rs if r["set"] == name]) for system, rs in rows.items()}
            meetings = sum(r["set"] == name for r in rows["ours"])
            summary["per_set"][name] = targets(part["usual"], part["ours"]) | {"meetings": meetings}
    print(json.dumps(summary, indent=1))
    if args.output:
        from machine import cpu_description

        args.output.write_text(json.dumps(
            {"model": args.model, "cpu": cpu_description(), "summary": summary, "rows": rows}, indent=1))


def enrollment_embeddings(speakers, seconds: float = 30.0) -> dict:
    """speaker id -> CAM++ enrollment embedding from up to `seconds` of their samples/ clips."""
    import numpy as np

    import compose as C
    from transcribe.campplus import load_campplus
    from transcribe.enroll import MIN_SPEECH_SECONDS, embed_enrollment
    from transcribe.store import ModelStore
    from transcribe.types import Audio

    model = load_campplus(ModelStore().require_weights("campplus"))
    clips = C.load_clips()
    out = {}
    for spk in speakers:
        parts, total = [], 0.0
        for c in (c for c in clips if c.speaker == spk):
            if total >= seconds:
                break
            parts.append(C.clip_audio(c))
            total += c.duration
        if total >= MIN_SPEECH_SECONDS:
            out[spk] = embed_enrollment(model, Audio(np.concatenate(parts), spk))
    return out


def cmd_enroll(args) -> None:
    """Cosine similarity of enrollment embeddings to the centroids of the speakers found, split
    into same person (centroid mapped to the reference speaker it overlaps most) and others."""
    import numpy as np

    from transcribe.diarize import DiarizationOptions
    from transcribe.evaluation.readers import read_rttm
    from transcribe.media import load_audio

    d = diarizer()
    items = [it for it in manifest_items(args.manifest)
             if not args.cached_only or (args.cache / (Path(it["audio"]).stem + ".features.pkl")).is_file()]
    opts = DiarizationOptions(**(json.loads(args.extra) if args.extra else {}))
    ref_speakers = sorted({t.speaker for it in items for t in read_rttm(Path(it["rttm"]))})
    enrolled = enrollment_embeddings(ref_speakers)
    same, other = [], []
    for it in items:
        result = d.cluster(cached_features(it, args.cache, d), opts, None, load_audio(it["audio"]))
        ref = read_rttm(Path(it["rttm"]))
        for label, c in result.centroids.items():
            ov: dict[str, float] = {}
            for h in (t for t in result.turns if t.speaker == label):
                for r in ref:
                    x = min(h.end, r.end) - max(h.start, r.start)
                    if x > 0:
                        ov[r.speaker] = ov.get(r.speaker, 0.0) + x
            if not ov:
                continue
            truth = max(ov, key=ov.get)
            for spk, e in enrolled.items():
                sim = float(np.dot(c, e) / np.linalg.norm(c) / np.linalg.norm(e))
                (same if spk == truth else other).append((round(sim, 3), spk, Path(it["audio"]).stem))
    same.sort()
    other.sort()
    print("same person, lowest:", same[:8])
    print("different people, highest:", other[-8:])
    print(json.dumps({"same_min": same[0][0] if same else None, "other_max": other[-1][0] if other else None,
                      "same_n": len(same), "other_n": len(other)}))


def cmd_languages(args) -> None:
    """Whisper's language detection on each reference speaker's speech (up to 30 s, as
    `transcribe.regions` runs it on each diarized speaker): the two likeliest languages."""
    from faster_whisper import WhisperModel

    from transcribe.evaluation.readers import read_rttm
    from transcribe.media import load_audio
    from transcribe.regions import RegionOptions, _language_probabilities, _speech_sample
    from transcribe.store import ModelStore

    whisper = WhisperModel(str(ModelStore().require(args.model)), device="cpu", compute_type="int8")
    opts = RegionOptions()
    rows = []
    for item in manifest_items(args.manifest):
        audio = load_audio(item["audio"])
        spans: dict[str, list[tuple[float, float]]] = {}
        for t in read_rttm(Path(item["rttm"])):
            spans.setdefault(t.speaker, []).append((t.start, t.end))
        for speaker, sp in spans.items():
            probs = _language_probabilities(whisper, _speech_sample(audio, sp), opts)
            top = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
            rows.append({"file": Path(item["audio"]).stem, "speaker": speaker,
                         "seconds": round(sum(e - s for s, e in sp), 1), "top": top})
            print(f"{rows[-1]['file']:28s} {speaker:32s} {rows[-1]['seconds']:5.1f} s  "
                  + "  ".join(f"{k} {v:.2f}" for k, v in top), flush=True)
    if args.output:
        args.output.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))


def cmd_cost(args) -> None:
    """What the turn step (`split_speakers_by_turns`) adds to the diarization stage, in one run: per
    meeting the networks once, then the clustering without the step and with it, each once, as
    `transcribe run` clusters a file (a turn length embedded for the first time prepares its own
    convolutions, so a second pass would hide part of the cost). The ratio is the diarization with
    the step over the diarization without it."""
    from machine import cpu_description
    from transcribe.diarize import DiarizationOptions
    from transcribe.media import load_audio

    d = diarizer()
    rows = []
    for item in manifest_items(args.manifest):
        audio = load_audio(item["audio"])
        t0 = time.perf_counter()
        features = d.features(audio)
        networks = time.perf_counter() - t0
        seconds, speakers = {}, {}
        for name, options in (("without", DiarizationOptions(turn_split_distance=0)), ("with", DiarizationOptions())):
            t0 = time.perf_counter()
            found = d.cluster(features, options, audio=audio)
            seconds[name] = time.perf_counter() - t0
            speakers[name] = len({t.speaker for t in found.turns})
        row = {"file": Path(item["audio"]).stem, "audio_s": round(audio.duration, 1), "networks_s": round(networks, 2),
               "clustering_s": round(seconds["without"], 2), "clustering_with_step_s": round(seconds["with"], 2),
               "speakers": [speakers["without"], speakers["with"]],
               "ratio": round((networks + seconds["with"]) / (networks + seconds["without"]), 3)}
        rows.append(row)
        print(f"{row['file']:32s} {row['audio_s']:7.1f} s audio  networks {row['networks_s']:7.2f} s  clustering "
              f"{row['clustering_s']:6.2f} s, with the step {row['clustering_with_step_s']:6.2f} s  "
              f"ratio {row['ratio']:.3f}", flush=True)
    total = sum(r["networks_s"] + r["clustering_s"] for r in rows)
    ratio = sum(r["networks_s"] + r["clustering_with_step_s"] for r in rows) / total
    print(f"diarization with the turn step / without, pooled: {ratio:.3f} ({cpu_description()})")
    if args.output:
        args.output.write_text(json.dumps({"cpu": cpu_description(), "ratio": round(ratio, 3), "rows": rows}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["features", "sweep", "compare", "enroll", "languages", "cost"])
    ap.add_argument("manifest", type=Path, nargs="+", help="one or more manifests (compare pools them)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--model", default="base")
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--cached-only", action="store_true", help="sweep: only meetings already in the cache")
    ap.add_argument("--grid", default=None, help="sweep: JSON list of DiarizationOptions to score (default: sweep_grid())")
    ap.add_argument("--extra", default=None, help="sweep: JSON list of extra DiarizationOptions to cross with")
    ap.add_argument("--languages", action="store_true",
                    help="sweep: the merge step keeps clusters of two languages apart (Whisper --model detects them)")
    args = ap.parse_args()
    commands = {"features": cmd_features, "sweep": cmd_sweep, "compare": cmd_compare, "enroll": cmd_enroll,
                "languages": cmd_languages, "cost": cmd_cost}
    commands[args.command](args)


if __name__ == "__main__":
    main()
