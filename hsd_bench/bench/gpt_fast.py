"""gpt-fast as an external reference: its own decoder on our weights and prompts, beside our AR.

Why: issue 15's targets are ratios to gpt-fast, the compiled-PyTorch decoder people use for
batch-1 decode speed, and a ratio means something only when both sides run in one process on one
GPU, on the same weights and prompts. gpt-fast is not copied into this project: this module
imports the user's clone (its ``model.py`` and ``generate.py``), builds its ``Transformer`` from
the transformers model the harness loads, and calls its own ``generate()`` -- compiled as its
``main(compile=True)`` does (``decode_one_token`` under ``torch.compile(mode="reduce-overhead",
fullgraph=True)``, the inductor settings its module sets on import; prefill not compiled). Its
tokenizer module needs sentencepiece and tiktoken; where they are missing a stand-in is
registered, since prompts arrive as token ids.

:func:`compare_model` is one model's row: gpt-fast's tokens/s (its first generate() of every
prompt length untimed -- compilation and graph capture -- then ``reps`` timed rounds over the
prompts, synchronised around every clock read, median), our engine's AR on the same prompts
(``bench.runs.engine_run``: ``measure.prepare``, then ``measure.timed_passes`` as ``run.py``
times it, EOS off as in gpt-fast), the ratio, how many of gpt-fast's greedy tokens equal ours (the
weight mapping's check: all of them in float32), and where a prompt's tokens part, why
(``hsd_bench.parity`` on our target, the benchmark's rule: in bf16 the two decoders' kernels
round differently and part at near ties, after which every token differs, so the equal
fraction alone cannot tell a mapping bug from arithmetic). ``scripts/gpt_fast_reference.py``
and ``bench_gpu.py --parts gpt_fast`` both call it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

from hsd_bench import parity
from hsd_bench.bench.models import load_hf, prompts_for
from hsd_bench.bench.runs import engine_run
from hsd_bench.bench.timing import median, timed
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model

GPT_FAST_URL = "https://github.com/pytorch-labs/gpt-fast"


def clone_problem(path: Path | str | None) -> str | None:
    """Why ``path`` is not a gpt-fast clone this module can import (``None`` when it is)."""
    if path is None:
        return f"no gpt-fast clone given; valid: a clone of {GPT_FAST_URL}"
    p = Path(path)
    if not (p / "model.py").is_file() or not (p / "generate.py").is_file():
        return f"{p}: no model.py and generate.py there; valid: a clone of {GPT_FAST_URL}"
    return None


def import_gpt_fast(path: Path):
    """gpt-fast's ``model`` and ``generate`` modules from the clone at ``path``."""
    sys.path.insert(0, str(path.resolve()))
    try:
        importlib.import_module("tokenizer")
    except ImportError:  # sentencepiece / tiktoken missing: ids go in directly, no tokenizer is used
        stand_in = types.ModuleType("tokenizer")
        stand_in.get_tokenizer = lambda *a, **k: None
        sys.modules["tokenizer"] = stand_in
    return importlib.import_module("model"), importlib.import_module("generate")


