"""The device-side consequences of a greedy verdict (models/native/verdicts.py), as the GPU runs
them: compiled with dynamic sizes. Each compiled function must equal its eager self -- and the
eager one the host's rule -- for every draft count, look-back and token slot a model prepares."""

from __future__ import annotations

import pytest
import torch

from hsd_bench.models.native import verdicts
from hsd_bench.verify import greedy_accept_values, greedy_accepted_on_device, greedy_verdict_inputs


def host_accepted(drafts: torch.Tensor, target: torch.Tensor) -> int:
    k = drafts.shape[0]
    return greedy_accept_values(greedy_verdict_inputs(drafts, [k], target).tolist(), [k])[0][0]


def verdict_cases(k: int, seed: int):
    """Packed verdicts of ``k`` drafts accepting each count 0..k, over a 3-token vocabulary: the
    drafts match up to the cut, miss there, and are random after it (a match past a miss must not
    count)."""
    g = torch.Generator().manual_seed(seed)
    for cut in range(k + 1):
        target = torch.randint(0, 3, (k + 1,), generator=g)
        drafts = torch.randint(0, 3, (k,), generator=g)
        drafts[:cut] = target[:cut]
        if cut < k:
            drafts[cut] = (target[cut] + 1) % 3
        yield cut, drafts, target


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_the_device_count_stops_at_its_limit(k):
    for cut, drafts, target in verdict_cases(k, seed=k):
        assert host_accepted(drafts, target) == cut
        assert greedy_accepted_on_device(drafts, target).tolist() == [cut]
        for limit in range(k + 1):
            got = greedy_accepted_on_device(drafts, target, limit=torch.tensor([limit]))
            assert got.tolist() == [min(cut, limit)], (k, cut, limit)


def run_each_case(fn):
    """Every (k, look-back / slot) case's result through ``fn`` (eager or compiled), as lists."""
    out = []
    for k in range(1, 6):
        for cut, drafts, target in verdict_cases(k, seed=10 + k):
            verdict = torch.cat([drafts, target])
            for back in range(k + 1):
                rows = torch.arange(1 << back.bit_length())
                draft_ids, draft_last = torch.full((16,), -1), torch.full((1,), -1)
                pos_base, verdict_m = torch.full((1,), -1), torch.tensor([7])
                token_row = torch.full((20,), -1)
                accepted = fn["round"](verdict, k, back, rows, draft_ids, draft_last, pos_base, verdict_m, token_row)
                out.append(("round", k, cut, back, accepted.tolist(), draft_ids.tolist(), draft_last.tolist(),
                            pos_base.tolist(), drafts.tolist(), target.tolist(), token_row.tolist()))
            for at in range(3):
                ids = torch.full((2 * k + 4,), -1)
                fn["place"](verdict, k, at, ids)
                out.append(("place", k, cut, at, ids.tolist(), target.tolist()))
            tb = 1 << k.bit_length()
            ids, tokens = torch.full((tb,), 2), torch.full((tb,), 2)
            ids[1 : k + 1], tokens[:k] = drafts, target[:k]
            for i in range(min(3, k + 1)):
                draft_tok, token_row = torch.full((4,), -1), torch.full((12,), -1)
                fn["drafted"](target[i : i + 1], i, draft_tok, token_row, torch.tensor([k]))
                out.append(("drafted", k, cut, i, draft_tok.tolist(), token_row.tolist(), target.tolist()))
            for verify_k in range(k + 1):
                pos_base = torch.tensor([30])
                fn["advance"](pos_base, ids, tokens, torch.tensor([verify_k]), 32)
                out.append(("advance", k, cut, verify_k, pos_base.tolist()))
    return out


EAGER = {"round": verdicts.round_inputs_from_verdict, "place": verdicts.place_verifier_token,
         "advance": verdicts.advance_past_verdict, "drafted": verdicts.place_drafted_token}


def test_the_eager_verdict_steps_follow_the_host_rule():
    for case in run_each_case(EAGER):
        kind, k, cut = case[:3]
        if kind == "round":
            back, accepted, draft_ids, draft_last, pos_base, drafts, target, token_row = case[3:]
            behind = max(cut - (k - back), 0)
            assert accepted == [cut] and draft_last == [behind] and pos_base == [7 + cut - behind]
            # the verifier's token at its position m + a in the token row, and nothing else written there
            assert [(i, v) for i, v in enumerate(token_row) if v >= 0] == [(7 + cut, target[cut])], case
            # the accepted drafts this model has not run, then the verifier's token, over the round's rows
            rows = 1 << back.bit_length()
            expected = drafts[cut - behind : cut] + [target[cut]] * (rows - behind) + [-1] * (16 - rows)
            assert draft_ids == expected, case
        elif kind == "drafted":
            i, draft_tok, token_row, target = case[3:]
            assert [(j, v) for j, v in enumerate(draft_tok) if v >= 0] == [(i, target[i])], case
            assert [(j, v) for j, v in enumerate(token_row) if v >= 0] == [(k + i, target[i])], case
        elif kind == "place":
            at, ids, target = case[3:]
            assert [(i, v) for i, v in enumerate(ids) if v >= 0] == [(at + cut, target[cut])]
        else:
            verify_k, pos_base = case[3:]
            assert pos_base == [min(30 + min(cut, verify_k) + 1, 32)]


def test_compiled_verdict_steps_equal_the_eager_ones():
    """What the GPU captures: each function through compile_verdict_fn (inductor, dynamic sizes)."""
    compiled = {name: verdicts.compile_verdict_fn(fn) for name, fn in EAGER.items()}
    assert run_each_case(compiled) == run_each_case(EAGER)
