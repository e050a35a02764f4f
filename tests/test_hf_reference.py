"""transformers' own generate() runs as reference methods in the same job as ours."""

from __future__ import annotations

import json

import pytest
import torch

from hsd_bench import runner
from hsd_bench.models.loading import resolve_backend
from test_run_command import _cfg


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("hf_generate", []),
        ("hf_early_exit", ["exit=2", "method.draft_len=3"]),
        ("hf_assisted", ["method.draft.path=random:llama", "method.draft_len=3"]),
    ],
)
def test_reference_methods_run_beside_ar_and_match_it(tmp_path, method, extra):
    result = runner.run_job(_cfg(tmp_path, f"method={method}", *extra))
    rows = [json.loads(l) for l in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    ref = [r for r in rows if r["method"] == method]
    ar = {r["sample_id"]: r for r in rows if r["method"] == "autoregressive"}
    assert len(ref) == 3 and len(ar) == 3
    for r in ref:
        # float32 on CPU: transformers' greedy decoding equals ours token for token
        assert r["output_ids"] == ar[r["sample_id"]]["output_ids"]
        assert r["target_forwards"] >= 1 and r["layer_evals_per_token"] is None
        # generate() prefills inside its loop: no decode time, rate or level split is measured
        assert r["prefill_s"] is None and r["decode_s"] is None and r["decode_tokens_per_s"] is None
        assert r["time_split_s"] == {}
    s = result.summary["methods"][method]
    assert s["parity_exact"] == 1.0 and s["parity_unexplained"] == 0
    assert s["speedup_vs_ar"] is not None and s["layer_evals_per_token"] is None
    # the end-to-end speedup only: a decode rate from the whole wall time read about half of it
    assert s["decode_tokens_per_s"] is None and s["decode_speedup_vs_ar"] is None
    assert result.summary["methods"]["autoregressive"]["decode_tokens_per_s"] > 0
    if method == "hf_generate":
        assert s["mean_accepted_len"] == pytest.approx(1.0)  # one full forward per token, prefill's included
    if method == "hf_assisted":
        # the assistant is the same random model as the target: every draft token is accepted
        assert s["mean_accepted_len"] > 2.0


def test_reference_methods_are_validated_like_ours(tmp_path):
    with pytest.raises(ValueError, match=r"exit=9 .*1\.\.7"):
        runner.run_job(_cfg(tmp_path, "method=hf_early_exit", "exit=9"))
    with pytest.raises(ValueError, match="method.draft_len=0"):
        runner.run_job(_cfg(tmp_path, "method=hf_assisted", "method.draft_len=0"))


def test_auto_backend_is_native_for_supported_models():
    assert resolve_backend("auto", "cuda", "llama") == "native"
    assert resolve_backend("auto", "cuda:1", "qwen3") == "native"
    assert resolve_backend("auto", "cpu", "llama") == "native"  # measured faster on CPU too
    assert resolve_backend("auto", "cuda", "gpt2") == "hf"
    assert resolve_backend("hf", "cuda", "llama") == "hf"
    with pytest.raises(ValueError, match="model.backend='tpu'"):
        resolve_backend("tpu", "cpu", "llama")


def test_the_summary_names_the_backend_and_timing_discipline(tmp_path):
    result = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=2"))
    s = result.summary
    assert s["backend"] == "native" and s["dtype"] == "float32"  # auto, unnamed
    assert s["compile_s"] >= 0 and s["graph_captures_timed"] == 0 and s["retimed_samples"] == 0
    assert runner.run_job(_cfg(tmp_path / "b", "method=layerskip", "exit=2", "model.backend=hf")).summary["backend"] == "hf"
    assert s["method_backend"] == "native"


def test_a_reference_run_names_transformers_as_its_methods_backend(tmp_path):
    """hf_* run through transformers whatever model.backend says; their AR baseline does not: the
    summary and the log say both, where they said the AR's backend for both."""
    logged = []
    s = runner.run_job(_cfg(tmp_path, "method=hf_generate"), log=logged.append).summary
    assert s["backend"] == "native" and s["method_backend"] == "transformers"
    start = next(line for line in logged if line.startswith("[hsd-bench] hf_generate on "))
    done = next(line for line in logged if line.startswith("[hsd-bench] done hf_generate"))
    assert "native backend for AR, transformers for hf_generate" in start
    assert "native backend for AR, transformers for the method" in done


def test_a_reference_run_past_its_stop_ends_where_the_engine_ends(monkeypatch):
    """transformers' assisted generation commits several tokens per round and checks its
    stopping criteria after the round, so its output can run past a stop sequence; on an H200
    this made one hf_early_exit sample look like a parity mismatch (AR had stopped, it had not).
    The reference cuts with the engine's own rule (engine.stop_cut)."""
    from hsd_bench.engine import stop_cut
    from hsd_bench.hf_reference import HFReference
    from hsd_bench.models.loading import build_random_model
    from hsd_bench.models.tokenizer import TextCodec

    codec = TextCodec()
    ref = HFReference("hf_generate", build_random_model("llama", num_layers=2), codec, max_context=64)
    prompt = codec.encode("def f():")
    tail = codec.encode("    return 1\n\ndef g():\n    pass")  # the round ran past "\ndef"
    monkeypatch.setattr(ref.hf_model, "generate", lambda ids, **kw: torch.tensor([prompt + tail]))
    gen = ref.generate(prompt, 32, stop_sequences=["\ndef"])
    assert codec.decode(gen.output_ids) == "    return 1\n\ndef"  # through the token that completes the stop
    assert gen.stop_reason == "stop"
    assert gen.output_ids == tail[: stop_cut([], tail, set(), ["\ndef"], codec)]
    # EOS first, then the text: the same order the engine uses
    assert stop_cut([1, 2], [7, 0, 9], {0}) == 2 and stop_cut([], [5, 6], {0}, ["x"], codec) is None


def test_stop_cut_finds_any_stop_sequence_with_one_decode_per_text():
    """The engine runs stop_cut after every verification while the device waits: one decode of
    the text per check, however many stop sequences a task has; the cut is where the first of
    any of them ends, also when it starts in the tokens before the round."""
    from hsd_bench.engine import stop_cut
    from hsd_bench.models.tokenizer import TextCodec

    class CountingCodec(TextCodec):
        decodes = 0

        def decode(self, ids):
            CountingCodec.decodes += 1
            return super().decode(ids)

    codec = CountingCodec()
    stops = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    before = list(b"    return x\nde")  # "\nde" begins "\ndef" before this round's tokens
    new = list(b"f g():")
    assert stop_cut(before, new, set(), stops, codec) == 1  # through "f": the text then holds "\ndef"
    CountingCodec.decodes = 0
    assert stop_cut(before, list(b" = 1"), set(), stops, codec) is None
    assert CountingCodec.decodes == 1
    CountingCodec.decodes = 0
    assert stop_cut(list(b"x = 1"), list(b"\n# y"), set(), stops, codec) == 2  # the last of five sequences
    assert CountingCodec.decodes == 1 + 2  # the whole text, then prefixes until the one that stops


def test_tokens_generate_made_past_a_stop_are_discarded_and_counted():
    """Assisted generate() checks its stopping criteria only after a round, so a round can run past
    a stop sequence; the reference cuts it where the engine would, and the tokens cut were computed
    and timed -- counted in ``discarded_tokens`` as the engine counts its own."""
    from types import SimpleNamespace

    from hsd_bench.hf_reference import HFReference
    from tests.test_native_backend import VOCAB, make_hf_model

    hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    plain = HFReference("hf_generate", hf, None).generate(prompt, 16).output_ids
    j = next(j for j in range(1, len(plain)) if plain[j] not in plain[:j])  # its first occurrence stops
    codec = SimpleNamespace(eos_token_id=None, decode=lambda ids: "".join(f"<{t}>" for t in ids))
    stop = (f"<{plain[j]}>",)
    ref = HFReference("hf_generate", hf, codec).generate(prompt, 16, stop_sequences=stop)
    assert ref.output_ids == plain[: j + 1] and ref.stop_reason == "stop"
    assert ref.stats.as_row()["discarded_tokens"] == 0  # one token per step: it stops on the stop
    gamma = 4
    # the assistant is the target itself: every draft is accepted, a round commits gamma + 1 tokens
    assisted = HFReference("hf_assisted", hf, codec, draft_len=gamma, assistant=hf)
    got = assisted.generate(prompt, 16, stop_sequences=stop)
    assert got.output_ids == plain[: j + 1] and got.stop_reason == "stop"
    assert got.stats.as_row()["discarded_tokens"] == -(j + 1) % (gamma + 1) > 0


def test_hf_assisted_loads_its_draft_under_method_draft_path():
    """A draft that cannot load names method.draft.path (it said model.path), as vanilla_sd's does."""
    from conftest import make_model
    from hsd_bench import hf_reference
    from hsd_bench.methods import MethodSpec
    from hsd_bench.models.loading import ModelSpec
    from hsd_bench.models.tokenizer import TextCodec

    spec = MethodSpec("hf_assisted", draft_path="nobody/no-such-draft")
    with pytest.raises(ValueError, match=r"cannot load method\.draft\.path='nobody/no-such-draft'.*"
                                         r"Pass method\.draft\.path=<local checkpoint dir>"):
        hf_reference.build(spec, ModelSpec("random:llama"), make_model("llama", 2), TextCodec())


def test_hf_assisted_refuses_a_draft_with_another_tokenizer():
    """vanilla_sd's tokenizer check, applied to the assistant before any generation (transformers
    otherwise refused it mid-generate(), in the warm-up)."""
    from conftest import make_model
    from hsd_bench import hf_reference
    from hsd_bench.methods import MethodSpec
    from hsd_bench.models.loading import ModelSpec
    from hsd_bench.models.tokenizer import TextCodec

    class OtherCodec(TextCodec):
        def vocab_fingerprint(self):
            return ("other",)

    spec = MethodSpec("hf_assisted", draft_path="random:llama")
    with pytest.raises(ValueError, match=r"method\.draft\.path: draft model 'random:llama' uses a different tokenizer"):
        hf_reference.build(spec, ModelSpec("random:llama"), make_model("llama", 2), OtherCodec())
    target = make_model("llama", 2, vocab_size=300)
    with pytest.raises(ValueError, match=r"method\.draft\.path: draft model 'random:llama' has a vocabulary of 258 "
                                         r"tokens but the target has 300"):
        hf_reference.build(spec, ModelSpec("random:llama"), target, TextCodec(vocab_size=300))
    assert hf_reference.build(spec, ModelSpec("random:llama"), make_model("llama", 2), TextCodec()).assistant is not None
