"""The native backend's fused greedy paths equal the step-by-step protocol.

``greedy_draft`` chains a whole draft round on the device (one CUDA graph
replay per token on a GPU) and ``greedy_tokens`` fuses head and argmax. On
CPU the same fixed-shape code runs without graphs, so these tests pin down
what the GPU replays: tokens, hidden states, cache frontiers and the
engine's counters must equal the generic path's, and every method must still
reproduce Hugging Face ``generate`` token for token, across attention-span
buckets, long first steps (past ``max_graph_tokens``) and draft rounds longer
than the fused limit.
"""

from __future__ import annotations

import pytest
import torch

from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.graphs import RecordingGraphs
from hsd_bench.models.native.model import MAX_FUSED_DRAFT
from tests.test_native_backend import VOCAB, make_hf_model


class Hidden:
    """A model with some of its optional methods hidden from the engine (its getattr finds none)."""

    def __init__(self, model, *names):
        self._model, self._names = model, names

    def __getattr__(self, name):
        if name in self._names:
            raise AttributeError(name)
        return getattr(self._model, name)


class Stepwise(Hidden):
    """The same model without the optional fused methods: the engine's generic path."""

    def __init__(self, model):
        super().__init__(model, "greedy_draft", "greedy_tokens", "run_layers_greedy")


# The counters two engines doing the same rounds must agree on (rounds launched ahead may differ:
# without graphs a middle level's guarded rounds are decided on the host, with them only where
# conditional nodes were captured).
ROUND_COUNTERS = ("layer_evals", "head_evals_per_token", "target_forwards", "drafted_per_level", "accepted_per_level",
                  "draft_rounds")


def native(model, **kw):
    opts = dict(max_context=160, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16)
    opts.update(kw)
    return from_hf_model(model, **opts)


@pytest.mark.parametrize("process_last", [False, True])
@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window", "qwen2_bias"])
def test_greedy_draft_equals_step_by_step(arch, process_last):
    model = make_hf_model(arch, num_layers=3, seed=11)
    fused, plain = native(model), native(model)
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(1))
    for m in (fused, plain):
        m.reset()
        m.run_layers(m.embed(ids[:20]), 0, 2, 0)  # frontier 20 on layers [0, 2)
    # first steps of 1, 3 (padded to 4) and 6 (> max_graph_tokens: stepwise fallback) positions
    for first, upto, count in ((20, 21, 5), (21, 24, 3), (24, 30, 2)):
        a, b = ids.clone(), ids.clone()
        h_fused = fused.greedy_draft(a, first, upto, 2, count, process_last)
        outs, pos = [], first
        for t in range(upto, upto + count):
            h = plain.run_layers(plain.embed(b[pos:t]), 0, 2, pos)
            outs.append(h)
            b[t] = plain.logits(h[:, -1:])[-1].argmax()
            pos = t
        if process_last:
            outs.append(plain.run_layers(plain.embed(b[pos : pos + 1]), 0, 2, pos))
        assert a.tolist() == b.tolist()
        torch.testing.assert_close(h_fused, torch.cat(outs, dim=1), atol=1e-5, rtol=1e-5)
        done = upto + count - (0 if process_last else 1)
        assert fused.cache_len(0) == fused.cache_len(1) == done == plain.cache_len(1)
        for m in (fused, plain):  # roll back as a rejection would, then continue from there
            m.truncate(0, 2, upto)
        ids = a


def test_greedy_tokens_is_argmax_of_logits():
    model = make_hf_model("qwen3_qknorm", num_layers=2, seed=4)
    m = native(model)
    h = m.run_layers(m.embed(torch.arange(7)), 0, 2, 0)
    for rows in (h[:, -1:], h[:, -3:], h):  # 1, 3 (padded) and 7 (> max_graph_tokens) rows
        assert m.greedy_tokens(rows).tolist() == m.logits(rows).argmax(-1).tolist()


