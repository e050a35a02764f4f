"""The native backend keeps the fused greedy steps' hidden states by position (``_state_store``)
and skips host fills whose value the device already holds (``_stage_scalar``); the engine packs
pending states that lie end to end in one storage as one view (``engine.gather``).

Both remove host launches from the path the device waits on; what they must not do is change a
result or read a state after it was overwritten. The end-to-end parity of every method with
these paths is in test_native_fused_greedy.py, test_lookahead.py and test_engine_greedy.py; here
the mechanisms themselves, each with an assertion that fails where they go wrong.
"""

from __future__ import annotations

import pytest
import torch

from hsd_bench.bench.launches import REPLAY, HostLaunches, stand_in_graphs
from hsd_bench.engine import gather
from hsd_bench.models.native import from_hf_model
from tests.test_lookahead import CASES as LOOKAHEAD_CASES
from tests.test_native_backend import VOCAB, make_hf_model


pytestmark = pytest.mark.usefixtures("inference_mode")  # the steps are driven as the engine drives them


def native(hf, **kw):
    return from_hf_model(hf, max_context=96, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16, **kw)


def test_gather_packs_views_lying_end_to_end_as_one_view_and_anything_else_by_copy():
    store = torch.arange(40.0).view(1, 10, 4)
    a, b = store[:, 2:5], store[:, 5:8]  # two view objects of one storage, end to end
    out = gather([(a, 1, 2), (b, 0, 2)])  # positions 3, 4 then 5, 6
    assert out.shape == (1, 4, 4) and torch.equal(out[0], store[0, 3:7])
    assert out.data_ptr() == store[0, 3].data_ptr()  # a view: no copy launched
    store[0, 4] = -1.0
    assert torch.equal(out[0, 1], store[0, 4])
    gap = gather([(a, 0, 2), (b, 0, 1)])  # positions 2, 3 then 5: not end to end
    assert torch.equal(gap[0], torch.cat([store[0, 2:4], store[0, 5:6]]))
    assert gap.data_ptr() != store[0, 2].data_ptr()
    other = b.clone()  # another storage, whatever its address
    copied = gather([(a, 0, 3), (other, 0, 1)])
    assert torch.equal(copied[0], store[0, 2:6]) and copied.data_ptr() != store[0, 2].data_ptr()
    wide = torch.arange(40.0).view(1, 10, 4)[:, :, :2]  # positions of another layout than the first piece's
    assert torch.equal(gather([(a[:, :, :2], 0, 1), (wide, 3, 1)])[0], torch.stack([a[0, 0, :2], wide[0, 3]]))
    one = gather([(a, 1, 2)])  # one piece: a view of it, as the engine's verifications mostly take
    assert torch.equal(one[0], store[0, 3:5]) and one.data_ptr() == store[0, 3].data_ptr()
    same = gather([(a, 0, 1), (a, 1, 2)])  # consecutive positions of one source: one view
    assert torch.equal(same[0], store[0, 2:5]) and same.data_ptr() == store[0, 2].data_ptr()


def _prefilled(hf, graphs: bool = True):
    model = native(hf)
    stand_in = stand_in_graphs([model])[0] if graphs else None
    # the steps below, recorded before they run, as a timed run's are (else they run unfused)
    model.prepare(40, [(0, 2), (2, 4)], verifying=[(2, 4)], chains=[(2, 3, True, False)])
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(5))
    model.run_layers(model.embed(ids[:10]), 0, 4, 0)  # positions [0, 10) on every layer
    return model, stand_in, ids


