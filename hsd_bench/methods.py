"""Methods are configurations of the one engine: each builds a stack of levels.

| method           | stack (bottom -> top)                                           |
| ---------------- | --------------------------------------------------------------- |
| autoregressive   | target                                                          |
| vanilla_sd       | draft model (gamma) -> target                                   |
| layerskip        | target[:E] (gamma) -> target                                    |
| hispec           | target[:E_d] (N_d) -> target[:E_v] (until N_i) -> target        |
| hierarchy        | M_0 (T_0) -> M_1 (T_1) -> ... -> target; any M_i may be an exit |

A method registers a function that turns a :class:`MethodSpec` into a list
of :class:`ViewSpec`; this module validates the views against the models and
assembles :class:`~hsd_bench.engine.Level` objects sharing one
:class:`~hsd_bench.engine.ModelState` per model. Adding a method is one
function + one YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import torch

from hsd_bench.draft_stop import parse_draft_stop
from hsd_bench.engine import Engine, Level, ModelState
from hsd_bench.verify import get_rule

TARGET = "target"

# Autoregressive decoding (the baseline of every run, and method=autoregressive) commits
# ar_chunk tokens per host round trip: the target drafts them as one greedy chain with no
# verification, so the output is the same token for token, and the stop check (EOS, stop
# sequences) runs once per chunk; tokens computed past a stop are dropped and counted
# (``discarded_tokens``). On CUDA the host otherwise waits for the device after every token
# (measured: the bare loop 962 vs the engine 881 tok/s on the 294 M model, docs/performance.md);
# on CPU every call is synchronous anyway, and a chunk only adds the discarded tail.
AR_CHUNK_CUDA = 8
MAX_AR_CHUNK = 64  # the longest chain the native backend fuses (models/native/model.py)
# The depth method_views is given when the target's depth cannot be known before loading it (a Hub
# id, offline): every check but the exit range runs; build_engine checks again with the real depth.
UNKNOWN_DEPTH = 10**6


@dataclass
class MethodSpec:
    name: str
    exit: Any = None  # int, or [E_d, E_v] for hispec
    draft_len: int = 4  # gamma / N_d: tokens drafted per round by level 0
    period: int = 4  # HiSpec's N_i: tokens past the intermediate verifier before full verification
    flush_on_mismatch: bool = False
    draft_path: str | None = None  # vanilla_sd's draft model
    levels: list[dict] = field(default_factory=list)  # hierarchy: bottom -> below the target
    verifier: str = "tokenwise"
    # Adaptive draft length of level 0 (hsd_bench/draft_stop.py): null, a threshold in (0, 1)
    # or {threshold: t}; draft_len is then the maximum. Hierarchy levels may set their own.
    draft_stop: Any = None
    # Tokens autoregressive decoding commits per host round trip (None: ar_chunk_for's default).
    ar_chunk: int | None = None
    # Engine.lookahead: queue the next draft round before a greedy verdict is read, and AR's next
    # chunk before a chunk is read (docs/engine.md).
    lookahead: bool = True
    # Engine.level_split: record each level's share of decode time (None: engine.level_split_for).
    level_split: bool | None = None


@dataclass
class ViewSpec:
    """A level before models are attached: which model, which exit, what batch."""

    model: str  # TARGET or a model path
    exit: int | None  # None = the model's last layer
    batch: int = 1
    flush_on_reject: bool = False
    label: str = ""
    draft_stop: float | None = None  # threshold of the level's adaptive draft length (None = fixed)


_METHODS: dict[str, Callable[[MethodSpec, int], list[ViewSpec]]] = {}


def register_method(name: str):
    def wrap(fn):
        _METHODS[name] = fn
        return fn

    return wrap


def available_methods() -> list[str]:
    return sorted(_METHODS)


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


def _exit_range_error(name: str, value: Any, depth: int) -> ValueError:
    return ValueError(
        f"{name}={value!r} is outside the model's depth: an early exit must be in 1..{depth - 1} "
        f"(the target model has {depth} layers)"
    )


def _layers(n: int) -> str:
    return f"{n} layer{'s' if n != 1 else ''}"


def _need_depth(method: str, depth: int, minimum: int, why: str) -> None:
    """Refuse a target too shallow for the method's early exits (else "an early exit must be in 1..0")."""
    if depth < minimum:
        raise ValueError(f"method={method} needs a target model of at least {minimum} layers ({why}), "
                         f"but the target model has {_layers(depth)}; valid: a deeper model "
                         f"(model.num_layers >= {minimum} for a random:<arch> model)")