@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window", "qwen2_bias"])
def test_run_layers_greedy_equals_run_layers_then_greedy_tokens(arch):
    """The fused verification step returns the pair's hidden states and tokens bit for bit and
    leaves the same cache frontiers, for one row, a padded step (3 -> 4) and a step past
    max_graph_tokens (the pair itself)."""
    model = make_hf_model(arch, num_layers=3, seed=12)
    fused, plain = native(model), native(model)
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(3))
    for m in (fused, plain):
        m.run_layers(m.embed(ids[:12]), 0, 3, 0)
    pos = 12
    for t in (1, 3, 6, 2):
        hidden = fused.run_layers(fused.embed(ids[pos : pos + t]), 0, 1, pos)  # both read the same input
        plain.run_layers(plain.embed(ids[pos : pos + t]), 0, 1, pos)
        out_f, tok_f = fused.run_layers_greedy(hidden, 1, 3, pos)
        out_p = plain.run_layers(hidden, 1, 3, pos)
        tok_p = plain.greedy_tokens(out_p)
        assert torch.equal(out_f, out_p) and tok_f.tolist() == tok_p.tolist(), t
        pos += t
        assert [fused.cache_len(i) for i in range(3)] == [plain.cache_len(i) for i in range(3)] == [pos] * 3
    for t in (2, 9):  # no copy of the hidden states asked for: the same tokens, on the fused step and off it
        hidden = fused.run_layers(fused.embed(ids[pos : pos + t]), 0, 1, pos)
        plain.run_layers(plain.embed(ids[pos : pos + t]), 0, 1, pos)
        out_f, tok_f = fused.run_layers_greedy(hidden, 1, 3, pos, keep_hidden=False)
        assert out_f is None and tok_f.tolist() == plain.greedy_tokens(plain.run_layers(hidden, 1, 3, pos)).tolist()
        pos += t
    with pytest.raises(ValueError, match="first_pos=3"):
        fused.run_layers_greedy(hidden[:, :1], 1, 3, 3)  # layers [1, 3) hold 35 positions, not 3


@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window"])
def test_run_layers_greedy_from_ids_equals_embed_then_the_pair(arch):
    """From token ids (a segment starting at layer 0) the fused step embeds them itself: the same
    hidden states and tokens as embed, run_layers, greedy_tokens, bit for bit, and the same
    frontiers -- one row, a padded step (3 -> 4) and a step past max_graph_tokens (the pair)."""
    model = make_hf_model(arch, num_layers=3, seed=13)
    fused, plain = native(model), native(model)
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(5))
    for m in (fused, plain):
        m.run_layers(m.embed(ids[:9]), 0, 2, 0)
    pos = 9
    for t, keep in ((1, True), (3, True), (6, True), (2, False), (4, False)):
        out_f, tok_f = fused.run_layers_greedy(ids[pos : pos + t], 0, 2, pos, keep_hidden=keep)
        out_p = plain.run_layers(plain.embed(ids[pos : pos + t]), 0, 2, pos)
        assert tok_f.tolist() == plain.greedy_tokens(out_p).tolist(), t
        assert torch.equal(out_f, out_p) if keep else out_f is None
        pos += t
        assert [fused.cache_len(i) for i in range(2)] == [plain.cache_len(i) for i in range(2)] == [pos] * 2
    with pytest.raises(ValueError, match="start=1"):
        fused.run_layers_greedy(ids[pos : pos + 1], 1, 3, pos)
    with pytest.raises(ValueError, match="LongTensor"):
        fused.run_layers_greedy(ids[pos : pos + 1].int(), 0, 2, pos)
    with pytest.raises(ValueError, match="first_pos=3"):
        fused.run_layers_greedy(ids[3:4], 0, 2, 3)  # layers [0, 2) hold 29 positions, not 3


def test_greedy_draft_refuses_bad_rounds():
    m = native(make_hf_model("llama_gqa", num_layers=2))
    ids = torch.arange(30)
    m.run_layers(m.embed(ids[:5]), 0, 2, 0)
    with pytest.raises(ValueError, match="first_pos=4"):
        m.greedy_draft(ids, 4, 6, 2, 2)  # layers hold 5 positions, not 4
    with pytest.raises(ValueError, match="count >= 1"):
        m.greedy_draft(ids, 5, 6, 2, 0)
    with pytest.raises(ValueError, match="max_context=160"):
        m.greedy_draft(torch.zeros(400, dtype=torch.long), 5, 6, 2, 200)


METHODS = [
    MethodSpec("autoregressive"),
    MethodSpec("layerskip", exit=1, draft_len=3),
    MethodSpec("layerskip", exit=2, draft_len=MAX_FUSED_DRAFT + 2),  # longer than one fused round
    MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3),
    MethodSpec("hispec", exit=[1, 3], draft_len=3, period=4, flush_on_mismatch=True),
]


@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window"])
def test_engine_with_fused_paths_equals_generate_and_counts_the_same(arch):
    model = make_hf_model(arch, num_layers=4, seed=7)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    max_new = 70  # positions cross the 16/32/64 attention buckets
    ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    fused = native(model)
    plain = Stepwise(native(model))
    rounds = []
    real_draft = fused.greedy_draft
    fused.greedy_draft = lambda *a, **kw: rounds.append(a[4]) or real_draft(*a, **kw)  # spy: the fused path is taken
    for spec in METHODS:
        g_fused = build_engine(spec, fused, load_other=None).generate(prompt, max_new, DecodingConfig())
        g_plain = build_engine(spec, plain, load_other=None).generate(prompt, max_new, DecodingConfig())
        assert g_fused.output_ids == ref, spec
        assert rounds and sum(rounds) >= g_fused.stats.rounds[0], spec
        rounds.clear()
        assert g_plain.output_ids == ref, spec
        a, b = g_fused.stats.as_row(), g_plain.stats.as_row()
        for key in ("layer_evals", "head_evals_per_token", "target_forwards", "drafted_per_level", "accepted_per_level"):
            assert a[key] == b[key], (spec, key)


