"""Run model-written Python in a child process, with a timeout, in a fresh temp dir.

Why a subprocess: a completion can loop forever, exhaust memory, call
``exit()``, or damage the interpreter; none of that may reach the harness
process, which holds the models and the results. The child runs
:mod:`hsd_bench.tasks.scoring._exec_guard` (resource limits + an audit hook
that refuses writes outside the temp dir, process creation, signals and
network) with the temp dir as working directory, ``HOME`` and ``TMPDIR``, a
minimal environment, and in its own session so a timeout kills everything it
started. docs/datasets.md lists what this does and does not prevent.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GUARD = Path(__file__).with_name("_exec_guard.py")
_TAIL = 2000


@dataclass
class ExecResult:
    passed: bool
    status: str  # "passed", "failed...", "timeout", "crashed (exit code N)"
    stderr_tail: str = ""
    blocked: list[str] = field(default_factory=list)  # operations the guard refused


def run_python(
    program: str,
    timeout_s: float = 10.0,
    memory_bytes: int | None = 4 << 30,
    file_bytes: int = 16 << 20,
) -> ExecResult:
    """Execute ``program`` (Python source) in a guarded child; passed = it ran to the end without raising."""
    if not (timeout_s > 0):
        raise ValueError(f"timeout_s={timeout_s!r} must be > 0 seconds")
    with tempfile.TemporaryDirectory(prefix="hsd_exec_", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        (work / "program.py").write_text(program, encoding="utf-8")
        nonce = secrets.token_hex(16)
        limits = {
            "cpu_s": math.ceil(timeout_s) + 1,
            "file_bytes": file_bytes,
            "open_files": 256,
            "memory_bytes": memory_bytes,
        }
        env = {
            "PATH": os.defpath,
            "HOME": tmp,
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "HSD_EXEC_NONCE": nonce,
            "HSD_EXEC_LIMITS": json.dumps(limits),
        }
        with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", str(GUARD)],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)  # the child and anything it started in its session
                return ExecResult(False, "timeout", _tail(work / "stderr.txt"))
        stderr = _tail(work / "stderr.txt")
        result = _read_result(work / "result.json")
        if result is None or result.get("nonce") != nonce:
            return ExecResult(False, f"crashed (exit code {returncode})", stderr)
        status = str(result.get("status", "failed"))
        return ExecResult(status == "passed", status, stderr, list(result.get("blocked", [])))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-_TAIL:].decode("utf-8", errors="replace")


def _read_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
