"""The look-ahead draft: level 0's next round queued before a greedy verdict is read.

``Engine.lookahead`` (on by default) queues the next draft round from the
verification's device outputs -- the accepted count and the verifier's token
chosen on the device -- and only then reads the verdict, so on a GPU the
device drafts while the host books the round. These tests run the same
fixed-shape code on CPU (no graphs) and pin down that it changes nothing but
the order of work: every method's greedy output equals transformers'
``generate`` and its counters equal those of the engine with the look-ahead
off, and the rounds launched ahead are really the ones taken
(``draft_rounds_ahead``), through every first-step shape the device chooses
between (one position, or the last draft too when every draft was accepted).
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import replace

import pytest
import torch

from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.graphs import RecordingGraphs, next_pow2
from hsd_bench.verify import greedy_accept_values, greedy_accepted_on_device, greedy_verdict_inputs
from tests.test_native_backend import VOCAB, make_hf_model


pytestmark = pytest.mark.usefixtures("inference_mode")  # the steps are driven as the engine drives them


def native(model, **kw):
    opts = dict(max_context=160, fixed_shapes=True, max_graph_tokens=8, min_kv_bucket=16)
    opts.update(kw)
    return from_hf_model(model, **opts)


COUNTERS = ("layer_evals", "head_evals_per_token", "target_forwards", "drafted_per_level", "accepted_per_level",
            "draft_rounds", "draft_tokens", "discarded_tokens")

# (label, spec, which draft model "draft" is): a copy of the target accepts every draft (the
# round then starts one position early, at the last draft); an unrelated model rejects most.
CASES = [
    ("vanilla_sd-copy", MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"), "copy"),
    ("vanilla_sd-other", MethodSpec("vanilla_sd", draft_len=4, draft_path="draft"), "other"),
    ("layerskip", MethodSpec("layerskip", exit=3, draft_len=3), None),
    ("hispec", MethodSpec("hispec", exit=[1, 3], draft_len=2, period=4), None),
    ("hispec-flush", MethodSpec("hispec", exit=[2, 3], draft_len=3, period=5, flush_on_mismatch=True), None),
    ("hierarchy", MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2}, {"path": "target", "exit": 3,
                                                                                   "batch": 4}]), "other"),
    # three models (the middle a second instance of the draft's weights): no view shares a model
    ("hierarchy-3-models", MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2}, {"path": "mid", "batch": 4}]),
     "other"),
    # three models, every one a copy of the target: the middle accepts every draft and hands up, so
    # the draft's frontier stops two short of the target's verdict (back = 2)
    ("hierarchy-3-models-copy", MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2},
                                                                {"path": "mid", "batch": 2}]), "copy"),
    # two middle levels: the upper one verifies what the lower hands up (its guarded sizes vary)
    ("hierarchy-4", MethodSpec("hierarchy", levels=[{"path": "target", "exit": 1, "batch": 2},
                                                    {"path": "target", "exit": 2, "batch": 3},
                                                    {"path": "target", "exit": 3, "batch": 3}]), None),
]


@pytest.mark.parametrize("label,spec,draft_kind", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("arch", ["llama_gqa", "mistral_window"])
def test_lookahead_changes_nothing_but_the_order_of_work(arch, label, spec, draft_kind):
    target_hf = make_hf_model(arch, num_layers=4, seed=7)
    draft_hf = target_hf if draft_kind == "copy" else make_hf_model(arch, num_layers=2, seed=9)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    max_new = 60  # positions cross the 16/32/64 attention buckets
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    rows = {}
    for lookahead in (True, False):
        engine = build_engine(spec, native(target_hf), load_other=lambda _p: (native(draft_hf), None))
        engine.lookahead = lookahead
        gen = engine.generate(prompt, max_new, DecodingConfig())
        assert gen.output_ids == ref, (label, lookahead)
        rows[lookahead] = gen.stats.as_row()
    on, off = rows[True], rows[False]
    for key in COUNTERS:
        assert on[key] == off[key], (label, key)
    assert off["draft_rounds_ahead"] == 0
    assert on["draft_rounds_ahead"] > 0, label
    if spec.name in ("vanilla_sd", "layerskip"):
        # Two levels: every round is launched ahead but the first and those whose verdict
        # leaves less than a full round before the limit (m + k + 1 + k > limit: at most
        # 2k + 1 rounds of one token). Three levels launch where the middle surely continues.
        k = spec.draft_len
        assert on["draft_rounds_ahead"] >= on["draft_rounds"] - 2 - 2 * k, (label, on["draft_rounds_ahead"])


def test_a_round_two_short_of_the_verdict_is_launched_ahead(monkeypatch):
    """Draft -> mid -> target, all copies of the target: the middle accepts both drafts and hands
    up three tokens, and the draft model, which ran only the first draft, stops two short of the
    target's verdict. Its next round is launched before that verdict is read (back = 2, three
    positions in the first step); limited to back = 1, as before, it is not."""
    from hsd_bench.models.native.model import NativeLlama

    _, spec, _ = next(c for c in CASES if c[0] == "hierarchy-3-models-copy")
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=40)[0, len(prompt):].tolist()
    backs, launch = [], NativeLlama.launch_draft_after_verdict
    monkeypatch.setattr(NativeLlama, "launch_draft_after_verdict",
                        lambda self, m, k, back, *a, **kw: backs.append(back) or launch(self, m, k, back, *a, **kw))
    ahead = {}
    for limit in (3, 1):
        monkeypatch.setattr(NativeLlama, "max_verdict_back", limit)
        backs.clear()
        engine = build_engine(spec, native(target_hf), load_other=lambda _p: (native(target_hf), None))
        gen = engine.generate(prompt, 40, DecodingConfig())
        assert gen.output_ids == ref, limit
        assert max(backs) == (2 if limit == 3 else 1), sorted(set(backs))
        ahead[limit] = gen.stats.draft_calls_ahead
    assert ahead[3] > ahead[1], ahead


def test_a_stop_drops_the_round_launched_ahead_and_the_next_prompt_is_unaffected():
    """A row that stops (EOS) leaves a queued round behind; the next prompt streamed through
    the same row must decode exactly as it does alone."""
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    prompts = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(s)).tolist()
               for n, s in ((9, 8), (6, 3))]
    spec = MethodSpec("layerskip", exit=3, draft_len=3)
    full = build_engine(spec, native(target_hf), load_other=None).generate(prompts[0], 40).output_ids
    eos = full[17]  # a token generated mid-way: the first prompt stops there
    engine = build_engine(spec, native(target_hf), load_other=None)
    engine.eos_token_ids = {eos}
    outs = dict(engine.generate_many(prompts, 40, DecodingConfig(), batch_size=1))
    assert outs[0].stop_reason == "stop" and outs[0].output_ids == full[: full.index(eos) + 1]
    assert outs[0].stats.draft_calls_ahead > 0
    # the round queued past the stop ran and is reported, in no other counter (equal with look-ahead off)
    assert outs[0].stats.as_row()["dropped_in_flight_tokens"] == spec.draft_len
    off = build_engine(replace(spec, lookahead=False), native(target_hf), load_other=None)
    off.eos_token_ids = {eos}
    plain = off.generate(prompts[0], 40)
    assert plain.stats.dropped_in_flight == 0 and plain.output_ids == outs[0].output_ids
    for key in ("layer_evals", "head_evals_per_token", "draft_tokens", "draft_rounds", "discarded_tokens"):
        assert plain.stats.as_row()[key] == outs[0].stats.as_row()[key], key
    alone = build_engine(spec, native(target_hf), load_other=None)
    alone.eos_token_ids = {eos}
    assert outs[1].output_ids == alone.generate(prompts[1], 40).output_ids


@pytest.mark.parametrize("seed", range(6))
def test_device_count_of_accepted_drafts_equals_the_host_verdict(seed):
    g = torch.Generator().manual_seed(seed)
    for k in (1, 3, 5):
        target = torch.randint(0, 4, (k + 1,), generator=g)
        for cut in range(k + 1):  # drafts agreeing on the first `cut` positions, then not
            drafts = target[:k].clone()
            if cut < k:
                drafts[cut] = (drafts[cut] + 1) % 4
            host = greedy_accept_values(greedy_verdict_inputs(drafts, [k], target).tolist(), [k])[0][0]
            assert host == cut
            assert greedy_accepted_on_device(drafts, target).tolist() == [cut]


@pytest.mark.parametrize("front,accepted", [(13, 1), (13, 3), (12, 3), (12, 1), (12, 0), (11, 3), (11, 2), (11, 1),
                                            (11, 0), (10, 3), (10, 2), (10, 0)])
def test_a_round_launched_from_a_packed_verdict_equals_the_ordinary_round(front, accepted):
    """Verdict at m = 10 on k = 3 drafts: the round starts at min(front, m + a) with one
    position or, where the frontier stops short of m + k = 13 (by one: a separate draft; by two
    or three: a hierarchy's draft after its middle level accepted everything) and the verdict
    accepts past it, with the accepted drafts from the frontier on -- up to four positions padded
    to a power of two, whose ids and head row the device picks from the verdict."""
    model = make_hf_model("llama_gqa", num_layers=3, seed=11)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (40,), generator=g)
    m, k, count = 10, 3, 3
    target = torch.randint(0, VOCAB, (k + 1,), generator=g)
    target[:accepted] = ids[m : m + accepted]
    if accepted < k and target[accepted] == ids[m + accepted]:
        target[accepted] = (target[accepted] + 1) % VOCAB
    tokens = ids.clone()
    tokens[m + accepted] = target[accepted]  # what the engine writes once it has the verdict
    first, upto = min(front, m + accepted), m + accepted + 1
    launched, plain = native(model), native(model)
    for x in (launched, plain):
        x.run_layers(x.embed(tokens[:first]), 0, 2, 0)
    greedy_verdict_inputs(ids[m : m + k], [k], target, out=launched.verdict_input(k))
    assert launched.launch_draft_after_verdict(m, k, m + k - front, 2, count, True)
    t1, t2 = tokens.clone(), tokens.clone()
    h1 = launched.greedy_draft(t1, first, upto, 2, count, True, launched=True)
    h2 = plain.greedy_draft(t2, first, upto, 2, count, True)
    assert t1.tolist() == t2.tolist()
    # a first step padded past the ordinary round's (four rows where one is real) sums in another order
    tol = 1e-5 if front >= 12 or next_pow2(upto - first) == next_pow2(m + k - front + 1) else 1e-4
    torch.testing.assert_close(h1, h2, atol=tol, rtol=tol)
    assert launched.cache_len(0) == plain.cache_len(0) == upto + count


@pytest.mark.parametrize("accepted", [0, 1, 2, 3])
def test_a_guarded_round_runs_only_where_the_verdict_accepts_fewer_than_its_bound(accepted):
    """``accepted_below=2``: a middle level that continues only below its batch. Under the bound
    the round equals the ordinary one; at or above it the device leaves the chain's outputs and
    the cache untouched, and the model drafts normally once the round is discarded."""
    model = make_hf_model("llama_gqa", num_layers=3, seed=11)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (40,), generator=g)
    m, k, count, below = 10, 3, 3, 2
    target = torch.randint(0, VOCAB, (k + 1,), generator=g)
    target[:accepted] = ids[m : m + accepted]
    if accepted < k and target[accepted] == ids[m + accepted]:
        target[accepted] = (target[accepted] + 1) % VOCAB
    tokens = ids.clone()
    tokens[m + accepted] = target[accepted]
    first, upto = m + accepted, m + accepted + 1
    guarded, plain = native(model), native(model)
    for x in (guarded, plain):
        x.run_layers(x.embed(tokens[: m + k]), 0, 2, 0)  # frontier m + k: one first position
    greedy_verdict_inputs(ids[m : m + k], [k], target, out=guarded.verdict_input(k))
    guarded._draft_tok.fill_(-1)
    cache_before = [c.clone() for c in guarded.cache.k]
    assert guarded.launch_draft_after_verdict(m, k, False, 2, count, True, accepted_below=below)
    t2 = tokens.clone()
    plain.truncate(0, 2, first)
    h2 = plain.greedy_draft(t2, first, upto, 2, count, True)
    if accepted < below:
        t1 = tokens.clone()
        guarded.truncate(0, 2, first)
        h1 = guarded.greedy_draft(t1, first, upto, 2, count, True, launched=True)
        assert t1.tolist() == t2.tolist()
        torch.testing.assert_close(h1, h2, atol=1e-5, rtol=1e-5)
    else:
        assert guarded._draft_tok.tolist() == [-1] * len(guarded._draft_tok)
        assert all(torch.equal(a, b) for a, b in zip(cache_before, guarded.cache.k))
        guarded.discard_launched()
        guarded.truncate(0, 2, first)
        t1 = tokens.clone()
        guarded.greedy_draft(t1, first, upto, 2, count, True)
        assert t1.tolist() == t2.tolist()


@pytest.mark.parametrize("label", ["hispec", "hierarchy"])
@pytest.mark.parametrize("graphs", [False, True], ids=["no-graphs", "graph-stand-in-with-conditional-nodes"])
def test_a_middle_level_launches_guarded_rounds_and_prepares_them(label, graphs, monkeypatch):
    """HiSpec's and a hierarchy's middle level may hand up after a verdict; it launches the next
    round guarded by ``a < batch - out - 1``, takes it where the level continues and discards it
    where it hands up (HiSpec's middle accepts some drafts here, so both happen; the hierarchy's
    accepts none, so it always continues), and the output is HF's. ``prepare`` is asked for the
    guarded rounds of level 0's full draft length. With graphs standing in for CUDA graphs with
    conditional nodes (torch >= 2.12 on a GPU: a guarded round is one replay of the graph prepare
    captured and checked), prepare warns of nothing, and nothing is captured after it."""
    from hsd_bench.models.native.model import NativeLlama

    _, spec, draft_kind = next(c for c in CASES if c[0] == label)
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    draft_hf = make_hf_model("llama_gqa", num_layers=2, seed=9) if draft_kind else None
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=60)[0, len(prompt):].tolist()
    launches, prepared = [], []
    launch, prepare = NativeLlama.launch_draft_after_verdict, NativeLlama.prepare

    def spy_launch(self, *args, **kw):
        launches.append(kw.get("accepted_below"))
        return launch(self, *args, **kw)

    def spy_prepare(self, *args, **kw):
        prepared.append((self.name, kw.get("guarded", ())))
        return prepare(self, *args, **kw)

    monkeypatch.setattr(NativeLlama, "launch_draft_after_verdict", spy_launch)
    monkeypatch.setattr(NativeLlama, "prepare", spy_prepare)
    models = [native(target_hf)] + ([native(draft_hf, name="draft")] if draft_hf is not None else [])
    if graphs:
        for model in models:
            model._graphs = RecordingGraphs(conditional_nodes=True)
    engine = build_engine(spec, models[0], load_other=lambda _p: (models[-1], None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # guarded rounds turned off would warn
        engine.prepare(len(prompt) + 60, greedy=True)
    captured = [model.graph_captures for model in models]
    gen = engine.generate(prompt, 60, DecodingConfig())
    assert gen.output_ids == ref
    assert [model.graph_captures for model in models] == captured, "a shape captured after prepare()"
    if graphs:
        assert any(model._guarded_keys for model in models)
    draft_len = engine.levels[0].batch
    assert (engine.levels[0].state.model.name, (draft_len,)) in prepared, prepared
    guarded = [b for b in launches if b is not None]
    assert guarded and len(guarded) < len(launches), launches
    # every launch is either taken or discarded
    assert 0 < gen.stats.draft_calls_ahead <= len(launches)
    if label == "hispec":
        # more discarded than the one a generation's end may leave: guarded rounds the level handed up past
        assert len(launches) - gen.stats.draft_calls_ahead >= 2, (len(launches), gen.stats.draft_calls_ahead)


@pytest.mark.parametrize("label", ["hispec", "hierarchy"])
@pytest.mark.parametrize("in_graphs", [True, False])
def test_rounds_launched_in_conditional_nodes_are_counted(label, in_graphs, monkeypatch):
    """``guarded_rounds_on_device`` counts the guarded rounds launched where the model evaluates the
    guard on the device (a CUDA conditional node, ``NativeLlama.guards_on_device``) -- every one of
    them, and none where the model reads it on the host (here, without graphs) -- so a report
    knows which runs a kernel trace reads differently."""
    from hsd_bench.models.native.model import NativeLlama

    _, spec, draft_kind = next(c for c in CASES if c[0] == label)
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    draft_hf = make_hf_model("llama_gqa", num_layers=2, seed=9) if draft_kind else None
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    launched_guarded = []
    launch = NativeLlama.launch_draft_after_verdict

    def spy_launch(self, *args, **kw):
        done = launch(self, *args, **kw)
        if done and kw.get("accepted_below") is not None:
            launched_guarded.append(kw["accepted_below"])
        return done

    monkeypatch.setattr(NativeLlama, "launch_draft_after_verdict", spy_launch)
    if in_graphs:
        monkeypatch.setattr(NativeLlama, "guards_on_device", property(lambda self: True))
    engine = build_engine(spec, native(target_hf), load_other=lambda _p: (native(draft_hf, name="draft"), None))
    gen = engine.generate(prompt, 60, DecodingConfig())
    assert launched_guarded
    assert gen.stats.guarded_rounds_on_device == (len(launched_guarded) if in_graphs else 0)
    assert gen.stats.as_row()["guarded_rounds_on_device"] == gen.stats.guarded_rounds_on_device


@pytest.mark.parametrize("fault,reason", [("never skips", "a conditional CUDA graph never skips"),
                                          ("capture", "their capture failed: boom")])
def test_guarded_rounds_are_off_where_prepare_cannot_check_them(fault, reason):
    """``prepare`` captures the guarded rounds, then checks the device both runs and skips one;
    a graph that never skips (or a capture that fails) turns them off with a warning, and a
    guarded launch is then refused -- the round waits for its verdict instead."""

    class NeverSkips(RecordingGraphs):
        def if_node(self, condition, body):  # a conditional node that does not work: the body always runs
            body()

    model = native(make_hf_model("llama_gqa", num_layers=2, seed=3))
    model._graphs = (NeverSkips if fault == "never skips" else RecordingGraphs)(conditional_nodes=True)
    if fault == "capture":
        def broken(*args):
            raise RuntimeError("boom")
        model._guarded_round_step = broken
    with pytest.warns(RuntimeWarning, match=f"guarded look-ahead rounds are off \\({reason}"):
        model.prepare(64, [(0, 2)], heads=("greedy-head",), chains=[(2, 3, False, False)], guarded=(3,))
    assert not model._guarded_keys
    model.__dict__.pop("_guarded_round_step", None)
    greedy_verdict_inputs(torch.arange(3), [3], torch.arange(4), out=model.verdict_input(3))
    assert not model.launch_draft_after_verdict(0, 3, False, 2, 3, False, accepted_below=2)
    assert model.launch_draft_after_verdict(0, 3, False, 2, 3, False)  # an unguarded round still launches


@pytest.mark.parametrize("label", ["hispec", "hierarchy"])
def test_without_guarded_graphs_a_middle_level_reads_its_guard_with_the_round_inputs_queued(label, monkeypatch):
    """Where prepare captured no guarded round (torch without conditional nodes), the host reads the
    guard: the round's inputs are queued from the packed verdict before the read
    (``queue_draft_inputs``), and its chain is launched right after it where the level continues
    -- never guarded, never where the level hands up. Outputs are HF's, counters those of the
    look-ahead off, and every such round launched is taken."""
    _, spec, draft_kind = next(c for c in CASES if c[0] == label)
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    draft_hf = make_hf_model("llama_gqa", num_layers=2, seed=9) if draft_kind else None
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=60)[0, len(prompt):].tolist()
    rows, calls = {}, []
    for lookahead in (True, False):
        models = [native(target_hf)] + ([native(draft_hf, name="draft")] if draft_hf is not None else [])
        for model in models:
            model._graphs = RecordingGraphs(conditional_nodes=False)
            queue, launch = model.queue_draft_inputs, model.launch_draft_after_verdict
            model.queue_draft_inputs = lambda *a, _q=queue, **kw: calls.append(("queue", a, kw)) or _q(*a, **kw)
            model.launch_draft_after_verdict = (
                lambda *a, _l=launch, **kw: calls.append(("launch", a, kw)) or _l(*a, **kw))
        engine = build_engine(spec, models[0], load_other=lambda _p: (models[-1], None))
        engine.lookahead = lookahead
        engine.prepare(len(prompt) + 60, greedy=True)
        gen = engine.generate(prompt, 60, DecodingConfig())
        assert gen.output_ids == ref, lookahead
        assert not any(m._guarded_keys for m in models)
        rows[lookahead] = gen.stats.as_row()
        if lookahead:
            on_calls, calls = calls, []
    assert not calls  # the look-ahead off queues and launches nothing
    for key in COUNTERS:
        assert rows[True][key] == rows[False][key], (label, key)
    assert not any(kw.get("accepted_below") is not None for kind, _, kw in on_calls)
    queued = [i for i, (kind, _, _) in enumerate(on_calls) if kind == "queue"]
    after_queue = [on_calls[i + 1] for i in queued if i + 1 < len(on_calls)]
    taken = [c for c in after_queue if c[0] == "launch" and c[2].get("inputs_queued")]
    # each launch from queued inputs follows its queue at the same verdict (m, k)
    assert all(c[1][:2] == on_calls[i][1][:2] for i, c in zip(queued, after_queue) if c in taken)
    assert sum(1 for c in on_calls if c[2].get("inputs_queued")) == len(taken)
    assert taken, label  # the level continued after some host-read guards
    if label == "hispec":
        assert len(taken) < len(queued), (len(taken), len(queued))  # ... and handed up after others
    assert rows[True]["draft_rounds_ahead"] >= len(taken)


@pytest.mark.parametrize("accepted", [0, 2, 3])
def test_a_catch_up_from_a_packed_verdict_equals_running_the_token_through_the_segments(accepted):
    """Verdict at m = 10 on k = 3 drafts, the verifier's token at m + a: the catch-up run of layers
    [0, 3) the device places by itself equals embed + run_layers over [0, 1) and [1, 3) at that
    position, and leaves the cache holding m + a + 1 positions."""
    model = make_hf_model("llama_gqa", num_layers=4, seed=11)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (40,), generator=g)
    m, k = 10, 3
    target = torch.randint(0, VOCAB, (k + 1,), generator=g)
    target[:accepted] = ids[m : m + accepted]
    if accepted < k and target[accepted] == ids[m + accepted]:
        target[accepted] = (target[accepted] + 1) % VOCAB
    pos = m + accepted
    caught, plain = native(model), native(model)
    for x in (caught, plain):
        x.run_layers(x.embed(ids[: m + k]), 0, 3, 0)  # every draft through the segments, as a verification leaves them
    greedy_verdict_inputs(ids[m : m + k], [k], target, out=caught.verdict_input(k))
    assert caught.queue_catch_up(m, k, 3)
    caught.truncate(0, 3, pos)  # the engine rolls back once it has read the verdict
    h1 = caught.finish_catch_up(pos)
    plain.truncate(0, 3, pos)
    h2 = plain.run_layers(plain.run_layers(plain.embed(target[accepted : accepted + 1]), 0, 1, pos), 1, 3, pos)
    assert torch.equal(h1, h2)
    assert [caught.cache_len(layer) for layer in range(4)] == [pos + 1] * 3 + [0]
    for layer in range(3):  # the token's keys at its position, as the plain run wrote them
        torch.testing.assert_close(caught.cache.k[layer][:, :, : pos + 1], plain.cache.k[layer][:, :, : pos + 1],
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="no catch-up queued"):
        caught.finish_catch_up(pos)


@pytest.mark.parametrize("accepted", [0, 1, 2, 3])
def test_a_hand_up_step_places_the_verdict_s_token_then_verifies_as_the_plain_step(accepted):
    """A middle level's verdict on k = 3 drafts at m, with out = 2 tokens before them (at = 3): the
    level above's armed verification of positions ``[n - 1, m + k]`` -- the drafts still in place --
    equals the plain verification of the same ids with the verifier's token written at m + a by
    the host, in argmax tokens and cache (attention is causal, so both agree through m + a, and
    the stale drafts past it are the same ids in both). An armed step is used once."""
    model = make_hf_model("llama_gqa", num_layers=4, seed=11)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (40,), generator=g)
    n, out, k = 12, 2, 3
    m, at = n + out, out + 1
    mid = torch.randint(0, VOCAB, (k + 1,), generator=g)  # the middle level's argmax tokens
    mid[:accepted] = ids[m : m + accepted]
    if accepted < k and mid[accepted] == ids[m + accepted]:
        mid[accepted] = (mid[accepted] + 1) % VOCAB
    armed, plain = native(model), native(model)
    for x in (armed, plain):
        x.run_layers(x.embed(ids[: n - 1]), 0, 4, 0)
    span = ids[n - 1 : m + k + 1]  # the longest hand-up, out + k + 1 tokens, after the last committed one
    assert armed.hand_up_ready(4, k, at, span.numel(), n - 1)
    greedy_verdict_inputs(ids[m : m + k], [k], mid, out=armed.hand_up_input(k))
    armed.arm_hand_up(k, at)
    _, tokens = armed.run_layers_greedy(span, 0, 4, n - 1, keep_hidden=False)
    placed = span.clone()
    placed[at + accepted] = mid[accepted]
    _, expected = plain.run_layers_greedy(placed, 0, 4, n - 1, keep_hidden=False)
    assert torch.equal(tokens, expected)
    for layer in range(4):
        assert torch.equal(armed.cache.k[layer], plain.cache.k[layer])
    again = armed.run_layers_greedy(span, 0, 4, n - 1 + span.numel(), keep_hidden=False)[1]  # not armed now
    assert torch.equal(again, plain.run_layers_greedy(span, 0, 4, n - 1 + span.numel(), keep_hidden=False)[1])


def test_a_hand_up_step_is_ready_only_where_prepare_captured_it():
    """With graphs, an armed verification runs only as a step prepare() captured (``hand_ups``):
    hand_up_ready says so before the engine plans one, and a shape it did not capture (another k,
    another ``at``, a verification too short to hold the verifier's row) is not ready."""
    model = native(make_hf_model("llama_gqa", num_layers=4, seed=11))
    model._graphs = RecordingGraphs()
    model.prepare(64, [(0, 4)], heads=("greedy-head",), verifying=[(0, 4)], hand_ups=((4, 2, 3),))
    assert model.hand_up_ready(4, 2, 3, 5, 10) and model.hand_up_ready(4, 2, 3, 8, 10)
    assert not model.hand_up_ready(4, 3, 3, 5, 10)  # k not captured
    assert not model.hand_up_ready(4, 2, 2, 5, 10)  # at not captured
    assert not model.hand_up_ready(4, 2, 3, 2, 10)  # 2 rows pad to 2: no row for the token at 3 + a
    assert not model.hand_up_ready(4, 2, 3, 9, 10)  # past the fixed-shape steps


CATCH_UP_SPECS = {label: spec for label, spec, _ in CASES if label.startswith("hispec")}
# level 0 with an adaptive draft length: every drafted token is processed, however many
CATCH_UP_SPECS["hispec-draft-stop"] = MethodSpec("hispec", exit=[1, 3], draft_len=3, period=4, draft_stop=0.6)


@pytest.mark.parametrize("graphs", [False, True], ids=["no-graphs", "graph-stand-in"])
@pytest.mark.parametrize("label", sorted(CATCH_UP_SPECS))
def test_a_certain_hand_up_queues_the_level_above_s_catch_up_before_its_verdict(label, graphs):
    """HiSpec's middle level hands up whatever its verdict once its batch is full: the verifier's
    token is run through the middle's segments before the verdict is read, and booked after it.
    Outputs are HF's, counters those of the look-ahead off; with the graph stand-in the catch-up is
    a replay of a step prepare() captured (nothing captured while decoding)."""
    spec = CATCH_UP_SPECS[label]
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=60)[0, len(prompt):].tolist()
    rows = {}
    for lookahead in (True, False):
        model = native(target_hf)
        if graphs:
            model._graphs = RecordingGraphs()
        queued = []
        queue = model.queue_catch_up
        model.queue_catch_up = lambda *a, **kw: queued.append(queue(*a, **kw)) or queued[-1]
        engine = build_engine(spec, model, load_other=None)
        engine.lookahead = lookahead
        engine.prepare(len(prompt) + 60, greedy=True)
        captured = model.graph_captures
        gen = engine.generate(prompt, 60, DecodingConfig())
        assert gen.output_ids == ref, lookahead
        assert model.graph_captures == captured, "a shape captured after prepare()"
        rows[lookahead] = gen.stats.as_row()
        if lookahead:
            assert queued and all(queued), queued
            if graphs:
                assert model._graphs.replays.count("catch-up") == len(queued)
        else:
            assert not queued
    for key in COUNTERS:
        assert rows[True][key] == rows[False][key], (label, key)


def perturbed(model, scale: float, seed: int):
    """A copy of ``model`` with every weight moved by ``scale`` of its spread: a draft that agrees
    with it often, not always."""
    copy = deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.std().clamp_min(1e-3))
    return copy


