"""Scorers: GSM8K exact match (and its parity with lm-eval), HumanEval execution, ROUGE."""

from __future__ import annotations

import os
import time

import pytest

from hsd_bench.tasks.scoring.code_exec import run_python
from hsd_bench.tasks.scoring.gsm8k_answer import extract_flexible, extract_strict, score_gsm8k
from hsd_bench.tasks.scoring.pass_at_1 import check_completion, score_pass_at_1
from hsd_bench.tasks.scoring.rouge import score_rouge
from hsd_bench.tasks.scoring.stop import truncate_at_stop

GOLD = "Ava has 14 + 9 = <<14+9=23>>23 stickers.\nAfter giving 5 away she has 23 - 5 = <<23-5=18>>18.\n#### 18"


# -- GSM8K ------------------------------------------------------------------


def test_gsm8k_right_and_wrong_in_both_formats():
    assert score_gsm8k(" She has 23 - 5 = 18 stickers.\n#### 18", GOLD) == {
        "exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert score_gsm8k(" She has 23 - 4 = 19 stickers.\n#### 19", GOLD) == {
        "exact_match_strict": 0.0, "exact_match_flexible": 0.0}
    # No "#### n": strict cannot match, flexible takes the last number.
    assert score_gsm8k(" 14 + 9 = 23, and 23 - 5 = 18.", GOLD) == {
        "exact_match_strict": 0.0, "exact_match_flexible": 1.0}
    assert score_gsm8k(" 14 + 9 = 23, and 23 - 5 = 17.", GOLD) == {
        "exact_match_strict": 0.0, "exact_match_flexible": 0.0}
    # Strict takes the *first* "#### n"; flexible the last number.
    assert score_gsm8k("#### 18\nso maybe 20", GOLD) == {"exact_match_strict": 1.0, "exact_match_flexible": 0.0}


def test_gsm8k_normalisation_commas_dollars_trailing_period():
    gold = "He has 3000 - 1275 = <<3000-1275=1725>>1,725 dollars left.\n#### 1,725"
    assert score_gsm8k("#### 1,725.", gold)["exact_match_strict"] == 1.0
    assert score_gsm8k("#### $1,725", gold)["exact_match_strict"] == 0.0  # strict allows no "$", as in lm-eval
    assert score_gsm8k("It is $1,725.", gold)["exact_match_flexible"] == 1.0
    assert score_gsm8k("#### 1,726", gold)["exact_match_strict"] == 0.0


def test_gsm8k_extractors():
    assert extract_strict("no marker 42") == "[invalid]"
    assert extract_strict("#### -3.5 then #### 7") == "-3.5"
    assert extract_flexible("first 12 then 345") == "345"
    assert extract_flexible("nothing numeric") == "[invalid]"
    # "[invalid]" never equals a real gold answer
    assert score_gsm8k("no numbers at all", GOLD) == {"exact_match_strict": 0.0, "exact_match_flexible": 0.0}


