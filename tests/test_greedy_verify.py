"""The greedy rule: longest prefix equal to the argmax, then the argmax."""

import torch

from hsd_bench.verify import Verdict, greedy_verify


def test_all_accepted_takes_the_bonus():
    assert greedy_verify(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3, 9])) == Verdict(3, 9)


def test_first_mismatch_takes_the_argmax_there():
    assert greedy_verify(torch.tensor([1, 5, 3]), torch.tensor([1, 2, 3, 9])) == Verdict(1, 2)
    assert greedy_verify(torch.tensor([4]), torch.tensor([1, 2])) == Verdict(0, 1)


def test_empty_draft_is_one_autoregressive_step():
    assert greedy_verify(torch.tensor([], dtype=torch.long), torch.tensor([7])) == Verdict(0, 7)
