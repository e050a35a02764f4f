"""Adaptive draft length (``method.draft_stop``): lossless under every rule, same on every path.

* exactly: the confidence rule, as a drafter stopping rule on the exact
  fidelity test's trees, keeps ``tokenwise``, ``block`` and ``hsd`` exact;
* greedy: every method with draft_stop on (level 0, and a hierarchy's middle
  level) reproduces autoregressive decoding token for token;
* native backend: the fused draft chain with a stopping rule gives the same
  tokens, hidden states, frontiers and counters as the step-by-step path;
* Monte Carlo through the engine: sampled tokens follow the target.

Random tiny models are far from confident (top probabilities near 1/V), so
every threshold here is the median confidence of the drafter on the data at
hand: about half the drafts stop early, and the tests assert that they did.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from conftest import make_model
from hsd_bench import engine as engine_module
from hsd_bench.draft_stop import DraftStopError, parse_draft_stop, stops_after, top_probability
from hsd_bench.engine import ModelState
from hsd_bench.fidelity import check_rule, draft_law, random_tree
from hsd_bench.methods import MethodSpec, build_engine, method_views
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig, warp
from hsd_bench.verify import get_rule
from tests.test_native_backend import VOCAB as NATIVE_VOCAB
from tests.test_native_backend import make_hf_model
from tests.test_native_fused_greedy import Stepwise

LOSSLESS = ["tokenwise", "block", "hsd"]


# -- the config value -----------------------------------------------------------------------
@pytest.mark.parametrize("value, threshold", [(None, None), (0.6, 0.6), ({"threshold": 0.25}, 0.25), (0.999, 0.999)])
def test_valid_values(value, threshold):
    assert parse_draft_stop(value) == threshold


@pytest.mark.parametrize("value, message", [
    (0, r"method.draft_stop=0 is outside \(0, 1\)"),
    (1.0, r"method.draft_stop=1.0 is outside \(0, 1\)"),
    (-0.2, r"outside \(0, 1\)"),
    ("high", r"method.draft_stop='high' must be a number in \(0, 1\)"),
    (True, "must be a number"),
    ({"threshold": 1.5}, r"method.draft_stop.threshold=1.5 is outside \(0, 1\)"),
    ({"thresh": 0.5}, r"method.draft_stop has unknown keys \['thresh'\]"),
    ({}, "method.draft_stop needs a threshold"),
])
def test_bad_values_name_the_key_and_range(value, message):
    with pytest.raises(DraftStopError, match=message):
        parse_draft_stop(value)


def test_methods_validate_every_level_before_loading_anything():
    with pytest.raises(ValueError, match=r"method.draft_stop=1.2 is outside \(0, 1\)"):
        method_views(MethodSpec("layerskip", exit=2, draft_stop=1.2), 24)
    with pytest.raises(ValueError, match=r"method.levels\[1\].draft_stop.threshold=0 is outside"):
        method_views(MethodSpec("hierarchy", levels=[{"path": "a"}, {"path": "b", "draft_stop": {"threshold": 0}}]), 24)
    with pytest.raises(ValueError, match="autoregressive decoding drafts nothing"):
        method_views(MethodSpec("autoregressive", draft_stop=0.5), 24)
    views = method_views(MethodSpec("hierarchy", draft_stop=0.3, levels=[
        {"path": "a"}, {"path": "b", "draft_stop": 0.7}, {"path": "c"}]), 24)
    assert [v.draft_stop for v in views] == [0.3, 0.7, None, None]  # level 0 defaults to method.draft_stop
    views = method_views(MethodSpec("hispec", exit=[2, 4], draft_stop={"threshold": 0.4}), 24)
    assert [v.draft_stop for v in views] == [0.4, None, None]


def test_the_sweep_precheck_rejects_a_bad_threshold():
    from hydra import compose, initialize_config_dir

    from hsd_bench.config import register_schemas
    from hsd_bench.validate import validate_any
    from tests.test_sweep_config import CONF

    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        good = compose("config", overrides=["method=layerskip", "method.draft_stop={threshold:0.6}"])
        validate_any(good)
        assert good.method.draft_stop.threshold == 0.6
        validate_any(compose("config", overrides=["method=vanilla_sd", "method.draft_stop=0.5"]))
        bad = compose("config", overrides=["method=hispec", "method.draft_stop=1.5"])
        with pytest.raises(ValueError, match=r"method.draft_stop=1.5 is outside \(0, 1\)"):
            validate_any(bad)


# -- exact: the confidence rule is a prefix-stopping rule ---------------------------------------
def confidence_stop(tree, threshold: float):
    """The engine's rule on a fidelity tree: stop after draft token j when q(. | x_<j) is unconfident."""

    def stop(prefix):
        row = tree.q[prefix[:-1]]
        return 1.0 if stops_after(float(top_probability(row, logits=False)), threshold) else 0.0

    return stop


