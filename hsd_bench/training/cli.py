"""Command line of ``scripts/train_early_exit.py`` (plain argparse: no Hydra on the GPU box).

Two steps, so several models can share one tokenizer and token stream:

    python scripts/train_early_exit.py prepare --data runs/ee_data
    python scripts/train_early_exit.py train --preset ee-24x128 --data runs/ee_data --out checkpoints/ee-24x128

``train`` prepares the data directory itself when it is missing. Unset flags
keep the preset's values (config.py).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hsd_bench.training.config import PRESETS, get_preset

# data and trainer import torch and transformers (seconds): loaded when a command runs, so that
# --help and a bad argument answer at once.


def _add_prepare_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (prepare)")
    g.add_argument("--data", required=True, type=Path, help="data directory (corpus tokens + tokenizer)")
    g.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size incl. specials")
    g.add_argument("--max-bytes", type=int, default=48_000_000, help="cap on corpus size in bytes")
    g.add_argument("--max-file-bytes", type=int, default=200_000, help="skip source files larger than this")
    g.add_argument("--tokenizer-train-bytes", type=int, default=16_000_000,
                   help="train the BPE on the first this-many corpus bytes")
    g.add_argument("--val-every", type=int, default=50, help="every N-th file goes to validation")
    g.add_argument("--roots", nargs="+", type=Path, default=None,
                   help="directories to take .py files from (default: stdlib, then site-packages)")


def _prepare_from(args: argparse.Namespace) -> dict:
    from hsd_bench.training.data import prepare_data

    return prepare_data(
        args.data, vocab_size=args.vocab_size, max_bytes=args.max_bytes, max_file_bytes=args.max_file_bytes,
        tokenizer_train_bytes=args.tokenizer_train_bytes, val_every=args.val_every, roots=args.roots,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_early_exit.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare", help="build the corpus, train the tokenizer, tokenize")
    _add_prepare_args(prep)

    tr = sub.add_parser("train", help="train one early-exit model (prepares --data if missing)")
    _add_prepare_args(tr)
    tr.add_argument("--preset", required=True, choices=sorted(PRESETS))
    tr.add_argument("--out", required=True, type=Path, help="checkpoint directory (save_pretrained)")
    tr.add_argument("--state-dir", type=Path, default=None,
                    help="resume state (default runs/train_state/<out name>)")
    s = tr.add_argument_group("shape overrides")
    s.add_argument("--layers", type=int)
    s.add_argument("--hidden", type=int)
    s.add_argument("--intermediate", type=int)
    s.add_argument("--heads", type=int)
    t = tr.add_argument_group("training overrides")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seq-len", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--warmup-steps", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--curriculum", choices=("all", "rotational", "gradual"))
    t.add_argument("--rotation", type=int)
    t.add_argument("--exit-weighting", choices=("layerskip", "linear", "uniform", "last"))
    t.add_argument("--e-scale", type=float)
    t.add_argument("--layer-dropout-max", type=float)
    t.add_argument("--eval-batches", type=int)
    t.add_argument("--time-budget-s", type=float, help="stop (annealed) after this much training time")
    r = tr.add_argument_group("run")
    r.add_argument("--device", default="auto")
    r.add_argument("--amp", default="auto", choices=("auto", "bf16", "none"))
    r.add_argument("--save-dtype", default="bfloat16", choices=("bfloat16", "float32"))
    r.add_argument("--save-every", type=int, default=250)
    r.add_argument("--stop-after", type=int, default=None, help="stop this invocation after N steps (resumable)")
    r.add_argument("--log-every", type=int, default=50)
    r.add_argument("--no-resume", action="store_true")
    r.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.cmd == "prepare":
        _prepare_from(args)
        return 0

    from hsd_bench.training.data import is_prepared
    from hsd_bench.training.trainer import RunOptions, train

    preset = get_preset(args.preset)
    if not is_prepared(args.data):
        meta = _prepare_from(args)
    else:
        import json

        meta = json.loads((args.data / "data.json").read_text())
    shape = replace(
        preset.shape,
        vocab_size=meta["vocab_size"],
        **{k: v for k, v in {"num_layers": args.layers, "hidden_size": args.hidden,
                             "intermediate_size": args.intermediate, "num_heads": args.heads}.items()
           if v is not None},
    )
    cfg = preset.train.with_overrides(
        steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
        warmup_steps=args.warmup_steps, seed=args.seed, curriculum=args.curriculum, rotation=args.rotation,
        exit_weighting=args.exit_weighting, e_scale=args.e_scale, layer_dropout_max=args.layer_dropout_max,
        eval_batches=args.eval_batches, time_budget_s=args.time_budget_s,
    )
    opts = RunOptions(
        out_dir=args.out,
        state_dir=args.state_dir or Path("runs/train_state") / args.out.name,
        device=args.device, amp=args.amp, save_dtype=args.save_dtype, save_every=args.save_every,
        stop_after=args.stop_after, log_every=args.log_every, resume=not args.no_resume,
        progress={"auto": None, "on": True, "off": False}[args.progress],
        command="python scripts/train_early_exit.py " + shlex.join(argv),
        name=args.out.name, description=preset.description,
    )
    train(shape, cfg, args.data, opts)
    return 0
