"""Structured-config schemas: a bad key fails when Hydra composes the config.

The dataclasses are registered with Hydra's ConfigStore as the schema of
``conf/config.yaml``; each YAML group file only fills values in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


# ModelConf's keys that only the native backend reads: a run leaves them out of its hash at their
# defaults (runner.identity), and validate_run_config checks each against its valid values.
NATIVE_MODEL_OPTIONS = ("prefill", "matmul", "attention")


@dataclass
class ModelConf:
    path: str = "checkpoints/ee-24x128"  # Hub id, local dir, or random:<arch>
    dtype: str = "float32"
    device: str = "cpu"  # cpu | cuda | auto
    backend: str = "auto"  # auto (native where supported: measured faster on GPU and CPU) | hf | native
    num_layers: Optional[int] = None  # random:<arch> only
    seed: int = 0  # random:<arch> only
    max_context: Optional[int] = None
    # native backend: how a prompt longer than one graph step runs -- auto (graph-replayed
    # chunks up to the cost model's limit, eager beyond: docs/performance.md) | eager | chunked
    prefill: str = "auto"
    # native backend: the projections of one-row steps -- gemv (a one-pass Triton GEMV where
    # Triton and a half-precision dtype are there, cuBLAS otherwise) | cublas: docs/performance.md
    matmul: str = "gemv"
    # native backend: the attention of fixed-shape steps -- triton (a one-row step's RoPE, cache
    # write and attention as one Triton kernel where it applies, math otherwise) | math | sdpa
    attention: str = "triton"


@dataclass
class DraftConf:
    path: Optional[str] = None


@dataclass
class MethodConf:
    name: str = "autoregressive"
    exit: Any = "${exit}"  # int, or [E_d, E_v] for hispec; null = a depth-based default
    draft_len: int = 4
    period: int = 4
    flush_on_mismatch: bool = False
    draft: DraftConf = field(default_factory=DraftConf)
    levels: list[Any] = field(default_factory=list)
    # Adaptive draft length (hsd_bench/draft_stop.py): null = fixed draft_len; a threshold in
    # (0, 1), or {threshold: t}: level 0 stops after its first token whose top probability is
    # below t (draft_len is then the maximum). Hierarchy levels take their own draft_stop key.
    draft_stop: Any = None
    # The look-ahead draft (docs/engine.md): queue the next draft round before a greedy verdict is
    # read where that round is certain (or guarded on the device by the verdict: a middle level that
    # may hand up), and AR's next chunk before a chunk is read. Outputs and counters are the same
    # either way (a chunk a stop made useless is reported as dropped_in_flight_tokens); false = the
    # old order, for an A/B through run.py.
    lookahead: bool = True


@dataclass
class DatasetConf:
    name: str = "humaneval"
    path: Optional[str] = None  # local JSONL instead of the Hub / bundled source
    split: Optional[str] = None
    limit: Optional[int] = None
    seed: Optional[int] = 0  # null = the first `limit` rows in file order
    ids: Optional[list[str]] = None
    num_fewshot: Optional[int] = None
    max_new_tokens: Optional[int] = None
    source: Optional[str] = None  # humaneval: bundled (default) | hub
    stop_sequences: Optional[list[str]] = None  # null = the task's
    fewshot_source: Optional[str] = None  # builtin (default) | train
    fewshot_path: Optional[str] = None
    fewshot_seed: Optional[int] = None
    exec_timeout_s: Optional[float] = None  # humaneval test execution
    categories: Optional[list[str]] = None  # spec_bench: keep only these categories
    per_category: Optional[int] = None  # spec_bench: at most this many prompts per category


@dataclass
class DecodingConf:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 1  # sequences decoded together, each its own rows/stop/generator


@dataclass
class WandbConf:
    mode: str = "disabled"  # online | offline | disabled
    project: str = "hsd-bench"
    entity: Optional[str] = None
    group: Optional[str] = None
    dir: Optional[str] = None


@dataclass
class RunConf:
    method: MethodConf = field(default_factory=MethodConf)
    model: ModelConf = field(default_factory=ModelConf)
    dataset: DatasetConf = field(default_factory=DatasetConf)
    decoding: DecodingConf = field(default_factory=DecodingConf)
    wandb: WandbConf = field(default_factory=WandbConf)
    exit: Any = None  # shorthand for method.exit: `exit=4`, `exit=8,16`
    verifier: str = "tokenwise"
    max_new_tokens: Optional[int] = None  # null = the dataset's default
    results_dir: str = "runs"
    baseline: bool = True  # also run autoregressive decoding on the same samples
    # Tokens autoregressive decoding (the baseline, and method=autoregressive) commits per host
    # round trip, stop checks between chunks; null = 8 on CUDA, 1 elsewhere (methods.ar_chunk_for).
    # The output is the same at any value; tokens computed past a stop count as discarded_tokens.
    ar_chunk: Optional[int] = None
    # Untimed full-length generation per method before timing, after every fixed shape is
    # captured (hsd_bench/measure.py). null (or 0) = max_new_tokens; a smaller value saves time,
    # and at decoding.batch_size > 1 (where the untimed stream decodes this many tokens per row)
    # leaves later batch shapes to the timed stream, which counts them in graph_captures_timed.
    warmup_tokens: Optional[int] = None
    # Timed passes over the samples per decoder; each sample keeps its median pass's timing
    # (hsd_bench/measure.py, rule 5). null = 3 on CUDA (a host-bound method's speed moves from
    # pass to pass there), 1 elsewhere. Outputs do not depend on it; timings do (run identity).
    timing_repeats: Optional[int] = None
    # Each level's share of decode time (time_split_s). null = where it costs nothing: on CPU
    # (a host clock); on asynchronous CUDA decoding it is off, because its CUDA events (about 2 µs
    # of host time each, 8 per token for HiSpec, 2 per chunk for AR) slow the host-bound methods
    # it would describe: true records it anyway (docs/gpu-runs.md, "Nineteenth run").
    level_split: Optional[bool] = None
    progress: bool = True
    # Intra-op CPU threads. Small models are overhead-bound: on a 2-core
    # machine extra threads only contend (measured 5x slower under load).
    # null = torch's default. Part of the run identity: it changes timings.
    cpu_threads: Optional[int] = 1
    # A run's rows must come from one version of the code; set true to append
    # to a run whose rows another code version wrote (each row records its own).
    resume_across_code_change: bool = False


# Keys that name where/how results are shown or how a launch behaves, not what
# is measured: they do not enter the run directory's hash.
NON_IDENTITY_KEYS = ("results_dir", "progress", "wandb", "resume_across_code_change")


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConf)
