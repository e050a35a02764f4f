"""Plan the GPU grid sweeps: predict every job's speedup, prune the grid, pack it into device calls.

Why: the grid of issue 13 (``conf/experiment/grid_*.yaml``: LayerSkip E x γ,
HiSpec (E_d, E_v) x N_d x N_i x flush, vanilla SD drafts x γ, rules x T,
fixed γ vs draft_stop) is a few hundred jobs, and the GPU comes in calls of at
most 10 minutes. So every job is first *predicted* and only the promising
region is measured.

* **Search space**: each experiment's jobs, expanded as Hydra's basic sweeper
  expands them, composed against the run schema (:func:`expand`).
* **Acceptance**: measured on any machine with the target's family
  (``hierarchy/acceptance.py``; for the GPU plan, the shipped ``ee-24x128``,
  which has the GPU model's depth of 24 -- a proxy: the GPU model's exits are
  trained the same way, on the same corpus, at a larger width).
* **Costs** (:class:`CostModel`): one forward of a view costs
  ``fixed + layers * per_layer`` of its model, whatever the number of
  positions (memory-bound small batches on a GPU); a verification runs only
  the layers the level below has not run (views of one model share them).
  The defaults are fitted to the committed H100 measurements
  (``results/bench_gpu``; see :data:`GPU_MODEL` and :data:`SMALL_MODEL`).
* **Prediction**: the job's levels (``methods.method_views``, the engine's own
  stack) become a :class:`~hsd_bench.hierarchy.latency.StackSpec` with
  adjacent acceptance, and :func:`~hsd_bench.hierarchy.latency.expected_latency`
  gives latency per token, speedup and τ. A two-level stack with a draft_stop
  threshold uses :func:`draft_stop_round` instead (the latency model assumes
  fixed batches). Block/hsd at T > 0 are predicted with the token-wise
  acceptance, a lower bound (they accept at least as much).
* **Pruning** (:func:`prune`), per sweep: jobs identical to another (the rule
  at T = 0: greedy verification ignores it) are dropped; the kept region is
  the *box* spanned by the values of the jobs predicted within ``keep_frac``
  of the sweep's best, shrunk value by value (the least promising first)
  until it fits the sweep's share of the time budget. A box keeps each sweep
  one command per dataset, and its figure lines complete.
* **Schedule**: kept jobs become ``run.py -m`` commands (exact products of
  override lists, :func:`product_cover`), each with its estimated seconds,
  packed into device calls of at most ``call_s``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsd_bench.hierarchy.acceptance import ALL, TARGET, AcceptanceTables, view_name
from hsd_bench.hierarchy.latency import StackSpec, adjacent_matrix, expected_latency
from hsd_bench.methods import MethodSpec, method_views

REPO = Path(__file__).resolve().parents[2]
SWEEPS = ("grid_layerskip", "grid_hispec", "grid_vanilla_sd", "grid_rules", "grid_draft_stop")


@dataclass(frozen=True)
class ModelCost:
    """One forward of ``layers`` decoder layers of a model: ``fixed_s + layers * layer_s``."""

    fixed_s: float
    layer_s: float

    def __call__(self, layers: int) -> float:
        return self.fixed_s + layers * self.layer_s


# Fitted to results/bench_gpu (H100, native backend, CUDA graphs, bf16), decode times:
# AR t = f + 24 l and LayerSkip E=6 γ=4 per round 5 f + 42 l = τ t_LS.
# GPU model 24x1024: AR 880.6 tok/s, LayerSkip 1450.4 tok/s at τ 3.26 -> f 80 µs, l 44 µs
# (it predicts vanilla SD γ=4 at τ 2.72 with SMALL_MODEL drafts: 1.91x, measured 1.92x).
# Shipped 24x128: AR 1425.9 tok/s, LayerSkip 2431.2 tok/s at τ 3.53 -> f 69 µs, l 26 µs.
GPU_MODEL = ModelCost(80e-6, 44e-6)
SMALL_MODEL = ModelCost(69e-6, 26e-6)


@dataclass
class CostModel:
    target: ModelCost = GPU_MODEL
    drafts: dict[str, ModelCost] = field(default_factory=dict)  # by path; default SMALL_MODEL
    depths: dict[str, int] = field(default_factory=dict)  # layers of each model by path; target = `depth`
    depth: int = 24

    def model(self, name: str) -> ModelCost:
        return self.target if name == TARGET else self.drafts.get(name, SMALL_MODEL)

    def layers(self, name: str, exit_layer: int | None) -> int:
        if exit_layer is not None:
            return exit_layer
        return self.depth if name == TARGET else self.depths.get(name) or _checkpoint_depth(name)


def _checkpoint_depth(path: str) -> int:
    for base in (Path(path), REPO / path):
        cfg = base / "config.json"
        if cfg.exists():
            return int(json.loads(cfg.read_text())["num_hidden_layers"])
    raise ValueError(f"cannot tell how many layers {path!r} has: no config.json; give CostModel.depths[{path!r}]")


@dataclass
class Prediction:
    speedup: float | None
    tau: float | None
    latency_s: float | None  # per token
    note: str = ""


def method_spec_of(cfg: dict) -> MethodSpec:
    """The run's MethodSpec, read as the runner reads it."""
    from hsd_bench.runner import method_spec

    return method_spec(cfg)


