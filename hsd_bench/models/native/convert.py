"""Weights from a Hugging Face checkpoint into the native layout.

The native backend reads the *same* checkpoint as the HF adapter -- through
``transformers.AutoModelForCausalLM`` -- so results of the two backends are
comparable. Only q/k/v and gate/up are fused (copied once, one matmul each);
every other tensor is shared with the HF model, not copied.
"""

from __future__ import annotations

import torch

from hsd_bench.models.native.args import NativeArgs
from hsd_bench.models.native.layers import LayerWeights
from hsd_bench.models.native.model import MAX_GRAPH_TOKENS, MIN_KV_BUCKET, NativeLlama

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_MAX_CONTEXT = 8192


def _param(module, attr: str) -> torch.Tensor | None:
    value = getattr(module, attr, None)
    return None if value is None else value.detach()


def _cat(*tensors: torch.Tensor | None) -> torch.Tensor | None:
    present = [t is not None for t in tensors]
    if not any(present):
        return None
    if not all(present):
        raise ValueError("native backend: some but not all fused projections have a bias; not supported")
    return torch.cat(tensors, dim=0).contiguous()


def layer_weights(layer) -> LayerWeights:
    """The weights of one HF decoder layer (Llama/Qwen2/Qwen3/Mistral module names)."""
    attn, mlp = layer.self_attn, layer.mlp
    q_norm = getattr(attn, "q_norm", None)
    k_norm = getattr(attn, "k_norm", None)
    return LayerWeights(
        ln_attn=layer.input_layernorm.weight.detach(),
        wqkv=_cat(attn.q_proj.weight.detach(), attn.k_proj.weight.detach(), attn.v_proj.weight.detach()),
        bqkv=_cat(_param(attn.q_proj, "bias"), _param(attn.k_proj, "bias"), _param(attn.v_proj, "bias")),
        q_norm=None if q_norm is None else q_norm.weight.detach(),
        k_norm=None if k_norm is None else k_norm.weight.detach(),
        wo=attn.o_proj.weight.detach(),
        bo=_param(attn.o_proj, "bias"),
        ln_mlp=layer.post_attention_layernorm.weight.detach(),
        w_gate_up=_cat(mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach()),
        b_gate_up=_cat(_param(mlp.gate_proj, "bias"), _param(mlp.up_proj, "bias")),
        w_down=mlp.down_proj.weight.detach(),
        b_down=_param(mlp.down_proj, "bias"),
    )


def from_hf_model(
    hf_model: torch.nn.Module,
    name: str = "model",
    max_context: int | None = None,
    compile: bool | None = None,
    cuda_graphs: bool | None = None,
    fixed_shapes: bool | None = None,
    max_graph_tokens: int = MAX_GRAPH_TOKENS,
    min_kv_bucket: int = MIN_KV_BUCKET,
    attention: str = "triton",
    prefill: str = "auto",
    matmul: str = "gemv",
) -> NativeLlama:
    """A :class:`NativeLlama` over a loaded transformers causal LM (any device/dtype).

    ``max_context`` defaults to the config's ``max_position_embeddings``
    capped at 8192: the KV cache is preallocated, and attention only reads
    the occupied part, so a larger value costs memory but not speed.
    ``compile``/``cuda_graphs`` default to on for CUDA, off on CPU. A short
    ``max_context`` with ``min_kv_bucket >= max_context`` gives one attention
    span for every step: the fewest compiled shapes (benchmarks).
    """
    config = hf_model.config
    args = NativeArgs.from_hf_config(config)
    decoder = hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else hf_model.model
    if len(decoder.layers) != args.num_layers:
        raise ValueError(f"config says {args.num_layers} layers, the model has {len(decoder.layers)}")
    lm_head = hf_model.get_output_embeddings()
    if getattr(lm_head, "bias", None) is not None:
        raise ValueError("native backend: an LM head with a bias is not supported")
    if max_context is None:
        max_context = min(int(getattr(config, "max_position_embeddings", DEFAULT_MAX_CONTEXT)), DEFAULT_MAX_CONTEXT)
    return NativeLlama(
        args,
        [layer_weights(layer) for layer in decoder.layers],
        decoder.embed_tokens.weight.detach(),
        decoder.norm.weight.detach(),
        lm_head.weight.detach(),
        name=name,
        max_context=int(max_context),
        compile=compile,
        cuda_graphs=cuda_graphs,
        fixed_shapes=fixed_shapes,
        max_graph_tokens=max_graph_tokens,
        min_kv_bucket=min_kv_bucket,
        attention=attention,
        prefill=prefill,
        matmul=matmul,
    )


def load_native_model(
    path: str,
    dtype: str | torch.dtype = "bfloat16",
    device: str = "cuda",
    max_context: int | None = None,
    name: str = "model",
    **options,
) -> NativeLlama:
    """Load a local checkpoint directory (or Hub id, where reachable) into the native backend.

    The transformers model is dropped afterwards; only the weights the
    backend references stay in memory.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    hf_model = hf_model.to(device).eval()
    model = from_hf_model(hf_model, name=name, max_context=max_context, **options)
    del hf_model
    return model
