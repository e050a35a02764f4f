"""ROUGE-1/2/L F-measure of a summary against the reference highlights (``rouge-score``).

Porter stemming on, as in the CNN/DM literature and lm-eval's
``cnn_dailymail`` task; the scorer is built once per process because
constructing it loads the stemmer.
"""

from __future__ import annotations

from functools import lru_cache

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def score_rouge(output: str, reference: str) -> dict[str, float]:
    """``{"rouge1": F, "rouge2": F, "rougeL": F}`` of ``output`` against ``reference``, each in [0, 1]."""
    scores = _scorer().score(reference, output)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}
