"""How often each early exit agrees with the full model, and what that buys.

For self-speculative decoding (LayerSkip, HiSpec) the exit at layer E drafts
and the full model verifies; under greedy decoding a drafted token is
accepted iff the exit's argmax equals the full model's argmax at that
position. So on the full model's own greedy continuations we measure, for
every exit, the per-token agreement ``a`` and two predictions of the mean
accepted length τ (tokens committed per target forward, bonus included) at
draft length γ:

* ``tau_indep`` = (1 − a^{γ+1}) / (1 − a): if agreements were independent;
* ``tau_sim``: replaying greedy self-speculation over the recorded agreement
  sequence (drafts of up to γ tokens, the first disagreement is corrected,
  k agreed drafts commit k+1 tokens). While drafts agree the exit sees the
  same prefix as the real algorithm, so this is the τ a correct greedy
  LayerSkip engine must reproduce on these continuations.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hsd_bench.training.early_exit import ExitRecorder, exit_logits


@dataclass
class AgreementReport:
    """Per-exit agreement over all continuation tokens of all prompts."""

    num_layers: int
    n_prompts: int
    n_tokens: int
    agreement: dict[int, float]  # exit layer (1..L) -> fraction agreeing with the last layer
    matches: dict[int, list[list[bool]]] = field(repr=False, default_factory=dict)  # per prompt
    samples: list[tuple[list[int], list[int]]] = field(repr=False, default_factory=list)  # (prompt, continuation)
    drafts: dict[str, list[list[bool]]] = field(repr=False, default_factory=dict)  # separate draft models

    def tau_indep(self, exit_layer: int, gamma: int) -> float:
        return implied_tau(self.agreement[exit_layer], gamma)

    def tau_sim(self, exit_layer: int, gamma: int) -> float:
        return replayed_tau(self.matches[exit_layer], gamma)

    def monotonic_violations(self, tol: float = 0.0) -> list[tuple[int, float, float]]:
        """(exit, its agreement, the previous exit's) wherever agreement drops with depth."""
        exits = sorted(self.agreement)
        return [(b, self.agreement[b], self.agreement[a]) for a, b in zip(exits, exits[1:])
                if self.agreement[b] < self.agreement[a] - tol]


def replayed_tau(per_prompt: Sequence[Sequence[bool]], gamma: int) -> float:
    """τ of greedy speculation replayed over each prompt's agreement sequence."""
    committed = rounds = 0
    for seq in per_prompt:
        c, r = simulate_rounds(seq, gamma)
        committed, rounds = committed + c, rounds + r
    return committed / rounds if rounds else float("nan")


def implied_tau(a: float, gamma: int) -> float:
    """E[committed tokens per target forward] with i.i.d. acceptance ``a`` and draft length ``gamma``."""
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"agreement must be in [0, 1], got {a}")
    if a == 1.0:
        return float(gamma + 1)
    return (1.0 - a ** (gamma + 1)) / (1.0 - a)


def simulate_rounds(matches: Sequence[bool], gamma: int) -> tuple[int, int]:
    """Greedy self-speculation over a fixed agreement sequence -> (tokens committed, rounds).

    A round at position i drafts up to ``gamma`` tokens; with k leading
    agreements it commits k+1 tokens (the correction, or the bonus when
    k = gamma). The last round is clipped to the sequence end.
    """
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    n, i, committed, rounds = len(matches), 0, 0, 0
    while i < n:
        k = 0
        while k < gamma and i + k < n and matches[i + k]:
            k += 1
        step = min(k + 1, n - i)
        committed += step
        rounds += 1
        i += step
    return committed, rounds