# Mohri-style, three models: the middle level hands up whatever its verdict once one more token fills
# its batch, and the level above verifies ahead what a step of the shortest hand-up's padded size
# holds (fixed shapes: powers of two). Per spec: the layers a padded position runs, whether a
# hand-up can be shorter than that step (padding) and whether it is often longer (continued).
#   draft 4 -> mid 4: out = 3, k = 4: 4..8 tokens, a step of 5 positions pads to 8 (7 tokens):
#     padded where the mid rejects early, continued only where it accepts all 4 (rare at out = 3).
#   draft 2 -> mid 3: out = 2, k = 2: 3..5 tokens, 4 positions hold 3: never padded, continued
#     wherever the mid accepts a draft.
#   Each also under the target's exit 2 (a middle level itself, whose own hand-up is a catch-up).
_EXIT2 = {"path": "target", "exit": 2, "batch": 4}
HAND_UP_SPECS = {
    "draft4-mid4-target": ([{"path": "draft", "batch": 4}, {"path": "mid", "batch": 4}], 4, True, False),
    "draft2-mid3-target": ([{"path": "draft", "batch": 2}, {"path": "mid", "batch": 3}], 4, False, True),
    "draft4-mid4-exit2-target": ([{"path": "draft", "batch": 4}, {"path": "mid", "batch": 4}, _EXIT2], 2, True, False),
    "draft2-mid3-exit2-target": ([{"path": "draft", "batch": 2}, {"path": "mid", "batch": 3}, _EXIT2], 2, False, True),
}
# graphs: None (none), "stand-in" (CUDA graphs without conditional nodes: torch < 2.12), "conditional"
# (with them: a middle level's guarded rounds are replays of graphs prepare() captured)
HAND_UP_CASES = [(label, mid_kind, arch, graphs) for label in HAND_UP_SPECS for mid_kind in ("copy", "other")
                 for arch, graphs in ([("llama_gqa", None), ("llama_gqa", "stand-in"), ("llama_gqa", "conditional"),
                                       ("mistral_window", None)]
                                      if "exit2" not in label else [("llama_gqa", "stand-in"),
                                                                    ("llama_gqa", "conditional")])]