def predict(cfg: dict, table: AcceptanceTables, costs: CostModel, dataset: str = ALL) -> Prediction:
    """Predicted speedup, τ and latency per token of one resolved run config."""
    spec = method_spec_of(cfg)
    temperature = float(cfg["decoding"]["temperature"])
    views = method_views(spec, costs.depth)
    ar = costs.target(costs.depth)
    if len(views) == 1:
        return Prediction(1.0, 1.0, ar)
    names = [view_name(v.model, v.exit, costs.depth) for v in views]
    layers = [costs.layers(v.model, v.exit) for v in views]
    try:
        alphas = [table.alpha(names[i - 1], names[i], temperature, dataset) for i in range(1, len(views))]
    except KeyError as err:
        return Prediction(None, None, None, f"not predicted: {err.args[0]}")
    step = [costs.model(views[0].model)(layers[0])]
    for i in range(1, len(views)):
        same = views[i].model == views[i - 1].model
        step.append(costs.model(views[i].model)(layers[i] - layers[i - 1] if same else layers[i]))
    note = "block/hsd: token-wise acceptance, a lower bound" if temperature > 0 and spec.verifier != "tokenwise" else ""
    stops = [v.draft_stop for v in views]
    if any(s is not None for s in stops):
        if len(views) != 2 or temperature > 0:
            return Prediction(None, None, None, "not predicted: draft_stop is modelled for two-level stacks, greedy")
        s, a_low, a_high = table.stop_stats(names[0], stops[0], dataset)
        drafted, tau = draft_stop_round(views[0].batch, s, a_low, a_high)
        latency = (drafted * step[0] + step[1]) / tau
        return Prediction(ar / latency, tau, latency, note)
    stack = StackSpec(
        batches=tuple(v.batch for v in views[:-1]),
        costs=tuple((lambda c: (lambda n: c))(c) for c in step),
        accept=adjacent_matrix(alphas),
        flush_on_reject=tuple(v.flush_on_reject for v in views),
        ar_cost=lambda n: ar,
    )
    b = expected_latency(stack)
    return Prediction(b.speedup, b.tokens_per_cycle, b.latency_per_token, note)


def draft_stop_round(gamma: int, s: float, a_low: float, a_high: float) -> tuple[float, float]:
    """E[tokens drafted], E[tokens committed] per round of a draft that stops after its first
    unconfident token (probability ``s`` per token, independent), at most ``gamma``.

    An unconfident token is accepted with probability ``a_low``, a confident one with
    ``a_high``. Token j is drafted iff tokens 0..j-1 were confident; the round commits the
    accepted prefix plus one: E[a] = sum_j u^j * alpha with u = (1-s) a_high (confident and
    accepted) and alpha = s a_low + (1-s) a_high; E[K] = sum_j (1-s)^j. With s = 0 this is
    the fixed-γ formula.
    """
    u = (1 - s) * a_high
    alpha = s * a_low + (1 - s) * a_high
    accepted = sum(u**j * alpha for j in range(gamma))
    drafted = sum((1 - s) ** j for j in range(gamma))
    return drafted, 1.0 + accepted


# -- the search space ----------------------------------------------------------------------------


