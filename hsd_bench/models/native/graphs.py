"""Fixed-shape steps: padded token counts, bucketed attention spans, CUDA graphs.

At batch 1 a decoder step is a few hundred small kernels; launched one by
one from Python, their launch cost exceeds the time the GPU needs to read
the weights. gpt-fast's remedy, used here: make every step a fixed shape,
fuse it with ``torch.compile``, and replay it as one captured CUDA graph.

* A step's token count ``T`` is padded up to a power of two (1, 2, 4, ...,
  ``max_tokens``). Padding rows sit at positions after the real ones, so
  causally they cannot affect real rows; the keys they write land in stale
  slots that real tokens overwrite before anyone attends to them.
* Attention reads slots ``[0, kv_len)`` with ``kv_len`` a power-of-two bucket
  (>= 128) covering the positions in use, so a long ``max_context`` costs
  memory, not bandwidth.
* Positions come from a one-element device tensor filled before each replay
  (``fill_`` is an asynchronous kernel): no host sync inside a draft round.

One graph is captured per ``(layer range, padded T, kv_len)`` and replayed
afterwards; ``torch.compile`` compiles one graph per layer *shape*, which all
layers share (weights are inputs, not constants).
"""

from __future__ import annotations

from typing import Callable

import torch


# A fixed-shape step's positions at most, by default: a verification, a draft round's first step, a
# prefill chunk (longer steps take the prefill path). Named once here, beside the sizes it bounds, so
# the model's default, the attention kernel's row bound and the benchmark's flags read one value.
MAX_GRAPH_TOKENS = 16


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def conditional_graphs_available() -> bool:
    """Whether this torch can capture a CUDA conditional node (an ``if`` the device evaluates)."""
    graph = getattr(torch.cuda, "CUDAGraph", None)
    return all(hasattr(graph, name) for name in
               ("get_currently_capturing_graph", "begin_capture_to_if_node", "end_capture_to_conditional_node"))


def configure_compile() -> None:
    """Raise dynamo's recompile limits: one compiled graph per (T, kv_len) shape is by design."""
    cfg = torch._dynamo.config
    for key, value in (("recompile_limit", 256), ("cache_size_limit", 256),
                       ("accumulated_recompile_limit", 4096), ("accumulated_cache_size_limit", 4096)):
        if hasattr(cfg, key):
            setattr(cfg, key, max(getattr(cfg, key), value))


def compile_fn(fn: Callable) -> Callable:
    configure_compile()
    # Default inductor mode: the CUDA graphs are captured here, around whole
    # layer ranges, rather than per compiled function by "reduce-overhead".
    return torch.compile(fn, dynamic=False, fullgraph=True)


class GraphCache:
    """Captures and replays CUDA graphs of fixed-shape steps.

    ``step(key)`` returns a zero-argument function that reads its inputs from
    static buffers and returns a static output; the first call for a key warms
    it up (compiling it), captures it, and every later call replays it. Inputs
    and outputs live in buffers the caller fills and copies out: a replay
    overwrites its output, so callers must clone what they keep.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.captures = 0  # how many graphs were captured (compiled, warmed up, recorded)

    def __len__(self) -> int:
        return len(self.graphs)

    def __contains__(self, key: tuple) -> bool:
        """Whether ``key``'s graph is captured: a caller with a cheaper way than building its step
        (a replay of ``run(key, None)``) asks first."""
        return key in self.graphs

    def run(self, key: tuple, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        entry = self.graphs.get(key)
        if entry is None:
            entry = self._capture(fn)
            self.graphs[key] = entry
            self.captures += 1
        graph, out = entry
        graph.replay()
        return out

    def if_node(self, condition: torch.Tensor, body: Callable[[], object]) -> None:
        """Within a step: ``body`` where ``condition`` (a one-element bool tensor on the device) holds.
        Captured, it is a CUDA conditional node the device evaluates at every replay; in the warm-up
        before a capture it runs regardless (what it writes, decoding rewrites before it reads)."""
        if torch.cuda.is_current_stream_capturing():
            graph = torch.cuda.CUDAGraph.get_currently_capturing_graph()
            graph.begin_capture_to_if_node(condition)
            try:
                body()
            finally:
                graph.end_capture_to_conditional_node()
        else:
            body()

    def _capture(self, fn: Callable[[], torch.Tensor]) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        # Warm up on a side stream (compilation, cuBLAS workspaces) as the
        # PyTorch CUDA graph docs require. Running the step here and again on
        # the replay after capture writes cache slots and static buffers that
        # decoding rewrites before it reads them; a step that moves a position
        # (a verdict round) runs the second time from where the first left it,
        # which NativeLlama.prepare keeps small by zeroing the inputs first.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = fn()
        return graph, out


class RecordingGraphs:
    """Stands in for a :class:`GraphCache` off CUDA: a key's first step is kept ("captured") and every
    later run of the key calls that kept step -- as a replay re-runs what was recorded, whatever the
    caller passes -- so a step that read a host value at capture would replay it stale here too. A
    capture runs its step twice, as :class:`GraphCache` does (a warm-up, then a replay), so what
    that does to the buffers the step reads -- positions it advances -- happens here too.

    Why: the fixed-shape steps and the engine's host path around them are what a GPU runs; with
    this stand-in a CPU runs them too, so tests check them and ``bench/launches.py`` counts what
    the host launches on them.

    ``conditional_nodes``: whether it stands in for CUDA graphs that hold conditional nodes
    (torch >= 2.12) -- by default not, whatever torch runs here, so that a test takes the same path
    on every torch (the lent GPUs' torch 2.11 has none). Where it does, a step's
    :meth:`if_node` runs its body where the condition holds, read on the host: what the device
    evaluates in a captured node, so the guarded rounds of such a torch run on a CPU too, through the
    same steps, and a CPU wheel without the nodes can still test that path. Where it does not, the
    native model captures no guarded round, as on such a torch.
    """

    def __init__(self, conditional_nodes: bool = False):
        self.steps: dict[tuple, Callable[[], torch.Tensor]] = {}
        self.replays: list = []  # the first element of each replayed key, in order
        self.captures = 0
        self.conditional_nodes = conditional_nodes
        self._warming = False

    def if_node(self, condition: torch.Tensor, body: Callable[[], object]) -> None:
        """``body`` where ``condition`` holds (see the class doc); in a capture's warm-up, regardless."""
        if self._warming or bool(condition):
            body()

    def __contains__(self, key: tuple) -> bool:
        return key in self.steps

    def run(self, key: tuple, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self.steps:
            # What a capture does to the buffers a step reads and writes: a warm-up run (every
            # conditional body included), then the capture's replay below.
            self._warming = True
            try:
                fn()
            finally:
                self._warming = False
            self.steps[key] = fn
            self.captures += 1
        else:
            self.replays.append(key[0])
        return self.steps[key]()
