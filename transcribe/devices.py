"""Device and numeric precision choices shared by the ASR and diarization stages."""

from __future__ import annotations

import logging
from pathlib import Path

from transcribe.errors import UsageError

log = logging.getLogger("transcribe")

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


def ctranslate2_cuda_problem() -> str | None:
    """Why faster-whisper cannot run on CUDA here, or None when it can.

    CTranslate2's PyPI wheels (4.x) are built for CUDA 12 and load cuBLAS 12 at the first decode,
    while torch 2.11's wheels bring CUDA 13 only. The `nvidia-cublas-cu12` wheel (`pip install
    'transcribe[gpu]'`) provides it; its libraries are loaded here by full path, so no
    LD_LIBRARY_PATH is needed.
    """
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec("nvidia.cublas")
    folders = [Path(p) / "lib" for p in (spec.submodule_search_locations or [])] if spec else []
    for folder in folders:
        for lib in ("libcublasLt.so.12", "libcublas.so.12"):
            if (folder / lib).is_file():
                try:
                    ctypes.CDLL(str(folder / lib), mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
    try:
        ctypes.CDLL("libcublas.so.12", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return "faster-whisper needs cuBLAS 12 on CUDA: pip install 'nvidia-cublas-cu12' (or the [gpu] extra)"
    return None


def asr_device(requested: str, device: str, compute_type: str | None = None) -> tuple[str, str]:
    """Where faster-whisper runs, and in what precision: `device` (resolved from the user's
    `requested` one) with `compute_type` or its default, unless CUDA lacks cuBLAS 12. Then an
    explicit `--device cuda` is refused, and `auto` moves speech recognition to the CPU with a
    warning (torch, and so diarization, stays on the GPU)."""
    problem = ctranslate2_cuda_problem() if device == "cuda" else None
    if problem and requested == "cuda":
        raise UsageError(f"--device cuda: {problem}")
    if problem:
        log.warning("speech recognition runs on the CPU: %s", problem)
        return "cpu", default_compute_type("cpu")
    return device, compute_type or default_compute_type(device)
