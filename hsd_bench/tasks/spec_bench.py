"""Spec-Bench (Xia et al., 2024): the shared prompt set of speculative-decoding papers.

Source: ``data/spec_bench/question.jsonl`` of ``hemingkx/Spec-Bench`` (480
prompts, Apache-2.0), one JSON object per line with ``question_id``,
``category`` and ``turns`` (a list of user messages). Thirteen categories: the
eight MT-bench ones (writing, roleplay, reasoning, math, coding, extraction,
stem, humanities; 10 prompts each) and 80 prompts each of translation,
summarization, qa, math_reasoning and rag. There is no Hub copy to fall back
on: ``dataset.path=<question.jsonl>`` is required.

Prompt: the **first turn** in Spec-Bench's default (Vicuna) conversation
template, ``"<system> USER: <turn> ASSISTANT:"``. The MT-bench prompts have a
second turn that asks to revise the first answer; answering it needs the
model's own first answer in the context, i.e. a second generation per sample
that every method would have to share, so it is left out: every sample is one
generation from the first turn (the other five categories have one turn).

Spec-Bench reports speed per category, so each sample carries its
``category`` (``Sample.meta``): the runner writes it on every row, and
``summary.json`` and ``scripts/collect.py --by-category`` report each metric
per category. ``dataset.per_category=N`` keeps at most N prompts of every
category (chosen as ``dataset.limit`` chooses, by ``dataset.seed``), and
``dataset.categories=[...]`` keeps only those categories.

Score: none. Spec-Bench measures speed; its prompts have no reference
answers to score against (MT-bench quality is judged by an LLM), so the task
returns no scores and a run compares only speed, acceptance and exact
parity with autoregressive decoding.
"""

from __future__ import annotations

from typing import Any

from hsd_bench.tasks.base import Sample, register_task
from hsd_bench.tasks.jsonl import (
    DatasetError,
    cfg_get,
    optional_int,
    path_from_cfg,
    read_jsonl,
    select,
    select_from_cfg,
    stop_sequences_from_cfg,
)

FIELDS = ("question_id", "category", "turns")
CATEGORIES = (
    "writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities",
    "translation", "summarization", "qa", "math_reasoning", "rag",
)
# FastChat's "vicuna_v1.1" template, Spec-Bench's default for its Vicuna models.
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def build_prompt(turn: str) -> str:
    return f"{SYSTEM} USER: {turn} ASSISTANT:"


@register_task("spec_bench")
class SpecBench:
    max_new_tokens = 1024  # Spec-Bench's --max-new-tokens
    stop_sequences = ["</s>", "USER:"]  # the template's end of turn, and a new user turn

    def load(self, cfg: Any) -> list[Sample]:
        self.max_new_tokens = optional_int(cfg, "max_new_tokens", type(self).max_new_tokens, 1)
        self.stop_sequences = stop_sequences_from_cfg(cfg, type(self).stop_sequences)
        optional_int(cfg, "num_fewshot", 0, 0, 0)  # first turns only, zero-shot
        path = path_from_cfg(cfg)
        if not path:
            raise DatasetError(
                "dataset=spec_bench needs dataset.path=<question.jsonl>: Spec-Bench's "
                "data/spec_bench/question.jsonl (github.com/hemingkx/Spec-Bench); there is no Hub copy"
            )
        records = read_jsonl(path, ("category",))  # read_jsonl checks string fields; the others here
        for lineno, r in enumerate(records, start=1):
            missing = [k for k in FIELDS if k not in r]
            if missing:
                raise DatasetError(f"dataset.path: {path}: record {lineno}: missing field(s) {', '.join(missing)}; "
                                   f"valid: an object with {', '.join(FIELDS)}")
            if isinstance(r["question_id"], bool) or not isinstance(r["question_id"], (int, str)):
                raise DatasetError(f"dataset.path: {path}: record {lineno}: question_id is {r['question_id']!r}; "
                                   "valid: a number or a string")
            turns = r["turns"]
            if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t for t in turns):
                raise DatasetError(f"{path}: record {lineno} (question_id {r['question_id']!r}): "
                                   f"turns must be a non-empty list of non-empty strings, got {turns!r}")
        records = _filter_categories(records, cfg_get(cfg, "categories"), path)
        per_category = optional_int(cfg, "per_category", 0, 1)  # 0 = null: every prompt of a category
        if per_category:
            records = _per_category(records, per_category, cfg_get(cfg, "seed"))
        chosen = select_from_cfg(records, _sample_id, cfg)
        return [
            Sample(sample_id=sid, prompt=build_prompt(r["turns"][0]), reference=None,
                   meta={"category": str(r["category"]), "turns": len(r["turns"])})
            for sid, r in chosen
        ]

    def score(self, sample: Sample, output_text: str) -> dict[str, float]:
        return {}  # no reference answers: speed only (see the module docstring)


def _sample_id(index: int, record: dict) -> str:
    return str(record["question_id"])


def _filter_categories(records: list[dict], wanted, path) -> list[dict]:
    if wanted is None:
        return records
    if isinstance(wanted, str) or not all(isinstance(c, str) for c in wanted):
        raise DatasetError(f"dataset.categories={wanted!r} must be a list of category names or null (all)")
    present = sorted({str(r["category"]) for r in records})
    unknown = [c for c in wanted if c not in present]
    if unknown:
        raise DatasetError(f"dataset.categories has unknown categories {unknown}; {path} has: {', '.join(present)}")
    return [r for r in records if r["category"] in set(wanted)]


def _per_category(records: list[dict], n: int, seed) -> list[dict]:
    """At most ``n`` records of each category, picked as ``dataset.limit`` picks, kept in file order."""
    keep: set[str] = set()
    for category in dict.fromkeys(str(r["category"]) for r in records):
        group = [r for r in records if str(r["category"]) == category]
        keep.update(sid for sid, _ in select(group, _sample_id, limit=n, seed=seed))
    return [r for r in records if _sample_id(0, r) in keep]
