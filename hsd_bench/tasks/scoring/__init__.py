"""Per-sample scorers, one module each; pure functions of (output text, reference).

Kept apart from the task modules so lm-eval parity tests and offline
re-scoring of ``rows.jsonl`` can use them without loading any dataset.
"""
