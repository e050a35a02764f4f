"""transformers' own ``generate()`` as reference methods inside a run.

A figure that puts our methods next to the library people know is only fair
if both run on the same samples, with the same stops and token budget, timed
the same way, in the same job. These decoders have ``Engine.generate``'s
signature, so the runner treats them like any method (``measure.py`` times
them, ``parity.py`` explains their divergences):

| method          | transformers call                                              |
| --------------- | -------------------------------------------------------------- |
| `hf_generate`   | ``model.generate()``: autoregressive, dynamic cache, eager       |
| `hf_early_exit` | ``assistant_early_exit=E``: LayerSkip self-speculation           |
| `hf_assisted`   | ``assistant_model=<draft>``: vanilla speculative decoding        |

The assisted ones draft γ = ``method.draft_len`` tokens per round (constant
schedule), the policy of our own methods, so the comparison is at the same E
and γ; with ``method.draft_stop=t`` they stop drafting below confidence t
(transformers' ``assistant_confidence_threshold``), as ours do. They need the HF
model, so they always run eagerly through transformers whatever
``model.backend`` says; our autoregressive baseline in the same job runs on
the chosen backend.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hsd_bench.engine import Generation, GenerationStats, stop_cut
from hsd_bench.sampling import DecodingConfig

REFERENCE_METHODS = ("hf_generate", "hf_early_exit", "hf_assisted")


class _StopStrings:
    """A transformers ``StoppingCriteria`` for stop sequences, decoded as the engine decodes them."""

    def __init__(self, codec, stop_sequences, n_prompt: int):
        self.codec, self.stop, self.n_prompt = codec, list(stop_sequences), n_prompt

    def __call__(self, input_ids, scores, **kwargs):
        text = self.codec.decode(input_ids[0, self.n_prompt :].tolist())
        done = any(s in text for s in self.stop)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class HFReference:
    """``model.generate()`` in one of the modes of :data:`REFERENCE_METHODS`."""

    def __init__(self, method: str, hf_model, codec, draft_len: int = 4, exit_layer: int | None = None,
                 assistant=None, max_context: int | None = None, draft_stop: float | None = None):
        if method not in REFERENCE_METHODS:
            raise ValueError(f"unknown reference method {method!r}; valid: {', '.join(REFERENCE_METHODS)}")
        self.method = method
        self.hf_model = hf_model.eval()
        self.codec = codec
        self.assistant = assistant
        self.gen_kwargs: dict[str, Any] = {}
        if method == "hf_early_exit":
            self.gen_kwargs["assistant_early_exit"] = exit_layer
        elif method == "hf_assisted":
            self.gen_kwargs["assistant_model"] = assistant.eval()
        for model in (hf_model, assistant):
            if model is not None and method != "hf_generate":
                cfg = model.generation_config
                cfg.num_assistant_tokens = draft_len
                cfg.num_assistant_tokens_schedule = "constant"
                # method.draft_stop maps to transformers' own adaptive drafting: stop when the
                # assistant's top probability falls below the threshold (0 = fixed γ)
                cfg.assistant_confidence_threshold = draft_stop or 0.0
        self.device = next(hf_model.parameters()).device
        self.max_context = int(max_context or getattr(hf_model.config, "max_position_embeddings", 2048))
        self._last_layer = hf_model.get_decoder().layers[-1]
        self._forwards = 0

    def _count(self, *_):
        # A full-depth forward reaches the last decoder layer; an early-exit draft never does.
        self._forwards += 1

    @property
    def models(self) -> list:
        return [self]

    @torch.no_grad()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, decoding: DecodingConfig | None = None,
                 stop_sequences=(), tokenizer=None) -> Generation:
        decoding = decoding or DecodingConfig()
        ids = torch.tensor([prompt_ids], device=self.device)
        kwargs = dict(self.gen_kwargs)
        if decoding.greedy:
            kwargs["do_sample"] = False
        else:
            # top_k=0 / top_p=1 switch the warpers off, as in our sampling.warp
            kwargs.update(do_sample=True, temperature=decoding.temperature, top_k=decoding.top_k,
                          top_p=decoding.top_p)
            torch.manual_seed(decoding.seed)
        if stop_sequences:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopStrings(self.codec, stop_sequences, len(prompt_ids))])
        eos = self.codec.eos_token_id if self.codec is not None else None
        max_new = min(max_new_tokens, self.max_context - len(prompt_ids))
        self._forwards = 0
        hook = self._last_layer.register_forward_hook(self._count)
        try:
            self._sync()
            t0 = time.perf_counter()
            out = self.hf_model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, eos_token_id=eos,
                pad_token_id=eos if eos is not None else 0, **kwargs,
            )
            self._sync()
            wall = time.perf_counter() - t0
        finally:
            hook.remove()
        out_new = new = out[0, len(prompt_ids) :].tolist()
        stop_reason = "max_new_tokens"
        keep = stop_cut([], new, {eos} if eos is not None else set(), stop_sequences, self.codec)
        if keep is not None:
            new = new[:keep]  # assisted rounds can run past the stop: end where the engine ends
            stop_reason = "stop"
        elif max_new < max_new_tokens:
            stop_reason = "context"
        # Target forwards include the prefill's: it yields the first token, as the engine's
        # first decode round does (the engine prefills all but the last prompt token).
        forwards = self._forwards
        # generate() runs the prefill inside its loop (the assisted modes verify the prompt and the
        # first drafts in one forward), so neither a prefill time nor a level split is measured:
        # both None, so the decode rate and its speedup are None, not the wall time renamed.
        # Tokens generate() made past the stop were timed and dropped: counted as the engine
        # counts its own.
        stats = GenerationStats(
            n_prompt=len(prompt_ids), n_generated=len(new), wall_s=wall, prefill_s=None,
            drafted=[0, 0], accepted=[0, 0], rounds=[0, forwards], level_time_s=None,
            level_names=["hf", "target"], discarded=len(out_new) - len(new),
        )
        return Generation(new, stats, stop_reason)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def build(spec, model_spec, target, codec) -> HFReference:
    """The reference decoder for a ``MethodSpec`` named in :data:`REFERENCE_METHODS`.

    Loads the transformers model (and the assistant) on the target's device
    and dtype; exits and γ are validated by the same method registry as our
    methods (``methods.py``), so ``exit=`` and ``method.draft_len=`` mean the
    same for ``hf_early_exit`` as for ``layerskip``.
    """
    from dataclasses import replace

    from hsd_bench.methods import check_draft_compatible, method_views
    from hsd_bench.models.loading import load_hf_model, resolve_device

    views = method_views(spec, target.num_layers)
    device = resolve_device(model_spec.device)
    hf_model, _ = load_hf_model(replace(model_spec, backend="hf"))
    assistant = None
    if spec.name == "hf_assisted":
        # loaded under its own key, so a load error names method.draft.path, as vanilla_sd's draft does
        path = views[0].model
        assistant, assistant_codec = load_hf_model(replace(model_spec, path=path, backend="hf",
                                                           config_key="method.draft.path"))
        # vanilla_sd's check: else transformers refuses another vocabulary mid-generate()
        check_draft_compatible(path, assistant.config.vocab_size, assistant_codec, target.vocab_size, codec,
                               key="method.draft.path")
        assistant = assistant.to(device)
    return HFReference(
        spec.name, hf_model.to(device), codec, draft_len=views[0].batch, exit_layer=views[0].exit,
        assistant=assistant, max_context=target.max_context, draft_stop=views[0].draft_stop,
    )
