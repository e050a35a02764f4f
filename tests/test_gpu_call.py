"""scripts/gpu_call.sh: a device call's time budget is its own variable, not gpu_headline.sh's LIMIT.

The forty-sixth run sourced gpu_call.sh with ``LIMIT=420`` meant as the call's budget; the same
variable reached scripts/gpu_headline.sh, which reads LIMIT as run.py's ``dataset.limit``, and its
jobs ran all 164 HumanEval prompts instead of 8. The call's budget is CALL_LIMIT since.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def after_sourcing(tmp_path: Path, commands: str, **env: str) -> str:
    """stdout of ``commands`` run right after sourcing gpu_call.sh, in a clean bash with ``env`` added
    (the script's work folder, /tmp/w_<CALL>, removed after)."""
    call = f"pytest_{os.getpid()}_{tmp_path.name}"
    script = f"cd {ROOT} && CALL={call} source scripts/gpu_call.sh && {commands}"
    run_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OUT": str(tmp_path), **env}
    try:
        return subprocess.run(["bash", "-c", script], env=run_env, capture_output=True, text=True, timeout=30,
                              check=True).stdout
    finally:
        shutil.rmtree(f"/tmp/w_{call}", ignore_errors=True)


@pytest.mark.parametrize("env, expected", [({}, 585), ({"CALL_LIMIT": "300"}, 300),
                                           ({"LIMIT": "420"}, 585), ({"LIMIT": "8", "CALL_LIMIT": "200"}, 200)])
def test_the_call_budget_is_call_limit_and_ignores_the_dataset_limit(tmp_path, env, expected):
    assert expected - 2 <= int(after_sourcing(tmp_path, "left", **env).split()[-1]) <= expected


def test_the_untraced_methods_part_is_the_traced_one_without_the_trace(tmp_path):
    # calls that read several fresh processes leave the trace out (it slows the host they measure);
    # they take M_UNTRACED, which must stay M's workload exactly
    out = after_sourcing(tmp_path, "printf '%s\\n' \"${M[@]}\" && echo --- && printf '%s\\n' \"${M_UNTRACED[@]}\"")
    traced, untraced = (part.split() for part in out.split("---"))
    assert "--device-trace" not in untraced and "--parts" in untraced
    assert traced == untraced + ["--device-trace"]


def test_unused_names_a_process_that_a_second_run_of_a_call_would_overwrite(tmp_path):
    # a call script run twice on a warm machine writes into the same work folder; its second run's
    # processes must not take the first's names (in the fifty-third run one was overwritten on the machine)
    out = after_sourcing(tmp_path, "unused s56_1 && mkdir $W/s56_1 && unused s56_1 && touch $W/s56_1_2.log && "
                                   "unused s56_1")
    assert out.split() == ["s56_1", "s56_1_2", "s56_1_3"]
