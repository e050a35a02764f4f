"""GSM8K (``openai/gsm8k``, config ``main``, test split): grade-school math, few-shot.

Prompt: lm-eval's ``gsm8k`` format -- exemplars ``"Question: q\\nAnswer: a"``
joined by blank lines, then ``"Question: q\\nAnswer:"`` -- 5-shot by default.
Exemplars never come from the evaluated split: by default they are the fixed
list below, written for this project in the style of the GSM8K train split
(worked steps with ``<<calc>>`` annotations, ``#### n`` last), so a run needs
no download and every sample of every method sees the same prompt;
``dataset.fewshot_source=train`` or ``dataset.fewshot_path`` use the real
train split instead. Scored by exact match of the final number, strict
(``#### n``) and flexible (last number), as lm-eval scores it.
"""

from __future__ import annotations

from typing import Any

from hsd_bench.tasks.base import Sample, register_task
from hsd_bench.tasks.jsonl import (
    HubSource,
    check_disjoint,
    cfg_get,
    fewshot_records,
    load_records,
    optional_int,
    select_from_cfg,
    stop_sequences_from_cfg,
)
from hsd_bench.tasks.scoring.gsm8k_answer import score_gsm8k
from hsd_bench.tasks.scoring.stop import truncate_at_stop

SOURCE = HubSource(path="openai/gsm8k", name="main", fields=("question", "answer"), prompt_field="question")
DEFAULT_NUM_FEWSHOT = 5  # lm-eval's gsm8k default

BUILTIN_EXEMPLARS = [
    {
        "question": "A baker makes 36 muffins in the morning and 24 muffins in the afternoon. She sells 45 "
        "muffins during the day. How many muffins does she have left?",
        "answer": "She makes 36 + 24 = <<36+24=60>>60 muffins in total.\n"
        "After selling 45, she has 60 - 45 = <<60-45=15>>15 muffins left.\n#### 15",
    },
    {
        "question": "A school bus can carry 40 students. The school has 6 buses, and 215 students need a ride "
        "to the museum. How many empty seats will there be if every student rides a bus?",
        "answer": "The buses can carry 6 * 40 = <<6*40=240>>240 students.\n"
        "There will be 240 - 215 = <<240-215=25>>25 empty seats.\n#### 25",
    },
    {
        "question": "Maria buys 3 notebooks for $4 each and a pen for $2. She pays with a $20 bill. How much "
        "change does she get?",
        "answer": "The notebooks cost 3 * 4 = <<3*4=12>>12 dollars.\n"
        "With the pen she spends 12 + 2 = <<12+2=14>>14 dollars.\n"
        "Her change is 20 - 14 = <<20-14=6>>6 dollars.\n#### 6",
    },
    {
        "question": "A garden has 5 rows of tomato plants with 8 plants in each row. Each plant produces 6 "
        "tomatoes. How many tomatoes does the garden produce?",
        "answer": "There are 5 * 8 = <<5*8=40>>40 plants.\n"
        "They produce 40 * 6 = <<40*6=240>>240 tomatoes.\n#### 240",
    },
    {
        "question": "Jake ran 3 miles on Monday, twice as far on Wednesday, and 4 miles less than on Wednesday "
        "on Friday. How many miles did he run on those three days?",
        "answer": "On Wednesday he ran 3 * 2 = <<3*2=6>>6 miles.\n"
        "On Friday he ran 6 - 4 = <<6-4=2>>2 miles.\n"
        "In total he ran 3 + 6 + 2 = <<3+6+2=11>>11 miles.\n#### 11",
    },
    {
        "question": "A water tank holds 1,200 liters. It is 3/4 full, and a farmer uses 350 liters to water "
        "his crops. How many liters are left in the tank?",
        "answer": "The tank holds 1200 * 3/4 = <<1200*3/4=900>>900 liters.\n"
        "After watering, 900 - 350 = <<900-350=550>>550 liters are left.\n#### 550",
    },
    {
        "question": "Lena earns $15 per hour. She worked 6 hours on Saturday and 4 hours on Sunday, and spent "
        "a fifth of her weekend earnings on a concert ticket. How much of her weekend earnings is left?",
        "answer": "She worked 6 + 4 = <<6+4=10>>10 hours.\n"
        "She earned 10 * 15 = <<10*15=150>>150 dollars.\n"
        "The ticket cost 150 / 5 = <<150/5=30>>30 dollars.\n"
        "She has 150 - 30 = <<150-30=120>>120 dollars left.\n#### 120",
    },
    {
        "question": "A library had 450 books. It received 2 boxes of 35 books each, and then lent out 120 "
        "books. How many books are in the library now?",
        "answer": "The boxes held 2 * 35 = <<2*35=70>>70 books.\n"
        "The library then had 450 + 70 = <<450+70=520>>520 books.\n"
        "After lending 120, it has 520 - 120 = <<520-120=400>>400 books.\n#### 400",
    },
]


def format_question(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def build_prompt(question: str, exemplars: list[dict]) -> str:
    """lm-eval's layout: target delimiter " ", few-shot delimiter "\\n\\n"."""
    shots = [f"{format_question(e['question'])} {e['answer']}" for e in exemplars]
    return "\n\n".join([*shots, format_question(question)])


@register_task("gsm8k")
class GSM8K:
    max_new_tokens = 256
    stop_sequences = ["Question:", "</s>", "<|im_end|>"]  # lm-eval's gsm8k `until`

    def load(self, cfg: Any) -> list[Sample]:
        self.max_new_tokens = optional_int(cfg, "max_new_tokens", type(self).max_new_tokens, 1)
        self.stop_sequences = stop_sequences_from_cfg(cfg, type(self).stop_sequences)
        n_shot = optional_int(cfg, "num_fewshot", DEFAULT_NUM_FEWSHOT, 0)
        chosen = select_from_cfg(load_records(cfg, SOURCE), _sample_id, cfg)
        exemplars = fewshot_records(cfg, SOURCE, BUILTIN_EXEMPLARS, n_shot)
        check_disjoint(exemplars, [r for _, r in chosen], "question")
        return [
            Sample(
                sample_id=sid,
                prompt=build_prompt(r["question"], exemplars),
                reference=r["answer"],
                meta={"num_fewshot": n_shot, "split": cfg_get(cfg, "split", "test")},
            )
            for sid, r in chosen
        ]

    def score(self, sample: Sample, output_text: str) -> dict[str, float]:
        return score_gsm8k(truncate_at_stop(output_text, self.stop_sequences), sample.reference)


def _sample_id(index: int, record: dict) -> str:
    """The record's ``id`` if it has one, else its 0-based row index in the split/file."""
    return str(record.get("id", index))
