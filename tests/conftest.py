"""Shared fixtures: tiny random models of several architectures.

``deep_scale`` < 1 shrinks the residual contributions of deeper layers
so that shallow exits mostly agree with the last layer -- random weights
otherwise reject almost every draft, and the accept paths (multi-token
acceptance, bonus tokens, rollback inside a batch) would go untested.
"""

from __future__ import annotations

import os

# The Hub is unreachable here: fail fast instead of waiting on network timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Triton's CPU interpreter, decided when triton is first imported: how test_gemv.py runs the GEMV
# kernel without a GPU. Nothing else imports triton or dispatches to it on CPU (gemv.CPU_INTERPRETER).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

from hsd_bench.models.hf_backend import HFLayeredModel
from hsd_bench.models.loading import build_random_model
from hsd_bench.models.tokenizer import TextCodec

# Tiny models gain nothing from intra-op threads; on 2 cores they only contend.
torch.set_num_threads(1)

ARCHS = ("llama", "qwen2", "mistral")


def make_model(arch: str, num_layers: int = 6, seed: int = 0, vocab_size: int = 258, deep_scale: float = 1.0,
               name: str = "target") -> HFLayeredModel:
    hf = build_random_model(arch, num_layers=num_layers, seed=seed, vocab_size=vocab_size)
    if deep_scale != 1.0:
        with torch.no_grad():
            for layer in hf.model.layers[1:]:
                layer.self_attn.o_proj.weight.mul_(deep_scale)
                layer.mlp.down_proj.weight.mul_(deep_scale)
    return HFLayeredModel(hf, name=name)


@pytest.fixture
def inference_mode():
    """For tests that drive the native backend's steps and static buffers directly, as the engine
    does, and the engine does it in inference mode: its buffers are inference tensors, which may be
    written in place only there (models/native/inference.py)."""
    with torch.inference_mode():
        yield


@pytest.fixture(scope="session")
def codec() -> TextCodec:
    return TextCodec()


def tiny_job_config(tmp_path, monkeypatch, *overrides: str) -> dict:
    """A resolved ``run.py`` config of a tiny random model writing under ``tmp_path`` (run_job's input)."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from hsd_bench import fingerprint, runner
    from hsd_bench.config import register_schemas

    monkeypatch.setenv(fingerprint.CACHE_ENV, str(tmp_path / "hash-cache.json"))
    register_schemas()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["model=tiny_random", "warmup_tokens=0", "progress=false",
                                           f"results_dir={tmp_path / 'runs'}", *overrides])
    return runner._as_container(cfg)


def load_script(name: str):
    """``scripts/<name>.py`` as a module: the scripts are not a package, and their tests call
    their ``main`` and ``parse_args`` directly."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
