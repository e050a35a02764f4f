"""Print the exact fidelity test for every verification rule.

    python scripts/fidelity_report.py                    # toy case + 2 random trees
    python scripts/fidelity_report.py --vocab 4 --gamma 3 --seeds 0 1 2 --stopping
    python scripts/fidelity_report.py --top-k 2 --stack  # cut targets, and three-level stacks

For each case and rule: E[accepted] (expected accepted draft tokens per round,
correction/bonus token excluded -- Sun et al.'s convention), the largest error
and the total variation between the target and the committed tokens extended
by the target, the mass committed where the target has none (must be exactly
0), and the verdict (see hsd_bench/fidelity.py). Every law is that of the
rule's ``__call__``, its uniforms integrated exactly (hsd_bench/exact_law.py).
``--stack`` adds three-level stacks (drafter -> middle -> top): the middle a
lossless rule, the rule of the row at the top. Exits with status 1 when a
measured verdict contradicts a rule's declared ``lossless`` flag.
"""

from __future__ import annotations

import argparse
import sys

from hsd_bench.fidelity import (
    as_fraction_string,
    check_rule,
    compare_with_target,
    hashed_stop,
    random_stack,
    random_tree,
    stack_law,
    sun_toy_tree,
    truncated_tree,
)
from hsd_bench.verify import available_rules, get_rule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=3, help="vocabulary of the random trees (2-6)")
    parser.add_argument("--gamma", type=int, default=3, help="draft length of the random trees (1-6)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="random-tree seeds")
    parser.add_argument("--stopping", action="store_true", help="also test variable-length drafts")
    parser.add_argument("--top-k", type=int, default=0, help="cut every row of the random trees to its top k (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="cut every row of the random trees to top-p (1 = off)")
    parser.add_argument("--stack", action="store_true", help="also test three-level stacks (gamma 2, depth gamma + 1)")
    parser.add_argument("--rules", nargs="+", default=None, help="rules to test (default: all registered)")
    args = parser.parse_args(argv)

    preferred = ["tokenwise", "block", "hsd", "hsd_official"]
    rules = args.rules or [r for r in preferred if r in available_rules()] + [
        r for r in available_rules() if r not in preferred
    ]
    cut = dict(top_k=args.top_k, top_p=args.top_p)
    cut_label = "".join(f", {k.replace('_', '-')}={v}" for k, v in cut.items() if v != {"top_k": 0, "top_p": 1.0}[k])

    def tree(seed: int):
        return truncated_tree(random_tree(args.vocab, args.gamma, seed), **cut)

    cases = [("Sun toy: p=(1/3,2/3) q=(2/3,1/3)", sun_toy_tree(2), 2, None)]
    cases += [(f"random tree seed={s}{cut_label}", tree(s), args.gamma, None) for s in args.seeds]
    if args.stopping:
        cases += [(f"seed={s}{cut_label}, stopping drafter", tree(s), args.gamma, hashed_stop(s)) for s in args.seeds]

    print("Exact fidelity test: committed tokens, extended by the target, vs the target (float64);")
    print("laws of the rules' __call__, uniforms integrated exactly on the generator's grid.")
    print("E[accepted] = expected accepted draft tokens per round, correction/bonus token excluded.")
    print("leak = probability of committing a token the target gives zero mass (must be exactly 0).\n")
    header = (
        f"{'case':<44} {'V':>2} {'g':>2}  {'rule':<13} {'E[accepted]':>12} {'frac':>6}"
        f"  {'max|err|':>9} {'TV':>9} {'leak':>8}  verdict"
    )
    print(header)
    print("-" * len(header))
    contradictions = []
    laws: dict = {}

    def report(label: str, name: str, vocab: int, gamma: int, r, declared_lossless: bool, toy: bool) -> None:
        verdict = "lossless" if r.lossless else "LOSSY"
        if declared_lossless and not r.lossless:  # a lossy rule may be exact on some cases
            contradictions.append(f"{name} on {label}")
        frac = as_fraction_string(r.expected_accepted) if toy else ""
        print(
            f"{label:<44} {vocab:>2} {gamma:>2}  {name:<13} {r.expected_accepted:>12.6f} {frac:>6}"
            f"  {r.max_abs_error:>9.2e} {r.tv_distance:>9.2e} {r.zero_mass_leak:>8.1e}  {verdict}"
            + ("" if declared_lossless else "  (declared lossy)")
        )

    for label, case_tree, gamma, stop in cases:
        for name in rules:
            rule = get_rule(name)
            r = check_rule(rule, case_tree, gamma, stop=stop, cache=laws)
            report(label, name, case_tree.vocab, gamma, r, rule.lossless, stop is None and "toy" in label)
        print()
    if args.stack:
        for seed in args.seeds:
            lower, upper = random_stack(args.vocab, 3, seed, **cut)
            for middle in (r for r in rules if get_rule(r).lossless):
                label = f"3 levels, seed={seed}{cut_label}, middle {middle}"
                for name in rules:
                    rule = get_rule(name)
                    law, expected = stack_law(get_rule(middle), rule, lower, upper, 2, cache=laws)
                    r = compare_with_target(name, law, expected, upper, 2)
                    report(label, name, args.vocab, 2, r, rule.lossless and get_rule(middle).lossless, False)
                print()
    if contradictions:
        print("Declared lossless but failed: " + "; ".join(contradictions))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
