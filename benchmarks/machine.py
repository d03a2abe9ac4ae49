"""What a benchmark ran on, for its JSON: CTranslate2's int8 results depend on the CPU's
vector instructions (the same code gave different words on an AVX2-only CPU than on the one
before it), so figures are only comparable on the same kind of CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """For example "AMD EPYC, 2 cores, AVX2"."""
    name, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return ", ".join(part for part in (name, f"{os.cpu_count()} cores", isa) if part)
