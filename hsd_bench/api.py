"""A programmatic entry point: build a method on a model and decode text.

Used by the lm-eval backend, benchmarks and notebooks -- everything that
needs a decoder without Hydra.
"""

from __future__ import annotations

from typing import Any

from hsd_bench.engine import Engine, Generation
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.loading import ModelSpec, load_model
from hsd_bench.sampling import DecodingConfig


class ModelPool:
    """Loads each model path once per process, all with the same dtype/device/backend."""

    def __init__(self, template: ModelSpec):
        self.template = template
        self._models: dict[str, tuple[Any, Any]] = {}

    def get(self, path: str, **overrides) -> tuple[Any, Any]:
        key = repr((path, sorted(overrides.items())))
        if key not in self._models:
            spec = ModelSpec(**{**self.template.__dict__, "path": path, **overrides})
            self._models[key] = load_model(spec, name=path)
        return self._models[key]


class Decoder:
    """A method on a target model, with its tokenizer."""

    def __init__(self, engine: Engine, codec, method: MethodSpec):
        self.engine = engine
        self.tokenizer = codec
        self.method = method

    @classmethod
    def from_options(
        cls,
        method: str = "autoregressive",
        model_path: str = "checkpoints/ee-24x128",
        exit: Any = None,
        draft_len: int = 4,
        period: int = 4,
        flush_on_mismatch: bool = False,
        draft_path: str | None = None,
        levels: list[dict] | None = None,
        verifier: str = "tokenwise",
        draft_stop: Any = None,
        lookahead: bool = True,
        level_split: bool | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        backend: str = "auto",
        pool: ModelPool | None = None,
    ) -> "Decoder":
        pool = pool or ModelPool(ModelSpec(model_path, dtype=dtype, device=device, backend=backend))
        target, codec = pool.get(model_path)
        spec = MethodSpec(
            name=method, exit=exit, draft_len=draft_len, period=period, flush_on_mismatch=flush_on_mismatch,
            draft_path=draft_path, levels=list(levels or []), verifier=verifier, draft_stop=draft_stop,
            lookahead=lookahead, level_split=level_split,
        )
        engine = build_engine(spec, target, pool.get, codec)
        return cls(engine, codec, spec)

    def generate_text(
        self, prompt: str, max_new_tokens: int, decoding: DecodingConfig | None = None, stop: list[str] | tuple = ()
    ) -> tuple[str, Generation]:
        ids = self.tokenizer.encode(prompt)
        gen = self.engine.generate(ids, max_new_tokens, decoding, stop_sequences=list(stop), tokenizer=self.tokenizer)
        return truncate_at_stop(self.tokenizer.decode(gen.output_ids), stop), gen


def truncate_at_stop(text: str, stop) -> str:
    """Cut the text at the first stop sequence (the ids keep the token that completed it)."""
    cut = len(text)
    for s in stop or ():
        idx = text.find(s)
        if idx != -1:
            cut = min(cut, idx)
    return text[:cut]
