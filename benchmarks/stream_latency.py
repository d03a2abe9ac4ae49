#!/usr/bin/env python
"""Streaming latency, accuracy and stability, measured end to end at real-time speed.

A recording is pushed into `transcribe stream` as a live source would push it: 20 ms of PCM
every 20 ms, through standard input (`--via stdin`) or through a real nginx-rtmp server
(`--via rtmp`, AAC in FLV, as OBS or a media bridge would publish). A WebSocket client on the
caption server records when every message arrives. The reference time of each word is its end
in an offline `transcribe run`-style recognition of the same audio (tiny.en, beam 5, word
timestamps), matched to the streamed words by text alignment.

Reported (one run, one machine; the load average at start and end is printed with them):
- final caption latency: arrival of a final caption minus the reference end of its last word
  (median, p95), and the same per word;
- first partial: arrival of the first caption text of each utterance minus the start of its
  speech. An utterance is speech after a pause of 0.8 s or more; where it starts is taken from
  voice activity (Silero, the model faster-whisper bundles) over the pushed audio, which is
  exact to a frame (32 ms). The same figure over the utterances and starts of the offline
  recognition's words is kept beside it (`..._whisper_onsets`): Whisper's word times are off by
  tenths of a second, and some words come out with no length, which makes false pauses. An
  utterance that never got text is counted apart (`utterances_without_text`);
- WER of the streamed finals, of the offline recognition and of `transcribe run` itself (same
  model, --no-diarize) against the reference (STM) text, the gaps in points, and the
  speaker-attributed cpWER of the stream;
- with --loop N (the recording N times over, e.g. 60 x 30 s = 30 min): resident memory of the
  stream process and the recognizer lag over time.

    .venv/bin/python benchmarks/stream_latency.py                   # sample.wav through stdin
    .venv/bin/python benchmarks/stream_latency.py --via rtmp        # through nginx-rtmp
    .venv/bin/python benchmarks/stream_latency.py --loop 60         # 30 minutes: memory and lag
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SR = 16000
SAMPLE = ROOT / ".venv/lib/python3.11/site-packages/pyannote/audio/sample/sample.wav"
LJSPEECH = ROOT.parent / "shared" / "data" / "coqui_ljspeech"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tokens(text: str) -> list[str]:
    return [t for t in re.sub(r"[^\w' ]+", " ", text.lower()).split() if t]


def compose_ljspeech(folder: Path) -> tuple[Path, Path]:
    """The 32 LJSpeech clips of /work/shared/data (221.7 s, one reader, book text) joined with
    0.8 s of silence, as one WAV with an STM of exact clip times: a longer WER set."""
    import wave

    from transcribe.media import load_audio

    rows = [ln.strip().split("|") for ln in (LJSPEECH / "ljs_LJ001-0001_0032_from_NVIDIA_tacotron2_filelists.txt").read_text().splitlines() if ln.strip()]
    parts, stm, t = [np.zeros(SR // 2, np.float32)], [], 0.5
    for path, text in rows:
        a = load_audio(LJSPEECH / "tests/data/ljspeech/wavs" / Path(path).name).samples
        stm.append(f"ljspeech 1 LJ {t:.3f} {t + len(a) / SR:.3f} {text}")
        parts += [a, np.zeros(int(0.8 * SR), np.float32)]
        t += len(a) / SR + 0.8
    wav, ref = folder / "ljspeech.wav", folder / "ljspeech.stm"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes())
    ref.write_text("\n".join(stm) + "\n")
    return wav, ref


# ---------------------------------------------------------------------------- the media server


class NginxRtmp:
    """nginx with the RTMP module as our own process: its own prefix, config, pid and logs."""

    def __init__(self, folder: Path, port: int, idle_streams: bool = True):
        self.folder, self.port = folder, port
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        (folder / "nginx.conf").write_text(
            f"""load_module {RTMP_MODULE};
