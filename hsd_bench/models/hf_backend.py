"""The one module that touches transformers' internals.

It drives a Hugging Face Llama-family model (Llama, Qwen2/3, Mistral) layer
range by layer range, so that early-exit views share one KV cache. Everything
version-dependent is named in ``hf_compat.py`` (STYLE.md: LayerSkip's copy
of HF forward bodies broke on every release) and probed when a model loads:
the decoder-layer cache keyword, how a layer returns its output, the rotary
call, the mask format, where the rotary embedding and final norm sit.

The causal mask is built per call from absolute positions -- transformers'
mask helpers assume one cache length for all layers, but here every layer
range has its own frontier (and, in a ragged batch, every row).
"""

from __future__ import annotations

import torch

from hsd_bench.models import hf_compat
from hsd_bench.models.kv_cache import LayerKVCache
from hsd_bench.models.ragged import RaggedLayout

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")


class HFLayeredModel:
    """A ``LayeredModel`` (see ``base.py``) over a transformers causal LM."""

    backend = "hf"

    def __init__(self, hf_model: torch.nn.Module, name: str = "model", max_context: int | None = None):
        config = hf_model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"model {name!r} has model_type {config.model_type!r}; supported Llama-family types: "
                f"{', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        self.hf_model = hf_model.eval()
        parts = hf_compat.decoder_parts(hf_model)
        self._layers = parts["layers"]
        self._embed_tokens = parts["embed_tokens"]
        self._norm = parts["norm"]
        self._rotary = parts["rotary_emb"]
        self._lm_head = parts["lm_head"]
        self.name = name
        self.config = config
        self.num_layers = len(self._layers)
        self.vocab_size = self._lm_head.weight.shape[0]
        self.max_context = int(max_context or getattr(config, "max_position_embeddings", 2048))
        param = next(hf_model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.cache = LayerKVCache(self.num_layers)
        self._windows = [self._sliding_window(i) for i in range(self.num_layers)]
        self._cache_kwarg = hf_compat.cache_kwarg(self._layers[0])
        # Fail here, not on sample 1, if this transformers release drives layers differently.
        hf_compat.probe_layer_protocol(self)

    def _sliding_window(self, layer: int) -> int | None:
        attn = self._layers[layer].self_attn
        window = getattr(attn, "sliding_window", None)
        if window is None and self.config.model_type == "mistral":
            window = getattr(self.config, "sliding_window", None)
        return int(window) if window else None

    # -- LayeredModel -----------------------------------------------------
    def reset(self) -> None:
        self.cache.reset()

    def reserve_rows(self, rows: int) -> None:
        self.cache.reserve_rows(rows)

    def cache_len(self, layer: int, row: int = 0) -> int:
        return self.cache.row_lengths[row][layer]

    def truncate(self, start: int, end: int, length: int, rows: list[int] | None = None) -> None:
        self.cache.truncate(start, end, length, rows)

    def prepare(self, max_len: int, ranges=(), heads=(), chains=(), guarded=()) -> int:
        """Size the KV cache for sequences of ``max_len`` positions, so no timed step grows it.

        Eager transformers has no fixed shapes to capture; the buffers are
        allocated at the first write, which ``measure.prepare``'s untimed
        generation makes. Returns 0 (graphs captured).
        """
        self.cache.reserve(max_len)
        return 0

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._embed_tokens(ids.view(1, -1))

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._lm_head(self._norm(hidden))[0].float()

    @torch.inference_mode()
    def run_layers(self, hidden: torch.Tensor, start: int, end: int, first_pos, rows=None, lengths=None) -> torch.Tensor:
        if rows is not None:
            return self._run_rows(hidden, start, end, RaggedLayout(rows, first_pos, lengths))
        length = hidden.shape[1]
        positions = torch.arange(first_pos, first_pos + length, device=hidden.device).view(1, -1)
        self._check_frontier(start, end, [0], [first_pos])
        masks: dict[int | None, torch.Tensor | None] = {}
        for window in set(self._windows[start:end]):
            masks[window] = _causal_mask(positions, first_pos + length, window, hidden.dtype)
        return self._layer_range(hidden, start, end, positions, masks)

    def _run_rows(self, hidden: torch.Tensor, start: int, end: int, layout: RaggedLayout) -> torch.Tensor:
        """A ragged forward: each row at its own positions over its own cache row (``ragged.py``)."""
        if max(layout.rows) >= self.cache.rows:
            raise ValueError(f"{self.name}: rows {layout.rows} outside the {self.cache.rows} reserved rows")
        self._check_frontier(start, end, layout.rows, layout.first)
        x = layout.pad(hidden)
        positions = layout.positions(x.device)
        keys = max(layout.first) + layout.T  # slots up to the highest position written, padding included
        self.cache.begin_rows(layout.rows, positions, layout.ends, keys)
        try:
            masks = {w: _rows_mask(positions, keys, w, x.dtype) for w in set(self._windows[start:end])}
            out = self._layer_range(x, start, end, positions, masks)
        finally:
            self.cache.end_rows()
        return layout.unpad(out)

    def _check_frontier(self, start: int, end: int, rows: list[int], first: list[int]) -> None:
        for r, f in zip(rows, first):
            held = self.cache.row_lengths[r]
            for layer in range(start, end):
                if held[layer] != f:
                    row = f" of row {r}" if r else ""
                    raise RuntimeError(
                        f"{self.name}: layer {layer} holds {held[layer]} positions{row}, asked to continue at {f}"
                    )

    def _layer_range(self, hidden, start: int, end: int, positions, masks) -> torch.Tensor:
        rope = self._rotary(hidden, positions)
        for layer in range(start, end):
            out = self._layers[layer](
                hidden,
                attention_mask=masks[self._windows[layer]],
                position_ids=positions,
                use_cache=True,
                position_embeddings=rope,
                **{self._cache_kwarg: self.cache},
            )
            hidden = hf_compat.layer_output(out)
        return hidden


def _causal_mask(positions: torch.Tensor, keys: int, window: int | None, dtype) -> torch.Tensor | None:
    """:func:`_rows_mask` of one sequence (``positions`` ``[1, T]``, the last at ``keys - 1``);
    ``None`` when a single query may see every key (SDPA then needs no mask)."""
    if positions.shape[1] == 1 and (window is None or keys <= window):
        return None
    return _rows_mask(positions, keys, window, dtype)


def _rows_mask(positions: torch.Tensor, keys: int, window: int | None, dtype) -> torch.Tensor:
    """Additive mask ``[b, 1, T, keys]``: the query of row ``i`` at ``positions[i, t]`` sees key
    slot ``s`` of its own row iff ``s <= positions[i, t]`` (and within the window). ``keys``
    (highest position written + 1) comes from the host, so building the mask never waits for
    the device."""
    k_pos = torch.arange(keys, device=positions.device).view(1, 1, -1)
    q_pos = positions[:, :, None]
    allowed = k_pos <= q_pos
    if window is not None:
        allowed &= (q_pos - k_pos) < window
    mask = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]
