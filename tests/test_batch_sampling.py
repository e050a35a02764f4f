"""Sampling at batch B > 1: each row follows the target, and reproduces batch 1.

* Monte Carlo through the engine (``test_engine_sampling``'s pattern and
  models): the first committed tokens of N rows decoded in batches of 8, each
  row with its own seed, follow the target's exact distribution -- for every
  method under the token-wise rule and every other lossless rule on a two-
  and a three-level stack -- and the deliberately lossy rule is caught.
* Exact reproduction: every row has its own generator, so a batch of rows
  with mixed prompt lengths, decoded with any rule (lossy ``hsd_official``
  included) and top-k/top-p, gives each row what decoding it alone with its
  seed gives.
"""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import make_model
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig
from hsd_bench.verify import available_rules
from test_engine_sampling import (ALPHA, CASES, DECODINGS, K, METHODS, N, PROMPT, VOCAB, assert_follows,
                                  chi_square_pvalue)
from test_engine_sampling import models  # noqa: F401 -- the module-scoped fixture

BATCH = 8


def _empirical_batched(spec, target, small, decoding: str = "plain") -> Counter:
    codec = TextCodec(vocab_size=VOCAB)
    engine = build_engine(spec, target, lambda path: (small, codec), codec)
    gens = engine.generate_many([PROMPT] * N, K, DecodingConfig(**DECODINGS[decoding]), batch_size=BATCH,
                                seeds=range(N))
    return Counter(tuple(g.output_ids) for _, g in gens)


@pytest.mark.parametrize("method,rule,decoding", CASES)
def test_batched_rows_follow_the_target(method, rule, decoding, models):  # noqa: F811
    target, small, exact = models
    counts = _empirical_batched(METHODS[method](rule), target, small, decoding)
    assert sum(counts.values()) == N
    assert_follows(counts, exact[decoding])


def test_a_lossy_rule_is_detected_in_batches(models):  # noqa: F811
    target, small, exact = models
    spec = MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier="_accept_all_for_tests")
    assert chi_square_pvalue(_empirical_batched(spec, target, small), exact["plain"], N) < ALPHA


RULES = [r for r in available_rules() if not r.startswith("_")]


@pytest.mark.parametrize("rule", RULES)
def test_batched_sampling_reproduces_each_row_alone(rule, codec):
    target = make_model("llama", num_layers=4, seed=3, deep_scale=0.3)
    small = make_model("llama", num_layers=1, seed=4, name="small")
    prompts = [codec.encode(t) for t in ("def f(x):", "a", "hello there", "import sys", "xy", "for i in")]
    seeds = list(range(10, 10 + len(prompts)))
    decodings = [DecodingConfig(temperature=0.9), DecodingConfig(temperature=1.2, top_k=20, top_p=0.9)]
    specs = [
        MethodSpec("autoregressive", verifier=rule),
        MethodSpec("layerskip", exit=2, draft_len=3, verifier=rule),
        MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier=rule),
        MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3, flush_on_mismatch=True, verifier=rule),
        MethodSpec("hierarchy", levels=[{"path": "small", "batch": 2}, {"path": "target", "exit": 2, "batch": 2}],
                   verifier=rule),
    ]
    for spec in specs:
        engine = build_engine(spec, target, lambda path: (small, codec), codec)
        for dec in decodings:
            alone = [engine.generate(p, 10, DecodingConfig(**{**dec.__dict__, "seed": s})).output_ids
                     for p, s in zip(prompts, seeds)]
            got = dict(engine.generate_many(prompts, 10, dec, batch_size=3, seeds=seeds))
            assert [got[i].output_ids for i in range(len(prompts))] == alone, (spec, dec)
            assert len({tuple(a) for a in alone}) > 3  # the seeds mattered: rows differ