@pytest.mark.parametrize("label,mid_kind,arch,graphs", HAND_UP_CASES,
                         ids=["-".join([c[0], c[1], c[2], {None: "no-graphs", "stand-in": "graph-stand-in",
                                                           "conditional": "graph-stand-in-with-conditional-nodes"}[c[3]]])
                              for c in HAND_UP_CASES])
def test_a_certain_hand_up_to_another_model_queues_its_verification_before_the_verdict(label, mid_kind, arch, graphs):
    """A middle level that hands up whatever its verdict, to a separate model: the level above
    verifies the hand-up, with the verifier's token placed on the device, before the middle's
    verdict is read -- as many tokens as a step of the shortest hand-up's padded size holds, a
    longer hand-up finished by a second step on the rest. Run three ways: the look-ahead off, on
    with every such hand-up planned (``hand_up_overflow_max = 1``), and on by default (planned
    only while the middle's verdicts rarely outgrew the step).

    In each, outputs are HF's and every counter is that of the look-ahead off but the verifier's
    layer and head evaluations, which exceed it by exactly the padding verified
    (``hand_up_padding``, past a rejection); a continued hand-up adds none. With the graph
    stand-in nothing is captured after prepare() -- with or without conditional nodes, whose
    guarded rounds prepare() captures on top (the stand-in reads their condition on the host). A middle model that copies the target accepts
    most of a near-target draft's tokens (long hand-ups: continued where the spec allows it; the
    default then plans fewer than always), its own token placed wherever it rejects (a wrong
    token placed on the device would be rejected: acceptance would differ); an unrelated one
    rejects early (short hand-ups: padded where the spec allows it, and planned by default)."""
    levels, padded_layers, can_pad, often_continued = HAND_UP_SPECS[label]
    spec = MethodSpec("hierarchy", levels=levels)
    target_hf = make_hf_model(arch, num_layers=4, seed=7)
    # a draft near the target: the middle accepts some of its drafts, not all (0 < a < k occurs)
    others = {"draft": perturbed(target_hf, 0.02, seed=3),
              "mid": target_hf if mid_kind == "copy" else make_hf_model(arch, num_layers=3, seed=11)}
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    max_new = 60
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)[0, len(prompt):].tolist()
    rows = {}
    for mode in ("off", "always", "default"):
        target = native(target_hf)
        models = [target]

        def load(path):
            models.append(native(others[path]))
            models[-1].name = path
            return models[-1], None

        if graphs:
            target._graphs = RecordingGraphs(conditional_nodes=graphs == "conditional")
        engine = build_engine(spec, target, load_other=load)
        if graphs:
            for model in models[1:]:
                model._graphs = RecordingGraphs(conditional_nodes=graphs == "conditional")
        engine.lookahead = mode != "off"
        if mode == "always":
            engine.hand_up_overflow_max = 1.0
        engine.prepare(len(prompt) + max_new, greedy=True)
        captured = [model.graph_captures for model in models]
        gen = engine.generate(prompt, max_new, DecodingConfig())
        assert gen.output_ids == ref, mode
        assert [model.graph_captures for model in models] == captured, "a shape captured after prepare()"
        rows[mode] = gen.stats.as_row()
    off = rows["off"]
    assert off["hand_ups_ahead"] == off["hand_up_padding"] == off["hand_ups_continued"] == 0
    name = target.name
    for mode in ("always", "default"):
        on = rows[mode]
        padding = on["hand_up_padding"]
        assert on["hand_ups_continued"] <= on["hand_ups_ahead"]
        assert on["layer_evals"][name] == off["layer_evals"][name] + padding * padded_layers, mode
        assert on["head_evals_per_token"] == pytest.approx(off["head_evals_per_token"] + padding / len(ref))
        for key in COUNTERS:
            if key == "layer_evals":
                assert ({k: v for k, v in on[key].items() if k != name}
                        == {k: v for k, v in off[key].items() if k != name}), (mode, key)
            elif key != "head_evals_per_token":
                assert on[key] == off[key], (mode, key)
    always, default = rows["always"], rows["default"]
    assert always["hand_ups_ahead"] > 0, always
    if not can_pad:
        assert always["hand_up_padding"] == default["hand_up_padding"] == 0
    elif mid_kind == "other":
        assert always["hand_up_padding"] > 0, always
    if mid_kind == "copy" and often_continued:
        assert always["hand_ups_continued"] > 0, always
        assert default["hand_ups_ahead"] < always["hand_ups_ahead"], (default, always)
    elif mid_kind == "other":
        assert default["hand_ups_ahead"] > 0 and default["hand_ups_continued"] <= always["hand_ups_continued"]