def test_vanilla_sd_with_a_fused_draft_model_equals_generate():
    target = make_hf_model("llama_gqa", num_layers=3, seed=21)
    draft = make_hf_model("llama_gqa", num_layers=1, seed=22)
    prompt = torch.randint(0, VOCAB, (5,), generator=torch.Generator().manual_seed(2)).tolist()
    ref = target.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=30)[0, len(prompt):].tolist()
    spec = MethodSpec("vanilla_sd", draft_len=4, draft_path="draft")
    engine = build_engine(spec, native(target), load_other=lambda _p: (native(draft), None))
    assert engine.generate(prompt, 30, DecodingConfig()).output_ids == ref


@pytest.mark.parametrize("spec", [MethodSpec("vanilla_sd", draft_len=4, draft_path="draft"),
                                  MethodSpec("autoregressive")], ids=["vanilla_sd", "autoregressive"])
def test_a_model_whose_only_view_drafts_keeps_no_hidden_states(spec, monkeypatch):
    """vanilla_sd's draft model and AR's target have one view: every fused greedy round of theirs
    asks for no copy of its hidden states (``keep_hidden=False``), and the run equals transformers'
    ``generate`` with the counters of the same engine keeping the copies -- any later call that did
    need them would fail in ``hidden_rows``, not decode something else."""
    from hsd_bench.engine import ModelState

    target = make_hf_model("llama_gqa", num_layers=3, seed=21)
    draft = make_hf_model("llama_gqa", num_layers=1, seed=22)
    prompt = torch.randint(0, VOCAB, (6,), generator=torch.Generator().manual_seed(3)).tolist()
    max_new = 40
    ref = target.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    rows, kept = {}, {}
    for unread in (True, False):
        unread_now = property(lambda self, u=unread: u and len(self.bounds) == 1)
        monkeypatch.setattr(ModelState, "_draft_states_unread", unread_now)
        models = [native(target), native(draft)]
        drafting = models[1] if spec.name == "vanilla_sd" else models[0]
        asked = kept[unread] = []
        real = drafting.greedy_draft
        drafting.greedy_draft = lambda *a, **kw: asked.append(kw.get("keep_hidden", True)) or real(*a, **kw)
        gen = build_engine(spec, models[0], load_other=lambda _p: (models[1], None)).generate(
            prompt, max_new, DecodingConfig())
        assert gen.output_ids == ref, (spec.name, unread)
        rows[unread] = gen.stats.as_row()
    assert kept[True] and not any(kept[True]) and all(kept[False])
    for key in ("layer_evals", "head_evals_per_token", "target_forwards", "drafted_per_level", "accepted_per_level"):
        assert rows[True][key] == rows[False][key], (spec.name, key)
    m = native(draft)
    m.run_layers(m.embed(torch.arange(5)), 0, 1, 0)
    with pytest.raises(ValueError, match="keep_hidden=False needs stop_below=None"):
        m.greedy_draft(torch.arange(30), 5, 6, 1, 3, stop_below=0.5, keep_hidden=False)


ROUND_METHODS = [
    (MethodSpec("layerskip", exit=2, draft_len=3), None),  # process_last: the tail step too
    (MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3), None),
    (MethodSpec("vanilla_sd", draft_len=4, draft_path="draft"), "draft"),  # one view: no tail step
]


