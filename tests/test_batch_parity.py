"""Batches: every method decodes each row at batch B exactly as it does alone.

Greedy ids, stop reasons and every per-row counter at B in {2, 3, 8} equal
the same prompts decoded one at a time (float32), on the three tiny
architectures of conftest (Mistral's sliding window shorter than the
sequences), on the HF backend and on the native backend's eager and
fixed-shape paths. The prompts have mixed lengths and outnumber the rows
(finished rows are refilled), and the rows stop at different times: EOS, a
stop string, the context limit and max_new_tokens.
"""

from __future__ import annotations

import pytest
import torch

from conftest import ARCHS, make_model
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model

MAX_NEW = 16
TEXTS = ["def add(a, b):", "x", "The quick brown fox jumps over", "import os\n", "ab", "for i in range(10):\n    "]
BATCHES = (2, 3, 8)


def methods(depth: int) -> list[MethodSpec]:
    return [
        MethodSpec("autoregressive"),
        MethodSpec("layerskip", exit=2, draft_len=3),
        MethodSpec("vanilla_sd", draft_path="small", draft_len=4),
        MethodSpec("hispec", exit=[1, 3], draft_len=2, period=4),
        MethodSpec("hispec", exit=[2, depth - 1], draft_len=3, period=2, flush_on_mismatch=True),
        MethodSpec("hierarchy", levels=[{"path": "small", "batch": 2}, {"path": "target", "exit": 3, "batch": 3}]),
    ]


def models(arch: str, backend: str):
    target = make_model(arch, num_layers=6, seed=1, deep_scale=0.2)
    small = make_model(arch, num_layers=2, seed=2, name="small")
    if backend == "hf":
        return target, small
    opts = dict(max_context=256)
    if backend == "native-fixed":
        opts.update(fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16)
    return (from_hf_model(target.hf_model, name="target", **opts),
            from_hf_model(small.hf_model, name="small", **opts))


def per_row(gen) -> tuple:
    s = gen.stats
    return (gen.output_ids, gen.stop_reason, s.n_generated, s.drafted, s.accepted, s.rounds, s.layer_evals,
            s.head_evals, s.position_reached, s.position_accepted)


def count_forwards(model) -> list:
    """Spy: how many rows each forward of ``model`` served (a fused draft round: one per step;
    a chained round of several rows is recorded as ``("chain", rows)`` too)."""
    calls = []
    original, fused = model.run_layers, getattr(model, "greedy_draft", None)
    chained = getattr(model, "greedy_draft_rows", None)
    verifying = getattr(model, "run_layers_greedy", None)

    def run_layers(hidden, start, end, first_pos, rows=None, lengths=None):
        if rows is None:
            calls.append(1)
            return original(hidden, start, end, first_pos)
        calls.append(len(rows))
        return original(hidden, start, end, first_pos, rows=rows, lengths=lengths)

    def run_layers_greedy(hidden, start, end, first_pos, keep_hidden=True):  # a verification's segment and head
        calls.append(1)
        return verifying(hidden, start, end, first_pos, keep_hidden=keep_hidden)

    def greedy_draft(*args, **kwargs):  # a round launched ahead (launched=True) counts where it is taken
        calls.extend([1] * args[4])
        return fused(*args, **kwargs)

    def greedy_draft_rows(tokens, rows, first, upto, end, count, process_last=False):
        calls.append(("chain", len(rows)))
        return chained(tokens, rows, first, upto, end, count, process_last)

    model.run_layers = run_layers
    if verifying is not None:
        model.run_layers_greedy = run_layers_greedy
    if fused is not None:
        model.greedy_draft = greedy_draft
    if chained is not None:
        model.greedy_draft_rows = greedy_draft_rows
    return calls


# The native eager path shares the layer code of the fixed-shape one; it runs on the
# architecture with the most position logic (a sliding window).
CASES = [(a, b) for a in ARCHS for b in ("hf", "native-fixed")] + [("mistral", "native-eager")]