def gpt_fast_transformer(gf_model, hf, max_seq: int, device: str, dtype: torch.dtype):
    """gpt-fast's ``Transformer`` holding the weights of a transformers Llama model.

    Names map one to one except q/k/v (gpt-fast fuses them into ``wqkv``) and the rotary
    layout: transformers rotates the two halves of each head (``rotate_half``), gpt-fast
    rotates adjacent pairs, so the rows of q and k are reordered within each head from
    (first half, second half) to interleaved pairs -- the same dot products, the same model.
    """
    c = hf.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if head_dim * c.num_attention_heads != c.hidden_size:
        raise ValueError(f"gpt-fast needs head_dim = hidden_size / heads; this model has {head_dim} x "
                         f"{c.num_attention_heads} != {c.hidden_size}")
    rope = dict(getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(c, "rope_theta", None) or 10000.0)
    kind = rope.get("rope_type", "default")
    if kind == "llama3":  # the one scaling gpt-fast implements (Llama 3.1 / 3.2)
        scaling = {k: rope[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                         "original_max_position_embeddings")}
    elif kind == "default":
        scaling = None
    else:
        raise ValueError(f"rope_type={kind!r} has no gpt-fast counterpart; valid: default, llama3")
    args = gf_model.ModelArgs(block_size=max_seq, vocab_size=c.vocab_size, n_layer=c.num_hidden_layers,
                              n_head=c.num_attention_heads, n_local_heads=c.num_key_value_heads, dim=c.hidden_size,
                              intermediate_size=c.intermediate_size, rope_base=theta, norm_eps=c.rms_norm_eps,
                              rope_scaling=scaling)
    sd = hf.state_dict()

    def interleave(w: torch.Tensor, heads: int) -> torch.Tensor:
        return w.view(heads, 2, head_dim // 2, -1).transpose(1, 2).reshape(w.shape)

    out = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
           "output.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"])}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        q = interleave(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads)
        k = interleave(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads)
        out[f"layers.{i}.attention.wqkv.weight"] = torch.cat([q, k, sd[p + "self_attn.v_proj.weight"]])
        out[f"layers.{i}.attention.wo.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[f"layers.{i}.feed_forward.w1.weight"] = sd[p + "mlp.gate_proj.weight"]
        out[f"layers.{i}.feed_forward.w3.weight"] = sd[p + "mlp.up_proj.weight"]
        out[f"layers.{i}.feed_forward.w2.weight"] = sd[p + "mlp.down_proj.weight"]
        out[f"layers.{i}.attention_norm.weight"] = sd[p + "input_layernorm.weight"]
        out[f"layers.{i}.ffn_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
    with torch.device("meta"):
        model = gf_model.Transformer(args)
    model.load_state_dict(out, assign=True, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def compile_like_gpt_fast_main(gf_generate) -> None:
    """What gpt-fast's ``main(compile=True)`` does before generating: its decode step compiled with
    CUDA graphs (``reduce-overhead``, fullgraph), the prefill left eager (its default). Once per
    process: the compiled step recompiles by itself for each new model."""
    gf_generate.decode_one_token = torch.compile(gf_generate.decode_one_token, mode="reduce-overhead",
                                                 fullgraph=True)


def time_gpt_fast(gf_generate, model, prompts: list[list[int]], max_new: int, reps: int,
                  device: str, log: Callable[[str], None] = print) -> tuple[list[list[int]], list[float]]:
    """gpt-fast's generate() on every prompt: one untimed call per prompt length, then ``reps``
    timed rounds; returns its new tokens per prompt and each round's wall time."""

    def run(p: list[int]) -> list[int]:
        ids = torch.tensor(p, dtype=torch.int, device=device)
        with torch.no_grad():
            seq, _ = gf_generate.generate(model, ids, max_new, batch_size=1, interactive=False, draft_model=None,
                                          temperature=0.0, top_k=None)
        return seq[0, len(p):].tolist()

    for n in sorted({len(p) for p in prompts}):  # compilation, capture, first touch: untimed
        run(next(p for p in prompts if len(p) == n))
    log("gpt-fast compiled and warmed up")
    walls, outs = [], []
    for _ in range(reps):
        outs, wall = [], 0.0
        for p in prompts:
            o, w = timed(lambda p=p: run(p), device)
            outs.append(o)
            wall += w
        walls.append(wall)
    return outs, walls


def compare_model(spec: str, gf_model, gf_generate, device: str, dtype: torch.dtype, prompts: int, prompt_len: int,
                  max_new: int, reps: int, log: Callable[[str], None] = print) -> dict:
    """One model's row (see the module doc): ``spec`` is a checkpoint directory or ``random:<shape>``;
    ``prompts`` prompts (``prompt_len`` random tokens for a model without a tokenizer)."""
    log(f"{spec}: loading")
    hf, tok = load_hf(spec, device, dtype)
    ids = prompts_for(tok, hf.config.vocab_size, prompts, prompt_len)
    max_seq = max(len(p) for p in ids) + max_new + 8
    native = from_hf_model(hf, name=spec, max_context=max_seq)
    engine = build_engine(MethodSpec("autoregressive"), native, None, None)  # no codec: no EOS, as gpt-fast
    ours = engine_run(f"ours AR {spec}", engine, "autoregressive", ids, max_new, reps)
    log(f"{spec}: ours AR {ours.tokens_per_s:.1f} tok/s")
    del engine  # the model stays: it explains where gpt-fast's tokens part from ours (after the timing)
    gfm = gpt_fast_transformer(gf_model, hf, max_seq, device, dtype)
    del hf
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    outs, walls = time_gpt_fast(gf_generate, gfm, ids, max_new, reps, device, log)
    del gfm
    theirs = sum(len(o) for o in outs) / median(walls)
    same = [sum(a == b for a, b in zip(o, r)) / max(len(r), 1) for o, r in zip(outs, ours.outputs)]
    row = {"gpt_fast_tokens_per_s": theirs, "gpt_fast_wall_s": walls,
           "ours_tokens_per_s": ours.tokens_per_s, "ours_decode_tokens_per_s": ours.decode_tokens_per_s,
           "ours_wall_s": ours.wall_s, "ours_over_gpt_fast": ours.tokens_per_s / theirs,
           "tokens_equal_fraction": sum(same) / len(same), "prompt_lengths": [len(p) for p in ids],
           "parity": parity.classify(native, ids, ours.outputs, outs)}
    p = row["parity"]
    log(f"{spec}: gpt-fast {row['gpt_fast_tokens_per_s']:.1f} tok/s, ours AR {row['ours_tokens_per_s']:.1f} "
        f"({row['ours_over_gpt_fast']:.2f}x), tokens equal {row['tokens_equal_fraction']:.2f}; prompts equal "
        f"{p['exact']} of {len(ids)}, near ties {p['near_tie']}, unexplained {p['unexplained']}")
    return row


def markdown(rows: dict[str, dict]) -> str:
    """The rows of :func:`compare_model` by model, as a table."""
    lines = ["| model | gpt-fast tok/s | ours AR tok/s | ours / gpt-fast | tokens equal | prompts equal / near tie "
             "/ unexplained |", "| --- | --- | --- | --- | --- | --- |"]
    for spec, r in rows.items():
        if "error" in r:
            lines.append(f"| {spec} | error: {r['error']} | | | | |")
            continue
        p = r["parity"]
        lines.append(f"| {spec} | {r['gpt_fast_tokens_per_s']:.1f} | {r['ours_tokens_per_s']:.1f} "
                     f"| {r['ours_over_gpt_fast']:.2f}× | {r['tokens_equal_fraction']:.2f} "
                     f"| {p['exact']} / {p['near_tie']} / {p['unexplained']} |")
    return "\n".join(lines)