def _exit(name: str, value: Any, depth: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < depth:
        raise _exit_range_error(name, value, depth)
    return value


@register_method("autoregressive")
def _autoregressive(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    if _draft_stop(spec) is not None:
        raise ValueError(f"method.draft_stop={spec.draft_stop!r}: autoregressive decoding drafts nothing to stop; "
                         "set it with a speculative method, or null")
    # build_engine has resolved a None for the target's device; validation sees the CPU default
    return [ViewSpec(TARGET, None, ar_chunk_for(spec.ar_chunk, "cpu"), label="target")]


@register_method("vanilla_sd")
def _vanilla_sd(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    if not spec.draft_path:  # also hf_assisted's check (registered below)
        raise ValueError(f"method={spec.name} needs a draft model: set method.draft.path=<Hub id or local dir>")
    gamma = _positive("method.draft_len", spec.draft_len)
    return [ViewSpec(spec.draft_path, None, gamma, label="draft", draft_stop=_draft_stop(spec)),
            ViewSpec(TARGET, None, label="target")]


@register_method("layerskip")
def _layerskip(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    exit_ = spec.exit
    if isinstance(exit_, (list, tuple)):
        if len(exit_) != 1:
            raise ValueError(f"method=layerskip takes one exit layer, got exit={list(exit_)}")
        exit_ = exit_[0]
    _need_depth(spec.name, depth, 2, "an early exit below its last layer")
    if exit_ is None:
        exit_ = max(1, depth // 4)
    e = _exit("exit", exit_, depth)
    gamma = _positive("method.draft_len", spec.draft_len)
    return [ViewSpec(TARGET, e, gamma, label=f"exit{e}", draft_stop=_draft_stop(spec)),
            ViewSpec(TARGET, None, label="target")]


@register_method("hispec")
def _hispec(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    exits = spec.exit
    _need_depth(spec.name, depth, 3, "two early exits E_d < E_v below its last layer")
    if exits is None:
        e_d = max(1, depth // 8)
        exits = [e_d, max(e_d + 1, depth // 4)]
    if not isinstance(exits, (list, tuple)) or len(exits) != 2:
        raise ValueError(f"method=hispec needs two exits E_d,E_v (e.g. exit=8,16), got exit={exits!r}")
    e_d, e_v = (_exit("exit[0] (E_d)", exits[0], depth), _exit("exit[1] (E_v)", exits[1], depth))
    if e_d >= e_v:
        raise ValueError(f"method=hispec needs E_d < E_v, got exit={list(exits)}")
    n_d = _positive("method.draft_len", spec.draft_len)
    n_i = _positive("method.period", spec.period)
    return [
        ViewSpec(TARGET, e_d, n_d, label=f"exit{e_d}", draft_stop=_draft_stop(spec)),
        ViewSpec(TARGET, e_v, n_i, flush_on_reject=spec.flush_on_mismatch, label=f"exit{e_v}"),
        ViewSpec(TARGET, None, label="target"),
    ]


# transformers' own generate() as reference methods (hf_reference.py): registered here so that
# their exits, γ and draft are validated exactly like those of the methods they stand beside.
register_method("hf_generate")(_autoregressive)
register_method("hf_early_exit")(_layerskip)
register_method("hf_assisted")(_vanilla_sd)
# the methods whose method.draft.path names a separate draft model (the run identity hashes it:
# validate.model_paths; collect.py's draft column, which avoids importing torch, lists the same two)
SEPARATE_DRAFT_METHODS = ("vanilla_sd", "hf_assisted")


@register_method("hierarchy")
def _hierarchy(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    if not spec.levels:
        raise ValueError(
            "method=hierarchy needs method.levels: a list of {path, exit, batch} from the smallest drafter up"
        )
    views = []
    level0_stop = _draft_stop(spec)
    for i, lv in enumerate(spec.levels):
        if not isinstance(lv, Mapping):
            raise ValueError(f"method.levels[{i}]={lv!r} must be a mapping {{path, exit, batch, draft_stop}}, "
                             f"e.g. {{path: checkpoints/family-2x128, batch: 4}} or {{path: target, exit: 2}}")
        lv = dict(lv)
        unknown = set(lv) - {"path", "exit", "batch", "draft_stop"}
        if unknown:
            raise ValueError(
                f"method.levels[{i}] has unknown keys {sorted(unknown)}; valid: path, exit, batch, draft_stop"
            )
        path = lv.get("path") or TARGET
        if path == TARGET:
            _target_level_exit(i, lv.get("exit"), depth)
        batch = _positive(f"method.levels[{i}].batch", lv.get("batch", spec.draft_len))
        stop = parse_draft_stop(lv.get("draft_stop"), f"method.levels[{i}].draft_stop")
        if stop is None and i == 0:
            stop = level0_stop  # method.draft_stop is level 0's default, as draft_len is every batch's
        views.append(ViewSpec(path, lv.get("exit"), batch, draft_stop=stop,
                              label=f"L{i}:{path}" + (f"@{lv['exit']}" if lv.get("exit") else "")))
    views.append(ViewSpec(TARGET, None, label="target"))
    return views


def _target_level_exit(i: int, exit_: Any, depth: int) -> None:
    """A level on the target drafts from an early exit: at its full depth it would be the top level,
    which every hierarchy already has (the engine finds no hidden state to verify it against). A level
    with another model's path, the target's checkpoint included, is a separate model: its full depth is fine."""
    if depth < 2:
        raise ValueError(f"method.levels[{i}] (path: target) needs a target model of at least 2 layers (an early "
                         f"exit below its last layer), but the target model has {_layers(depth)}")
    if isinstance(exit_, bool) or not isinstance(exit_, int) or not 1 <= exit_ < depth:
        valid = "1..<target depth - 1>" if depth == UNKNOWN_DEPTH else f"1..{depth - 1}"
        has = "" if depth == UNKNOWN_DEPTH else f"; the target model has {_layers(depth)}"
        shown = "null" if exit_ is None else repr(exit_)
        raise ValueError(
            f"method.levels[{i}].exit={shown} is outside {valid}: a level on the target (path: target) drafts "
            f"from an early exit below its last layer (the full target is the top level{has})"
        )


def ar_chunk_for(value: Any, device: torch.device | str) -> int:
    """``ar_chunk`` as an int: ``value``, or the default for ``device`` when it is None."""
    if value is None:
        return AR_CHUNK_CUDA if torch.device(device).type == "cuda" else 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AR_CHUNK:
        raise ValueError(f"ar_chunk={value!r} must be an integer in 1..{MAX_AR_CHUNK} (tokens autoregressive decoding "
                         f"commits per host round trip), or null for {AR_CHUNK_CUDA} on CUDA and 1 elsewhere")
    return value


def _draft_stop(spec: MethodSpec) -> float | None:
    return parse_draft_stop(spec.draft_stop, "method.draft_stop")


def method_views(spec: MethodSpec, depth: int) -> list[ViewSpec]:
    if spec.name not in _METHODS:
        raise ValueError(f"unknown method {spec.name!r}; valid methods: {', '.join(available_methods())}")
    if not isinstance(spec.lookahead, bool):
        raise ValueError(f"method.lookahead={spec.lookahead!r} must be true or false")
    get_rule(spec.verifier)  # fail early on an unknown verifier
    return _METHODS[spec.name](spec, depth)


def build_engine(spec: MethodSpec, target, load_other: Callable[[str], Any], target_codec=None) -> Engine:
    """Assemble the engine for ``spec`` on the loaded ``target`` model.

    ``load_other(path)`` loads a separate model (same dtype/device) and returns
    ``(LayeredModel, TextCodec)``; it is called once per distinct path.
    """
    if spec.name.startswith("hf_"):
        raise ValueError(f"method={spec.name} is transformers' own generate(), not an engine stack: "
                         "build it with hsd_bench.hf_reference.build")
    spec = replace(spec, ar_chunk=ar_chunk_for(spec.ar_chunk, target.device))
    views = method_views(spec, target.num_layers)
    models = {TARGET: target}
    codecs = {TARGET: target_codec}
    for view in views:
        if view.model not in models:
            model, codec = load_other(view.model)
            check_draft_compatible(view.model, model.vocab_size, codec, target.vocab_size, target_codec)
            models[view.model], codecs[view.model] = model, codec
    exits: dict[str, list[int]] = {}
    for i, view in enumerate(views):
        model = models[view.model]
        e = model.num_layers if view.exit is None else view.exit
        if not isinstance(e, int) or not 1 <= e <= model.num_layers:
            raise ValueError(
                f"level {i} ({view.label}): exit={view.exit!r} outside 1..{model.num_layers} for model {view.model!r}"
            )
        view.exit = e
        exits.setdefault(view.model, []).append(e)
    states = {key: ModelState(models[key], ex) for key, ex in exits.items()}
    rule = get_rule(spec.verifier)
    levels = [
        Level(states[v.model], v.exit, v.batch, rule=rule if i > 0 else None, name=v.label,
              flush_on_reject=v.flush_on_reject, draft_stop=v.draft_stop)
        for i, v in enumerate(views)
    ]
    eos = [target_codec.eos_token_id] if target_codec is not None else []
    engine = Engine(levels, eos_token_ids=eos, level_split=spec.level_split)
    engine.lookahead = spec.lookahead
    return engine


def vocabulary_mismatch(path: str, vocab_size: int, target_vocab_size: int, key: str | None = None) -> ValueError:
    where = f"{key}: " if key else ""
    return ValueError(
        f"{where}draft model {path!r} has a vocabulary of {vocab_size} tokens but the target has "
        f"{target_vocab_size}: every level must share the target's tokenizer"
    )


def check_draft_compatible(path: str, vocab_size: int, codec, target_vocab_size: int, target_codec,
                           key: str | None = None) -> None:
    """A separate model (a draft, a hierarchy level, hf_assisted's assistant) must share the target's
    vocabulary and tokenizer: its token ids are the target's."""
    if vocab_size != target_vocab_size:
        raise vocabulary_mismatch(path, vocab_size, target_vocab_size, key)
    if codec is not None and target_codec is not None and codec.vocab_fingerprint() != target_codec.vocab_fingerprint():
        raise ValueError(
            f"{key + ': ' if key else ''}draft model {path!r} uses a different tokenizer from the target: every level "
            "must share the target's tokenizer (same vocabulary, same ids)"
        )
