"""``TextCodec.decode`` -- the text the engine's stop checks and the scored outputs read -- is
transformers' decode of the same ids, whichever way it computes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from hsd_bench.engine import stop_cut
from hsd_bench.models.tokenizer import TextCodec

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "ee-24x128"


def samples(tokenizer, n: int = 200) -> list[list[int]]:
    """Random id sequences over the whole vocabulary -- special tokens, byte pieces that end
    mid-character, leading spaces -- and the prefixes a stop check decodes."""
    g = torch.Generator().manual_seed(0)
    special = list(tokenizer.all_special_ids)
    out = []
    for i in range(n):
        ids = torch.randint(0, len(tokenizer), (int(torch.randint(1, 60, (1,), generator=g)),), generator=g).tolist()
        if special and i % 3 == 0:
            ids.insert(len(ids) // 2, special[i % len(special)])
        out.append(ids)
        out.append(ids[: len(ids) // 3])
    return out


@pytest.mark.parametrize("clean_up", [False, True])
def test_decode_equals_transformers_decode(clean_up):
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED, clean_up_tokenization_spaces=clean_up)
    codec = TextCodec(tokenizer)
    for ids in samples(tokenizer):
        assert codec.decode(ids) == tokenizer.decode(ids, skip_special_tokens=True), ids
    ids = samples(tokenizer, 1)[0]
    assert codec.decode(torch.tensor(ids)) == codec.decode(tuple(ids)) == codec.decode(ids)


def test_a_stop_check_cuts_where_transformers_text_holds_the_stop_sequence():
    """The cut the engine takes equals the first prefix whose transformers text holds a stop sequence."""
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    codec = TextCodec(tokenizer)
    before = tokenizer("def add(a, b):\n    return a + b", add_special_tokens=False)["input_ids"]
    new = tokenizer("\n\n\ndef main():\n    pass", add_special_tokens=False)["input_ids"]
    stop = ("\ndef ",)
    want = next(j + 1 for j in range(len(new))
                if stop[0] in tokenizer.decode(before + new[: j + 1], skip_special_tokens=True))
    assert stop_cut(before, new, (), stop, codec) == want < len(new)