@torch.no_grad()
def greedy_continuation(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
    """The full model's greedy continuation (stops at EOS)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, eos_token_id=eos_token_id, pad_token_id=eos_token_id)
    return out[0, len(prompt_ids):].tolist()


@torch.no_grad()
def exit_matches(model, prompt_ids: list[int], continuation: list[int]) -> dict[int, list[bool]]:
    """For every exit, whether its argmax equals the last layer's at each continuation position."""
    if not continuation:
        return {}
    device = next(model.parameters()).device
    L = model.config.num_hidden_layers
    ids = torch.tensor([prompt_ids + continuation], device=device)
    recorder = ExitRecorder(model.model.layers)
    try:
        recorder.reset(range(L))
        model.model(input_ids=ids, use_cache=False)
        # positions p predict token p+1: the continuation is predicted from len(prompt)-1 on
        sl = slice(len(prompt_ids) - 1, ids.shape[1] - 1)
        preds = torch.stack([exit_logits(model, recorder.outputs[l][:, sl]).argmax(-1)[0] for l in range(L)])
    finally:
        recorder.remove()
    final = preds[-1]
    return {l + 1: (preds[l] == final).tolist() for l in range(L)}


def measure(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 128) -> AgreementReport:
    """Greedy-generate from each prompt, then compare every exit with the last layer."""
    model.eval()
    L = model.config.num_hidden_layers
    per_exit: dict[int, list[list[bool]]] = {l: [] for l in range(1, L + 1)}
    samples: list[tuple[list[int], list[int]]] = []
    n_tokens = 0
    for prompt in prompts:
        p_ids = tokenizer(prompt).input_ids
        cont = greedy_continuation(model, p_ids, max_new_tokens, tokenizer.eos_token_id)
        m = exit_matches(model, p_ids, cont)
        if not m:
            continue
        n_tokens += len(cont)
        samples.append((p_ids, cont))
        for l in per_exit:
            per_exit[l].append(m[l])
    if n_tokens == 0:
        raise ValueError("no continuation tokens were generated; raise max_new_tokens or check the prompts")
    agreement = {l: sum(map(sum, seqs)) / n_tokens for l, seqs in per_exit.items()}
    return AgreementReport(L, len(prompts), n_tokens, agreement, per_exit, samples)


@torch.no_grad()
def draft_matches(draft, samples: Sequence[tuple[list[int], list[int]]]) -> list[list[bool]]:
    """Per prompt, whether a separate draft model's argmax equals the target's greedy token.

    The draft must share the target's tokenizer (the shipped family does).
    """
    device = next(draft.parameters()).device
    out = []
    for p_ids, cont in samples:
        ids = torch.tensor([p_ids + cont], device=device)
        pred = draft(input_ids=ids).logits[0, len(p_ids) - 1 : ids.shape[1] - 1].argmax(-1)
        out.append((pred == torch.tensor(cont, device=device)).tolist())
    return out


def write_report(report: AgreementReport, out_dir: Path | str, gammas: Sequence[int] = (4,),
                 val_loss: dict[int, float] | None = None, meta: dict | None = None) -> dict:
    """``agreement.csv``, ``agreement.md``, ``agreement.png`` and ``summary.json`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in sorted(report.agreement):
        row = {"exit": e, "agreement": round(report.agreement[e], 4)}
        if val_loss:
            row["val_loss"] = val_loss.get(e)
        for g in gammas:
            row[f"tau_indep_g{g}"] = round(report.tau_indep(e, g), 3)
            row[f"tau_sim_g{g}"] = round(report.tau_sim(e, g), 3)
        rows.append(row)
    for name, seqs in report.drafts.items():
        a = sum(map(sum, seqs)) / max(1, sum(map(len, seqs)))
        row = {"exit": f"draft:{name}", "agreement": round(a, 4)}
        if val_loss:
            row["val_loss"] = None
        for g in gammas:
            row[f"tau_indep_g{g}"] = round(implied_tau(a, g), 3)
            row[f"tau_sim_g{g}"] = round(replayed_tau(seqs, g), 3)
        rows.append(row)
    with open(out / "agreement.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = list(rows[0])
    md = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (out / "agreement.md").write_text("\n".join(md) + "\n")
    violations = report.monotonic_violations()
    summary = {
        **(meta or {}),
        "num_layers": report.num_layers,
        "n_prompts": report.n_prompts,
        "n_tokens": report.n_tokens,
        "gammas": list(gammas),
        "monotonic": not violations,
        "monotonic_violations": [{"exit": e, "agreement": a, "previous": p} for e, a, p in violations],
        "rows": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot([r for r in rows if isinstance(r["exit"], int)], gammas, out / "agreement.png", meta or {})
    return summary


def _plot(rows: list[dict], gammas: Sequence[int], path: Path, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exits = [r["exit"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(exits, [r["agreement"] for r in rows], "o-", label="agreement with last layer")
    ax.set_xlabel("exit layer E")
    ax.set_ylabel("greedy agreement")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    for g in gammas:
        ax2.plot(exits, [r[f"tau_sim_g{g}"] for r in rows], "s--", ms=3, alpha=0.7, label=f"τ (replayed), γ={g}")
    ax2.set_ylabel("mean accepted length τ")
    ax2.set_ylim(1, max(gammas) + 1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    ax.set_title(f"{meta.get('model', '')}: exit agreement on {meta.get('dataset', 'prompts')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
