"""hsd_bench/models/native/token_row.py: the device's token row, which the native models' steps write
drafted and verifier's tokens into and a one-row engine uses as its token buffer."""

from __future__ import annotations

import pytest
import torch

from hsd_bench.bench.launches import per_token, stand_in_graphs
from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native.token_row import shared_token_row
from tests.test_launches import native  # the graph path's fixed shapes on a CPU, as the launch counts use
from tests.test_native_backend import VOCAB, make_hf_model

pytestmark = pytest.mark.usefixtures("inference_mode")


def test_one_row_per_device_replaced_only_by_a_longer_request():
    row = shared_token_row("cpu", 100)
    assert row.dtype == torch.long and row.numel() >= 100
    assert shared_token_row(torch.device("cpu"), 50) is row
    longer = shared_token_row("cpu", row.numel() + 1)
    assert longer is not row and longer.numel() == row.numel() + 1
    assert shared_token_row("cpu", 10) is longer  # later requests get the longer row
    with pytest.raises(ValueError, match="length=0"):
        shared_token_row("cpu", 0)


def test_models_on_a_device_share_the_row_and_a_one_row_engine_decodes_in_it():
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    target, draft = native(hf), native(make_hf_model("llama_gqa", num_layers=2, seed=4))
    assert target.token_row is draft.token_row
    engine = build_engine(MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"), target,
                          load_other=lambda _p: (draft, None))
    assert engine._token_buffer(1).data_ptr() == target.token_row.data_ptr()
    assert engine._token_buffer(2).data_ptr() != target.token_row.data_ptr()  # several rows: a buffer of its own
    assert target.writes_into(target.token_row) and not target.writes_into(torch.zeros(8, dtype=torch.long))


SPECS = [MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3), MethodSpec("layerskip", exit=2, draft_len=3),
         MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"), MethodSpec("autoregressive")]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_tokens_the_steps_wrote_into_the_row_are_not_written_again_and_decode_the_same(spec):
    """On the graph path (the CPU stand-in) a one-row greedy decode in the token row leaves the host
    no copy of drafted tokens (the chain wrote them: ``greedy_draft`` launches nothing) and writes a
    verifier's token only where no verdict step was queued before the verdict was read (near the
    row's limit, where no next round is launched ahead). The same engine with a token buffer of its
    own writes every one on the host, and both decode the same tokens, which are greedy
    autoregressive decoding's."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    target = native(hf)
    draft = native(make_hf_model("llama_gqa", num_layers=2, seed=4))
    graphs = stand_in_graphs([target, draft])
    engine = build_engine(spec, target, load_other=lambda _p: (draft, None))
    prompts = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (9, 14)]
    refs = [hf.generate(torch.tensor([p]), do_sample=False, max_new_tokens=24)[0, len(p):].tolist() for p in prompts]
    engine.prepare(40, greedy=True)
    engine.generate(prompts[0], 24, DecodingConfig())  # records the shapes a first pass meets

    def writes(row: dict, function: str) -> float:
        return sum(n for site, n in row["sites"].items() if f"({function})" in site)

    in_row = per_token(engine, graphs, prompts, 24, DecodingConfig(), top=100)
    assert [engine.generate(p, 24, DecodingConfig()).output_ids for p in prompts] == refs
    assert engine._tokens.data_ptr() == target.token_row.data_ptr()
    assert writes(in_row, "greedy_draft") == 0, in_row["sites"]

    engine._token_buffer = lambda rows: torch.zeros(rows, 1, dtype=torch.long)  # a buffer no step writes into
    own = per_token(engine, graphs, prompts, 24, DecodingConfig(), top=100)
    assert [engine.generate(p, 24, DecodingConfig()).output_ids for p in prompts] == refs
    assert engine._tokens.data_ptr() != target.token_row.data_ptr()
    assert own["launches_per_token"] > in_row["launches_per_token"]
    if spec.name != "autoregressive":  # a verifier's token is written by the host only where no verdict step ran
        assert writes(in_row, "write_tokens") < 0.5 * writes(own, "write_tokens"), (in_row["sites"], own["sites"])
    assert writes(own, "greedy_draft") > 0, own["sites"]
