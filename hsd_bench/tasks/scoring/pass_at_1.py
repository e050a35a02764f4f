"""HumanEval pass@1 for one greedy completion: prompt + completion + tests + ``check(entry_point)``.

The program is assembled exactly as the HumanEval paper's harness does and
run by :func:`hsd_bench.tasks.scoring.code_exec.run_python` -- never in the
harness process.
"""

from __future__ import annotations

from hsd_bench.tasks.scoring.code_exec import ExecResult, run_python


def build_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    return f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"


def check_completion(prompt: str, completion: str, test: str, entry_point: str, timeout_s: float = 10.0) -> ExecResult:
    """Run the HumanEval tests on ``completion``; the result says passed / failed / timeout and why."""
    return run_python(build_program(prompt, completion, test, entry_point), timeout_s=timeout_s)


def score_pass_at_1(prompt: str, completion: str, test: str, entry_point: str, timeout_s: float = 10.0) -> dict[str, float]:
    """``{"pass@1": 1.0}`` if the completion passes its tests, else ``{"pass@1": 0.0}``."""
    return {"pass@1": float(check_completion(prompt, completion, test, entry_point, timeout_s).passed)}