def test_steps_return_views_of_the_store_and_a_verification_of_one_reads_it_without_a_copy():
    """A draft round's states are a view of the store at its exit; a verification of them stages
    nothing (no copy) where the same states as a separate tensor cost one; both give the same
    states and tokens, and the draft's view still holds its values after the verification wrote
    the next depth."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model, graphs, ids = _prefilled(hf)
    copy, _, _ = _prefilled(hf, graphs=False)
    tokens = ids.clone()
    drafted = model.greedy_draft(tokens, 10, 11, 2, 3, process_last=True)  # positions [10, 14) at depth 2
    assert drafted.shape == (1, 4, hf.config.hidden_size)
    assert drafted.data_ptr() == model._state_store(2)[:, 10].data_ptr()
    kept = drafted.clone()
    tokens_copy = ids.clone()
    separate = copy.greedy_draft(tokens_copy, 10, 11, 2, 3, process_last=True).clone()
    assert tokens.tolist() == tokens_copy.tolist() and torch.equal(separate, kept)

    with HostLaunches([graphs]) as count:
        out, argmax = model.run_layers_greedy(drafted, 2, 4, 10)
    assert "copy_" not in count.ops and count.ops[REPLAY] == 1
    out_copy, argmax_copy = copy.run_layers_greedy(separate, 2, 4, 10)
    assert torch.equal(out, out_copy) and argmax.tolist() == argmax_copy.tolist()
    assert torch.equal(drafted, kept)  # the verification wrote depth 4's output, not depth 2's store

    model.truncate(2, 4, 10)  # the same positions again, from a tensor that is not the store's slice
    with HostLaunches([graphs]) as count:
        again, _ = model.run_layers_greedy(kept.clone(), 2, 4, 10)
    assert count.ops["copy_"] == 1 and torch.equal(again, out)


def test_plain_layer_steps_keep_their_output_in_the_store_and_the_next_segment_reads_it_in_place():
    """run_layers' fixed-shape step (a HiSpec catch-up of lower segments, a prefill chunk) below
    the last layer returns a view of the store at its end, not a clone; the next segment on that
    view stages nothing (one replay, no copy); the last segment's output is a copy. Values equal
    the eager model's, and a view keeps its values while later positions run at its depth."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=4)
    model, graphs, ids = _prefilled(hf)
    eager = from_hf_model(hf, max_context=96, fixed_shapes=False)
    eager.run_layers(eager.embed(ids[:10]), 0, 4, 0)
    x = model.embed(ids[10:13])  # three positions: a padded four-row step
    with HostLaunches([graphs]) as count:
        low = model.run_layers(x, 0, 2, 10)
    assert low.data_ptr() == model._state_store(2)[:, 10].data_ptr()  # a view: no clone launched
    assert "clone" not in count.ops and count.ops[REPLAY] == 1
    kept = low.clone()
    with HostLaunches([graphs]) as count:
        top = model.run_layers(low, 2, 4, 10)
    assert "copy_" not in count.ops and count.ops[REPLAY] == 1 and count.ops["clone"] == 1
    assert top.data_ptr() != model._state_store(2).data_ptr()
    low_ref = eager.run_layers(eager.embed(ids[10:13]), 0, 2, 10)
    top_ref = eager.run_layers(low_ref, 2, 4, 10)
    close = dict(atol=1e-4, rtol=1e-3)  # the eager model's kernels and spans, float32 rounding apart
    torch.testing.assert_close(low, low_ref, **close)
    torch.testing.assert_close(top, top_ref, **close)
    later = model.run_layers(model.embed(ids[13:14]), 0, 2, 13)  # the next position at depth 2
    assert torch.equal(low, kept)  # the padded row the first step wrote past 12 was no live state
    torch.testing.assert_close(later, eager.run_layers(eager.embed(ids[13:14]), 0, 2, 13), **close)


def _verifier(hf, graphs: bool = True):
    model = native(hf)
    stand_in = stand_in_graphs([model])[0] if graphs else None
    model.prepare(40, [(0, 4)], verifying=[(0, 4)])  # a verification from ids, as vanilla_sd's target's
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(7))
    model.run_layers(model.embed(ids[:10]), 0, 4, 0)
    return model, stand_in, ids


