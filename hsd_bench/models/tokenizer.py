"""Text <-> ids, the little the harness needs from a tokenizer.

Wraps a Hugging Face tokenizer, or -- for randomly initialised test models,
which have no tokenizer -- a byte-level codec that needs no files at all.
"""

from __future__ import annotations


class TextCodec:
    def __init__(self, hf_tokenizer=None, vocab_size: int | None = None):
        self.hf = hf_tokenizer
        if hf_tokenizer is None:
            # bytes 0..255, then BOS = 256, EOS = 257
            self.bos_token_id, self.eos_token_id = 256, 257
            self.vocab_size = vocab_size or 258
        else:
            self.bos_token_id = hf_tokenizer.bos_token_id
            self.eos_token_id = hf_tokenizer.eos_token_id
            self.vocab_size = len(hf_tokenizer)

    def encode(self, text: str) -> list[int]:
        if self.hf is None:
            return [self.bos_token_id, *text.encode("utf-8")]
        return list(self.hf(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        if self.hf is None:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return self.hf.decode(ids, skip_special_tokens=True)

    def vocab_fingerprint(self) -> tuple:
        """Equal for two tokenizers that map text to ids the same way."""
        if self.hf is None:
            return ("bytes", self.vocab_size)
        return ("hf", tuple(sorted(self.hf.get_vocab().items())))