@pytest.mark.parametrize("arch,backend", CASES)
def test_batches_decode_every_row_as_batch_one_does(arch, backend, codec):
    target, small = models(arch, backend)
    prompts = [codec.encode(t) for t in TEXTS]
    # A row that reaches the end of the context: its prompt leaves room for 5 tokens.
    prompts.append(prompts[2][:1] * (target.max_context - 5))
    ar = build_engine(MethodSpec("autoregressive"), target, None, codec)
    free = [ar.generate(p, MAX_NEW).output_ids for p in prompts[:3]]
    eos = free[0][6]  # rows that produce this token stop there, the others run on
    stop = [codec.decode(free[1][8:10])]
    calls = count_forwards(target)
    stopped = set()
    for spec in methods(target.num_layers):
        engine = build_engine(spec, target, lambda path: (small, codec), codec)
        engine.eos_token_ids = {eos}
        calls.clear()
        alone = [per_row(engine.generate(p, MAX_NEW, stop_sequences=stop, tokenizer=codec)) for p in prompts]
        one_by_one = len(calls)
        for batch in BATCHES:
            calls.clear()
            got = dict(engine.generate_many(prompts, MAX_NEW, stop_sequences=stop, tokenizer=codec, batch_size=batch))
            assert sorted(got) == list(range(len(prompts)))
            for i, expected in enumerate(alone):
                assert per_row(got[i]) == expected, (spec, batch, i)
                assert got[i].stats.batch_size == batch
            # the rows really shared forwards; on the fixed-shape path drafts were chained on the device
            forwards = [c for c in calls if not isinstance(c, tuple)]
            assert max(forwards) > 1 and len(forwards) < one_by_one, (spec, batch)
            if backend == "native-fixed" and spec.name in ("layerskip", "hispec"):
                assert any(isinstance(c, tuple) and c[1] > 1 for c in calls), (spec, batch)
        stopped |= {row[1] for row in alone}
        # the rows did not all stop alike
        assert len({row[2] for row in alone}) > 2, spec
    assert stopped == {"stop", "context", "max_new_tokens"}


def test_eos_and_stop_strings_end_rows_at_their_own_round(codec):
    """A batch whose rows stop on different rounds: each row's output is cut where it would be alone."""
    target = make_model("llama", num_layers=4, seed=1, deep_scale=0.3)
    prompts = [codec.encode(t) for t in ("hello", "stop here", "x", "abc def")]
    ar = build_engine(MethodSpec("autoregressive"), target, None, codec)
    free = [ar.generate(p, 24).output_ids for p in prompts]
    engine = build_engine(MethodSpec("layerskip", exit=1, draft_len=4), target, None, codec)
    engine.eos_token_ids = {free[0][5]}
    stop = [codec.decode(free[1][8:10])]
    got = dict(engine.generate_many(prompts, 24, stop_sequences=stop, tokenizer=codec, batch_size=4))
    for i, p in enumerate(prompts):
        assert got[i].output_ids == engine.generate(p, 24, stop_sequences=stop, tokenizer=codec).output_ids
    assert got[0].output_ids == free[0][: free[0].index(free[0][5]) + 1] and got[0].stop_reason == "stop"
    assert stop[0] in codec.decode(got[1].output_ids) and got[1].stop_reason == "stop"


def test_batch_timing_shares_sum_to_the_elapsed_time(codec):
    target = make_model("qwen2", num_layers=3, seed=2)
    engine = build_engine(MethodSpec("layerskip", exit=1, draft_len=2), target, None, codec)
    prompts = [codec.encode(t) for t in TEXTS]
    t0 = __import__("time").perf_counter()
    gens = [g for _, g in engine.generate_many(prompts, 12, batch_size=3)]
    elapsed = __import__("time").perf_counter() - t0
    total = sum(g.stats.wall_s for g in gens)
    assert 0.5 * elapsed < total <= elapsed
    for g in gens:
        assert 0 < g.stats.prefill_s < g.stats.wall_s and g.stats.wall_s <= g.stats.latency_s
        assert g.stats.as_row()["latency_s"] == g.stats.latency_s


