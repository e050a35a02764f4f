"""The lm-eval model ``hsd``: settings handling, and end-to-end runs of a fixture task.

The fixture task (tests/fixtures/lm_eval_tasks/hsd_fixture_gsm8k.yaml) is
lm-eval's gsm8k prompt, filters and metric over the project's own fixture
file; lm-eval's per-sample scores must equal hsd-bench's GSM8K scorer on the
same outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

# lm-eval is a required dependency: imported plainly, so a broken install fails these tests instead of skipping them.
import lm_eval
import pytest

from hsd_bench.lm_eval_backend import HSDLM, parse_exit, prompt_seed, request_settings
from hsd_bench.sampling import DecodingConfig
from hsd_bench.tasks.scoring.gsm8k_answer import score_gsm8k

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tests" / "fixtures" / "lm_eval_tasks"
DATA = REPO / "tests" / "fixtures" / "datasets" / "gsm8k_test.jsonl"
TASK = "hsd_fixture_gsm8k"
FILTERS = {"strict-match": "exact_match_strict", "flexible-extract": "exact_match_flexible"}


class ScriptedDecoder:
    """Stands in for hsd_bench.api.Decoder: a fixed output per prompt, and a record of every call."""

    def __init__(self, outputs: dict[str, str]):
        self.outputs = outputs
        self.calls: list[tuple[str, int, DecodingConfig, list[str]]] = []

    def generate_text(self, prompt, max_new_tokens, decoding, stop=()):
        self.calls.append((prompt, max_new_tokens, decoding, list(stop)))
        question = prompt.split("Question: ", 1)[1].split("\nAnswer:", 1)[0]
        return self.outputs[question], SimpleNamespace(output_ids=[0] * 5)


def evaluate(lm, **kwargs):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=manager, log_samples=True, **kwargs)


def assert_lm_eval_scores_equal_ours(results) -> list[dict]:
    samples = results["samples"][TASK]
    assert samples
    for s in samples:
        ours = score_gsm8k(s["resps"][0][0], s["doc"]["answer"])
        assert float(s["exact_match"]) == ours[FILTERS[s["filter"]]], (s["filter"], s["resps"], s["doc"]["answer"])
    for lm_filter, key in FILTERS.items():
        per_doc = [score_gsm8k(s["resps"][0][0], s["doc"]["answer"])[key] for s in samples if s["filter"] == lm_filter]
        assert float(results["results"][TASK][f"exact_match,{lm_filter}"]) == pytest.approx(sum(per_doc) / len(per_doc))
    return samples


# -- settings ---------------------------------------------------------------


def test_parse_exit():
    assert parse_exit(4) == 4 and parse_exit(None) is None
    assert parse_exit("8:16") == [8, 16] and parse_exit([8, 16]) == [8, 16] and parse_exit("6") == 6
    with pytest.raises(ValueError, match="exit='a:b'"):
        parse_exit("a:b")


def test_request_settings_greedy_and_sampling():
    until, max_new, dec = request_settings({"until": ["Q:", "\n\n"], "max_gen_toks": 7, "do_sample": False}, 256, 5)
    assert until == ["Q:", "\n\n"] and max_new == 7 and dec.temperature == 0.0
    until, max_new, dec = request_settings({"until": "Q:", "do_sample": True, "temperature": 0.7, "top_p": 0.9}, 256, 5)
    assert until == ["Q:"] and max_new == 256 and (dec.temperature, dec.top_p, dec.seed) == (0.7, 0.9, 5)
    _, _, dec = request_settings({"do_sample": True}, 256, 0)
    assert dec.temperature == 1.0  # transformers' default when sampling without a temperature
    _, _, dec = request_settings({"temperature": 0.5}, 256, 0)  # do_sample unset: temperature > 0 samples
    assert dec.temperature == 0.5
    _, max_new, dec = request_settings({"max_new_tokens": 9, "do_sample": False, "temperature": 0.8}, 256, 0)
    assert max_new == 9 and dec.temperature == 0.0  # do_sample=False wins, as in lm-eval


def test_request_settings_refuses_what_it_cannot_honour():
    with pytest.raises(ValueError, match="num_beams"):
        request_settings({"num_beams": 4}, 256, 0)
    with pytest.raises(ValueError, match="temperature > 0"):
        request_settings({"do_sample": True, "temperature": 0.0}, 256, 0)
    with pytest.raises(ValueError, match="max_gen_toks=0"):
        request_settings({"max_gen_toks": 0}, 256, 0)


def test_loglikelihood_is_refused_clearly():
    lm = HSDLM(decoder=ScriptedDecoder({}))
    with pytest.raises(NotImplementedError, match="only generates"):
        lm.loglikelihood([])
    with pytest.raises(NotImplementedError, match="--model hf"):
        lm.loglikelihood_rolling([])


def test_unknown_model_arg_is_named_before_loading_anything():
    with pytest.raises(ValueError, match=r"unknown hsd model arg\(s\) draft_length; valid: .*draft_len"):
        HSDLM(method="layerskip", model_path="random:llama", draft_length=4)


# -- end to end through lm-eval ---------------------------------------------


def test_lm_eval_scores_equal_ours_on_scripted_outputs():
    """Right and wrong answers in both formats, and a run-on past the stop sequence."""
    docs = [json.loads(line) for line in DATA.read_text().splitlines()]
    gold = [d["answer"].split("#### ")[-1] for d in docs]
    scripted = [
        f" so the answer is {gold[0]}.\n#### {gold[0]}",  # strict + flexible right
        f" it must be {gold[1]}",  # flexible right only
        " #### 1000000",  # both wrong
        f" I think {gold[3]}.\n\nQuestion: what is 7?",  # stop sequence: flexible must see gold, not 7
        f" #### {gold[4]}",  # "1,725": commas
        "",  # nothing generated
    ]
    decoder = ScriptedDecoder({d["question"]: out for d, out in zip(docs, scripted)})
    results = evaluate(HSDLM(decoder=decoder))
    samples = assert_lm_eval_scores_equal_ours(results)
    strict = {s["doc_id"]: float(s["exact_match"]) for s in samples if s["filter"] == "strict-match"}
    flexible = {s["doc_id"]: float(s["exact_match"]) for s in samples if s["filter"] == "flexible-extract"}
    assert strict == {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0, 5: 0.0}
    assert flexible == {0: 1.0, 1: 1.0, 2: 0.0, 3: 1.0, 4: 1.0, 5: 0.0}
    # the task's generation settings reached the decoder unchanged
    assert len(decoder.calls) == len(docs)
    for prompt, max_new, decoding, stop in decoder.calls:
        assert prompt.startswith("Question: ") and prompt.endswith("\nAnswer:")
        assert max_new == 24 and stop == ["Question:", "</s>", "<|im_end|>"] and decoding.temperature == 0.0
    assert results["config"]["hsd_totals"]["requests"] == len(docs)


def test_lm_eval_gen_kwargs_override_reaches_the_decoder():
    docs = [json.loads(line) for line in DATA.read_text().splitlines()]
    decoder = ScriptedDecoder({d["question"]: " #### 0" for d in docs})
    evaluate(HSDLM(decoder=decoder, seed=3), limit=2, gen_kwargs="do_sample=True,temperature=0.7,top_p=0.9,max_gen_toks=5")
    assert len(decoder.calls) == 2
    seeds = set()
    for _, max_new, decoding, _ in decoder.calls:
        assert max_new == 5 and decoding.temperature == 0.7 and decoding.top_p == 0.9
        seeds.add(decoding.seed)
    assert len(seeds) == 2  # a different sampling seed per prompt


def test_lm_eval_end_to_end_with_a_tiny_random_model():
    """The real Decoder (LayerSkip on a 4-layer random Llama) inside lm-eval: same text as calling it directly."""
    lm = HSDLM(method="layerskip", model_path="random:llama", exit=2, draft_len=3, max_gen_toks=6)
    results = evaluate(lm, limit=2, gen_kwargs="max_gen_toks=6")
    samples = assert_lm_eval_scores_equal_ours(results)
    assert lm.options == {"method": "layerskip", "model_path": "random:llama", "exit": 2, "draft_len": 3}
    for s in samples:
        context, gen_kwargs = s["arguments"][0]
        until, max_new, decoding = request_settings(gen_kwargs, 6, prompt_seed(lm.seed, context))
        direct, generation = lm.decoder.generate_text(context, max_new, decoding, stop=until)
        assert s["resps"][0][0] == direct
        assert 0 < len(generation.output_ids) <= 6
    assert results["config"]["hsd_totals"]["generated_tokens"] > 0


CLI_ARGS = [
    "run", "--model", "hsd", "--model_args", "method=layerskip,model_path=random:llama,exit=2,draft_len=3",
    "--tasks", TASK, "--include_path", str(TASKS), "--limit", "1", "--device", "cpu", "--gen_kwargs", "max_gen_toks=4",
]
# `python -m hsd_bench.lm_eval_backend ARGS`, except that lm-eval skips indexing its ~15k bundled task files.
FAST_CLI = """
import runpy, sys
import lm_eval.tasks