master_process off;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            idle_streams {"on" if idle_streams else "off"};
        }}
    }}
}}
"""
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NginxRtmp":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"), "-e", str(self.folder / "logs/error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start: " + (self.folder / "logs/error.log").read_text()[-500:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------------------- pushing audio


def paced_write(write, samples: np.ndarray, chunk_s: float = 0.02, t0_box: list | None = None) -> float:
    """Write s16le PCM in `chunk_s` pieces at real-time speed; returns the wall time of sample 0."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(chunk_s * SR) * 2
    t0 = time.monotonic()
    if t0_box is not None:
        t0_box.append(t0)
    for i in range(0, len(pcm), step):
        due = t0 + (i // 2) / SR
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        write(pcm[i:i + step])
    return t0


class CaptionClient(threading.Thread):
    """Records (arrival time, message) for every message of the caption server."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.messages: list[tuple[float, dict]] = []
        self.connected = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + 120
        while True:
            try:
                ws = connect(self.url, open_timeout=2)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.error = exc
                    self.connected.set()
                    return
                time.sleep(0.2)
        self.connected.set()
        try:
            with ws:
                for raw in ws:
                    self.messages.append((time.monotonic(), json.loads(raw)))
        except Exception as exc:  # closed at the end
            self.error = exc if "1001" not in str(exc) and "1000" not in str(exc) else None


# ---------------------------------------------------------------------------- analysis


def offline_words(audio: np.ndarray):
    from transcribe.asr import AsrOptions, Recognizer
    from transcribe.store import ModelStore
    from transcribe.types import Audio

    rec = Recognizer(ModelStore().require("tiny.en"), cpu_threads=0)
    t = time.perf_counter()
    result = rec(Audio(audio), AsrOptions(language="en"))
    return result.words, time.perf_counter() - t


def align(stream_words, ref_words, period: float) -> dict[int, int]:
    """Stream word index -> reference word index, matched by text (difflib) within each
    `period` of session time: a recording pushed N times is aligned once per repetition, so the
    same sentence said again is never matched to the wrong repetition."""
    match: dict[int, int] = {}
    by_k: dict[int, tuple[list[int], list[int]]] = {}
    for i, (_, w) in enumerate(stream_words):
        by_k.setdefault(int(w["start"] // period), ([], []))[0].append(i)
    for j, w in enumerate(ref_words):
        by_k.setdefault(int(w.start // period), ([], []))[1].append(j)
    for ia, jb in by_k.values():
        a = [(tokens(stream_words[i][1]["text"]) or ["_"])[0] for i in ia]
        b = [(tokens(ref_words[j].text) or ["_"])[0] for j in jb]
        for blk in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
            for k in range(blk.size):
                match[ia[blk.a + k]] = jb[blk.b + k]
    return match


def speech_onsets(audio: np.ndarray, pause: float = 0.8) -> list[float]:
    """Where each utterance starts, in seconds: voice activity over the audio (Silero, as
    faster-whisper runs it, no padding), runs of speech split at pauses of `pause` s or more."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=int(pause * 1000), speech_pad_ms=0, min_speech_duration_ms=100)
    return [round(r["start"] / SR, 3) for r in get_speech_timestamps(audio, options)]


def first_text(texts, t0: float, onsets: Sequence[float]) -> list[float | None]:
    """Seconds from each onset to the first caption text (partial or final) that reaches past
    it; None where none came."""
    return [next((t - (t0 + onset) for t, m in texts if m["end"] >= onset and t >= t0 + onset), None) for onset in onsets]


def analyse(messages, t0: float, ref_words, period: float, onsets: Sequence[float], utter_gap: float = 0.8) -> dict:
    finals = [(t, m) for t, m in messages if m.get("type") == "final"]
    stream_words = [(t, w) for t, m in finals for w in m["words"]]
    match = align(stream_words, ref_words, period)
    per_word = [stream_words[i][0] - (t0 + ref_words[j].end) for i, j in match.items()]
    # per caption: the last matched word of each final
    per_caption = []
    idx = 0
    for t, m in finals:
        n = len(m["words"])
        js = [match[i] for i in range(idx, idx + n) if i in match]
        if js:
            per_caption.append(t - (t0 + ref_words[max(js)].end))
        idx += n
    # first text of each utterance (partials or finals)
    texts = [(t, m) for t, m in messages if m.get("type") in ("partial", "final") and m.get("text")]
    first_all = first_text(texts, t0, onsets)
    first_from_speech = [x for x in first_all if x is not None]
    starts = [w for k, w in enumerate(ref_words) if k == 0 or w.start - ref_words[k - 1].end >= utter_gap]
    pairs = [(x, w) for x, w in zip(first_text(texts, t0, [w.start for w in starts]), starts) if x is not None]
    first_from_start = [x for x, _ in pairs]
    first_from_word = [x - (w.end - w.start) for x, w in pairs]
    server = [m["latency"] for _, m in finals if m.get("latency") is not None]
    q = lambda xs, p: round(float(np.percentile(xs, p)), 2) if xs else None  # noqa: E731
    return {
        "finals": len(finals),
        "matched_words": f"{len(match)}/{len(ref_words)}",
        "final_latency_caption_p50": q(per_caption, 50),
        "final_latency_caption_p95": q(per_caption, 95),
        "final_latency_word_p50": q(per_word, 50),
        "final_latency_word_p95": q(per_word, 95),
        "server_measured_p50": q(server, 50),
        "server_measured_p95": q(server, 95),
        "first_text_from_speech_start_p50": q(first_from_speech, 50),
        "first_text_from_speech_start_p95": q(first_from_speech, 95),
        "first_text_from_speech_start_max": round(max(first_from_speech), 2) if first_from_speech else None,
        "first_text_within_1s": f"{sum(x <= 1.0 for x in first_from_speech)}/{len(onsets)}",
        "utterances": len(onsets),
        "utterances_without_text": sum(x is None for x in first_all),
        "first_text_from_speech_start_p50_whisper_onsets": q(first_from_start, 50),
        "first_text_from_speech_start_p95_whisper_onsets": q(first_from_start, 95),
        "first_text_from_first_word_end_p50_whisper_onsets": q(first_from_word, 50),
        "utterances_whisper_onsets": len(starts),
    }


def run_words(audio_path: Path, model: str = "tiny.en"):
    """The words of `transcribe run` itself (the installed command, --no-diarize, JSON) on the
    same audio with the same model: the offline figure the streaming WER is held against."""
    from transcribe.types import Word

    with tempfile.TemporaryDirectory(prefix="stream-bench-run-") as d:
        cmd = [str(Path(sys.executable).parent / "transcribe"), "run", str(audio_path), "-m", model, "-l", "en",
               "--no-diarize", "-f", "json", "-o", d, "-q"]
        subprocess.run(cmd, check=True, timeout=3600)
        data = json.loads(next(Path(d).glob("*.json")).read_text())
    return [Word(w["start"], w["end"], w["word"] if "word" in w else w["text"]) for seg in data["segments"] for w in seg["words"]]


def final_words(messages) -> list:
    """The words of the final captions among (time, message) pairs, with their speakers."""
    from transcribe.types import Word

    return [Word(w["start"], w["end"], w["text"], w["probability"], m["speaker"])
            for _, m in messages if m.get("type") == "final" for w in m["words"]]


def wers(messages, ref_words, stm: Path | None, loops: int, run: list | None = None) -> dict:
    from transcribe.attribution import build_segments
    from transcribe.evaluation.metrics import speaker_attributed_errors, word_errors

    words = final_words(messages)
    stream_text = "".join(w.text for w in words)
    offline_text = "".join(w.text for w in ref_words)
    out = {}
    if stm is not None and loops == 1:
        from transcribe.evaluation.readers import read_stm

        ref_segments = read_stm(stm)
        ref_text = " ".join(s.text for s in ref_segments)
        s = word_errors(ref_text, stream_text, "en")
        o = word_errors(ref_text, offline_text, "en")
        out["wer_stream"] = round(s.rate, 4)
        out["wer_offline"] = round(o.rate, 4)
        out["wer_gap_points"] = round(100 * (s.rate - o.rate), 1)
        if run is not None:
            r = word_errors(ref_text, " ".join(w.text.strip() for w in run), "en")
            out["wer_transcribe_run"] = round(r.rate, 4)
            out["wer_gap_vs_transcribe_run_points"] = round(100 * (s.rate - r.rate), 1)
        cp, _ = speaker_attributed_errors(ref_segments, build_segments(words), "en")
        out["cpwer_stream"] = round(cp.rate, 4)
    out["wer_stream_vs_offline"] = round(word_errors(offline_text, stream_text, "en").rate, 4)
    out["speakers"] = sorted({w.speaker for w in words if w.speaker})
    return out


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, default=SAMPLE, help="a recording, or 'ljspeech' for the LJSpeech composite")
    ap.add_argument("--stm", type=Path, default=None, help="reference STM [default: sample.stm beside sample.wav]")
    ap.add_argument("--via", choices=("stdin", "rtmp"), default="stdin")
    ap.add_argument("--loop", type=int, default=1, help="push the recording this many times (1 s apart)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures and messages here (JSON)")
    ap.add_argument("--reanalyse", type=Path, default=None, help="recompute the figures of a run saved with --out")
    ap.add_argument("--no-run", action="store_true", help="skip `transcribe run` (its WER is reported beside the stream's)")
    ap.add_argument("stream_args", nargs="*", help="extra options for `transcribe stream` (after --)")
    args = ap.parse_args()
    if str(args.audio) == "ljspeech":
        composed = Path(tempfile.mkdtemp(prefix="ljspeech-"))
        atexit.register(shutil.rmtree, composed, True)
        args.audio, args.stm = compose_ljspeech(composed)
    stm = args.stm or (args.audio.with_suffix(".stm") if args.audio.with_suffix(".stm").is_file() else None)

    from transcribe.media import ffmpeg_binary, load_audio

    audio = load_audio(args.audio).samples
    print(f"load average at start: {loadavg()}", flush=True)
    ref, offline_s = offline_words(audio)
    print(f"offline reference: {len(ref)} words in {offline_s:.1f} s", flush=True)
    run = None if args.no_run or args.loop > 1 or stm is None else run_words(args.audio)
    gap = np.zeros(SR, dtype=np.float32)
    pushed = np.concatenate([np.concatenate([audio, gap]) for _ in range(args.loop)]) if args.loop > 1 else audio
    period = (len(audio) + len(gap)) / SR
    from transcribe.types import Word

    ref_all = [Word(w.start + k * period, w.end + k * period, w.text) for k in range(args.loop) for w in ref]
    onsets = [onset + k * period for k in range(args.loop) for onset in speech_onsets(audio)]  # as ref_all
    if args.reanalyse is not None:
        saved = json.loads(args.reanalyse.read_text())
        msgs = [(t, m) for t, m in saved["messages"]]
        figures = {k: saved["figures"][k] for k in ("via", "audio", "seconds_pushed", "loop") if k in saved["figures"]}
        figures.update(analyse(msgs, 0.0, ref_all, period if args.loop > 1 else len(pushed) / SR + 1, onsets))
        figures.update(wers(msgs, ref_all, stm, args.loop, run))
        keep = ("lag_max", "lag_mean_first_third", "lag_mean_last_third", "shed_seconds", "rss_mb_first", "rss_mb_max",
                "rss_mb_last", "rss_mb_per_10min_second_half", "load_average_end")
        figures.update({k: saved["figures"][k] for k in keep if k in saved["figures"]})
        for k, v in figures.items():
            print(f"{k:<36}  {v}")
        return

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    cmd = [sys.executable, "-m", "transcribe.streaming.cli", "--serve", f"127.0.0.1:{port}", "-q", *args.stream_args]
    nginx = publisher = None
    try:
        if args.via == "rtmp":
            rport = free_port()
            nginx = NginxRtmp(tmp / "nginx", rport).start()
            url = f"rtmp://127.0.0.1:{rport}/live/bench"
            proc = subprocess.Popen([*cmd, url], cwd=ROOT, stderr=subprocess.PIPE)
        else:
            proc = subprocess.Popen([*cmd, "--stdin-format", "raw", "-"], cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        client = CaptionClient(f"ws://127.0.0.1:{port}/")
        client.start()
        client.connected.wait()
        if client.error:
            raise SystemExit(f"caption server did not come up: {client.error}; {proc.stderr.read().decode()[-1000:]}")
        rss: list[tuple[float, float]] = []
        stop_rss = threading.Event()

        def sample_rss() -> None:
            while not stop_rss.wait(5.0):
                r = rss_mb(proc.pid)
                if r is not None:
                    rss.append((time.monotonic(), r))

        threading.Thread(target=sample_rss, daemon=True).start()
        t0_box: list[float] = []
        if args.via == "rtmp":
            publisher = subprocess.Popen(
                [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(SR), "-ac", "1", "-i", "pipe:0",
                 "-c:a", "aac", "-b:a", "96k", "-f", "flv", url],
                stdin=subprocess.PIPE,
            )
            time.sleep(1.0)  # the player is connected and waiting; now publish
            t0 = paced_write(lambda b: (publisher.stdin.write(b), publisher.stdin.flush()), pushed, t0_box=t0_box)
            time.sleep(0.5)
            publisher.stdin.close()
            publisher.wait(10)
            time.sleep(6.0)  # let the last captions out
            proc.send_signal(signal.SIGINT)
        else:
            t0 = paced_write(lambda b: (proc.stdin.write(b), proc.stdin.flush()), pushed, t0_box=t0_box)
            proc.stdin.close()
        proc.wait(600)
        stop_rss.set()
        client.join(30)
        err = proc.stderr.read().decode()
        if proc.returncode not in (0,):
            print(f"stream exited {proc.returncode}: {err[-2000:]}")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    msgs = client.messages
    figures = {"via": args.via, "audio": str(args.audio), "seconds_pushed": round(len(pushed) / SR, 1), "loop": args.loop}
    figures.update(analyse(msgs, t0, ref_all, period if args.loop > 1 else len(pushed) / SR + 1, onsets))
    figures.update(wers(msgs, ref_all, stm, args.loop, run))
    statuses = [(t - t0, m) for t, m in msgs if m.get("type") == "status"]
    lags = [m["lag"] for _, m in statuses]
    if lags:
        third = max(1, len(lags) // 3)
        figures["lag_max"] = round(max(lags), 2)
        figures["lag_mean_first_third"] = round(statistics.mean(lags[:third]), 2)
        figures["lag_mean_last_third"] = round(statistics.mean(lags[-third:]), 2)
        figures["shed_seconds"] = statuses[-1][1]["shed"]
    if rss:
        figures["rss_mb_first"] = round(rss[0][1], 1)
        figures["rss_mb_max"] = round(max(r for _, r in rss), 1)
        figures["rss_mb_last"] = round(rss[-1][1], 1)
        half = [(t, r) for t, r in rss if t >= rss[len(rss) // 2][0]]
        if len(half) >= 3:
            slope = np.polyfit([t for t, _ in half], [r for _, r in half], 1)[0]
            figures["rss_mb_per_10min_second_half"] = round(float(slope) * 600, 2)
    figures["load_average_end"] = loadavg()
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    if args.out:
        saved = {"figures": figures, "messages": [(round(t - t0, 3), m) for t, m in msgs]}
        saved["rss_mb"] = [(round(t - t0, 1), round(r, 1)) for t, r in rss]  # every 5 s, from the first push
        args.out.write_text(json.dumps(saved, indent=1))


if __name__ == "__main__":
    main()
