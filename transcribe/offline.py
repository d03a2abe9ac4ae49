"""Keep third-party libraries off the network. Imported before pyannote or huggingface_hub load.

huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and pyannote.audio sends
telemetry unless PYANNOTE_METRICS_ENABLED=0. Only `transcribe models pull` may reach the network,
and it runs in its own process without importing this module first.
"""

import os

os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
