"""Run directories: rows appended as they finish, resumable after a kill.

One directory per run identity (the resolved config plus content hashes of
its input files), named by its hash. ``rows.jsonl`` gets one line per
(sample, method), written with a single ``write`` and flushed to disk, so a
crash loses at most the row being written -- and a torn last line is dropped
on reopen. A corrupt line elsewhere (a disk or editing accident) is moved to
``rows.corrupt.jsonl`` and the valid rows around it are kept; its sample is
generated again. ``summary.json`` then ``DONE`` are written last; a rerun of
a finished run does nothing.

Every failure to write the results directory (read-only, a file in the way,
a full disk) is a :class:`ResultsDirError` that names ``results_dir``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

LOCK_NAME = ".lock"
CORRUPT_NAME = "rows.corrupt.jsonl"


class ResultsDirError(ValueError):
    """The results directory cannot be written; the message names ``results_dir`` and the cause."""


def config_hash(resolved: dict) -> str:
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class RowScan:
    """What :func:`scan_rows` found in a ``rows.jsonl``."""

    rows: list[dict] = field(default_factory=list)
    good_lines: list[bytes] = field(default_factory=list)  # the raw lines of ``rows``
    corrupt: list[tuple[int, bytes]] = field(default_factory=list)  # (1-based line number, raw line)
    torn_tail: bool = False  # the last line has no newline: a write cut short


def scan_rows(path: Path) -> RowScan:
    """Every valid row of ``path``; corrupt complete lines and a torn last line are reported, not fatal."""
    scan = RowScan()
    if not path.exists():
        return scan
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                scan.torn_tail = True  # only the last line can lack one
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                row = None
            if isinstance(row, dict) and "sample_id" in row and "method" in row:
                scan.rows.append(row)
                scan.good_lines.append(line)
            else:
                scan.corrupt.append((lineno, line))
    return scan


class RunDir:
    def __init__(self, root: Path | str, resolved_config: dict):
        self.root = Path(root)
        self.hash = config_hash(resolved_config)
        self.path = self.root / self.hash
        self.rows_path = self.path / "rows.jsonl"
        self.summary_path = self.path / "summary.json"
        self.done_path = self.path / "DONE"
        self.lock_path = self.path / LOCK_NAME
        self.config = resolved_config
        self.set_aside: list[int] = []  # line numbers moved to rows.corrupt.jsonl by open()
        self.dropped_torn_tail = False

    @property
    def done(self) -> bool:
        return self.done_path.exists()

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn an OS error while writing the run directory into a message that names results_dir."""
        try:
            yield
        except OSError as err:
            raise ResultsDirError(_write_error(self.root, what, err, resumable=True)) from None

    def try_lock(self) -> bool:
        """Take this run directory for this process; False if another job holds it.

        A relaunched sweep can overlap a task that is still running (submitit
        returns at the first failed task); without the lock both would append
        the same rows. The lock is released when the process exits. A lock
        file removed by :meth:`unlock` of a job that had nothing to keep is
        detected (its inode is no longer the path's) and taken afresh.
        """
        with self._writing("create the run directory"):
            for _ in range(5):
                self.path.mkdir(parents=True, exist_ok=True)
                lock = open(self.lock_path, "a")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    return False
                try:
                    same = os.stat(self.lock_path).st_ino == os.fstat(lock.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._lock_file = lock
                    return True
                lock.close()  # removed under us by a job that gave the directory up: retry
        return False

    def unlock(self) -> None:
        """Release the lock; a directory left holding nothing but the lock (and config) is removed."""
        lock = getattr(self, "_lock_file", None)
        if lock is None or lock.closed:
            return
        try:
            leftovers = {p.name for p in self.path.iterdir()}
            if leftovers <= {LOCK_NAME, "config.json"}:
                for name in leftovers:
                    (self.path / name).unlink()
                self.path.rmdir()
        except OSError:
            pass  # nothing to tidy, or we may not: the directory stays as it is
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()

    def open(self) -> list[dict]:
        """Create the directory (or reopen it) and return the valid rows already written.

        A torn last line is cut off. A corrupt line elsewhere is appended to
        ``rows.corrupt.jsonl`` and ``rows.jsonl`` is rewritten without it
        (atomically), so later appends follow valid rows; ``set_aside`` lists
        the line numbers moved, for the console.
        """
        with self._writing("write config.json of the run directory"):
            self.path.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.path / "config.json", json.dumps(self.config, indent=2, sort_keys=True, default=str))
        scan = scan_rows(self.rows_path)
        self.set_aside = [n for n, _ in scan.corrupt]
        self.dropped_torn_tail = scan.torn_tail
        with self._writing("repair rows.jsonl"):
            if scan.corrupt:
                with open(self.path / CORRUPT_NAME, "ab") as f:
                    f.writelines(line for _, line in scan.corrupt)
                    f.flush()
                    os.fsync(f.fileno())
            if scan.corrupt or scan.torn_tail:
                _atomic_write_bytes(self.rows_path, b"".join(scan.good_lines))
        return scan.rows

    def append(self, row: dict) -> None:
        line = _row_line(row)
        with self._writing("append a row to rows.jsonl"):
            with open(self.rows_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def rewrite(self, rows: list[dict]) -> None:
        """Replace rows.jsonl with ``rows`` in one atomic step (the file is either the old or
        the new one after a crash): how deferred scores reach the rows already written."""
        text = "".join(map(_row_line, rows))
        with self._writing("rewrite rows.jsonl with the scores"):
            _atomic_write(self.rows_path, text)

    def finish(self, summary: dict) -> None:
        with self._writing("write summary.json and DONE"):
            _atomic_write(self.summary_path, json.dumps(summary, indent=2, default=_jsonable))
            _atomic_write(self.done_path, "")


def check_results_dir_named(root: Any, key: str = "results_dir") -> None:
    """``root`` names a directory: an empty one is Path(""), the current directory, so run directories
    would land wherever run.py was started. Writes nothing (run.py's validation calls it too)."""
    if not isinstance(root, (str, Path)) or not str(root).strip():
        raise ResultsDirError(f"{key}={str(root) if isinstance(root, Path) else root!r} is empty; valid: a directory "
                              f"(created if missing), e.g. {key}=runs")


def check_results_dir(root: Path | str, key: str = "results_dir") -> None:
    """Fail now, naming ``key``, if run directories cannot be created under ``root``.

    Probes by creating (and removing) a temporary file, which catches a
    read-only file system, missing permissions and a file in the way alike.
    """
    import tempfile

    check_results_dir_named(root, key)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise ResultsDirError(_write_error(root, "create directories in it", err, key)) from None


def _write_error(root: Path, what: str, err: OSError, key: str = "results_dir", resumable: bool = False) -> str:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a path component is a file, not a directory",
        errno.EEXIST: "a file of that name is in the way",
    }.get(err.errno, err.strerror or type(err).__name__)
    where = f" ({err.filename})" if err.filename else ""
    return (
        f"{key}={str(root)!r}: cannot {what}: {reason}{where}. "
        f"valid: a writable directory (created if missing); set {key}=<dir>"
        + (" (the rows already written are kept: a relaunch resumes from them)" if resumable else "")
    )


def _row_line(row: dict) -> str:
    """One row as it stands in rows.jsonl (appended or rewritten alike)."""
    return json.dumps(row, default=_jsonable) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(obj: Any):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