def _hand_up_hierarchy_builder():
    """``build(wrap)`` for the two plan tests below: the ``draft2-mid3-target`` hierarchy over one
    set of native models on the graph stand-in (a draft near the target, an unrelated middle
    model: short hand-ups, which the default plans), each model passed through ``wrap`` -- as
    ``bench_gpu``'s builder does, so the benchmark's measuring passes can wrap them in timers."""
    levels, *_ = HAND_UP_SPECS["draft2-mid3-target"]
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    hfs = {"draft": perturbed(target_hf, 0.02, seed=3), "mid": make_hf_model("llama_gqa", num_layers=3, seed=11)}
    target = native(target_hf)
    others = {path: native(hf, name=path) for path, hf in hfs.items()}
    for model in (target, *others.values()):
        model._graphs = RecordingGraphs()

    def build(wrap=lambda m: m):
        return build_engine(MethodSpec("hierarchy", levels=levels), wrap(target),
                            load_other=lambda path: (wrap(others[path]), None))

    return build


def _plan_test_prompts() -> list[list[int]]:
    gen = torch.Generator().manual_seed(8)
    return [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in (9, 12)]


def test_what_a_generation_plans_does_not_depend_on_what_the_engine_decoded_before():
    """The hand-up plan (``Engine._hand_up_plan``) decides by how often the middle level's hand-ups
    outgrew the queued step. Counted over the engine's life, that made a generation's plan depend
    on what the engine had decoded before it: a prompt decoded by a fresh engine -- as each of the
    benchmark's instrumented and traced passes builds one -- planned fewer hand-ups than the same
    prompt decoded by an engine that had decoded others -- as its timed passes' engine, and
    run.py's job, have. Each generation now counts its own hand-ups: the same prompt runs the same
    plan, counter for counter, whatever came before it."""
    engine = _hand_up_hierarchy_builder()()
    prompt, other = _plan_test_prompts()
    max_new = 48
    engine.prepare(len(other) + max_new, greedy=True)
    first = engine.generate(prompt, max_new, DecodingConfig())
    engine.generate(other, max_new, DecodingConfig())
    again = engine.generate(prompt, max_new, DecodingConfig())
    assert again.output_ids == first.output_ids
    row, row_again = first.stats.as_row(), again.stats.as_row()
    assert row["hand_ups_ahead"] > 0, row
    for key in ("hand_ups_ahead", "hand_ups_continued", "hand_up_padding", "draft_rounds_ahead", *COUNTERS):
        assert row_again[key] == row[key], key


