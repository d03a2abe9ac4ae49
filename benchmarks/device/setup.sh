# On the GPU machine, sourced in the repository root once every part is in /tmp/parts (README.md).
set -e
export PYTHONUNBUFFERED=1 PYANNOTE_METRICS_ENABLED=0 HF_HUB_OFFLINE=1
mkdir -p /tmp/pk && cat /tmp/parts/p* | tar x -C /tmp/pk
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/pk/.whl/*.whl
mkdir -p /tmp/site/av && : > /tmp/site/av/__init__.py  # faster_whisper imports av at load; arrays only here
mkdir -p /tmp/models /tmp/cu12 && cp models/manifest.json /tmp/models/
rm -rf /tmp/models/base && mv /tmp/pk/models/base /tmp/models/base
CU13=$(python3 -c "import nvidia, os; print([os.path.join(p, 'cu13', 'lib') for p in nvidia.__path__ if os.path.isdir(os.path.join(p, 'cu13', 'lib'))][0])")
ln -sf "$CU13/libcublas.so.13" /tmp/cu12/libcublas.so.12  # measurement only (README.md)
export PYTHONPATH=/tmp/site TRANSCRIBE_MODELS=/tmp/models LD_LIBRARY_PATH=/tmp/cu12:$CU13:${LD_LIBRARY_PATH:-}
export TRANSCRIBE_CLIPS_NPZ=/tmp/pk/clips.npz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import ctranslate2; print('CTranslate2', ctranslate2.__version__, 'CUDA devices', ctranslate2.get_cuda_device_count())"
set +e
