"""Print the exact fidelity test for every verification rule.

    python scripts/fidelity_report.py                    # toy case + 2 random trees
    python scripts/fidelity_report.py --vocab 4 --gamma 3 --seeds 0 1 2 --stopping

For each case and rule: E[accepted] (expected accepted draft tokens per round,
correction/bonus token excluded -- Sun et al.'s convention), the largest error
and the total variation between the target and the committed tokens extended
by the target (see hsd_bench/fidelity.py), and the verdict. Exits with status 1
when a measured verdict contradicts a rule's declared ``lossless`` flag.
"""

from __future__ import annotations

import argparse
import hashlib
import sys

from hsd_bench.fidelity import as_fraction_string, check_rule, random_tree, sun_toy_tree
from hsd_bench.verify import available_rules, get_rule


def hashed_stop(salt: int):
    """A fixed pseudo-random prefix-dependent stopping rule for variable-length drafts."""

    def stop(prefix):
        h = int(hashlib.sha256(f"{salt}:{prefix}".encode()).hexdigest(), 16)
        return [0.0, 1.0, 0.5, (h >> 8) % 1000 / 1000][h % 4]

    return stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=3, help="vocabulary of the random trees (2-6)")
    parser.add_argument("--gamma", type=int, default=3, help="draft length of the random trees (1-6)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="random-tree seeds")
    parser.add_argument("--stopping", action="store_true", help="also test variable-length drafts")
    parser.add_argument("--rules", nargs="+", default=None, help="rules to test (default: all registered)")
    args = parser.parse_args(argv)

    preferred = ["tokenwise", "block", "hsd", "hsd_official"]
    rules = args.rules or [r for r in preferred if r in available_rules()] + [
        r for r in available_rules() if r not in preferred
    ]
    cases = [("Sun toy: p=(1/3,2/3) q=(2/3,1/3)", sun_toy_tree(2), 2, None)]
    cases += [(f"random tree seed={s}", random_tree(args.vocab, args.gamma, s), args.gamma, None) for s in args.seeds]
    if args.stopping:
        cases += [
            (f"random tree seed={s}, stopping drafter", random_tree(args.vocab, args.gamma, s), args.gamma, hashed_stop(s))
            for s in args.seeds
        ]

    print("Exact fidelity test: committed tokens, extended by the target, vs the target (float64).")
    print("E[accepted] = expected accepted draft tokens per round, correction/bonus token excluded.\n")
    header = f"{'case':<40} {'V':>2} {'g':>2}  {'rule':<13} {'E[accepted]':>12} {'frac':>6}  {'max|err|':>9} {'TV':>9}  verdict"
    print(header)
    print("-" * len(header))
    contradictions = []
    for label, tree, gamma, stop in cases:
        for name in rules:
            rule = get_rule(name)
            r = check_rule(rule, tree, gamma, stop=stop)
            verdict = "lossless" if r.lossless else "LOSSY"
            if rule.lossless and not r.lossless:  # a lossy rule may be exact on some cases
                contradictions.append(f"{name} on {label}")
            frac = as_fraction_string(r.expected_accepted) if stop is None and "toy" in label else ""
            print(
                f"{label:<40} {tree.vocab:>2} {gamma:>2}  {name:<13} {r.expected_accepted:>12.6f} {frac:>6}"
                f"  {r.max_abs_error:>9.2e} {r.tv_distance:>9.2e}  {verdict}"
                + ("" if rule.lossless else "  (declared lossy)")
            )
        print()
    if contradictions:
        print("Declared lossless but failed: " + "; ".join(contradictions))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
