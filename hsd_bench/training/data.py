"""Corpus -> tokenizer -> token arrays on disk, and random training windows.

``prepare_data`` runs once per data directory (several training runs — the
default model and its family — share one tokenizer and one token stream).
Every document is ``<s> tokens </s>``; documents are concatenated and training
windows are cut at random offsets, so a window may span a document boundary,
as in most LM pre-training. Every ``val_every``-th document goes to the
validation stream, so train and validation never share a file.

Batches are a pure function of ``(seed, step)``: resuming at step t draws the
same batches an uninterrupted run would, without saving generator state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hsd_bench.training.corpus import CorpusStats, iter_corpus
from hsd_bench.training.tokenizer import BOS, EOS, save_tokenizer, train_bpe

DATA_META = "data.json"
TOKENIZER_SUBDIR = "tokenizer"


@dataclass
class TokenData:
    """Token streams (1-D int64 tensors) and where the tokenizer lives."""

    train: torch.Tensor
    val: torch.Tensor
    tokenizer_dir: Path
    meta: dict


def prepare_data(
    out_dir: Path | str,
    vocab_size: int = 4096,
    max_bytes: int = 48_000_000,
    max_file_bytes: int = 200_000,
    tokenizer_train_bytes: int = 16_000_000,
    val_every: int = 50,
    roots: Sequence[Path | str] | None = None,
    log=print,
) -> dict:
    """Build corpus, tokenizer and token arrays under ``out_dir``; returns the metadata."""
    if val_every < 2:
        raise ValueError(f"val_every={val_every} must be >= 2 (one document in val_every goes to validation)")
    if tokenizer_train_bytes < 1:
        raise ValueError(f"tokenizer_train_bytes={tokenizer_train_bytes} must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stats = CorpusStats()
    texts = list(iter_corpus(roots, max_bytes=max_bytes, max_file_bytes=max_file_bytes, stats=stats))
    if len(texts) < 2:
        raise ValueError(f"corpus has {len(texts)} file(s) under roots {stats.roots}; need at least 2")
    t_corpus = time.perf_counter() - t0
    log(f"corpus: {stats.files_kept} files, {stats.bytes_kept / 1e6:.1f} MB in {t_corpus:.1f}s")

    tok_texts, budget = [], tokenizer_train_bytes
    for t in texts:
        if budget <= 0:
            break
        tok_texts.append(t)
        budget -= len(t.encode("utf-8"))
    tok = train_bpe(tok_texts, vocab_size)
    tok_dir = out / TOKENIZER_SUBDIR
    save_tokenizer(tok, tok_dir)
    t_tok = time.perf_counter() - t0 - t_corpus
    log(f"tokenizer: vocab {tok.get_vocab_size()} trained on {len(tok_texts)} files in {t_tok:.1f}s")

    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    dtype = np.uint16 if tok.get_vocab_size() <= np.iinfo(np.uint16).max else np.int32
    streams: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    chunk = 2048
    for start in range(0, len(texts), chunk):
        encs = tok.encode_batch(texts[start:start + chunk], add_special_tokens=False)
        for i, enc in enumerate(encs):
            doc = np.asarray([bos, *enc.ids, eos], dtype=dtype)
            split = "val" if (start + i) % val_every == val_every - 1 else "train"
            streams[split].append(doc)
    if not streams["val"]:  # tiny corpora: hold out the last document
        streams["val"].append(streams["train"].pop())
    arrays = {k: np.concatenate(v) for k, v in streams.items()}
    for k, a in arrays.items():
        np.save(out / f"tokens_{k}.npy", a)
    meta = {
        "corpus": stats.to_dict(),
        "vocab_size": tok.get_vocab_size(),
        "tokenizer_train_files": len(tok_texts),
        "tokenizer_train_bytes_cap": tokenizer_train_bytes,
        "val_every": val_every,
        "train_tokens": int(arrays["train"].size),
        "val_tokens": int(arrays["val"].size),
        "train_docs": len(streams["train"]),
        "val_docs": len(streams["val"]),
        "bytes_per_token": round(stats.bytes_kept / max(1, arrays["train"].size + arrays["val"].size), 3),
        "prepare_seconds": round(time.perf_counter() - t0, 2),
    }
    (out / DATA_META).write_text(json.dumps(meta, indent=2))
    log(f"tokens: train {meta['train_tokens']:,}  val {meta['val_tokens']:,}  ({meta['bytes_per_token']} bytes/token)")
    return meta


def is_prepared(data_dir: Path | str) -> bool:
    d = Path(data_dir)
    return (d / DATA_META).is_file() and (d / TOKENIZER_SUBDIR / "tokenizer.json").is_file()


def load_data(data_dir: Path | str, device: torch.device | str = "cpu") -> TokenData:
    """Load the token streams of a prepared directory onto ``device``."""
    d = Path(data_dir)
    if not is_prepared(d):
        raise FileNotFoundError(f"{d} is not a prepared data directory (run the `prepare` step first)")
    meta = json.loads((d / DATA_META).read_text())

    def load(name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(d / f"tokens_{name}.npy").astype(np.int64)).to(device)

    return TokenData(train=load("train"), val=load("val"), tokenizer_dir=d / TOKENIZER_SUBDIR, meta=meta)


def sample_windows(tokens: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``seq_len + 1`` tokens (inputs + shifted targets)."""
    n = tokens.numel() - seq_len - 1
    if n < 1:
        raise ValueError(
            f"token stream of {tokens.numel()} tokens is too short for seq_len={seq_len}; "
            "use a larger corpus (--max-bytes) or a shorter --seq-len"
        )
    starts = torch.randint(0, n, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
    return tokens[idx.to(tokens.device)]


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator whose stream depends only on ``(seed, step)``."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g