def test_the_benchmarks_measuring_passes_run_the_plan_its_timed_passes_ran():
    """The benchmark times an engine's passes (one engine, prepared and warmed up), then measures
    its overhead in passes of fresh engines (``engine_overheads``: the instrumented and host-serial
    passes; the traced pass too). Each such pass must have queued the same work ahead of its
    verdicts as the timed passes -- with the hand-up plan's statistics kept across generations it
    did not, and its share described another plan -- and each carries its plan, so a difference
    is reported (``runs.plan_mismatch``; ``bench_gpu.measure_engine`` warns)."""
    from hsd_bench.bench.runs import engine_overheads, engine_run, plan_mismatch, timed_plan

    build = _hand_up_hierarchy_builder()
    prompts = _plan_test_prompts()
    timed = engine_run("hierarchy", build(), "hierarchy", prompts, 40, reps=2)
    plan = timed_plan(timed)
    assert plan["hand_ups_ahead"] > 0, plan
    measured = engine_overheads(build, prompts, 40, async_passes=2)
    for name, m in measured.items():
        for p in [m, *m.get("passes", [])]:
            assert p["plan"] == plan, (name, p["plan"], plan)
    assert plan_mismatch(plan, measured["host_serial"]["plan"]) is None
    assert plan_mismatch(plan, {**plan, "hand_ups_ahead": plan["hand_ups_ahead"] - 1}) == (
        f"hand_ups_ahead {plan['hand_ups_ahead'] - 1} vs {plan['hand_ups_ahead']}")


