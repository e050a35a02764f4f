"""Inference mode for the native backend, entered once and checked cheaply.

Why ``torch.inference_mode`` and not ``torch.no_grad``: under ``no_grad`` every op still
passes through autograd's dispatch (a requires-grad check per op) and every in-place op or view
through the version-counter and view-tracking layer; inference mode takes both layers out of the
dispatch, and a tensor *made* in it (an inference tensor) skips them even where it is written in
place. A one-row decode step is host-bound on small models: the engine's fills, copies, views and
packs around each graph replay cost more host time than the replays (docs/gpu-runs.md,
"Thirty-seventh run"), and those ops cost the host less when their tensors are inference tensors
and the mode is on: 14 % over six of them on an H200's host, a third on CPU tensors; HiSpec decoded
1.077x as fast in one process against the engine under ``no_grad`` (docs/gpu-runs.md,
"Thirty-eighth run").

The price is a rule: an inference tensor may not be written in place outside inference mode. So
the backend makes its buffers in the mode (``NativeLlama.__init__``), its methods that queue device
work enter it (``inference_only``), and so does ``Engine.generate_many``, which fills the static
inputs the model hands it (``verdict_input``, ``hand_up_input``); code that fills those itself, as
the tests of those steps do, runs in the mode too. Reading the tensors (functionally) works anywhere.
"""
from __future__ import annotations

import functools

import torch


def inference_only(fn):
    """Run ``fn`` in ``torch.inference_mode()``, at the cost of one check when it is already on.

    The decorator form of a context manager enters and leaves it on every call, several
    microseconds of host time; a draft round makes a few such calls per token, and the engine
    runs in the mode already.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.is_inference_mode_enabled():
            return fn(*args, **kwargs)
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper
