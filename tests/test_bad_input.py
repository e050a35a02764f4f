"""Bad input fails before any generation, naming the value and the valid range.

First the engine-level checks, then every bad input through the run command
(the table the docs list: docs/errors.md).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import make_model
from hsd_bench import cli, results, runner
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models import loading
from hsd_bench.models.loading import ModelSpec, load_model
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig


@pytest.fixture(scope="module")
def target():
    return make_model("llama", num_layers=4, seed=0)


def _build(spec, target, codec=None, other=None):
    codec = codec or TextCodec()
    return build_engine(spec, target, lambda path: other or (make_model("llama", 2, name=path), codec), codec)


@pytest.mark.parametrize("exit_", [0, 4, 9, -1])
def test_layerskip_exit_out_of_range(exit_, target):
    with pytest.raises(ValueError, match=rf"exit={exit_}.*1\.\.3.*4 layers"):
        _build(MethodSpec("layerskip", exit=exit_), target)


def test_hispec_exits_must_be_ordered_and_in_range(target):
    with pytest.raises(ValueError, match=r"E_d < E_v"):
        _build(MethodSpec("hispec", exit=[2, 1]), target)
    with pytest.raises(ValueError, match=r"exit\[1\] \(E_v\)=16 .*1\.\.3"):
        _build(MethodSpec("hispec", exit=[8 // 4, 16]), target)
    with pytest.raises(ValueError, match=r"two exits"):
        _build(MethodSpec("hispec", exit=3), target)


@pytest.mark.parametrize("gamma", [0, -2])
def test_draft_length_below_one(gamma, target):
    with pytest.raises(ValueError, match=rf"method.draft_len={gamma} must be an integer >= 1"):
        _build(MethodSpec("layerskip", exit=1, draft_len=gamma), target)


def test_unknown_method_and_verifier(target):
    with pytest.raises(ValueError, match=r"unknown method 'medusa'.*valid methods: autoregressive"):
        _build(MethodSpec("medusa"), target)
    with pytest.raises(ValueError, match=r"unknown verifier 'magic'.*tokenwise"):
        _build(MethodSpec("layerskip", exit=1, verifier="magic"), target)


def test_draft_with_another_vocabulary(target):
    other = make_model("llama", 2, vocab_size=300, name="other")
    with pytest.raises(ValueError, match=r"vocabulary of 300 tokens but the target has 258"):
        _build(MethodSpec("vanilla_sd", draft_path="other"), target, other=(other, TextCodec(vocab_size=300)))


def test_draft_with_another_tokenizer(target):
    class OtherCodec(TextCodec):
        def vocab_fingerprint(self):
            return ("other",)

    other = make_model("llama", 2, name="other")
    with pytest.raises(ValueError, match=r"different tokenizer"):
        _build(MethodSpec("vanilla_sd", draft_path="other"), target, other=(other, OtherCodec()))


def test_vanilla_sd_without_a_draft(target):
    with pytest.raises(ValueError, match=r"method.draft.path"):
        _build(MethodSpec("vanilla_sd"), target)


def test_empty_and_too_long_prompts(target):
    engine = _build(MethodSpec("layerskip", exit=1), target)
    with pytest.raises(ValueError, match=r"empty prompt"):
        engine.generate([], 4)
    with pytest.raises(ValueError, match=r"prompt of 600 tokens .* shorter than 512"):
        engine.generate([1] * 600, 4)
    with pytest.raises(ValueError, match=r"max_new_tokens=0"):
        engine.generate([1, 2], 0)


def test_bad_decoding_settings():
    with pytest.raises(ValueError, match=r"temperature=-1"):
        DecodingConfig(temperature=-1)
    with pytest.raises(ValueError, match=r"top_p=0"):
        DecodingConfig(top_p=0)
    # nan fails every comparison (it crashed in warm-up); inf made every logit 0 (silently uniform)
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match=rf"decoding\.temperature={bad} must be a finite number >= 0"):
            DecodingConfig(temperature=float(bad))
    with pytest.raises(ValueError, match=r"decoding\.top_p=nan must be in \(0, 1\]"):
        DecodingConfig(top_p=float("nan"))
    with pytest.raises(ValueError, match=r"decoding\.top_k=nan must be an integer >= 0"):
        DecodingConfig(top_k=float("nan"))


def test_hierarchy_levels_on_the_target_exit_below_its_last_layer(target):
    """path: target at its full depth (or with no exit) is the top level itself: refused, naming 1..depth-1."""
    for level, shown in (({"path": "target", "exit": 4}, "4"), ({"path": "target"}, "null"), ({"exit": 0}, "0")):
        with pytest.raises(ValueError, match=rf"method\.levels\[0\]\.exit={shown} is outside 1\.\.3.*4 layers"):
            _build(MethodSpec("hierarchy", levels=[level]), target)
    # a separate model at its full depth is a draft like vanilla_sd's: fine
    engine = _build(MethodSpec("hierarchy", levels=[{"path": "small", "exit": 2}, {"path": "target", "exit": 3}]),
                    target)
    assert [lv.exit_layer for lv in engine.levels] == [2, 3, 4]


@pytest.mark.parametrize("level", [3, "checkpoints/family-2x128", ["target", 2]])
def test_hierarchy_level_that_is_not_a_mapping(level, target):
    with pytest.raises(ValueError, match=r"method\.levels\[0\]=.* must be a mapping \{path, exit, batch, draft_stop\}"):
        _build(MethodSpec("hierarchy", levels=[level]), target)


@pytest.mark.parametrize(("method", "depth", "minimum"), [("layerskip", 1, 2), ("hispec", 2, 3), ("hispec", 1, 3)])
def test_a_target_too_shallow_for_the_method_names_the_depth_it_needs(method, depth, minimum):
    with pytest.raises(ValueError, match=rf"method={method} needs a target model of at least {minimum} layers.*"
                                         rf"has {depth} layers?;"):
        _build(MethodSpec(method), make_model("llama", num_layers=depth))


def test_hf_assisted_without_a_draft_names_itself(target):
    from hsd_bench.methods import method_views

    with pytest.raises(ValueError, match=r"^method=hf_assisted needs a draft model: set method\.draft\.path"):
        method_views(MethodSpec("hf_assisted"), 4)


@pytest.mark.parametrize(("name", "key"), [("cnn_dm", "path"), ("gsm8k", "path"), ("humaneval", "path"),
                                           ("spec_bench", "path"), ("cnn_dm", "fewshot_path"),
                                           ("gsm8k", "fewshot_path")])  # the other two take no few-shot file
def test_every_task_refuses_an_empty_dataset_path(name, key):
    """An unset shell variable (dataset.path=$DATA) is not "the default source"."""
    from hsd_bench.tasks.base import get_task

    data = {"cnn_dm": "cnn_dm_test.jsonl", "gsm8k": "gsm8k_test.jsonl", "humaneval": "humaneval_test.jsonl",
            "spec_bench": "spec_bench_questions.jsonl"}
    cfg = {"path": str(FIXTURES / data[name]), "num_fewshot": 1 if name in ("cnn_dm", "gsm8k") else None, key: ""}
    with pytest.raises(ValueError, match=rf"dataset\.{key}='' is empty; valid: a JSONL file path, or null"):
        get_task(name).load(cfg)


def test_all_tasks_are_covered_by_the_empty_path_test():
    from hsd_bench.tasks.base import available_tasks

    assert available_tasks() == ["cnn_dm", "gsm8k", "humaneval", "spec_bench"]


def test_unknown_model_names_the_override():
    with pytest.raises(ValueError, match=r"model.path='no-such/model-xyz'.*Hub.*model.path=<local checkpoint dir>"):
        load_model(ModelSpec("no-such/model-xyz"))
    with pytest.raises(ValueError, match=r"unknown random architecture 'gpt2'"):
        load_model(ModelSpec("random:gpt2"))
    with pytest.raises(ValueError, match=r"model.dtype='float8'"):
        load_model(ModelSpec("random:llama", dtype="float8"))


# -- every bad input through the run command ----------------------------------
#
# Each case is a command line a user could type. It must end with exit code 2
# and one line `error: ...` naming the key (or the file, line and field), with
# no traceback, before any generation and before anything is written under
# results_dir. The run command runs in this process (cli.main, exactly what
# run.py calls) for speed; the cases a user most often meets also run through
# the real `python run.py` below.

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
BASE = ["model=tiny_random", "dataset.limit=2", "max_new_tokens=4", "warmup_tokens=0", "progress=false"]
# a CUDA device this machine does not have (any device at all on a CPU-only torch)
MISSING_CUDA = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
HE = json.loads((FIXTURES / "humaneval_test.jsonl").read_text().splitlines()[0])


def _he(**changes) -> str:
    return json.dumps({**HE, **changes})


# name -> file content (str, or bytes written as is)
DATA_FILES = {
    "malformed": _he() + "\n{not json\n",
    "not_object": "[1, 2, 3]\n",
    "missing_field": json.dumps({k: v for k, v in HE.items() if k != "test"}) + "\n",
    "prompt_int": _he(prompt=12345) + "\n",
    "prompt_empty": _he(prompt="") + "\n",
    "test_null": _he(test=None) + "\n",
    "non_utf8": (_he() + "\n").encode() + b'{"task_id": "x\xff\xfe"}\n',
    "empty": "",
    "duplicate_ids": _he() + "\n" + _he() + "\n",
}

# (id, overrides, what the one-line message must say). <name> = a prepared path.
CASES = [
    # Hydra's own config errors
    ("unknown_key", ["method.bogus=1"], r"'method\.bogus'.*valid keys: name, exit, draft_len"),
    ("unknown_top_level_key", ["bogus=1"], r"'bogus'.*valid keys: method, model"),
    ("wrong_type_int", ["model.num_layers=abc"], r"model\.num_layers=abc.*Integer"),
    ("wrong_type_bool", ["resume_across_code_change=maybe"], r"resume_across_code_change=maybe.*bool"),
    ("wrong_type_limit", ["dataset.limit=many"], r"dataset\.limit=many"),
    ("wrong_type_seed", ["dataset.seed=abc"], r"dataset\.seed=abc"),
    ("unknown_method_group", ["method=medusa"], r"method/medusa.*layerskip"),
    ("unknown_dataset_group", ["dataset=squad"], r"dataset/squad.*humaneval"),
    # method, verifier, exits, draft lengths
    ("method_name", ["method.name=medusa"], r"unknown method 'medusa'.*valid methods"),
    ("verifier", ["verifier=magic"], r"unknown verifier 'magic'.*tokenwise"),
    ("exit_past_depth", ["method=layerskip", "exit=99"], r"exit=99 .*1\.\.7"),
    ("exit_zero", ["method=layerskip", "exit=0"], r"exit=0 .*1\.\.7"),
    ("exit_not_a_number", ["method=layerskip", "exit=abc"], r"exit='abc'"),
    ("hispec_exits_out_of_order", ["method=hispec", "exit=[3,2]"], r"E_d < E_v.*exit=\[3, 2\]"),
    ("hispec_one_exit", ["method=hispec", "exit=3"], r"two exits.*exit=3"),
    ("draft_len_zero", ["method.draft_len=0"], r"method\.draft_len=0 must be an integer >= 1"),
    ("draft_len_negative", ["method.draft_len=-2"], r"method\.draft_len=-2"),
    ("period_zero", ["method=hispec", "method.period=0"], r"method\.period=0"),
    ("hierarchy_no_levels", ["method=hierarchy", "method.levels=[]"], r"method\.levels"),
    ("hierarchy_unknown_level_key", ["method=hierarchy", "method.levels=[{path: target, exit: 2, size: 3}]"],
     r"method\.levels\[0\] has unknown keys \['size'\]"),
    ("hierarchy_batch_zero", ["method=hierarchy", "method.levels=[{path: target, exit: 2, batch: 0}]"],
     r"method\.levels\[0\]\.batch=0"),
    ("hierarchy_exit_past_level_depth", ["model.path=checkpoints/ee-24x128", "method=hierarchy",
                                         "method.levels=[{path: checkpoints/family-2x128, exit: 5}]"],
     r"method\.levels\[0\]\.exit=5 is outside 1\.\.2"),
    ("hierarchy_missing_level", ["method=hierarchy", "method.levels=[{path: checkpoints/nope}]"],
     r"method\.levels\[0\]\.path='checkpoints/nope'"),
    ("hierarchy_target_level_at_full_depth", ["method=hierarchy", "method.levels=[{path: target, exit: 8}]"],
     r"method\.levels\[0\]\.exit=8 is outside 1\.\.7: a level on the target .*8 layers"),
    ("hierarchy_target_level_without_exit", ["method=hierarchy", "method.levels=[{path: target}]"],
     r"method\.levels\[0\]\.exit=null is outside 1\.\.7"),
    ("hierarchy_level_not_a_mapping", ["method=hierarchy", "method.levels=[3]"],
     r"method\.levels\[0\]=3 must be a mapping \{path, exit, batch, draft_stop\}"),
    ("hierarchy_level_a_bare_path", ["method=hierarchy", "method.levels=[checkpoints/family-2x128]"],
     r"method\.levels\[0\]='checkpoints/family-2x128' must be a mapping \{path, exit, batch, draft_stop\}"),
    ("layerskip_model_too_shallow", ["model.num_layers=1"],
     r"method=layerskip needs a target model of at least 2 layers .*but the target model has 1 layer;"),
    ("hispec_model_too_shallow", ["method=hispec", "model.num_layers=2"],
     r"method=hispec needs a target model of at least 3 layers .*but the target model has 2 layers;"),
    # models
    ("vanilla_sd_without_draft", ["method=vanilla_sd", "method.draft.path=null"], r"method\.draft\.path"),
    ("missing_local_draft", ["method=vanilla_sd", "method.draft.path=checkpoints/nope"],
     r"method\.draft\.path='checkpoints/nope': no such checkpoint directory"),
    ("unreachable_hub_draft", ["method=vanilla_sd", "method.draft.path=nobody/no-such-draft"],
     r"cannot load method\.draft\.path='nobody/no-such-draft'"),
    ("draft_config_disagrees_with_weights", ["model.path=checkpoints/ee-24x128", "method=vanilla_sd",
                                             "method.draft.path=<mismatched_ckpt>"],
     r"weights of method\.draft\.path=.*mismatched.*config\.json"),
    ("draft_with_another_vocabulary", ["method=vanilla_sd", "method.draft.path=checkpoints/family-2x128"],
     r"draft model 'checkpoints/family-2x128' has a vocabulary of 4096 tokens but the target has 258"),
    ("hf_assisted_without_draft", ["method=hf_assisted", "method.draft.path=null"],
     r"method=hf_assisted needs a draft model: set method\.draft\.path"),
    ("hf_assisted_missing_local_draft", ["method=hf_assisted", "method.draft.path=checkpoints/nope"],
     r"method\.draft\.path='checkpoints/nope': no such checkpoint directory"),
    ("hf_assisted_draft_with_another_vocabulary", ["method=hf_assisted", "method.draft.path=checkpoints/family-2x128"],
     r"method\.draft\.path: draft model 'checkpoints/family-2x128' has a vocabulary of 4096 tokens "
     r"but the target has 258"),
    ("hf_batch_size", ["method=hf_generate", "decoding.batch_size=2"],
     r"decoding\.batch_size=2: method=hf_generate .*valid: decoding\.batch_size=1"),
    ("dtype", ["model.dtype=float8"], r"model\.dtype='float8' is not one of float32"),
    ("device_unknown", ["model.device=tpu"], r"model\.device='tpu'.*valid: cpu, cuda"),
    ("device_missing", [f"model.device={MISSING_CUDA}"], rf"model\.device='{MISSING_CUDA}'"),
    ("backend", ["model.backend=onnx"], r"model\.backend='onnx' is not one of auto, hf, native"),
    ("prefill", ["model.prefill=graphs"], r"model\.prefill='graphs' is not one of auto, eager, chunked"),
    ("matmul", ["model.matmul=cutlass"], r"model\.matmul='cutlass' is not one of cublas, gemv"),
    ("attention", ["model.attention=flash"], r"model\.attention='flash' is not one of sdpa, math, triton"),
    ("random_architecture", ["model.path=random:gpt2"], r"model\.path='random:gpt2'.*llama"),
    ("missing_local_model", ["model.path=checkpoints/nope"], r"model\.path='checkpoints/nope'"),
    ("model_path_is_a_file", ["model.path=README.md"], r"model\.path='README\.md' is a file"),
    ("model_without_weights", ["model.path=<noweights_ckpt>"],
     r"model\.path=.*noweights_ckpt' has a config\.json but no weight files \(model\.safetensors /.*pytorch_model\.bin"),
    ("unreachable_hub_model", ["model.path=nobody/no-such-model"], r"cannot load model\.path='nobody/no-such-model'"),
    ("corrupt_model_config", ["model.path=<corrupt_ckpt>"], r"model\.path: .*corrupt.*config\.json is not valid JSON"),
    ("num_layers_zero", ["model.num_layers=0"], r"model\.num_layers=0 must be an integer >= 1"),
    ("max_context_one", ["model.max_context=1"], r"model\.max_context=1 must be an integer >= 2"),
    # decoding, run settings
    ("temperature", ["decoding.temperature=-1"], r"decoding\.temperature=-1"),
    ("temperature_nan", ["decoding.temperature=nan"], r"decoding\.temperature=nan must be a finite number >= 0"),
    ("temperature_inf", ["decoding.temperature=inf"], r"decoding\.temperature=inf must be a finite number >= 0"),
    ("top_p", ["decoding.top_p=0"], r"decoding\.top_p=0"),
    ("top_k", ["decoding.top_k=-1"], r"decoding\.top_k=-1"),
    ("wandb_mode", ["wandb.mode=foo"], r"wandb\.mode='foo' is not one of online, offline, disabled"),
    ("cpu_threads_negative", ["cpu_threads=-1"], r"cpu_threads=-1 must be an integer >= 1"),
    ("cpu_threads_zero", ["cpu_threads=0"], r"cpu_threads=0 must be an integer >= 1"),
    ("warmup_negative", ["warmup_tokens=-1"], r"warmup_tokens=-1"),
    ("ar_chunk_too_long", ["ar_chunk=65"], r"ar_chunk=65 must be an integer in 1\.\.64"),
    ("timing_repeats_zero", ["timing_repeats=0"], r"timing_repeats=0 must be an integer >= 1"),
    ("level_split_not_a_bool", ["level_split=sometimes"], r"level_split=sometimes: Value 'sometimes' is not a valid bool"),
    ("max_new_tokens_zero", ["max_new_tokens=0"], r"max_new_tokens=0"),
    ("results_dir_is_a_file", ["results_dir=<a_file>"], r"results_dir=.*a_file.*a file of that name is in the way"),
    ("results_dir_read_only", ["!read_only"], r"results_dir=.*the file system is read-only"),
    ("results_dir_full_disk", ["!disk_full"], r"results_dir=.*the disk is full"),
    ("results_dir_empty", ["results_dir=''", "!cwd_in_tmp"], r"results_dir='' is empty; valid: a directory"),
    # datasets: config keys
    ("limit_zero", ["dataset.limit=0"], r"dataset\.limit=0"),
    ("dataset_name", ["dataset.name=squad"], r"dataset\.name: unknown dataset 'squad'"),
    ("unknown_sample_id", ["dataset.ids=[HumanEval/999]"], r"dataset\.ids has 1 unknown id.*HumanEval/999"),
    ("sample_ids_empty", ["dataset.ids=[]"], r"dataset\.ids=\[\] selects no samples; valid: a non-empty list"),
    ("dataset_path_empty", ["dataset.path=''"], r"dataset\.path='' is empty; valid: a JSONL file path, or null"),
    ("gsm8k_dataset_path_empty", ["dataset=gsm8k", "dataset.path=''"], r"dataset\.path='' is empty"),
    ("gsm8k_fewshot_path_empty", ["dataset=gsm8k", "dataset.path=<gsm8k>", "dataset.fewshot_path=''"],
     r"dataset\.fewshot_path='' is empty; valid: a JSONL file path, or null for dataset\.fewshot_source"),
    ("humaneval_split", ["dataset.split=train"], r"dataset\.split='train'"),
    ("humaneval_source", ["dataset.source=foo"], r"dataset\.source='foo' is not one of bundled, hub"),
    ("humaneval_fewshot", ["dataset.num_fewshot=1"], r"dataset\.num_fewshot=1"),
    ("dataset_max_new_tokens", ["dataset.max_new_tokens=0"], r"dataset\.max_new_tokens=0"),
    ("stop_sequence_empty", ["dataset.stop_sequences=['']"], r"dataset\.stop_sequences="),
    ("exec_timeout", ["dataset.exec_timeout_s=0"], r"dataset\.exec_timeout_s=0"),
    ("gsm8k_too_many_shots", ["dataset=gsm8k", "dataset.path=<gsm8k>", "dataset.num_fewshot=9"], r"dataset\.num_fewshot=9"),
    ("gsm8k_fewshot_source", ["dataset=gsm8k", "dataset.path=<gsm8k>", "dataset.fewshot_source=dev"],
     r"dataset\.fewshot_source='dev'"),
    ("gsm8k_missing_fewshot_file", ["dataset=gsm8k", "dataset.path=<gsm8k>", "dataset.fewshot_path=<missing>"],
     r"does not exist \(set dataset\.fewshot_path"),
    # datasets: the file
    ("missing_file", ["dataset.path=<missing>"], r"missing\.jsonl' does not exist \(set dataset\.path"),
    ("dataset_path_is_a_directory", ["dataset.path=<a_dir>"],
     r"dataset\.path=.*a_dir' is a directory, not a file; valid: a JSONL file"),
    ("another_datasets_file", ["dataset.path=<gsm8k>"],
     r"gsm8k_test\.jsonl:1: missing field\(s\) task_id, prompt, test, entry_point \(its fields: question, answer\); "
     r"valid: an object with fields task_id, prompt, test, entry_point"),
    ("malformed_line", ["dataset.path=<malformed>"], r"dataset\.path: .*malformed\.jsonl:2: malformed JSON"),
    ("line_not_an_object", ["dataset.path=<not_object>"], r"dataset\.path: .*not_object\.jsonl:1: expected a JSON object"),
    ("missing_field", ["dataset.path=<missing_field>"], r"missing_field\.jsonl:1: missing field\(s\) test"),
    ("prompt_not_a_string", ["dataset.path=<prompt_int>"],
     r"prompt_int\.jsonl:1: field 'prompt' is a number \(12345\); valid: a string"),
    ("prompt_empty", ["dataset.path=<prompt_empty>"], r"prompt_empty\.jsonl:1: field 'prompt' is empty"),
    ("test_null", ["dataset.path=<test_null>"], r"test_null\.jsonl:1: field 'test' is null \(null\); valid: a string"),
    ("not_utf8", ["dataset.path=<non_utf8>"], r"non_utf8\.jsonl:2: not UTF-8 text \(byte 0xff"),
    ("empty_file", ["dataset.path=<empty>"], r"dataset\.path=.*empty\.jsonl' holds no records"),
    ("duplicate_ids", ["dataset.path=<duplicate_ids>"], r"duplicate sample id 'Fixture/0'"),
    # sweeps: every job is checked before any runs or anything is written
    ("sweep_exit", ["-m", "method=layerskip", "exit=2,42"], r"sweep job .*exit=42: exit=42 is outside"),
    ("sweep_device", ["-m", "model.device=cpu,tpu"], r"sweep job .*model\.device='tpu'"),
    ("sweep_dtype", ["-m", "model.dtype=float32,float8"], r"sweep job .*model\.dtype='float8'"),
    ("sweep_backend", ["-m", "model.backend=hf,onnx"], r"sweep job .*model\.backend='onnx'"),
    ("sweep_wandb", ["-m", "wandb.mode=disabled,foo"], r"sweep job .*wandb\.mode='foo'"),
    ("sweep_missing_device", ["-m", f"model.device=cpu,{MISSING_CUDA}"], rf"sweep job .*model\.device='{MISSING_CUDA}'"),
    ("sweep_unknown_key", ["-m", "method.draft_len=1,2", "method.bogus=3"], r"'method\.bogus'"),
    ("sweep_results_dir_is_a_file", ["-m", "method.draft_len=1,2", "results_dir=<a_file>"],
     r"results_dir=.*a file of that name is in the way"),
    ("slurm_without_sbatch", ["-m", "hydra/launcher=slurm", "method.draft_len=1,2", "!no_slurm_on_path"],
     r"hydra/launcher=slurm: sbatch and srun are not on PATH .*valid: launch from a SLURM login node"),
]

# The cases refused while loading a model (docs/errors.md, step 5): what only the weights or the Hub
# can tell. Every other case is refused before any model is loaded.
LOAD_TIME_CASES = {"unreachable_hub_draft", "draft_config_disagrees_with_weights", "unreachable_hub_model"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, str]:
    """The files the cases name: dataset files, broken checkpoints, a file where a directory should be."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {"missing": str(root / "missing.jsonl"), "gsm8k": str(FIXTURES / "gsm8k_test.jsonl")}
    for name, content in DATA_FILES.items():
        path = root / f"{name}.jsonl"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths[name] = str(path)
    corrupt = root / "corrupt_ckpt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"model_type": "llama",\n')
    paths["corrupt_ckpt"] = str(corrupt)
    mismatched = root / "mismatched_ckpt"
    shutil.copytree(REPO / "checkpoints" / "family-2x128", mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    paths["mismatched_ckpt"] = str(mismatched)
    (root / "a_file").write_text("not a directory\n")
    paths["a_file"] = str(root / "a_file")
    noweights = root / "noweights_ckpt"  # config.json and tokenizer, no weight file
    noweights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / "checkpoints" / "family-2x128" / name, noweights / name)
    paths["noweights_ckpt"] = str(noweights)
    (root / "a_dir").mkdir()
    paths["a_dir"] = str(root / "a_dir")
    return paths


def _os_error(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, int]:
    """(exit code, stderr, generations run) of the run command, in this process."""
    monkeypatch.setattr(sys, "argv", ["run.py", *args])
    capsys.readouterr()
    before = runner.GENERATIONS_RUN
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, capsys.readouterr().err, runner.GENERATIONS_RUN - before


@pytest.mark.parametrize("case_id,overrides,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_before_generating_or_writing(case_id, overrides, message, prepared, tmp_path, capsys,
                                                        monkeypatch):
    results_dir = tmp_path / "runs"
    cwd = tmp_path / "cwd"
    args = [*BASE, f"results_dir={results_dir}"]
    for o in overrides:
        if o == "-m":  # a flag goes before the overrides
            args.insert(0, o)
        elif o == "!read_only":  # a read-only file system (root ignores permission bits, so simulated)
            monkeypatch.setattr(tempfile, "TemporaryFile", _os_error(errno.EROFS))
        elif o == "!disk_full":
            monkeypatch.setattr(tempfile, "TemporaryFile", _os_error(errno.ENOSPC))
        elif o == "!no_slurm_on_path":  # not a SLURM login node: no sbatch, no srun
            (tmp_path / "empty_bin").mkdir()
            monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))
        elif o == "!cwd_in_tmp":  # run from an empty directory, to see anything written into it
            cwd.mkdir()
            monkeypatch.chdir(cwd)
        else:
            args.append(re.sub(r"<(\w+)>", lambda m: prepared[m.group(1)], o))
    loaded = []
    real_load = loading.load_hf_model
    monkeypatch.setattr(loading, "load_hf_model", lambda spec: loaded.append(spec.path) or real_load(spec))
    code, err, generated = run_cli(args, capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert re.search(message, lines[0]), lines[0]
    assert generated == 0
    if case_id not in LOAD_TIME_CASES:
        assert loaded == [], f"refused only after loading {loaded}: validate.py can tell before"
    written = [p for p in results_dir.rglob("*")] if results_dir.exists() else []
    assert written == [], written  # no run directory, no .lock, no hydra folder
    if cwd.exists():
        assert list(cwd.iterdir()) == []


def test_table_covers_at_least_40_bad_inputs_and_the_docs_list_them():
    assert len({c[0] for c in CASES}) == len(CASES) >= 40
    documented = set(re.findall(r"^\| `(\w+)` \|", (REPO / "docs" / "errors.md").read_text(), flags=re.M))
    assert documented == {c[0] for c in CASES}


def test_a_disk_that_fills_up_mid_run_names_results_dir(tmp_path, capsys, monkeypatch):
    """ENOSPC while appending a row: one line naming results_dir, the rows already written kept."""
    real_open = open

    def open_full(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith("rows.jsonl") and "a" in mode:
            f.write = _os_error(errno.ENOSPC)
        return f

    monkeypatch.setattr(results, "open", open_full, raising=False)
    data = f"dataset.path={FIXTURES / 'humaneval_test.jsonl'}"  # short prompts: none is skipped
    code, err, generated = run_cli([*BASE, data, f"results_dir={tmp_path}"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err, err
    assert generated >= 1  # it happened during the run, not before
    assert re.search(r"error: results_dir=.*cannot append a row to rows\.jsonl: the disk is full.*a relaunch resumes", err)


def test_seed_null_takes_the_first_rows_in_file_order(tmp_path):
    """Documented in docs/datasets.md; the schema used to refuse it."""
    from hydra import compose, initialize_config_dir

    from hsd_bench.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*BASE, "dataset.seed=null", "dataset.limit=2", "baseline=false",
                                           f"dataset.path={FIXTURES / 'humaneval_test.jsonl'}", f"results_dir={tmp_path}"])
    result = runner.run_job(cfg)
    ids = [json.loads(line)["sample_id"] for line in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    assert ids == ["Fixture/0", "Fixture/1"]


def test_a_skipped_prompt_is_said_on_the_console(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run.py", *BASE, "model.max_context=100", "baseline=false",
                                      f"dataset.path={FIXTURES / 'humaneval_test.jsonl'}", f"results_dir={tmp_path}"])
    cli.main()
    out = capsys.readouterr().out
    assert re.search(r"skipping sample Fixture/\d: prompt of \d+ tokens does not fit the context "
                     r"of 100 \(model\.max_context\)", out), out


def _run_py(args: list[str], cwd: Path, **env_changes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CI": "true", **env_changes}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("overrides,message", [
    (["-m", "method=layerskip", "exit=2,42"], r"exit=42 is outside the model's depth"),
    ([f"model.device={MISSING_CUDA}"], rf"model\.device='{MISSING_CUDA}'"),
    (["model.num_layers=abc"], r"model\.num_layers=abc.*Integer"),
    (["results_dir="], r"results_dir='' is empty"),  # would write its run directory into the cwd
    (["-m", "hydra/launcher=slurm", "method.draft_len=1,2", "!no_slurm_on_path"],
     r"hydra/launcher=slurm: sbatch and srun are not on PATH"),
], ids=["sweep_exit", "device", "hydra_type_error", "results_dir_empty", "slurm_without_sbatch"])
def test_real_run_command_rejects_with_one_line_and_leaves_nothing(overrides, message, tmp_path):
    """As a user runs it (python run.py, from another directory): exit 2, one line, no folder anywhere."""
    flags = [o for o in overrides if o.startswith("-")]
    rest = [o for o in overrides if not o.startswith(("-", "!"))]
    env = {}
    if "!no_slurm_on_path" in overrides:  # not a SLURM login node (the interpreter is run by its full path)
        empty = Path(tempfile.mkdtemp(prefix="no-slurm-bin-"))
        env["PATH"] = str(empty)
    res = _run_py([*flags, *BASE, f"results_dir={tmp_path / 'runs'}", *rest], cwd=tmp_path, **env)
    if env:
        empty.rmdir()
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "HYDRA_FULL_ERROR" not in res.stderr, res.stderr
    assert re.search(r"^error: .*" + message, res.stderr.strip().splitlines()[-1]), res.stderr
    assert list(tmp_path.iterdir()) == []  # no runs/, no hydra/<timestamp>/, no outputs/


def test_a_level_of_another_model_at_its_full_depth_is_valid(tmp_path, monkeypatch):
    """Only path: target must exit below its last layer: a separate draft at its full depth is a
    draft like vanilla_sd's, the target's own checkpoint loaded as a second model included."""
    from conftest import tiny_job_config
    from hsd_bench.validate import validate_run_config

    for levels in ("[{path: checkpoints/family-2x128, exit: 2}, {path: target, exit: 23}]",
                   "[{path: checkpoints/ee-24x128, exit: 24}]", "[{path: checkpoints/family-6x128}]"):
        validate_run_config(tiny_job_config(tmp_path, monkeypatch, "model.path=checkpoints/ee-24x128",
                                            "method=hierarchy", f"method.levels={levels}"))
    with pytest.raises(ValueError, match=r"method\.levels\[1\]\.exit=24 is outside 1\.\.23"):
        validate_run_config(tiny_job_config(
            tmp_path, monkeypatch, "model.path=checkpoints/ee-24x128", "method=hierarchy",
            "method.levels=[{path: checkpoints/family-2x128}, {path: target, exit: 24}]"))


def test_an_hf_assisted_draft_is_part_of_the_run_identity(tmp_path, monkeypatch):
    """model_paths names hf_assisted's draft, so its checkpoint's content enters the input hashes."""
    from conftest import tiny_job_config
    from hsd_bench.validate import model_paths

    cfg = tiny_job_config(tmp_path, monkeypatch, "model.path=checkpoints/ee-24x128", "method=hf_assisted")
    assert model_paths(cfg)["method.draft.path"] == "checkpoints/family-2x128"
    assert "method.draft.path" in runner.identity(cfg)["input_hashes"]
