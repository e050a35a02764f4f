"""One token row per device, shared by every native model on it and by a one-row engine.

Why: on the small models a round's host work is what the device waits for, and the host's
largest lines there were two eager writes of a few tokens into the engine's token buffer -- the
drafted tokens copied out of a draft chain's static output, and the verifier's token written after
each verdict was read (docs/gpu-runs.md, "Fifty-third run": 34-52 µs per HiSpec token of 257-406
µs of host work). A captured step can write into a buffer only if that buffer exists, at one
address, before the capture. So every native model on a device writes into this row from inside
its steps (a draft chain its drafted tokens, a verdict step the verifier's token), and
an engine decoding one row at a time uses the row as its token buffer; the host's writes then
drop out wherever the engine's buffer is the row the steps wrote (``NativeLlama.writes_into``).

Shared rather than one per model, because an engine's levels may be several models (vanilla_sd's
draft and target, a hierarchy's three) and the engine has one token buffer. Shared rather than
owned by an engine, because a model outlives engines (the benchmark builds a fresh engine per
instrumented pass) while its captured graphs keep the address they were captured with. An engine
decodes its rows one generation at a time and writes each prompt in first, so two engines on one
device that take turns never see each other's tokens.
"""

from __future__ import annotations

import torch

# Every row is at least this long: most models then share one row whatever their context.
MIN_ROW_TOKENS = 8192

_rows: dict[tuple[str, int | None], torch.Tensor] = {}


def _key(device: torch.device) -> tuple[str, int | None]:
    index = device.index
    if device.type == "cuda" and index is None:
        index = torch.cuda.current_device()
    return device.type, index


def shared_token_row(device: torch.device | str, length: int) -> torch.Tensor:
    """The device's token row, a ``LongTensor`` of at least ``length`` positions.

    A request longer than the current row replaces it with a longer one for later requests;
    models holding the shorter row keep writing into it, and an engine using the longer row then
    writes the tokens for them on the host, as it would into any buffer of its own."""
    if length < 1:
        raise ValueError(f"a token row of length={length}: it must be >= 1")
    device = torch.device(device)
    key = _key(device)
    row = _rows.get(key)
    if row is None or row.numel() < length:
        row = torch.zeros(max(length, MIN_ROW_TOKENS), dtype=torch.long, device=device)
        _rows[key] = row
    return row
