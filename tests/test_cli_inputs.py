"""Bad input through the CLI: one clear line on stderr, a documented exit code, nothing lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import cli
from conftest import TRANSCRIBE, run_cli
from transcribe.media import ffmpeg_binary

FAST = ("--model", "tiny.en", "--quiet")


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def assert_empty(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "notes.mp3", b"these are my meeting notes, not audio\n" * 20), "not a media file"),
        (lambda d: _write(d / "empty.wav", b""), "empty (0 bytes)"),
    ],
    ids=["missing", "directory", "text-named-mp3", "zero-length"],
)
def test_unreadable_input(tmp_path: Path, out: Path, store, make, message: str) -> None:
    src = make(tmp_path)
    r = run_cli("run", src, "-o", out, *FAST)
    assert r.returncode == cli.EXIT_INPUT
    assert message in one_error_line(r.stderr)
    assert_empty(out)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_truncated_wav(tmp_path: Path, out: Path, store, sample: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(sample.read_bytes()[: 200_000])  # header says 30 s, 6 s remain
    r = run_cli("run", cut, "-o", out, *FAST)
    assert r.returncode == cli.EXIT_INPUT
    assert "truncated" in one_error_line(r.stderr)
    assert_empty(out)


def test_corrupt_mp4(tmp_path: Path, out: Path, store, sample: Path) -> None:
    good = tmp_path / "good.mp4"
    ffmpeg("-i", str(sample), "-t", "5", "-c:a", "aac", str(good))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    r = run_cli("run", bad, "-o", out, *FAST)
    assert r.returncode == cli.EXIT_INPUT
    assert "cannot decode" in one_error_line(r.stderr) or "truncated" in r.stderr
    assert_empty(out)


def test_video_without_audio(tmp_path: Path, out: Path, store) -> None:
    video = tmp_path / "silent-film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10", "-c:v", "mpeg4", str(video))
    r = run_cli("run", video, "-o", out, *FAST)
    assert r.returncode == cli.EXIT_INPUT
    assert "no audio stream" in one_error_line(r.stderr)
    assert_empty(out)


def test_unknown_format_and_model(sample: Path, out: Path, store) -> None:
    r = run_cli("run", sample, "-o", out, "-f", "vtt,docx", "--quiet")
    assert r.returncode == cli.EXIT_INPUT
    assert "docx" in one_error_line(r.stderr)
    r = run_cli("run", sample, "-o", out, "--model", "huge-v9", "--quiet")
    assert r.returncode == cli.EXIT_MODEL
    assert "unknown model 'huge-v9'" in one_error_line(r.stderr)
    assert_empty(out)


def test_conflicting_options(sample: Path, out: Path, store) -> None:
    r = run_cli("run", sample, "-o", out, "--num-speakers", "2", "--max-speakers", "3", "--quiet")
    assert r.returncode == cli.EXIT_INPUT
    assert "not both" in one_error_line(r.stderr)
    r = run_cli("run", sample, "-o", out, "--speaker-names", "Diane,SPEAKER_01=Sheila", "--quiet")
    assert r.returncode == cli.EXIT_INPUT
    one_error_line(r.stderr)


def test_output_folder_cannot_be_written(tmp_path: Path, sample: Path, store) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file")
    r = run_cli("run", sample, "-o", blocker, *FAST)
    assert r.returncode == cli.EXIT_OUTPUT
    assert "not a folder" in one_error_line(r.stderr)
    r = run_cli("run", sample, "-o", blocker / "sub", *FAST)
    assert r.returncode == cli.EXIT_OUTPUT
    assert "cannot create the output folder" in one_error_line(r.stderr)
    assert blocker.read_text() == "I am a file"


def test_existing_outputs_are_not_overwritten(sample: Path, out: Path, store) -> None:
    mine = out / "sample.vtt"
    mine.write_text("my own subtitles")
    r = run_cli("run", sample, "-o", out, "-f", "vtt,json", *FAST)
    assert r.returncode == cli.EXIT_OUTPUT
    assert "already exists: use --overwrite" in one_error_line(r.stderr)
    assert mine.read_text() == "my own subtitles"
    assert sorted(p.name for p in out.iterdir()) == ["sample.vtt"]


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path, sample: Path, out: Path, store) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    r = run_cli("run", bad, sample, "-o", out, "-f", "vtt", "--no-diarize", *FAST)
    assert r.returncode == cli.EXIT_PARTIAL
    assert "broken.wav" in one_error_line(r.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["sample.vtt"]


def test_silence_gives_valid_empty_outputs(tmp_path: Path, out: Path, store) -> None:
    quiet = tmp_path / "quiet.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "20", str(quiet))
    r = run_cli("run", quiet, "-o", out, "--model", "tiny.en")
    assert r.returncode == cli.EXIT_OK, r.stderr
    assert "no speech" in r.stderr.lower()
    import json

    import webvtt

    data = json.loads((out / "quiet.json").read_text())
    assert data["segments"] == [] and data["duration"] == pytest.approx(20.0, abs=0.05)
    assert list(webvtt.read(out / "quiet.vtt")) == []
    assert (out / "quiet.rttm").read_text() == ""
    assert "No speech was detected" in (out / "quiet.md").read_text()


def test_ctrl_c_leaves_no_partial_output(sample: Path, out: Path, store) -> None:
    proc = subprocess.Popen(
        [str(TRANSCRIBE), "run", str(sample), "-o", str(out), "--model", "tiny.en"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored, and Python then installs no handler:
        # give the child the default, as a terminal would, whatever started pytest.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(6)  # models loaded, diarization or recognition under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err
    assert_empty(out)


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(cli.app)

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, path + [name])

    for path, cmd in walk(group, []):
        assert (cmd.help or "").strip(), f"`transcribe {' '.join(path)}` has no help text"
        for param in cmd.params:
            if param.name != "help" and hasattr(param, "help") and param.param_type_name == "option":
                assert (param.help or "").strip(), f"`transcribe {' '.join(path)}` option {param.name} has no help"
