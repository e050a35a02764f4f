"""hsd-bench: hierarchical speculative decoding, measured."""
__version__ = "0.1.0"