def test_gsm8k_scorer_matches_lm_eval_filters_and_metric():
    """Same extraction + normalisation as lm-eval's gsm8k, checked on tricky outputs."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    outputs = [
        "#### 18", "#### 18.", "The answer is $18.", "#### 1,8", "18 or 19", "-18", "#### -18", "... 18...",
        "x 18.0", "#### 18\n#### 19", "1.8e1", "", "$$", "18,", "Answer: 18 apples. #### 18",
    ]
    strict = RegexFilter(r"#### (\-?[0-9\.\,]+)")
    flexible = RegexFilter(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]
    for out in outputs:
        ours = score_gsm8k(out, GOLD)
        for name, filt in (("exact_match_strict", strict), ("exact_match_flexible", flexible)):
            extracted = list(filt.apply([[out]], [{}]))[0][0]
            ref = exact_match_hf_evaluate([extracted], [GOLD], regexes_to_ignore=ignore, ignore_case=True)
            assert ours[name] == ref["exact_match"], (name, out)


def test_truncate_at_stop_takes_the_earliest():
    assert truncate_at_stop("a\n\nQuestion: b #### 5", ["Question:", "\n\n"]) == "a"
    assert truncate_at_stop("no stop here", ["Question:"]) == "no stop here"
    assert truncate_at_stop("abc", []) == "abc"


# -- HumanEval execution ----------------------------------------------------

PROMPT = 'def add_numbers(a: int, b: int) -> int:\n    """ Return the sum of a and b. """\n'
TEST = "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def test_passing_completion_passes():
    result = check_completion(PROMPT, "    return a + b\n", TEST, "add_numbers", timeout_s=10)
    assert result.passed and result.status == "passed"
    assert score_pass_at_1(PROMPT, "    return a + b\n", TEST, "add_numbers") == {"pass@1": 1.0}


def test_failing_completion_fails_with_the_assertion():
    result = check_completion(PROMPT, "    return a * b\n", TEST, "add_numbers", timeout_s=10)
    assert not result.passed and result.status == "failed"
    assert "AssertionError" in result.stderr_tail


def test_syntax_error_fails():
    assert not check_completion(PROMPT, "    return a +\n", TEST, "add_numbers", timeout_s=10).passed


def test_infinite_loop_times_out_and_harness_survives():
    start = time.perf_counter()
    result = check_completion(PROMPT, "    while True:\n        pass\n", TEST, "add_numbers", timeout_s=1.0)
    elapsed = time.perf_counter() - start
    assert result.status == "timeout" and not result.passed
    assert elapsed < 6.0, elapsed
    # the harness still works afterwards
    assert check_completion(PROMPT, "    return a + b\n", TEST, "add_numbers", timeout_s=10).passed


def test_write_outside_temp_dir_is_blocked(tmp_path):
    target = tmp_path / "escaped.txt"
    completion = f"    open({str(target)!r}, 'w').write('pwned')\n    return a + b\n"
    result = check_completion(PROMPT, completion, TEST, "add_numbers", timeout_s=10)
    assert not target.exists()
    assert not result.passed
    assert any(str(target) in b for b in result.blocked), result.blocked


def test_other_escapes_are_blocked(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    programs = {
        "remove": f"import os\nos.remove({str(victim)!r})\n",
        "rename": f"import os\nos.rename({str(victim)!r}, 'stolen.txt')\n",
        "chdir then write": f"import os\nos.chdir({str(tmp_path)!r})\nopen('new.txt', 'w')\n",
        "subprocess": "import subprocess\nsubprocess.run(['touch', 'x'])\n",
        "signal the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)\n",
        "network": "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
        "ctypes": "import ctypes\n",
    }
    for name, program in programs.items():
        result = run_python(program, timeout_s=10)
        assert not result.passed, name
        assert result.blocked, (name, result.status, result.stderr_tail)
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]


def test_writes_inside_temp_dir_are_allowed():
    program = "import tempfile\nopen('scratch.txt', 'w').write('ok')\nfd, p = tempfile.mkstemp()\nassert open('scratch.txt').read() == 'ok'\n"
    assert run_python(program, timeout_s=10).passed


def test_early_exit_is_not_a_pass():
    assert run_python("import sys\nsys.exit(0)\nassert False\n", timeout_s=10).status.startswith("failed")
    result = run_python("import os\nos._exit(0)\n", timeout_s=10)
    assert not result.passed and result.status.startswith("crashed")


def test_memory_limit_turns_a_huge_allocation_into_a_failure():
    result = run_python("x = bytearray(64 << 30)\n", timeout_s=10, memory_bytes=2 << 30)
    assert not result.passed and "MemoryError" in result.stderr_tail


def test_child_does_not_inherit_harness_secrets(monkeypatch):
    monkeypatch.setenv("HSD_TEST_SECRET", "s3cret")
    program = "import os\nassert 'HSD_TEST_SECRET' not in os.environ\nassert 'HSD_EXEC_NONCE' not in os.environ\n"
    assert run_python(program, timeout_s=10).passed
    assert os.environ["HSD_TEST_SECRET"] == "s3cret"


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("pass\n", timeout_s=0)


# -- ROUGE ------------------------------------------------------------------


def test_rouge_identical_texts_score_one():
    text = "The coastal line reopened three weeks after a landslide.\nTrains run slowly until the end of the month."
    assert score_rouge(text, text) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_disjoint_texts_score_zero():
    assert score_rouge("purple elephants dance quietly", "stock markets closed higher today") == {
        "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_partial_overlap_is_between():
    scores = score_rouge("the park opens next spring", "the new park will open next spring")
    assert 0.0 < scores["rouge2"] < scores["rouge1"] < 1.0