def test_batch_size_is_checked(codec):
    target = make_model("llama", num_layers=2)
    engine = build_engine(MethodSpec("autoregressive"), target, None, codec)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            list(engine.generate_many([[1, 2]], 4, batch_size=bad))


def test_a_backend_without_batches_is_named(codec):
    class OneSequence:
        """A LayeredModel with only the one-sequence protocol."""

        def __init__(self, model):
            self._model = model

        def __getattr__(self, name):
            if name == "reserve_rows":
                raise AttributeError(name)
            return getattr(self._model, name)

    engine = build_engine(MethodSpec("autoregressive"), OneSequence(make_model("llama", num_layers=2)), None, codec)
    with pytest.raises(ValueError, match="model.backend=native or hf"):
        list(engine.generate_many([[1, 2]], 4, batch_size=2))
    assert len(engine.generate([1, 2], 4).output_ids) == 4  # batch 1 still works


@pytest.mark.parametrize("fixed", [False, True], ids=["eager", "fixed_shapes"])
def test_native_ragged_forward_equals_each_row_alone(fixed):
    """One ragged forward over rows at different frontiers (not starting at row 0, padded to a
    row bucket) gives each row the hidden states it gets alone, and advances only its frontier."""
    from tests.test_native_backend import VOCAB, make_hf_model

    model = make_hf_model("mistral_window", num_layers=3, seed=4)
    opts = dict(max_context=64, fixed_shapes=fixed, max_graph_tokens=4, min_kv_bucket=8)
    batch, alone = from_hf_model(model, **opts), from_hf_model(model, **opts)
    batch.reserve_rows(4)
    g = torch.Generator().manual_seed(3)
    seqs = {r: torch.randint(0, VOCAB, (30,), generator=g) for r in range(4)}
    held = {1: 9, 2: 3, 3: 14}  # row 0 stays empty; row 3 is past the window of 6
    for r, n in held.items():
        batch.run_layers(batch.embed(seqs[r][:n]), 0, 3, [0], rows=[r], lengths=[n])
    rows, lengths = [3, 1, 2], [2, 4, 1]
    packed = batch.embed(torch.cat([seqs[r][held[r] : held[r] + n] for r, n in zip(rows, lengths)]))
    out = batch.run_layers(packed, 0, 3, [held[r] for r in rows], rows=rows, lengths=lengths)
    off = 0
    for r, n in zip(rows, lengths):
        alone.reset()
        ref = alone.run_layers(alone.embed(seqs[r][: held[r] + n]), 0, 3, 0)[:, held[r]:]
        torch.testing.assert_close(out[:, off : off + n], ref, atol=1e-4, rtol=1e-4)  # other shapes, other rounding
        assert [batch.cache_len(layer, r) for layer in range(3)] == [held[r] + n] * 3
        off += n
    assert [batch.cache_len(layer, 0) for layer in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError, match="first_pos=0"):
        batch.run_layers(batch.embed(seqs[1][:1]), 0, 3, [0], rows=[1], lengths=[1])


@pytest.mark.parametrize("process_last", [False, True])
def test_native_chained_draft_of_several_rows_equals_step_by_step(process_last):
    """greedy_draft_rows (chained on the device, rows padded to a bucket, ragged first steps)
    writes the tokens and returns the hidden states of drafting step by step."""
    from tests.test_native_backend import VOCAB, make_hf_model

    model = make_hf_model("llama_gqa", num_layers=3, seed=11)
    opts = dict(max_context=64, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16)
    fused, plain = from_hf_model(model, **opts), from_hf_model(model, **opts)
    tokens = torch.randint(0, VOCAB, (4, 60), generator=torch.Generator().manual_seed(5))
    rows, first, upto, count = [3, 1, 2], [9, 4, 14], [10, 7, 15], 4
    for m in (fused, plain):
        m.reserve_rows(4)
        for r, f in zip(rows, first):
            m.run_layers(m.embed(tokens[r, :f]), 0, 2, [0], rows=[r], lengths=[f])
    a, b = tokens.clone(), tokens.clone()
    got = fused.greedy_draft_rows(a, rows, first, upto, 2, count, process_last)
    outs = []
    for r, f, u in zip(rows, first, upto):
        pos, row = f, []
        for t in range(u, u + count):
            h = plain.run_layers(plain.embed(b[r, pos:t]), 0, 2, [pos], rows=[r], lengths=[t - pos])
            row.append(h)
            b[r, t] = plain.logits(h[:, -1:])[-1].argmax()
            pos = t
        if process_last:
            row.append(plain.run_layers(plain.embed(b[r, pos : pos + 1]), 0, 2, [pos], rows=[r], lengths=[1]))
        outs.append(torch.cat(row, dim=1))
    assert a.tolist() == b.tolist()
    torch.testing.assert_close(got, torch.cat(outs, dim=1), atol=1e-4, rtol=1e-4)
    for r, u in zip(rows, upto):
        done = u + count - (0 if process_last else 1)
        assert fused.cache_len(0, r) == fused.cache_len(1, r) == plain.cache_len(1, r) == done
    assert fused.cache_len(0, 0) == 0


