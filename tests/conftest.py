"""Shared fixtures: the model store, real recordings, and running the CLI as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from transcribe.samples import pyannote_sample
from transcribe.store import ModelStore

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
TRANSCRIBE = Path(sys.executable).parent / "transcribe"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: object, cwd: Path | None = None, timeout: float = 900, env: dict | None = None) -> Result:
    """Run the installed `transcribe` command in a subprocess, exactly as a user would."""
    proc = subprocess.run(
        [str(TRANSCRIBE), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def store() -> ModelStore:
    store = ModelStore()
    missing = [n for n in ("tiny.en", "base", "segmentation-3.0", "campplus") if store.status(n, check=False).problems]
    if missing:
        pytest.fail(f"models not pulled: {', '.join(missing)}; run `make models` (transcribe models pull)")
    return store


@pytest.fixture(scope="session")
def sample() -> Path:
    """pyannote's 30 s two-speaker sample.wav (with sample.rttm and sample.stm beside it)."""
    return pyannote_sample(".wav")

