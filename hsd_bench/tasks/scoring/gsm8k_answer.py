"""GSM8K exact match of the final number, as lm-eval's ``gsm8k`` task scores it.

Two extractions, both compared as normalised strings (not as numbers) so the
scores equal lm-eval's on the same outputs:

* **strict** -- the number after the first ``#### `` (the format of the
  dataset's own answers, which the few-shot exemplars teach);
* **flexible** -- the last number-like token anywhere in the output.

Normalisation (lm-eval's ``exact_match`` with ``regexes_to_ignore``): drop
commas and ``$``, drop everything up to the last ``#### ``, drop one trailing
period, lower-case. A missing match becomes ``[invalid]``, which never equals
a gold answer.
"""

from __future__ import annotations

import re

STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
INVALID = "[invalid]"
_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def normalize(text: str) -> str:
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def _pick(matches: list, index: int) -> str:
    if not matches:
        return INVALID
    match = matches[index]
    if isinstance(match, tuple):
        groups = [g for g in match if g]
        match = groups[0] if groups else INVALID
    return match.strip()


def extract_strict(output: str) -> str:
    """The number after the first ``#### `` in ``output``, or ``[invalid]``."""
    return _pick(STRICT_PATTERN.findall(output), 0)


def extract_flexible(output: str) -> str:
    """The last number-like token in ``output``, or ``[invalid]``."""
    return _pick(FLEXIBLE_PATTERN.findall(output), -1)


def gold_answer(answer: str) -> str:
    """The normalised final number of a GSM8K ``answer`` field (``... #### 1,234`` -> ``1234``)."""
    return normalize(answer)


def score_gsm8k(output: str, answer: str) -> dict[str, float]:
    """``exact_match_strict`` and ``exact_match_flexible`` (1.0 or 0.0) of ``output`` against ``answer``."""
    gold = gold_answer(answer)
    return {
        "exact_match_strict": float(normalize(extract_strict(output)) == gold),
        "exact_match_flexible": float(normalize(extract_flexible(output)) == gold),
    }