@pytest.mark.parametrize("gamma", [2, 3])
@pytest.mark.parametrize("name", LOSSLESS)
def test_confidence_stopping_is_exact_for_every_rule(name, gamma):
    rule = get_rule(name)
    stopped_somewhere = False
    for seed in range(4):
        tree = random_tree(3, gamma, seed)
        for threshold in (0.45, 0.6, 0.75):
            stop = confidence_stop(tree, threshold)
            lengths = {len(d) for d, _ in draft_law(tree, gamma, stop)}
            stopped_somewhere |= min(lengths) < gamma
            result = check_rule(rule, tree, gamma, stop=stop)
            assert result.lossless, f"{name} loses {result.max_abs_error:.2e} (seed {seed}, threshold {threshold})"
    assert stopped_somewhere, "no threshold ended a draft early: the test would be vacuous"


def test_stopping_changes_what_is_accepted():
    """Not vacuous: the stopped drafts are a different law, with fewer accepted tokens per round."""
    tree = random_tree(3, 3, seed=1)
    full = check_rule(get_rule("block"), tree, 3).expected_accepted
    stopped = check_rule(get_rule("block"), tree, 3, stop=confidence_stop(tree, 0.75)).expected_accepted
    assert stopped < full - 1e-3


# -- greedy: every method equals autoregressive decoding -------------------------------------------
def median_confidence(model, exit_layer: int, ids: list[int]) -> float:
    """The view's median top probability along ``ids`` (temperature-1 softmax): a threshold
    that ends about half of the drafts early on this model."""
    state = ModelState(model, [exit_layer])
    state.reset()
    seq = torch.tensor(ids)
    return float(top_probability(state.logits(seq, exit_layer, len(ids), 0), logits=True).median())


