"""Views of long-lived buffers, made once and kept.

Why: a view (a slice, a select) launches nothing, but each is a dispatcher call of one to two µs
of host time, and a one-row decode asks for the same few views of the same buffers several times
per token, on the path the device waits on (docs/gpu-runs.md, "Thirty-sixth run"). A cache
never hands out a view of a buffer other than the one asked about.
"""

from __future__ import annotations

import torch


class RowViews:
    """The rows of a token buffer ``[rows, L]`` as views, made once per buffer.

    The engine and each model state it hands its token buffer to keep one: a one-row round reads
    and writes its row a few times per token, and ``tokens[r, a:b]`` is two views."""

    def __init__(self):
        self._of: tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None = None  # (buffer, its rows)

    def __call__(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cached = self._of
        if cached is None or cached[0] is not tokens:
            cached = self._of = (tokens, tokens.unbind(0))
        return cached[1]


class PrefixViews:
    """``buf[:n]`` of the buffers asked for, made once per buffer and ``n``.

    The native model keeps one for its static step inputs (the verdict input, the drafted tokens,
    the verdict step's rows, the hand-up input), the engine one for the pinned buffer a verdict is
    read into: a verdict is packed and read once per round, at a few sizes. Keyed by the buffer's
    id: a kept view holds its buffer alive, so no other buffer can take that id."""

    def __init__(self):
        self._views: dict[tuple[int, int], torch.Tensor] = {}  # (id of the buffer, n) -> its view [:n]

    def __call__(self, buf: torch.Tensor, n: int) -> torch.Tensor:
        key = (id(buf), n)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = buf[:n]
        return view