def test_a_fixed_length_rule_trims_surplus_per_row(codec):
    """A rule that needs drafts of exactly the batch length (``fixed_length``) gets them row by row:
    HiSpec's middle level may hand up more than N_i tokens; each row's surplus is dropped alone."""
    from hsd_bench.verify import register_rule
    from hsd_bench.verify.tokenwise import TokenwiseRule

    @register_rule("_tokenwise_fixed_for_tests")
    class Fixed(TokenwiseRule):
        fixed_length = True

    target = make_model("llama", num_layers=6, seed=1, deep_scale=0.2)
    prompts = [codec.encode(t) for t in TEXTS]
    ar = [build_engine(MethodSpec("autoregressive"), target, None, codec).generate(p, 16).output_ids for p in prompts]
    engine = build_engine(MethodSpec("hispec", exit=[1, 3], draft_len=3, period=2, verifier="_tokenwise_fixed_for_tests"),
                          target, None, codec)
    alone = [per_row(engine.generate(p, 16)) for p in prompts]
    got = dict(engine.generate_many(prompts, 16, batch_size=3))
    assert [per_row(got[i]) for i in range(len(prompts))] == alone
    assert [a[0] for a in alone] == ar
    # the trim happened: the target never saw more than N_i = 2 drafted tokens at once, where
    # the token-wise rule (which keeps the surplus) sometimes sees more
    assert all(len(a[8]) <= 2 for a in alone)
    plain = build_engine(MethodSpec("hispec", exit=[1, 3], draft_len=3, period=2), target, None, codec)
    assert any(len(per_row(plain.generate(p, 16))[8]) > 2 for p in prompts)


@pytest.mark.slow
def test_compiled_ragged_steps_equal_each_row_alone_on_cpu():
    """The GPU path's compiled ragged steps (torch.compile with dynamic shapes): full rows read as
    views, a subset gathered, a padded row bucket, uneven lengths -- each row as computed alone."""
    from tests.test_native_backend import VOCAB, make_hf_model

    model = make_hf_model("qwen2_bias", num_layers=2, seed=7)
    batch = from_hf_model(model, max_context=32, compile=True, max_graph_tokens=2, min_kv_bucket=32)
    alone = from_hf_model(model, max_context=32)
    batch.reserve_rows(3)
    seqs = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(7))
    held = [0, 0, 0]
    for rows, lengths in (([0, 1, 2], [5, 3, 4]), ([0, 1], [1, 1]), ([2], [2]), ([1, 2], [2, 1]), ([0, 2], [1, 1])):
        ids = torch.cat([seqs[r, held[r] : held[r] + n] for r, n in zip(rows, lengths)])
        out = batch.run_layers(batch.embed(ids), 0, 2, [held[r] for r in rows], rows=rows, lengths=lengths)
        off = 0
        for r, n in zip(rows, lengths):
            alone.reset()
            ref = alone.run_layers(alone.embed(seqs[r, : held[r] + n]), 0, 2, 0)[:, held[r] :]
            torch.testing.assert_close(out[:, off : off + n], ref, atol=1e-4, rtol=1e-4)
            held[r] += n
            off += n
