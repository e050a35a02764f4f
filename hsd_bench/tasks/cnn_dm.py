"""CNN/DailyMail (``abisee/cnn_dailymail``, config ``3.0.0``, test split): news summarisation.

Prompt: LayerSkip's / HiSpec's format, ``"Article: ...\\nSummary:"``, zero-shot
by default; one-shot prepends ``"Article: a\\nSummary: h\\n\\n"`` with the
exemplar's highlights on one line. The default exemplar is a short article
written for this project (offline, identical for every sample);
``dataset.fewshot_source=train`` / ``dataset.fewshot_path`` take it from the
train split instead (LayerSkip samples it from there). Scored by ROUGE-1/2/L
F-measure against the reference highlights.
"""

from __future__ import annotations

from typing import Any

from hsd_bench.tasks.base import Sample, register_task
from hsd_bench.tasks.jsonl import (
    HubSource,
    check_disjoint,
    fewshot_records,
    load_records,
    optional_int,
    select_from_cfg,
    stop_sequences_from_cfg,
)
from hsd_bench.tasks.scoring.rouge import score_rouge
from hsd_bench.tasks.scoring.stop import truncate_at_stop

SOURCE = HubSource(path="abisee/cnn_dailymail", name="3.0.0", fields=("article", "highlights"), prompt_field="article")

BUILTIN_EXEMPLARS = [
    {
        "id": "hsd-builtin-0",
        "article": "(Harbor City) -- A stretch of the coastal railway between Harbor City and Millbrook "
        "reopened on Monday, three weeks after a landslide buried the tracks under tons of mud and rock. "
        "Crews worked in shifts around the clock to clear the debris and rebuild a retaining wall along "
        "the cliff, the regional transit authority said. About 12,000 commuters use the line on a typical "
        "weekday; while it was closed, they relied on replacement buses that added up to an hour to each "
        "trip. \"We know how hard the last few weeks have been for riders,\" the authority's director told "
        "reporters at the reopened Millbrook station. Engineers will keep monitoring the slope with "
        "sensors, and trains will run at reduced speed on the repaired section until the end of the month.",
        "highlights": "The coastal line between Harbor City and Millbrook reopened three weeks after a "
        "landslide.\nAbout 12,000 commuters use the line each weekday.\nTrains will run at reduced speed "
        "on the repaired section until the end of the month.",
    }
]


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def build_prompt(article: str, exemplars: list[dict]) -> str:
    shots = "".join(f"Article: {e['article']}\nSummary: {one_line(e['highlights'])}\n\n" for e in exemplars)
    return f"{shots}Article: {article}\nSummary:"


@register_task("cnn_dm")
class CNNDailyMail:
    max_new_tokens = 128
    stop_sequences = ["\n\n", "\nArticle:"]

    def load(self, cfg: Any) -> list[Sample]:
        self.max_new_tokens = optional_int(cfg, "max_new_tokens", type(self).max_new_tokens, 1)
        self.stop_sequences = stop_sequences_from_cfg(cfg, type(self).stop_sequences)
        n_shot = optional_int(cfg, "num_fewshot", 0, 0)
        chosen = select_from_cfg(load_records(cfg, SOURCE), _sample_id, cfg)
        exemplars = fewshot_records(cfg, SOURCE, BUILTIN_EXEMPLARS, n_shot)
        check_disjoint(exemplars, [r for _, r in chosen], "article")
        return [
            Sample(
                sample_id=sid,
                prompt=build_prompt(r["article"], exemplars),
                reference=r["highlights"],
                meta={"num_fewshot": n_shot},
            )
            for sid, r in chosen
        ]

    def score(self, sample: Sample, output_text: str) -> dict[str, float]:
        return score_rouge(truncate_at_stop(output_text, self.stop_sequences), sample.reference)


def _sample_id(index: int, record: dict) -> str:
    """The dataset's ``id`` (a hash of the story URL), else the 0-based row index."""
    return str(record.get("id", index))
