"""Device choice: where faster-whisper cannot use CUDA, auto falls back and cuda refuses."""

from __future__ import annotations

import pytest

import transcribe.pipeline as pipeline_module
from transcribe.errors import UsageError
from transcribe.pipeline import Pipeline, PipelineOptions


class FakeRecognizer:
    """Records how the pipeline asked for the ASR model; loads nothing."""

    def __init__(self, path, device, compute_type, threads):
        self.device, self.compute_type = device, compute_type

    def check_language(self, language):
        pass


@pytest.fixture
def gpu_without_cublas12(monkeypatch):
    monkeypatch.setattr(pipeline_module, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(pipeline_module, "ctranslate2_cuda_problem", lambda: "needs cuBLAS 12")
    monkeypatch.setattr(pipeline_module, "Recognizer", FakeRecognizer)


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
    monkeypatch.setattr(pipeline_module, "ctranslate2_cuda_problem", lambda: None)
    monkeypatch.setattr(pipeline_module, "Recognizer", FakeRecognizer)
    p = Pipeline(PipelineOptions(model="tiny.en", diarize=False))
    assert (p.recognizer.device, p.recognizer.compute_type) == ("cuda", "float16")