@pytest.mark.parametrize("conditional_nodes", [False, True])
@pytest.mark.parametrize("label", ["draft4-mid4-exit2-target", "hispec"])
def test_every_step_prepare_runs_stays_inside_the_span_it_prepares(label, conditional_nodes):
    """``prepare`` runs each step it captures from zeroed inputs (position 0): a verdict round run
    after another starts where the one before left its position, and run back to back -- each
    capture runs its step twice, and a torch with conditional nodes adds the guarded rounds --
    those positions crept past the model's context (past its RoPE table here: an index error; on a
    GPU an out-of-bounds read and write). Every position a prepared step computes with lies inside
    the attention span prepare was asked for."""
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    models = [native(target_hf)]
    if label == "hispec":
        spec = next(c for c in CASES if c[0] == label)[1]
        load = None
    else:
        spec = MethodSpec("hierarchy", levels=HAND_UP_SPECS[label][0])
        others = {"draft": perturbed(target_hf, 0.02, seed=3), "mid": target_hf}

        def load(path):
            models.append(native(others[path], name=path))
            models[-1]._graphs = RecordingGraphs(conditional_nodes=conditional_nodes)
            return models[-1], None

    models[0]._graphs = RecordingGraphs(conditional_nodes=conditional_nodes)
    engine = build_engine(spec, models[0], load_other=load)
    positions = []
    for model in models:
        real = model._prep_fn
        model._prep_fn = lambda pos, *a, _real=real, **kw: positions.append(int(pos.max())) or _real(pos, *a, **kw)
    engine.prepare(69, greedy=True)
    assert positions
    assert max(positions) < min(model.fixed_span for model in models), max(positions)
    assert any(model._guarded_keys for model in models) == conditional_nodes