def expand(experiment: str, overrides: list[str] = (), conf_dir: Path = REPO / "conf") -> list[tuple[list[str], dict]]:
    """Every job of a named sweep: (its swept overrides, its resolved config), as run.py -m composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from hsd_bench.config import register_schemas
    from hsd_bench.sweep_jobs import sweep_jobs

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}", *overrides], return_hydra_config=True)
        jobs = sweep_jobs(OmegaConf.to_container(cfg.hydra.sweeper.params))
        out = []
        for job in jobs:
            resolved = compose("config", overrides=[f"+experiment={experiment}", *overrides, *job])
            out.append((job, OmegaConf.to_container(resolved, resolve=True)))
    return out


# -- pruning -------------------------------------------------------------------------------------


@dataclass
class Job:
    sweep: str
    overrides: list[str]  # the swept keys, as key=value
    cfg: dict
    prediction: Prediction
    est_by_dataset: dict[str, float] = field(default_factory=dict)  # seconds on each dataset
    status: str = "kept"
    why: str = ""  # the pruning category: duplicate, unpromising, budget
    reason: str = ""

    def key(self) -> dict[str, str]:
        return {k: v.lower() if v in ("True", "False") else v for k, v in (o.split("=", 1) for o in self.overrides)}

    @property
    def est_s(self) -> float:
        return sum(self.est_by_dataset.values())

    def drop(self, why: str, reason: str) -> None:
        self.status, self.why, self.reason = "pruned", why, reason


# Values a sweep always measures: fixed γ is what adaptive drafting is compared with, and
# the rules are compared at every temperature (their figure is accepted length vs T).
PROTECTED = {"grid_draft_stop": {"method.draft_stop": {"null"}},
             "grid_rules": {"decoding.temperature": {"0.0", "0.6", "1.0"}}}


def prune(jobs: list[Job], keep_frac: float, budget_s: float, command_s: float = 0.0) -> tuple[dict, list]:
    """Keep the promising *region* of one sweep, a box, and mark every other job pruned, with why.

    1. duplicates: the rule at T = 0 (greedy verification ignores it) and configurations
       that resolve to the same run;
    2. the promising jobs: predicted speedup >= ``keep_frac`` x the sweep's best;
    3. the box: for every swept key, the values of the promising jobs (plus ``PROTECTED``),
       all combinations -- one ``run.py -m`` command per dataset, and every figure line
       complete (speedup vs E has the same exits for each γ);
    4. while the box's estimated seconds (its jobs, plus ``command_s``) exceed
       ``budget_s``: drop, from the key with the most values, the value whose best
       prediction in the box is lowest (a balanced box keeps the figures' lines).

    Returns the box (key -> values) and the values dropped from it for the budget, as
    (key, value, best prediction with it). Jobs without a prediction count as not promising.
    """
    seen: dict[str, Job] = {}
    for j in jobs:
        k = j.key()
        if j.sweep == "grid_rules" and float(j.cfg["decoding"]["temperature"]) == 0 and k.get("verifier") != "tokenwise":
            j.drop("duplicate", "T=0: greedy verification ignores the rule, the same run as tokenwise")
            continue
        sig = json.dumps({"m": j.cfg["method"], "v": j.cfg["verifier"], "t": j.cfg["decoding"]}, sort_keys=True,
                         default=str)
        if sig in seen:
            j.drop("duplicate", f"the same run as {' '.join(seen[sig].overrides)}")
        seen.setdefault(sig, j)
    live = [j for j in jobs if j.status == "kept"]
    if not live:
        return {}, []
    keys = list(live[0].key())
    scored = [j for j in live if j.prediction.speedup is not None]
    best = max((j.prediction.speedup for j in scored), default=0.0)
    promising = [j for j in scored if j.prediction.speedup >= keep_frac * best] or live
    protected = PROTECTED.get(live[0].sweep, {})
    box = {k: {j.key()[k] for j in promising} | (protected.get(k, set()) & {j.key()[k] for j in live}) for k in keys}

    def inside(j: Job) -> bool:
        return all(j.key()[k] in box[k] for k in keys)

    def cost() -> float:
        return command_s + sum(j.est_s for j in live if inside(j))

    dropped = []
    while cost() > budget_s:
        # shrink the longest side first (a balanced box keeps every figure line), its least promising value
        shrinkable = [k for k in keys if len(box[k] - protected.get(k, set())) > 0 and len(box[k]) > 1]
        if not shrinkable:
            break
        longest = max(len(box[k]) for k in shrinkable)
        candidates = []
        for k in shrinkable:
            for v in box[k] - protected.get(k, set()):
                if len(box[k]) == longest:
                    top = max((j.prediction.speedup or 0.0 for j in live if inside(j) and j.key()[k] == v), default=0.0)
                    candidates.append((top, k, v))
        top, k, v = min(candidates, key=lambda c: (c[0], c[1], _natural(c[2])))
        box[k].discard(v)
        dropped.append((k, v, top))
    for j in live:
        if inside(j):
            continue
        sp = j.prediction.speedup
        if sp is None or sp < keep_frac * best:
            shown = "no prediction" if sp is None else f"predicted {sp:.2f}x"
            j.drop("unpromising", f"{shown} < {keep_frac:g} x the best {best:.2f}x")
        else:
            j.drop("budget", f"predicted {sp:.2f}x, outside the box that fits {budget_s:.0f} s")
    return {k: sorted(v, key=_natural) for k, v in box.items()}, dropped


def product_cover(rows: list[dict[str, str]], keys: list[str]) -> list[dict[str, list[str]]]:
    """Cartesian products of override values that together are exactly ``rows`` (no extras):
    one ``run.py -m`` command each."""
    if not rows:
        return []
    if len(keys) == 1:
        return [{keys[0]: sorted({r[keys[0]] for r in rows}, key=_natural)}]
    *head, last = keys
    by_prefix: dict[tuple, set] = {}
    for r in rows:
        by_prefix.setdefault(tuple(r[k] for k in head), set()).add(r[last])
    by_values: dict[frozenset, list[dict]] = {}
    for prefix, values in by_prefix.items():
        by_values.setdefault(frozenset(values), []).append(dict(zip(head, prefix)))
    out = []
    for values, prefixes in sorted(by_values.items(), key=lambda kv: sorted(kv[0], key=_natural)):
        for cover in product_cover(prefixes, head):
            out.append({**cover, last: sorted(values, key=_natural)})
    return out


def _natural(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


# -- time -----------------------------------------------------------------------------------------


@dataclass
class TimeModel:
    """Seconds a GPU job takes: a fixed part (weights, CUDA graphs, warm-up) plus decoding the
    method and AR on every sample to max_new_tokens (an upper bound: stops end some early)."""

    job_s: float = 10.0
    command_s: float = 25.0  # python, imports, Hydra, first compilation (inductor cache warm)
    samples: int = 8
    max_new_tokens: int = 128

    def job(self, prediction: Prediction, ar_latency_s: float, samples: int | None = None) -> float:
        per_token = (prediction.latency_s or ar_latency_s) + ar_latency_s
        return self.job_s + (samples or self.samples) * self.max_new_tokens * per_token


def format_override(key: str, values: list[str]) -> str:
    """``key=a,b`` for a sweep; list values (HiSpec exit pairs) keep their brackets; quoted for a shell."""
    return f"'{key}={','.join(v.replace(' ', '') for v in values)}'"


def plan_commands(jobs: list[Job], base: list[str], time: TimeModel, dataset: str) -> list[tuple[str, float, int]]:
    """(command, estimated seconds, jobs) for the kept jobs of one sweep on one dataset."""
    kept = [j for j in jobs if j.status == "kept"]
    if not kept:
        return []
    keys = list(kept[0].key())
    out = []
    for cover in product_cover([j.key() for j in kept], keys):
        chosen = [j for j in kept if all(j.key()[k] in v for k, v in cover.items())]
        cmd = " ".join(["python run.py -m", f"+experiment={kept[0].sweep}", *base,
                        *(format_override(k, v) for k, v in cover.items())])
        out.append((cmd, time.command_s + sum(j.est_by_dataset[dataset] for j in chosen), len(chosen)))
    return out


def pack(commands: list[tuple[str, float, int]], call_s: float, first_call_extra_s: float) -> list[list[tuple]]:
    """Commands into device calls of at most ``call_s`` (the first also holds ``first_call_extra_s``:
    data and training), in order; a command longer than a call gets a call of its own."""
    calls: list[list[tuple]] = [[]]
    used = first_call_extra_s
    for c in commands:
        if calls[-1] and used + c[1] > call_s:
            calls.append([])
            used = 0.0
        calls[-1].append(c)
        used += c[1]
    return calls
