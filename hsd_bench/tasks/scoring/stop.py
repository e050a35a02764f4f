"""Cut a generation at its first stop sequence.

Engines differ in whether the stop string itself is kept in the output (and a
speculative step may overshoot it by a few tokens); scoring the text cut at
the first stop sequence gives the same score either way.
"""

from __future__ import annotations

from typing import Iterable


def truncate_at_stop(text: str, stop_sequences: Iterable[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop sequence."""
    cut = len(text)
    for stop in stop_sequences:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]