def _specs(depth, at):
    """Methods with draft_stop on at level 0 (and at a middle level); ``at(model, exit)`` is the threshold."""
    return [
        MethodSpec("layerskip", exit=2, draft_len=5, draft_stop=at("target", 2)),
        MethodSpec("vanilla_sd", draft_path="small", draft_len=4, draft_stop={"threshold": at("small", 2)}),
        MethodSpec("hispec", exit=[1, 3], draft_len=3, period=4, draft_stop=at("target", 1)),
        MethodSpec("hierarchy", levels=[
            {"path": "small", "batch": 3, "draft_stop": at("small", 2)},
            {"path": "target", "exit": depth // 2, "batch": 4, "draft_stop": at("target", depth // 2)}]),
    ]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_ids_equal_autoregressive_with_draft_stop(arch, codec):
    target = make_model(arch, num_layers=6, seed=1, deep_scale=0.2)
    small = make_model(arch, num_layers=2, seed=2, name="small")
    models = {"target": target, "small": small}
    ids = codec.encode("def add(a, b):")
    ar = build_engine(MethodSpec("autoregressive"), target, None, codec).generate(ids, 30).output_ids
    at = lambda name, e: median_confidence(models[name], e, ids + ar)  # noqa: E731
    for spec in _specs(target.num_layers, at):
        engine = build_engine(spec, target, lambda path: (models[path], codec), codec)
        gen = engine.generate(ids, 30)
        assert gen.output_ids == ar, spec
        row = gen.stats.as_row()
        # the rule acted: drafts ended early, and not all after one token
        gamma = spec.levels[0]["batch"] if spec.levels else spec.draft_len
        assert 1.0 < row["mean_draft_len"] < gamma, (spec, row["mean_draft_len"])
        assert row["draft_tokens"] == gen.stats.rounds[0] and row["draft_rounds"] == gen.stats.draft_calls


def test_a_middle_level_hands_up_through_its_first_unconfident_token(codec):
    """HiSpec-like stack through method=hierarchy: the intermediate level stops early too."""
    target = make_model("llama", num_layers=6, seed=1, deep_scale=0.2)
    ids = codec.encode("The quick brown fox")
    ar = build_engine(MethodSpec("autoregressive"), target, None, codec).generate(ids, 30).output_ids
    levels = [{"path": "target", "exit": 1, "batch": 2}, {"path": "target", "exit": 3, "batch": 6}]
    fixed = build_engine(MethodSpec("hierarchy", levels=levels), target, None, codec).generate(ids, 30)
    levels[1]["draft_stop"] = median_confidence(target, 3, ids + ar)
    stopped = build_engine(MethodSpec("hierarchy", levels=levels), target, None, codec).generate(ids, 30)
    assert fixed.output_ids == stopped.output_ids == ar
    top = stopped.stats.level_names[-1]
    # the target sees shorter batches from the middle level (which cut some of its rounds short)
    per_round = [g.stats.as_row()["drafted_per_level"][top] / g.stats.rounds[-1] for g in (stopped, fixed)]
    assert per_round[0] < per_round[1], per_round


# -- native backend: the fused chain with a stopping rule equals the step-by-step path --------------------
def _native(model, **kw):
    opts = dict(max_context=160, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16)
    opts.update(kw)
    return from_hf_model(model, **opts)


def _reference_round(model, ids, first, upto, count, threshold):
    """A hand-written stopping round on layers [0, 2): tokens, hidden states, confidences, how many."""
    m = _native(model)
    m.run_layers(m.embed(ids[:first]), 0, 2, 0)
    b = ids.clone()
    outs, confs, drafted = [m.run_layers(m.embed(b[first:upto]), 0, 2, first)], [], count
    for s, t in enumerate(range(upto, upto + count)):
        logits = m.logits(outs[-1][:, -1:])
        b[t] = logits[0].argmax()
        confs.append(float(top_probability(logits, logits=True)[0]))
        outs.append(m.run_layers(m.embed(b[t : t + 1]), 0, 2, t))  # every drafted token is processed
        if threshold is not None and confs[-1] < threshold:
            drafted = s + 1
            break
    return b, torch.cat(outs, dim=1), confs, drafted, m.cache_len(1)


def test_fused_stopping_round_equals_a_reference_loop():
    """One round on the model: tokens, hidden states and cache length of a hand-written loop, with
    thresholds that stop at the first token, inside the round, and never."""
    model = make_hf_model("llama_gqa", num_layers=3, seed=11)
    ids = torch.randint(0, NATIVE_VOCAB, (60,), generator=torch.Generator().manual_seed(1))
    lengths = set()
    # first steps of 1, 3 (padded to 4) and 6 (> max_graph_tokens: the stepwise fallback) positions
    for first, upto, count in ((20, 21, 6), (20, 23, 5), (20, 26, 4)):
        confs = _reference_round(model, ids, first, upto, count, None)[2]
        inside = min(range(count - 1), key=confs.__getitem__)
        for threshold in (confs[0] * 1.0001, confs[inside] * 1.0001, min(confs) * 0.5):
            b, hidden, _, drafted, cached = _reference_round(model, ids, first, upto, count, threshold)
            fused = _native(model)
            fused.run_layers(fused.embed(ids[:first]), 0, 2, 0)
            a = ids.clone()
            h_fused = fused.greedy_draft(a, first, upto, 2, count, stop_below=threshold)
            lengths.add(drafted)
            assert h_fused.shape[1] - (upto - first) == drafted
            assert a[upto : upto + drafted].tolist() == b[upto : upto + drafted].tolist()
            torch.testing.assert_close(h_fused, hidden, atol=1e-5, rtol=1e-5)
            assert fused.cache_len(0) == fused.cache_len(1) == upto + drafted == cached
    assert {1, 4, 5, 6} <= lengths, lengths  # stops at the first token and none at all, in every case


@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window"])
def test_engine_fused_and_stepwise_agree_with_draft_stop(arch):
    model = make_hf_model(arch, num_layers=4, seed=7)
    draft = make_hf_model(arch, num_layers=1, seed=8)
    prompt = torch.randint(0, NATIVE_VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    max_new = 60  # positions cross the 16/32/64 attention buckets
    ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    fused_target, plain_target = _native(model), Stepwise(_native(model))
    fused_draft, plain_draft = _native(draft), Stepwise(_native(draft))
    seq = prompt + ref
    at = {("target", e): median_confidence(fused_target, e, seq) for e in (1, 2)}
    at[("draft", 1)] = median_confidence(fused_draft, 1, seq)
    thr = lambda name, e: at[(name, e)]  # noqa: E731
    specs = [
        MethodSpec("layerskip", exit=1, draft_len=5, draft_stop=thr("target", 1)),
        MethodSpec("layerskip", exit=2, draft_len=8, draft_stop=thr("target", 2)),
        MethodSpec("hispec", exit=[1, 2], draft_len=3, period=4, draft_stop=thr("target", 1)),
        MethodSpec("vanilla_sd", draft_path="draft", draft_len=4, draft_stop=thr("draft", 1)),
        MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 3, "draft_stop": thr("draft", 1)},
                                        {"path": "target", "exit": 2, "batch": 4, "draft_stop": thr("target", 2)}]),
    ]
    calls = []
    for m in (fused_target, fused_draft):
        real = m.greedy_draft
        m.greedy_draft = lambda *a, _real=real, **k: calls.append(k.get("stop_below")) or _real(*a, **k)
    for spec in specs:
        g_fused = build_engine(spec, fused_target, load_other=lambda _p: (fused_draft, None)).generate(
            prompt, max_new, DecodingConfig())
        g_plain = build_engine(spec, plain_target, load_other=lambda _p: (plain_draft, None)).generate(
            prompt, max_new, DecodingConfig())
        assert g_fused.output_ids == ref and g_plain.output_ids == ref, spec
        assert calls and all(c is not None for c in calls), spec  # the fused chain with its rule was taken
        calls.clear()
        a, b = g_fused.stats.as_row(), g_plain.stats.as_row()
        for key in ("layer_evals", "head_evals_per_token", "target_forwards", "drafted_per_level",
                    "accepted_per_level", "draft_tokens", "draft_rounds"):
            assert a[key] == b[key], (spec, key, a[key], b[key])
        gamma = spec.levels[0]["batch"] if spec.levels else spec.draft_len
        assert 1.0 < a["mean_draft_len"] < gamma, (spec, a["mean_draft_len"])


# -- Monte Carlo through the engine ----------------------------------------------------------------------
MC_N = 800
MC_K = 3  # committed tokens compared: a draft of 3 can stop after its 2nd token, on a random prefix


@pytest.fixture(scope="module")
def mc_models():
    from tests.test_engine_sampling import DECODING, VOCAB, _exact_target

    target = make_model("llama", num_layers=4, seed=11, vocab_size=VOCAB, deep_scale=0.5)
    small = make_model("llama", num_layers=1, seed=12, vocab_size=VOCAB, name="small")
    return target, small, _exact_target(target, DECODING, MC_K)


def _random_split(model, exit_layer: int) -> float:
    """A threshold that never stops after the first drafted token (its confidence is fixed by the
    prompt) and stops after the second for some first tokens: the median confidence after the
    prompt's one-token extensions, capped at the confidence after the prompt itself."""
    from tests.test_engine_sampling import DECODING, PROMPT, VOCAB

    def conf(ctx):
        state = ModelState(model, [exit_layer])
        state.reset()
        seq = torch.tensor(PROMPT + ctx)
        logits = state.logits(seq, exit_layer, len(seq), len(seq) - 1)
        return float(top_probability(warp(logits, DecodingConfig(**DECODING)), logits=False)[-1])

    after = sorted(conf([tok]) for tok in range(VOCAB))
    return min(conf([]), after[len(after) // 2])


@pytest.mark.parametrize("method, rule", [("layerskip", r) for r in LOSSLESS] + [("hierarchy", "tokenwise"),
                                                                                   ("hierarchy", "hsd")])
def test_sampled_tokens_follow_the_target_with_draft_stop(method, rule, mc_models, monkeypatch):
    from tests.test_engine_sampling import DECODING, PROMPT, VOCAB, chi_square_pvalue

    target, small, exact = mc_models
    if method == "layerskip":
        spec = MethodSpec("layerskip", exit=1, draft_len=3, verifier=rule, draft_stop=_random_split(target, 1))
    else:  # stops at level 0 (a separate model) and at the middle level (an exit of the target)
        spec = MethodSpec("hierarchy", verifier=rule, levels=[
            {"path": "small", "batch": 3, "draft_stop": _random_split(small, 1)},
            {"path": "target", "exit": 2, "batch": 2, "draft_stop": _random_split(target, 2)}])
    stops = Counter()  # spies: the rule did end drafts, at level 0 and at the middle level
    real_level0, real_middle = ModelState.layers_then_stop_rows, engine_module.first_stop
    monkeypatch.setattr(ModelState, "layers_then_stop_rows",
                        lambda *a: stops.update(level0=sum(out := real_level0(*a))) or out)
    monkeypatch.setattr(engine_module, "first_stop",
                        lambda *a: stops.update(middle=(out := real_middle(*a)) is not None) or out)
    codec = TextCodec(vocab_size=VOCAB)
    engine = build_engine(spec, target, lambda path: (small, codec), codec)
    counts = Counter()
    for seed in range(MC_N):
        counts[tuple(engine.generate(PROMPT, MC_K, DecodingConfig(**DECODING, seed=seed)).output_ids)] += 1
    assert chi_square_pvalue(counts, exact, MC_N) > 1e-3, (counts, exact)
    assert stops["level0"] > MC_N // 20, stops
    if method == "hierarchy":
        assert stops["middle"] > MC_N // 20, stops


# -- the run command records the draft length -------------------------------------------------------------
def test_a_run_records_the_mean_draft_length(tmp_path):
    import json

    from hsd_bench import runner
    from tests.test_run_command import _cfg

    result = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=1", "method.draft_len=4",
                                 "method.draft_stop={threshold:0.02}"))
    assert result.summary["config"]["method"]["draft_stop"] == {"threshold": 0.02}
    rows = [json.loads(line) for line in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["method"] == "layerskip"]
    s = result.summary["methods"]["layerskip"]
    assert s["mean_draft_len"] == pytest.approx(sum(r["draft_tokens"] for r in mine) / sum(r["draft_rounds"] for r in mine))
    assert 1.0 <= s["mean_draft_len"] <= 4 and s["parity_exact"] == 1.0
    assert result.summary["methods"]["autoregressive"]["mean_draft_len"] is None
