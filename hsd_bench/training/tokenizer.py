"""Byte-level BPE tokenizer trained on the corpus, saved for ``AutoTokenizer``.

Byte-level BPE needs no unknown token (any text round-trips), and the result
is wrapped as a ``PreTrainedTokenizerFast`` with bos/eos/pad so that
``AutoTokenizer.from_pretrained(dir)`` works offline. The post-processor
prepends ``<s>`` like Llama's tokenizer does, because every training document
starts with ``<s>``: prompts then look like the start of a training document.

Every newline is its own pre-token. With GPT-2's regex alone, "\n    return"
splits as "\n   " + " return", so a prompt that ends in "\n" (every HumanEval
prompt) ends in a token that in training only precedes unindented lines or
the end of a file: a first model trained that way answered HumanEval prompts
with ``</s>`` or a new top-level ``def``. Isolating "\n" makes the tokens of a
line independent of where the text is cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = (BOS, EOS, PAD)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS) + 1  # the byte alphabet, the specials, one merge


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE with ``vocab_size`` entries (specials included)."""
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size={vocab_size} too small for byte-level BPE: must be >= {MIN_VOCAB}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tok


def wrap(tok: Tokenizer, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """The ``transformers`` view of ``tok`` with its special tokens declared."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=model_max_length,
    )


def save_tokenizer(tok: Tokenizer, out_dir: Path | str, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Write ``tokenizer.json`` + config files to ``out_dir``; returns the wrapper."""
    fast = wrap(tok, model_max_length)
    fast.save_pretrained(str(out_dir))
    return fast
