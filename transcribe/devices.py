"""Device and numeric precision choices shared by the ASR and diarization stages."""

from __future__ import annotations

from transcribe.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """'auto' is CUDA when torch sees a GPU, else the CPU; 'cuda' without a GPU is refused."""
    if device not in DEVICES:
        raise UsageError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def default_compute_type(device: str) -> str:
    """int8 on the CPU, float16 on CUDA: faster-whisper's fastest accurate choices."""
    return "float16" if device == "cuda" else "int8"
