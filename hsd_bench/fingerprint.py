"""Content hashes of what a run's results depend on besides its config.

Why: a run directory is named by a hash of its config, and a finished one is
never run again. A config names a dataset file or a checkpoint by *path*;
editing the file in place must give a new run, not the old rows. So the run
identity carries a SHA-256 of every local input file (:func:`input_hashes`),
and every row records the code that produced it (:func:`code_version`), so a
resumed run never silently mixes two versions of the harness.

Hashing a multi-GB checkpoint on every launch would be slow, so file hashes
are cached in a small JSON file keyed by the file's path *and* its stat
signature -- device, inode, size, mtime and ctime in nanoseconds. ctime
cannot be set from user space, so rewriting, replacing or copying a file
over it (even with ``touch -r`` / ``rsync -t`` restoring the mtime)
invalidates the entry. The cache is best effort: if it cannot be read or
written, files are simply hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

# Files of a checkpoint directory that change what a model computes:
# config, weights, tokenizer. Top level only, as transformers reads them.
CHECKPOINT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".tiktoken", ".txt", ".jinja")
# The harness code whose changes can change results (conf/ values are in the config itself).
CODE_DIR = Path(__file__).resolve().parent
CACHE_ENV = "HSD_BENCH_HASH_CACHE"
_CACHE_MAX_ENTRIES = 2000


def cache_path() -> Path:
    """``$HSD_BENCH_HASH_CACHE``, else ``$XDG_CACHE_HOME/hsd-bench/file-hashes.json``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hsd-bench" / "file-hashes.json"


def _signature(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _read_cache(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict) -> None:
    if len(cache) > _CACHE_MAX_ENTRIES:  # keep the newest entries (dicts keep insertion order)
        cache = dict(list(cache.items())[-_CACHE_MAX_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".file-hashes.")
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache we cannot write only costs a rehash next time


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, from the cache when the file is provably unchanged."""
    return files_sha256([Path(path)])[0]


def files_sha256(paths: Iterable[Path]) -> list[str]:
    """:func:`file_sha256` of several files with one read and one write of the cache."""
    paths = [Path(p).resolve() for p in paths]
    cpath = cache_path()
    cache = _read_cache(cpath)
    out, changed = [], False
    for p in paths:
        before = _signature(p.stat())
        hit = cache.get(str(p))
        if hit and hit.get("sig") == before:
            out.append(hit["sha256"])
            continue
        digest = _sha256(p)
        if _signature(p.stat()) == before:  # not modified while we read it: safe to remember
            cache.pop(str(p), None)
            cache[str(p)] = {"sig": before, "sha256": digest}
            changed = True
        out.append(digest)
    if changed:
        _write_cache(cpath, cache)
    return out


def checkpoint_files(directory: Path) -> list[Path]:
    """The files of a checkpoint directory that decide its outputs (see CHECKPOINT_SUFFIXES)."""
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix in CHECKPOINT_SUFFIXES
    )


def directory_sha256(directory: Path) -> str:
    """One hash over ``name:sha256`` of each checkpoint file, so a rename counts as a change."""
    files = checkpoint_files(directory)
    digests = files_sha256(files)
    blob = "\n".join(f"{p.name}:{d}" for p, d in zip(files, digests))
    return hashlib.sha256(blob.encode()).hexdigest()


def local_input_sha256(path: Path) -> str | None:
    """The content hash of a local file or checkpoint directory; None when it does not exist."""
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return directory_sha256(path)
    return None


def input_hashes(inputs: dict[str, Path | None]) -> dict[str, str]:
    """``{config key: content hash}`` of the inputs that exist locally (Hub ids are not hashed)."""
    out = {}
    for key, path in inputs.items():
        digest = local_input_sha256(path) if path is not None else None
        if digest is not None:
            out[key] = digest[:16]
    return out


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=CODE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def source_sha256(root: Path | None = None) -> str:
    """Hash of every source file of the package: what the code *is*, with or without git."""
    root = CODE_DIR if root is None else root
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            h.update(f"{p.relative_to(root).as_posix()}\0".encode())
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """What produced a row: ``{"source", "commit", "dirty"}`` or, outside git, ``{"source", "package"}``.

    ``source`` (a hash of the package's files) decides whether two rows come
    from the same code -- a commit that touches only docs keeps it, an
    uncommitted edit changes it. ``commit`` + ``dirty`` (or the installed
    package version) say where that code came from, for people.
    """
    version: dict[str, Any] = {"source": source_sha256()[:16]}
    top = _git("rev-parse", "--show-toplevel")
    # only our own checkout: an installed copy may sit inside some other repository (a venv in a project)
    commit = _git("rev-parse", "HEAD") if top and Path(top).resolve() == CODE_DIR.parent else None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=normal", "--", str(CODE_DIR))
        version.update(commit=commit, dirty=bool(status))
    else:
        from importlib.metadata import PackageNotFoundError, version as pkg_version

        try:
            version["package"] = f"hsd-bench {pkg_version('hsd-bench')}"
        except PackageNotFoundError:
            version["package"] = "hsd-bench (not installed, no git)"
    return version


def describe(version: dict[str, Any] | None) -> str:
    """A short human label: ``86abbd2c1e2f``, ``86abbd2c1e2f+dirty``, ``hsd-bench 0.1.0``; always with the source hash."""
    if not version:
        return "unknown (rows written before code versions were recorded)"
    if version.get("commit"):
        label = version["commit"][:12] + ("+dirty" if version.get("dirty") else "")
    else:
        label = version.get("package", "unknown")
    return f"{label} [source {version.get('source', '?')}]"