def test_guarded_sizes_are_the_verdicts_a_middle_level_can_see():
    """Level 1 verifies level 0's full rounds; a level above verifies what the level below hands
    up -- up to the sum of the batches below; flush-on-reject levels and the look-ahead off ask for
    none."""
    target = native(make_hf_model("llama_gqa", num_layers=4, seed=7))
    four = build_engine(CASES[-1][1], target, load_other=None)
    assert [lv.batch for lv in four.levels[:-1]] == [2, 3, 3]
    assert four._guarded_sizes() == (1, 2, 3, 4, 5)  # level 1: {2}; level 2: 1 .. 2 + 3
    assert build_engine(MethodSpec("hispec", exit=[1, 3], draft_len=2, period=4), target,
                        load_other=None)._guarded_sizes() == (2,)
    flush = build_engine(MethodSpec("hispec", exit=[2, 3], draft_len=3, period=5, flush_on_mismatch=True), target,
                         load_other=None)
    assert flush._guarded_sizes() == ()
    assert build_engine(MethodSpec("layerskip", exit=3, draft_len=3), target, load_other=None)._guarded_sizes() == ()
    four.lookahead = False
    assert four._guarded_sizes() == ()


def test_taking_a_round_that_was_not_launched_is_an_error():
    model = native(make_hf_model("llama_gqa", num_layers=2))
    ids = torch.arange(30)
    model.run_layers(model.embed(ids[:5]), 0, 2, 0)
    with pytest.raises(RuntimeError, match="launched ahead"):
        model.greedy_draft(ids, 5, 6, 2, 2, launched=True)
    greedy_verdict_inputs(ids[3:5], [2], ids[3:6], out=model.verdict_input(2))
    assert model.launch_draft_after_verdict(3, 2, False, 2, 2, False)
    with pytest.raises(RuntimeError, match="launched ahead"):
        model.greedy_draft(ids, 5, 6, 2, 3, launched=True)  # three tokens asked, two launched
    assert model.verdict_input(8) is None  # k + 1 > max_graph_tokens: no fixed-shape verdict
    model.discard_launched()
    with pytest.raises(RuntimeError, match="inputs queued"):  # nothing queued
        model.launch_draft_after_verdict(3, 2, False, 2, 2, False, inputs_queued=True)
    assert model.queue_draft_inputs(3, 2, False, 2)
    model.run_layers(model.embed(ids[5:6]), 0, 2, 5)  # a step staged since: the queued inputs are gone
    with pytest.raises(RuntimeError, match="inputs queued"):
        model.launch_draft_after_verdict(3, 2, False, 2, 2, False, inputs_queued=True)