class OnlyIncludedTasks(lm_eval.tasks.TaskManager):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "include_defaults": False})

lm_eval.tasks.TaskManager = OnlyIncludedTasks
sys.argv = ["hsd_bench.lm_eval_backend", *sys.argv[1:]]
runpy.run_module("hsd_bench.lm_eval_backend", run_name="__main__", alter_sys=True)
"""


def run_cli(prefix: list[str], out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [*prefix, *CLI_ARGS, "--output_path", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.rglob("results_*.json"))
    assert len(files) == 1, files
    results = json.loads(files[0].read_text())
    assert TASK in results["results"] and results["config"]["hsd_options"]["method"] == "layerskip"
    assert results["config"]["hsd_totals"]["requests"] == 1
    return results


def test_cli_module_registers_hsd_and_runs_lm_eval(tmp_path):
    """The module's __main__ path: registers `hsd` once, then lm-eval's own CLI runs the fixture task."""
    run_cli([sys.executable, "-c", FAST_CLI], tmp_path / "out")


@pytest.mark.slow
def test_cli_module_runs_lm_eval_with_the_hsd_model(tmp_path):
    """Exactly the documented command, `python -m hsd_bench.lm_eval_backend run ...`, offline.

    Slow: lm-eval's CLI indexes all of its ~15k bundled task files first (20-35 s on 2 cores).
    """
    run_cli([sys.executable, "-m", "hsd_bench.lm_eval_backend"], tmp_path / "out")
