"""Every transformers internal the HF backend relies on, each with one probe.

The HF backend drives decoder layers one range at a time with a KV cache of
its own, so it depends on a handful of transformers internals that are not
public API and do change between releases (5.24 renamed the decoder layer's
cache argument from ``past_key_values`` to ``cache``; a layer takes unknown
keywords into ``**kwargs``, so passing the old name *silently* skips the
cache). Each internal is named here once, and :func:`probe_layer_protocol`
runs a few tokens through the first decoder layer at load to check that each
behaves as the backend assumes. When one does not, loading fails at once with
a message naming the installed transformers version and the tested range --
never a wrong answer or a confusing error on sample 1.

The internals (also listed in ``docs/engine.md``):

1. module layout: ``decoder.layers`` / ``embed_tokens`` / ``norm`` /
   ``rotary_emb`` and ``get_output_embeddings()``;
2. the cache keyword of ``DecoderLayer.forward`` (:data:`CACHE_KWARGS`) and
   the one cache method attention calls, ``cache.update(k, v, layer_idx)``;
3. the rotary call ``rotary_emb(hidden, position_ids) -> (cos, sin)``;
4. the mask format: an additive float mask ``[1, 1, T, S]`` that attention
   honours as given;
5. the layer's return type: a tensor ``[1, T, D]`` or a tuple starting with one.
"""

from __future__ import annotations

import inspect

import torch

# Decoder-layer keywords that carry the KV cache, newest first.
CACHE_KWARGS = ("cache", "past_key_values", "past_key_value")

# transformers releases whose greedy-parity tests passed with this backend
# (docs/compatibility.md says how each was checked; constraints.txt pins one).
TESTED_TRANSFORMERS = ("5.17.0", "5.23.0", "5.24.0", "5.25.0")


class TransformersDriftError(RuntimeError):
    """An internal the HF backend relies on behaves differently in the installed transformers."""


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def drift_error(what: str) -> TransformersDriftError:
    return TransformersDriftError(
        f"the HF backend cannot drive this transformers release: {what}. Installed: transformers "
        f"{transformers_version()}; tested: {', '.join(TESTED_TRANSFORMERS)}. Install a tested release "
        f"(pip install -c constraints.txt -e .), or use model.backend=native, which reads only weights and "
        f"config; to support this release, adapt hsd_bench/models/hf_compat.py (docs/compatibility.md)."
    )


def cache_kwarg(layer: torch.nn.Module) -> str:
    """The keyword under which ``layer.forward`` takes its KV cache."""
    params = inspect.signature(type(layer).forward).parameters
    for name in CACHE_KWARGS:
        if name in params:
            return name
    raise drift_error(
        f"{type(layer).__name__}.forward takes none of the cache keywords {', '.join(CACHE_KWARGS)} "
        f"(its parameters: {', '.join(params)})"
    )


def decoder_parts(hf_model: torch.nn.Module) -> dict:
    """The modules the backend calls directly (internal 1)."""
    decoder = hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else getattr(hf_model, "model", None)
    parts = {}
    for key in ("layers", "embed_tokens", "norm", "rotary_emb"):
        part = getattr(decoder, key, None)
        if part is None:
            raise drift_error(f"the decoder ({type(decoder).__name__}) has no `{key}` module")
        parts[key] = part
    parts["lm_head"] = hf_model.get_output_embeddings()
    if parts["lm_head"] is None:
        raise drift_error(f"{type(hf_model).__name__}.get_output_embeddings() returned None")
    return parts


def layer_output(out) -> torch.Tensor:
    """The hidden states a decoder layer returned (internal 5)."""
    return out[0] if isinstance(out, tuple) else out


def probe_layer_protocol(model) -> None:
    """Run a few tokens through layer 0 of ``model`` (an ``HFLayeredModel``) and
    check internals 2-5; the model's cache is left empty.

    Inputs are random hidden states (seeded, the model's dtype and device), so
    the probe needs no tokenizer and costs one layer on three positions.
    """
    width = model.config.hidden_size
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, 2, width, generator=gen).to(device=model.device, dtype=model.dtype)
    try:
        _probe(model, x)
    finally:
        model.reset()


def _probe(model, x: torch.Tensor) -> None:
    layer = model._layers[0]
    # 3. rotary: (cos, sin), one row per position.
    positions = torch.arange(2, device=x.device).view(1, -1)
    rope = model._rotary(x, positions)
    if not (isinstance(rope, tuple) and len(rope) == 2 and all(torch.is_tensor(r) and r.shape[-2] == 2 for r in rope)):
        raise drift_error(
            f"rotary_emb(hidden, position_ids) returned {type(rope).__name__}, not (cos, sin) with one row per position"
        )

    def call(hidden, first_pos, mask):
        pos = torch.arange(first_pos, first_pos + hidden.shape[1], device=x.device).view(1, -1)
        out = layer(hidden, attention_mask=mask, position_ids=pos, use_cache=True,
                    position_embeddings=model._rotary(hidden, pos), **{model._cache_kwarg: model.cache})
        h = layer_output(out)
        # 5. return type.
        if not (torch.is_tensor(h) and h.shape == hidden.shape):
            raise drift_error(
                f"a decoder layer returned {type(out).__name__} "
                f"({getattr(h, 'shape', None)}), not hidden states of shape {tuple(hidden.shape)}"
            )
        return h

    # 2. the cache keyword reaches attention and attention writes the harness's cache.
    model.reset()
    call(x[:, :1], 0, None)
    if model.cache_len(0) != 1:
        raise drift_error(
            f"one token through layer 0 left {model.cache_len(0)} positions in the harness's KV cache, not 1: "
            f"the layer does not pass `{model._cache_kwarg}=` on to attention's cache.update"
        )
    # 4. the mask is honoured as given: hide key 0 from query 1, so query 1
    # attends to itself alone. With one visible key the attention weight is 1
    # whatever the position (values carry no rotary), so that equals the token
    # run alone on an empty cache, with no mask at all.
    model.reset()
    mask = _causal(2, x)
    mask[..., 1, 0] = torch.finfo(x.dtype).min
    masked = call(x, 0, mask)[:, 1] - x[:, 1]
    model.reset()
    alone = call(x[:, 1:], 0, None)[:, 0] - x[:, 1]
    model.reset()
    causal = call(x, 0, _causal(2, x))[:, 1] - x[:, 1]
    err = (masked - alone).float().norm()
    gap = (causal - alone).float().norm()
    if not err <= 0.25 * gap:
        raise drift_error(
            "an additive attention mask [1, 1, T, S] is not honoured as given (a query saw a key the mask hides)"
        )


def _causal(length: int, like: torch.Tensor) -> torch.Tensor:
    mask = torch.full((length, length), torch.finfo(like.dtype).min, dtype=like.dtype, device=like.device)
    return mask.triu(1).view(1, 1, length, length)