def test_a_committed_token_is_written_by_a_fill_not_a_host_copy():
    """The verifier's token goes into the token buffer as a fill (the int a kernel argument): item
    assignment of a host int copies it from pageable memory, which on CUDA waits for everything
    queued -- the look-ahead round included (docs/gpu-runs.md, "Ninth run")."""
    from hsd_bench.engine import write_tokens

    tokens = torch.zeros(1, 8, dtype=torch.long)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        write_tokens(tokens, [0], [5], [123])
    ops = {e.key for e in prof.key_averages()}
    assert tokens[0].tolist() == [0, 0, 0, 0, 0, 123, 0, 0]
    assert "aten::fill_" in ops and "aten::copy_" not in ops and "aten::lift_fresh" not in ops, ops


def test_method_lookahead_config_reaches_the_engine_and_names_the_run_only_when_off(tmp_path, monkeypatch):
    from conftest import tiny_job_config

    from hsd_bench import runner
    from hsd_bench.methods import method_views

    default = tiny_job_config(tmp_path, monkeypatch, "method=layerskip", "exit=2")
    off = tiny_job_config(tmp_path, monkeypatch, "method=layerskip", "exit=2", "method.lookahead=false")
    assert runner.method_spec(default).lookahead is True and runner.method_spec(off).lookahead is False
    assert "lookahead" not in runner.identity(default)["method"]  # runs made before the key keep their directory
    assert runner.identity(off)["method"]["lookahead"] is False
    target = native(make_hf_model("llama_gqa", num_layers=4, seed=7))
    for cfg, expected in ((default, True), (off, False)):
        assert build_engine(runner.method_spec(cfg), target, load_other=None).lookahead is expected
    with pytest.raises(ValueError, match="method.lookahead='yes' must be true or false"):
        method_views(MethodSpec("layerskip", exit=2, lookahead="yes"), 4)


@pytest.mark.parametrize("accepted", [0, 1, 3])
def test_an_unguarded_round_after_a_verdict_is_one_replay_and_drafts_what_its_two_steps_do(accepted):
    """Where prepare() captured it (``verdict_rounds``), a round launched after a verdict without a
    guard is one replay of the verdict step and the round together, where it was two; the round
    starts at m + a and drafts the same tokens and hidden states either way."""
    from hsd_bench.bench.launches import REPLAY, HostLaunches

    hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(4))
    m, k = 10, 3
    drafts = ids[m : m + k]
    target = torch.cat([drafts[:accepted], (drafts[accepted:] + 1) % VOCAB, ids[m + k : m + k + 1]])[: k + 1]
    results, replays = [], []
    for rounds in ((k,), ()):
        model = native(hf)
        model._graphs = RecordingGraphs()
        model.prepare(40, [(0, 2), (2, 4)], chains=[(2, 3, True, False)], verdict_rounds=rounds)
        model.run_layers(model.embed(ids[: m + k]), 0, 2, 0)  # the drafts processed: frontier m + k
        greedy_verdict_inputs(drafts, [k], target, out=model.verdict_input(k))
        with HostLaunches([model._graphs]) as count:
            assert model.launch_draft_after_verdict(m, k, 0, 2, 3, True)
        replays.append(count.ops[REPLAY])
        model.truncate(0, 2, m + accepted)  # what the engine does once it reads the verdict
        tokens = ids.clone()
        tokens[m + accepted] = target[accepted]
        states = model.greedy_draft(tokens, m + accepted, m + accepted + 1, 2, 3, True, launched=True)
        results.append((tokens.tolist(), states.clone(), model.cache_len(0)))
    assert replays == [1, 2]
    (tokens_a, states_a, len_a), (tokens_b, states_b, len_b) = results
    assert tokens_a == tokens_b and torch.equal(states_a, states_b) and len_a == len_b == m + accepted + 4
