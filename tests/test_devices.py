"""Device choice: where faster-whisper cannot use CUDA, auto falls back and cuda refuses.

faster-whisper's CTranslate2 wheel needs cuBLAS 12, which torch's CUDA 13 wheels do not bring
(README "GPU"). These tests pretend to have a GPU without it; the real thing was checked on an H100
(benchmarks/RESULTS.md, "GPU").
"""

from __future__ import annotations

import pytest

import transcribe.asr
import transcribe.devices as devices
import transcribe.pipeline as pipeline_module
from transcribe.devices import asr_device
from transcribe.errors import UsageError
from transcribe.pipeline import Pipeline, PipelineOptions
from transcribe.streaming.session import StreamOptions, StreamSession


class FakeRecognizer:
    """Records how the pipeline asked for the ASR model; loads nothing."""

    def __init__(self, path, device, compute_type, threads):
        self.device, self.compute_type = device, compute_type

    def check_language(self, language):
        pass


class Asked(Exception):
    """Raised by `StoppingRecognizer` once it knows where it was asked to run."""


class StoppingRecognizer(FakeRecognizer):
    def __init__(self, path, device, compute_type, threads):
        raise Asked(device, compute_type)


@pytest.fixture
def gpu_without_cublas12(monkeypatch):
    monkeypatch.setattr(pipeline_module, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(devices, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(devices, "ctranslate2_cuda_problem", lambda: "needs cuBLAS 12")
    monkeypatch.setattr(pipeline_module, "Recognizer", FakeRecognizer)


def test_asr_device_rules(monkeypatch, caplog) -> None:
    monkeypatch.setattr(devices, "ctranslate2_cuda_problem", lambda: "needs cuBLAS 12")
    assert asr_device("auto", "cuda") == ("cpu", "int8")
    assert "speech recognition runs on the CPU: needs cuBLAS 12" in caplog.text
    with pytest.raises(UsageError, match="--device cuda: needs cuBLAS 12"):
        asr_device("cuda", "cuda", "float16")
    assert asr_device("cpu", "cpu", "float32") == ("cpu", "float32")  # the CPU never asks for cuBLAS
    monkeypatch.setattr(devices, "ctranslate2_cuda_problem", lambda: None)
    assert asr_device("auto", "cuda") == ("cuda", "float16")
    assert asr_device("cuda", "cuda", "int8_float16") == ("cuda", "int8_float16")


def test_auto_moves_asr_to_cpu(gpu_without_cublas12, store, caplog) -> None:
    p = Pipeline(PipelineOptions(model="tiny.en", diarize=False, device="auto"))
    assert (p.recognizer.device, p.recognizer.compute_type) == ("cpu", "int8")
    assert (p.asr_device, p.device) == ("cpu", "cuda")
    assert "needs cuBLAS 12" in caplog.text


def test_explicit_cuda_refuses(gpu_without_cublas12, store) -> None:
    p = Pipeline(PipelineOptions(model="tiny.en", diarize=False, device="cuda"))
    with pytest.raises(UsageError, match="--device cuda: needs cuBLAS 12"):
        p.recognizer


def test_cuda_used_when_ready(monkeypatch, store) -> None:
    monkeypatch.setattr(pipeline_module, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(devices, "ctranslate2_cuda_problem", lambda: None)
    monkeypatch.setattr(pipeline_module, "Recognizer", FakeRecognizer)
    p = Pipeline(PipelineOptions(model="tiny.en", diarize=False))
    assert (p.recognizer.device, p.recognizer.compute_type) == ("cuda", "float16")


@pytest.mark.parametrize("device, expected", [("auto", ("cpu", "int8")), ("cuda", None)])
def test_stream_follows_the_same_rule(gpu_without_cublas12, monkeypatch, store, device, expected) -> None:
    """`transcribe stream` on a GPU without cuBLAS 12 used to crash at its first pass."""
    monkeypatch.setattr(transcribe.asr, "Recognizer", StoppingRecognizer)
    options = StreamOptions(device=device, diarize=False)
    if expected is None:
        with pytest.raises(UsageError, match="--device cuda: needs cuBLAS 12"):
            StreamSession(options, None, store=store)
        return
    with pytest.raises(Asked) as asked:
        StreamSession(options, None, store=store)
    assert asked.value.args == expected
