#!/usr/bin/env bash
# Here, in the repository root: the parts to carry to the GPU machine, one per call (README.md).
set -euo pipefail
grep -qx "/.dev/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.dev/" >> .git/info/exclude; }
rm -rf .dev/pack && mkdir -p .dev/pack/.whl .dev/pack/models
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .dev/pack/.whl \
    ctranslate2==4.8.5 faster-whisper==1.2.1 jiwer==4.0.0 rapidfuzz==3.14.6 whisper-normalizer==0.1.15 \
    indic-numtowords more-itertools text2num==3.1.0
cp -r models/base .dev/pack/models/
.venv/bin/python benchmarks/device/clips.py .dev/pack/clips.npz
rm -f .dev/p[0-9]
(cd .dev/pack && tar cf - .whl models clips.npz) | split -b 42000000 -d -a 1 - .dev/p
ls -l .dev/p[0-9]
