"""Run directories: rows appended as they finish, resumable after a kill.

One directory per resolved config, named by its hash. ``rows.jsonl`` gets one
line per (sample, method), written with a single ``write`` and flushed to
disk, so a crash loses at most the row being written -- and a torn last line
is dropped on reopen. ``summary.json`` then ``DONE`` are written last; a
rerun of a finished config does nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def config_hash(resolved: dict) -> str:
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class RunDir:
    def __init__(self, root: Path | str, resolved_config: dict):
        self.hash = config_hash(resolved_config)
        self.path = Path(root) / self.hash
        self.rows_path = self.path / "rows.jsonl"
        self.summary_path = self.path / "summary.json"
        self.done_path = self.path / "DONE"
        self.config = resolved_config

    @property
    def done(self) -> bool:
        return self.done_path.exists()

    def try_lock(self) -> bool:
        """Take this run directory for this process; False if another job holds it.

        A relaunched sweep can overlap a task that is still running (submitit
        returns at the first failed task); without the lock both would append
        the same rows. The lock is released when the process exits.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / ".lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            return False
        return True

    def unlock(self) -> None:
        lock = getattr(self, "_lock_file", None)
        if lock is not None and not lock.closed:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def open(self) -> list[dict]:
        """Create the directory (or reopen it) and return the rows already written."""
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path / "config.json", json.dumps(self.config, indent=2, sort_keys=True, default=str))
        return self._read_rows()

    def _read_rows(self) -> list[dict]:
        if not self.rows_path.exists():
            return []
        rows, good_bytes = [], 0
        with open(self.rows_path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn write from a killed job
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
                good_bytes += len(line)
        if good_bytes != self.rows_path.stat().st_size:
            with open(self.rows_path, "r+b") as f:
                f.truncate(good_bytes)
        return rows

    def append(self, row: dict) -> None:
        line = json.dumps(row, default=_jsonable) + "\n"
        with open(self.rows_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def finish(self, summary: dict) -> None:
        _atomic_write(self.summary_path, json.dumps(summary, indent=2, default=_jsonable))
        _atomic_write(self.done_path, "")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(obj: Any):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def read_rows(run_dirs: Iterable[Path]) -> list[dict]:
    out = []
    for d in run_dirs:
        p = Path(d) / "rows.jsonl"
        if p.exists():
            out.extend(json.loads(line) for line in p.read_text().splitlines() if line.strip())
    return out