def test_a_verification_from_ids_moves_its_position_by_its_verdict_and_the_next_one_stages_no_fill():
    """A greedy verification from ids leaves its model's position where the next one starts: its
    first + its accepted drafts + 1, counting only its own drafts (stale ids past them in the
    static input that happen to match do not count). Told that verdict (note_verdict), the next
    verification at that position fills nothing; its tokens equal those of a model that stages
    every position. Not told, it fills the position again."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=6)
    model, graphs, ids = _verifier(hf)
    probe, _, _ = _verifier(hf, graphs=False)
    greedy = [int(ids[10])]  # the model's own greedy continuation from position 10
    for p in range(10, 13):
        greedy.append(int(probe.run_layers_greedy(torch.tensor([greedy[-1]]), 0, 4, p)[1][0]))
    model._verify_ids[3] = greedy[3]  # a stale id past the two drafts that matches the step's third token
    _, tokens = model.run_layers_greedy(torch.tensor(greedy[:3]), 0, 4, 10)  # 2 drafts, both right
    assert tokens.tolist()[:3] == greedy[1:4]
    assert int(model._pos_base) == 13  # 10 + 2 accepted + 1, not 14: the stale match is not a draft
    model.note_verdict(2)
    model.truncate(0, 4, 13)
    nxt = torch.tensor([greedy[3], 5, 6])
    with HostLaunches([graphs]) as count:
        _, again = model.run_layers_greedy(nxt, 0, 4, 13)
    assert "fill_" not in count.ops and count.ops[REPLAY] == 1  # position and draft count already staged
    assert again.tolist() == probe.run_layers_greedy(nxt, 0, 4, 13)[1].tolist()
    model.truncate(0, 4, 14)  # no note: the host does not know where that step left the position
    with HostLaunches([graphs]) as count:
        model.run_layers_greedy(torch.tensor([int(again[0]), 1, 2]), 0, 4, 14)
    assert count.ops["fill_"] == 1


def test_a_fill_is_skipped_only_where_the_device_holds_its_value():
    """A position staged twice is filled once; a verdict step rewrites the chain's start on the
    device, so the next staging fills again even with the value the host staged before -- the
    position the step then reads is the staged one. A draft round leaves its first drafted
    position as the next verdict's start, so that verdict stages it without a fill."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model, graphs, ids = _prefilled(hf)
    for expect in (1, 0):
        with HostLaunches([graphs]) as count:
            model._stage_position(10)
        assert count.ops.get("fill_", 0) == expect
    model._verdict_in.zero_()  # two drafts equal to the verifier's tokens: both accepted
    model._queue_verdict_step(10, 2, 0)
    assert model._pos_base.item() == 12  # the verdict step's choice: m + a
    with HostLaunches([graphs]) as count:
        model._stage_position(10)
    assert count.ops["fill_"] == 1 and model._pos_base.item() == 10

    tokens = ids.clone()
    model.truncate(0, 4, 10)
    model.greedy_draft(tokens, 10, 11, 2, 3, process_last=True)  # drafts at positions 11, 12, 13
    assert model._verdict_m.item() == 11
    with HostLaunches([graphs]) as count:
        model._queue_verdict_step(11, 3, 0)
    assert "fill_" not in count.ops
    model.reset()
    with HostLaunches([graphs]) as count:
        model._stage_position(10)
    assert count.ops["fill_"] == 1  # reset forgets what the device holds


@pytest.mark.parametrize("depth", [2, 4])
def test_the_store_is_made_before_any_capture_and_a_capture_cannot_make_one(depth, monkeypatch):
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model = native(hf)
    store = model._state_store(depth)
    assert store.shape == (1, model.cache.slots, hf.config.hidden_size) and not store.any()
    assert model._state_store(depth) is store
    model.device = torch.device("cuda")  # as on a GPU, inside a capture
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(RuntimeError, match=f"depth {depth + 1}"):
        model._state_store(depth + 1)


@pytest.mark.parametrize("label", [c[0] for c in LOOKAHEAD_CASES])
def test_every_fill_the_host_skips_holds_its_value_on_the_device(label, monkeypatch):
    """The invariant the skipped fills rest on, checked whenever the host stages a value during
    every method's greedy decode (look-ahead rounds, catch-ups, hand-ups verified ahead,
    verifications that move their own position): every value the host believes staged is what
    the device holds. The outputs are the target's greedy ones."""
    from hsd_bench.engine import DecodingConfig
    from hsd_bench.methods import build_engine
    from hsd_bench.models.native.model import NativeLlama

    _, spec, draft_kind = next(c for c in LOOKAHEAD_CASES if c[0] == label)
    skipped = []
    stage = NativeLlama._stage_scalar

    buffers = {"pos": "_pos_base", "draft_last": "_draft_last", "verdict_m": "_verdict_m",
               "verdict_cap": "_verdict_cap", "verify_k": "_verify_k"}

    def checked(self, name, buf, value):
        # every value the host believes staged is on the device, not only the one asked for now
        held = {n: int(getattr(self, buffers[n]).view(-1)[0]) for n in self._staged}
        assert held == self._staged, (self.name, name, held, self._staged)
        if self._staged.get(name) == value:
            skipped.append(name)
        stage(self, name, buf, value)

    monkeypatch.setattr(NativeLlama, "_stage_scalar", checked)
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    draft_hf = target_hf if draft_kind == "copy" else make_hf_model("llama_gqa", num_layers=2, seed=9)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    ref = target_hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=60)[0, len(prompt):].tolist()
    opts = dict(max_context=160, fixed_shapes=True, max_graph_tokens=8, min_kv_bucket=16)
    engine = build_engine(spec, from_hf_model(target_hf, **opts),
                          load_other=lambda _p: (from_hf_model(draft_hf, **opts), None))
    assert engine.generate(prompt, 60, DecodingConfig()).output_ids == ref
    assert skipped, label  # every method skips some fill: the check ran
