"""Progress of one run: a bar with throughput and acceptance so far, and a closing line.

Why: a sweep job on a cluster runs for hours and its log is all one sees.
The bar (tqdm, on a terminal only) shows tokens/s and acceptance of the method
as samples finish, so a bad exit layer is visible after a few samples; the
one-line summary is what remains in a SLURM log or CI output, where the bar is
switched off (CI=true or stderr not a terminal) so logs stay clean.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import IO, Iterable, Mapping

BASELINE = "autoregressive"


def _backends(summary: Mapping) -> str:
    """The backend the run's decoders ran on; both where the method's differs from AR's (an hf_*
    reference runs through transformers whatever model.backend says)."""
    backend, method = summary.get("backend", "?"), summary.get("method_backend")
    return f"{backend} backend" if method in (None, backend) else f"{backend} backend for AR, {method} for the method"


def bar_enabled(requested: bool = True, stream: IO | None = None) -> bool:
    """A bar only when asked for, on a terminal, and not in CI."""
    stream = sys.stderr if stream is None else stream
    if not requested or os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class RunProgress:
    """One bar per run: units of work done, method tok/s, speedup over AR, acceptance.

    ``run.py`` counts generations (samples x decoders: each decoder decodes every
    sample in turn, AR first, so a bar of samples would stand still through AR).
    Call ``update(rows)`` as rows are written (one step each by default;
    ``steps`` for work done without a row, e.g. generations finished before a
    resume), and ``close()`` at the end. Rows already on disk when a run resumes
    are passed as ``done_rows`` so the running figures include them.
    """

    def __init__(
        self,
        total: int,
        desc: str = "samples",
        enabled: bool = True,
        done_rows: Iterable[Mapping] = (),
        stream: IO | None = None,
        unit: str = "sample",
    ) -> None:
        if total < 0:
            raise ValueError(f"total={total} must be >= 0 (units of work in the run)")
        self.total = total
        self._tokens: dict[str, float] = {}
        self._wall: dict[str, float] = {}
        self._drafted = 0
        self._accepted = 0
        self._ingest(done_rows)
        self._bar = None
        if bar_enabled(enabled, stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit,
                             leave=False, file=stream if stream is not None else sys.stderr, dynamic_ncols=True)
            self._refresh()

    def _ingest(self, rows: Iterable[Mapping]) -> None:
        for r in rows:
            if r.get("skipped"):
                continue
            m = str(r.get("method"))
            self._tokens[m] = self._tokens.get(m, 0.0) + float(r.get("n_generated") or 0)
            self._wall[m] = self._wall.get(m, 0.0) + float(r.get("wall_s") or 0.0)
            if m != BASELINE:
                self._drafted += int(r.get("drafted") or 0)
                self._accepted += int(r.get("accepted") or 0)

    def tokens_per_s(self, method: str) -> float | None:
        wall = self._wall.get(method, 0.0)
        return self._tokens.get(method, 0.0) / wall if wall > 0 else None

    def stats(self) -> dict[str, float | None]:
        """Running figures over the rows seen so far (also what the bar shows)."""
        methods = [m for m in self._tokens if m != BASELINE]
        method = methods[0] if methods else BASELINE
        tps, ar = self.tokens_per_s(method), self.tokens_per_s(BASELINE)
        return {
            "tok_s": tps,
            "speedup": tps / ar if (tps and ar and method != BASELINE) else None,
            "accept": self._accepted / self._drafted if self._drafted else None,
        }

    def _refresh(self) -> None:
        if self._bar is not None:
            fmt = {"tok_s": "{:.1f}", "speedup": "{:.2f}x", "accept": "{:.2f}"}
            self._bar.set_postfix({k: ("-" if v is None else fmt[k].format(v)) for k, v in self.stats().items()},
                                  refresh=False)

    def update(self, rows: Iterable[Mapping] = (), steps: int | None = None) -> None:
        """Count ``rows`` into the figures and advance by ``steps`` (default: one per row)."""
        rows = list(rows)
        self._ingest(rows)
        if self._bar is not None:
            self._refresh()
            self._bar.update(len(rows) if steps is None else steps)
            self._bar.refresh()  # samples take seconds: show every one, not only after tqdm's mininterval

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "RunProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _num(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def summary_line(summary: Mapping, run_dir: Path | str | None = None) -> str:
    """One line per finished job, for logs: method, dataset, samples, tok/s, speedup, acceptance, tau."""
    methods: Mapping = summary.get("methods") or {}
    name = summary.get("method") or next((m for m in methods if m != BASELINE), BASELINE)
    s = methods.get(name) or {}
    cfg = summary.get("config") or {}
    dataset = (cfg.get("dataset") or {}).get("name", "?")
    parts = [
        f"[hsd-bench] done {name} on {dataset}:",
        f"{s.get('n_samples', 0)} samples,",
        f"{_num(s.get('tokens_per_s'), '.1f')} tok/s",
        *([f"(passes {min(s['tokens_per_s_passes']):.1f}-{max(s['tokens_per_s_passes']):.1f})"]
          if s.get("tokens_per_s_passes") and None not in s["tokens_per_s_passes"] else []),
        f"({_num(s.get('speedup_vs_ar'), '.2f', 'x')} vs AR),",
        f"accept {_num(s.get('acceptance_rate'), '.2f')},",
        f"tau {_num(s.get('mean_accepted_len'), '.2f')},",
        f"parity {_num(s.get('parity_exact'), '.2f')} ({_num(s.get('parity_unexplained'), 'd')} unexplained),",
        f"{_backends(summary)}, compile {_num(summary.get('compile_s'), '.1f')} s,",
        f"{_num(summary.get('graph_captures_timed'), 'd')} captures timed",
    ]
    if s.get("host_probe_us") is not None:  # the host's speed beside its tokens/s (host_probe.py)
        parts[-1] += ","
        parts.append(f"host probe {s['host_probe_us']:.1f} µs")
    counts = s.get("preemptions_passes")
    if counts:  # time slices other threads took, per pass (host_probe.preemptions): the median pass's
        parts[-1] += ","
        parts.append(f"preempted {statistics.median_low(counts)}x a pass")
    shares = [w for w in s.get("cpu_wait_share_passes") or [] if w is not None]
    if shares:  # how long the timing thread waited for a CPU (host_probe.cpu_wait_s): the most of any pass, since
        # one pass that waited is what makes its passes' rates spread (a median pass's 0.0 % hid a 22.6 % one)
        parts[-1] += ","
        parts.append(f"waiting for a CPU up to {100 * max(shares):.1f} % of a pass")
    if run_dir is not None:
        parts.append(f"-> {run_dir}")
    return " ".join(parts)