@pytest.mark.parametrize("spec,other", ROUND_METHODS, ids=[s.name for s, _ in ROUND_METHODS])
@pytest.mark.parametrize("lookahead", [True, False])
def test_a_prepared_draft_round_is_one_replay_and_decodes_what_its_steps_do(spec, other, lookahead):
    """With graphs, a fixed-count greedy round whose graph prepare() captured is one replay
    (``draft-round``, or ``verdict-round`` with the verdict step it was launched ahead after)
    instead of one per step; it must decode what transformers' ``generate`` does,
    count what the round-by-step engine counts, and capture nothing after prepare()."""
    target = make_hf_model("llama_gqa", num_layers=3, seed=21)
    draft = make_hf_model("llama_gqa", num_layers=1, seed=22)
    prompt = torch.randint(0, VOCAB, (7,), generator=torch.Generator().manual_seed(2)).tolist()
    max_new = 50
    ref = target.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    rows = {}
    for graphs in (True, False):
        models = [native(target), native(draft)]
        if graphs:
            for m in models:
                m._graphs = RecordingGraphs()
        engine = build_engine(spec, models[0], load_other=lambda _p: (models[1], None))
        engine.lookahead = lookahead
        engine.prepare(len(prompt) + max_new, greedy=True)
        captured = [m._graphs.captures for m in models] if graphs else None
        stepwise = []  # the counts of rounds replayed step by step
        for m in models:
            real = m._chain_steps
            m._chain_steps = lambda *a, real=real: stepwise.append(a[3]) or real(*a)
        gen = engine.generate(prompt, max_new, DecodingConfig())
        assert gen.output_ids == ref, (spec.name, graphs)
        rows[graphs] = gen.stats.as_row()
        if graphs:
            assert [m._graphs.captures for m in models] == captured, "a shape captured after prepare()"
            replays = [k for m in models for k in m._graphs.replays]
            drafting = models[1] if other else models[0]
            assert any(k[0] == "draft-round" for k in drafting._graphs.steps)
            # every round of the full draft length is one replay; only rounds cut short by the
            # length limit (a count prepare() did not capture) go step by step
            assert all(c < spec.draft_len for c in stepwise), (spec.name, stepwise)
            # (a round launched ahead unguarded is one replay with its verdict step: verdict-round)
            rounds = replays.count("draft-round") + replays.count("verdict-round")
            assert rounds >= rows[True]["draft_rounds"] - len(stepwise) > 0
            assert lookahead or "verdict-round" not in replays
    for key in ROUND_COUNTERS:
        assert rows[True][key] == rows[False][key], (spec.name, key)


VERIFYING_METHODS = [
    (MethodSpec("layerskip", exit=2, draft_len=3), None),
    (MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3), None),  # two verifying levels, one model
    (MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"), "draft"),  # k + 1 = 4 = max_graph_tokens
]


@pytest.mark.parametrize("spec,other", VERIFYING_METHODS, ids=[s.name for s, _ in VERIFYING_METHODS])
def test_a_greedy_verification_is_one_replay_of_its_segment_and_head(spec, other, monkeypatch):
    """With graphs, every greedy verification whose new positions fit a fixed-shape step runs its
    last segment and the head as one replay (``layers-greedy``; ``ids-greedy`` from token ids where
    that segment starts at layer 0): no separate head replay is
    left, the output equals transformers' ``generate``, the counters equal those of the engine
    without the fusion, and prepare() captured every such step."""
    from hsd_bench.engine import ModelState

    target = make_hf_model("llama_gqa", num_layers=3, seed=21)
    draft = make_hf_model("llama_gqa", num_layers=1, seed=22)
    prompt = torch.randint(0, VOCAB, (7,), generator=torch.Generator().manual_seed(4)).tolist()
    max_new = 40
    ref = target.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    verifications = []  # those of a fixed shape: positions [need_from, upto) fit one step
    real = ModelState.greedy_tokens_rows

    def spy(self, rows, tokens, exit_layer, upto, need_from):
        if upto[0] - need_from[0] <= self.model.max_graph_tokens:
            verifications.append(upto[0] - need_from[0])
        return real(self, rows, tokens, exit_layer, upto, need_from)

    monkeypatch.setattr(ModelState, "greedy_tokens_rows", spy)
    rows = {}
    for fused in (True, False):
        models = [native(target), native(draft)]
        for m in models:
            m._graphs = RecordingGraphs()
        if not fused:
            models = [Hidden(m, "run_layers_greedy") for m in models]
        engine = build_engine(spec, models[0], load_other=lambda _p: (models[1], None))
        engine.prepare(len(prompt) + max_new, greedy=True)
        captured = [m._graphs.captures for m in models]
        verifications.clear()
        gen = engine.generate(prompt, max_new, DecodingConfig())
        assert gen.output_ids == ref, (spec.name, fused)
        rows[fused] = gen.stats.as_row()
        assert [m._graphs.captures for m in models] == captured, "a shape captured after prepare()"
        replays = [k for m in models for k in m._graphs.replays]
        # a verification from layer 0 (vanilla_sd's target) runs from its token ids
        from_ids = spec.name == "vanilla_sd"
        kind, other_kind = ("ids-greedy", "layers-greedy") if from_ids else ("layers-greedy", "ids-greedy")
        if fused:
            assert "greedy-head" not in replays and other_kind not in replays
            assert replays.count(kind) == len(verifications) > 0
        else:
            assert kind not in replays and replays.count("greedy-head") == len(verifications) > 0
    for key in ROUND_COUNTERS:
        assert rows[True][key] == rows[False][key], (spec.name, key)
