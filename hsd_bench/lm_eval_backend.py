"""lm-evaluation-harness model ``hsd``: any hsd-bench method behind lm-eval's tasks.

Why: lm-eval owns hundreds of task definitions and their metrics; running them
through a speculative method checks on standard tasks that the method leaves
the answers unchanged (greedy) or equally good (sampling). The model decodes
one request at a time through :class:`hsd_bench.api.Decoder` and honours each
request's own generation settings (``until``, ``max_gen_toks``,
``do_sample``/``temperature``/``top_k``/``top_p``); it only generates, so
loglikelihood tasks are refused with a clear error.

lm-eval finds models through a registry filled on import and has no plugin
entry point for models, so the plain ``lm_eval`` command cannot see ``hsd``.
Use this module as the command (it registers the model, then hands the
arguments to lm-eval's own CLI)::

    python -m hsd_bench.lm_eval_backend run --model hsd \\
        --model_args method=layerskip,model_path=facebook/layerskip-llama3.2-1B,exit=4,draft_len=4 \\
        --tasks gsm8k --limit 20

or, from Python, ``import hsd_bench.lm_eval_backend`` before
``lm_eval.simple_evaluate(model="hsd", ...)``. A multi-exit value such as
HiSpec's ``exit=8,16`` is written ``exit=8:16`` (commas separate model args).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
import time
from typing import Any

if __name__ == "__main__":
    # Run as `python -m hsd_bench.lm_eval_backend`: import the module under its real name (which registers
    # "hsd" once) and run lm-eval's CLI; defining the class here too would register a second copy.
    from hsd_bench.lm_eval_backend import main

    raise SystemExit(main())

import lm_eval.models  # noqa: F401  -- fill lm-eval's registry first (it is only auto-filled while empty)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from hsd_bench.tasks.scoring.stop import truncate_at_stop

log = logging.getLogger(__name__)

# Generation settings a request may carry, and what this backend does with them.
MAX_TOKEN_KEYS = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
SAMPLING_KEYS = ("do_sample", "temperature", "top_k", "top_p")
# Accepted for compatibility with lm-eval task files; they do not change what is decoded here.
IGNORED_KEYS = ("use_cache",)


def parse_exit(value: Any) -> Any:
    """``4`` -> 4; ``"8:16"`` / ``"8 16"`` / ``[8, 16]`` -> [8, 16]; ``None`` stays None."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    parts = str(value).replace(":", " ").replace("/", " ").split()
    try:
        ints = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"exit={value!r} must be an int or ints joined by ':' (e.g. exit=8:16)") from None
    if not ints:
        raise ValueError(f"exit={value!r} is empty; give an int or ints joined by ':' (e.g. exit=8:16)")
    return ints[0] if len(ints) == 1 else ints


def request_settings(gen_kwargs: dict, default_max_gen_toks: int, seed: int) -> tuple[list[str], int, Any]:
    """``(stop sequences, max new tokens, DecodingConfig)`` for one request's ``gen_kwargs``.

    Follows lm-eval's conventions: ``do_sample`` false (or absent with
    temperature 0) is greedy; ``do_sample`` true without a temperature
    samples at temperature 1, as transformers does. A key this backend cannot
    honour is an error rather than silently dropped.
    """
    from hsd_bench.sampling import DecodingConfig

    kwargs = dict(gen_kwargs or {})
    unknown = sorted(set(kwargs) - {"until", *MAX_TOKEN_KEYS, *SAMPLING_KEYS, *IGNORED_KEYS})
    if unknown:
        raise ValueError(
            f"generation setting(s) {', '.join(unknown)} are not supported by the hsd backend; "
            f"supported: until, {', '.join(MAX_TOKEN_KEYS)}, {', '.join(SAMPLING_KEYS)}"
        )
    until = kwargs.get("until") or []
    if isinstance(until, str):
        until = [until]
    if not isinstance(until, (list, tuple)) or not all(isinstance(s, str) for s in until):
        raise ValueError(f"until={until!r} must be a string or a list of strings")
    max_new = next((kwargs[k] for k in MAX_TOKEN_KEYS if kwargs.get(k) is not None), default_max_gen_toks)
    if isinstance(max_new, bool) or int(max_new) != max_new or int(max_new) < 1:
        raise ValueError(f"max_gen_toks={max_new!r} must be a positive integer")
    do_sample = kwargs.get("do_sample")
    temperature = kwargs.get("temperature")
    if do_sample is None:
        do_sample = temperature is not None and float(temperature) > 0
    if not do_sample:
        decoding = DecodingConfig(temperature=0.0, seed=seed)
    else:
        temperature = 1.0 if temperature is None else float(temperature)
        if temperature <= 0:
            raise ValueError(f"do_sample=True needs temperature > 0, got temperature={temperature}")
        decoding = DecodingConfig(
            temperature=temperature,
            top_k=int(kwargs.get("top_k") or 0),
            top_p=float(kwargs.get("top_p") if kwargs.get("top_p") is not None else 1.0),
            seed=seed,
        )
    return [s for s in until if s], int(max_new), decoding


