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
        # The engine's stop check decodes a sample's text after every verification, on the path
        # the device may wait on; transformers' decode of a fast tokenizer is the Rust decode plus
        # Python conversions that cost about as much again (an H200 host profile, docs/gpu-runs.md
        # "Eighteenth run"). Without its clean-up of spaces it returns the Rust decode's text, so
        # that is called directly; any other tokenizer goes through transformers.
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        clean_up = getattr(hf_tokenizer, "clean_up_tokenization_spaces", True)
        self._rust_decode = backend.decode if backend is not None and clean_up is False else None

    def encode(self, text: str) -> list[int]:
        if self.hf is None:
            return [self.bos_token_id, *text.encode("utf-8")]
        return list(self.hf(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (host ints), special tokens skipped."""
        if self.hf is None:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        if self._rust_decode is not None:
            return self._rust_decode(ids.tolist() if hasattr(ids, "tolist") else list(ids), skip_special_tokens=True)
        return self.hf.decode(ids, skip_special_tokens=True)

    def vocab_fingerprint(self) -> tuple:
        """Equal for two tokenizers that map text to ids the same way."""
        if self.hf is None:
            return ("bytes", self.vocab_size)
        return ("hf", tuple(sorted(self.hf.get_vocab().items())))