def _available_device(device: str) -> str:
    """lm-eval's CLI passes ``cuda:0`` unless told otherwise; like its ``hf`` model, fall back to CPU without CUDA."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log.warning("device=%s requested but CUDA is not available; using cpu", device)
            return "cpu"
    return device


def prompt_seed(seed: int, context: str) -> int:
    """A per-request sampling seed that depends on the prompt, not on the order lm-eval sends requests in."""
    digest = hashlib.sha256(f"{seed}:{context}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@register_model("hsd")
class HSDLM(LM):
    """lm-eval model args: ``method``, ``model_path``, ``exit``, ``draft_len``, ``verifier``, ...

    Every argument of :meth:`hsd_bench.api.Decoder.from_options` is accepted,
    plus ``seed`` (sampling) and ``max_gen_toks`` (default when a task sets
    none). ``decoder=`` takes a ready decoder object (Python use and tests).
    """

    def __init__(
        self,
        method: str | None = None,
        decoder: Any = None,
        seed: int = 0,
        max_gen_toks: int = 256,
        batch_size: Any = 1,
        max_batch_size: Any = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if str(batch_size) != "1" and not str(batch_size).startswith("auto"):
            log.warning("hsd backend decodes one request at a time (batch size 1); batch_size=%s ignored", batch_size)
        self.seed = int(seed)
        self.max_gen_toks = int(max_gen_toks)
        if decoder is None:
            self.options = {"method": method or "autoregressive", **options}
        else:  # a ready decoder (tests, notebooks): record what it is, build nothing
            self.options = {"decoder": type(decoder).__name__, **({"method": method} if method else {}), **options}
        if "exit" in options:
            self.options["exit"] = parse_exit(options["exit"])
        if device is not None:
            self.options["device"] = _available_device(device)
        self.decoder = decoder if decoder is not None else self._build_decoder(self.options)
        self.totals = {"requests": 0, "generated_tokens": 0, "wall_s": 0.0}

    @staticmethod
    def _build_decoder(options: dict) -> Any:
        from hsd_bench.api import Decoder

        accepted = set(inspect.signature(Decoder.from_options).parameters) - {"cls", "pool"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(
                f"unknown hsd model arg(s) {', '.join(unknown)}; valid: {', '.join(sorted(accepted | {'seed', 'max_gen_toks'}))}"
            )
        return Decoder.from_options(**options)

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        outputs = []
        for request in tqdm(requests, disable=disable_tqdm or self.rank != 0, desc="hsd generate_until"):
            context, gen_kwargs = request.args
            until, max_new, decoding = request_settings(gen_kwargs, self.max_gen_toks, prompt_seed(self.seed, context))
            start = time.perf_counter()
            text, generation = self.decoder.generate_text(context, max_new, decoding, stop=until)
            self.totals["wall_s"] += time.perf_counter() - start
            self.totals["requests"] += 1
            self.totals["generated_tokens"] += len(generation.output_ids)
            text = truncate_at_stop(text, until)  # Decoder cuts there already; lm-eval's contract, made explicit
            outputs.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return outputs

    def loglikelihood(self, requests: list) -> list:
        raise NotImplementedError(
            "the hsd backend only generates text (generate_until tasks such as gsm8k, humaneval, "
            "cnn_dailymail); speculative decoding does not change log-likelihoods, so score "
            "loglikelihood / multiple-choice tasks with `--model hf` instead"
        )

    def loglikelihood_rolling(self, requests: list) -> list:
        raise NotImplementedError(
            "the hsd backend only generates text; use `--model hf` for perplexity (loglikelihood_rolling) tasks"
        )

    def get_model_info(self) -> dict:
        """Stamped into lm-eval's results ``config`` (called after the evaluation)."""
        info = {"hsd_options": {k: v for k, v in self.options.items()}, "hsd_seed": self.seed, "hsd_totals": dict(self.totals)}
        if self.totals["wall_s"] > 0:
            info["hsd_totals"]["tokens_per_s"] = self.totals["generated_tokens"] / self.totals["wall_s"]
        return info


def main(argv: list[str] | None = None) -> int:
    """lm-eval's command line, with the ``hsd`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()
    return 0
