"""Native static-KV-cache backend for Llama-family checkpoints (gpt-fast style).

``from_hf_model(hf_model)`` wraps a loaded transformers model;
``load_native_model(path, dtype, device, max_context)`` loads a checkpoint.
Both return a :class:`NativeLlama`, a ``LayeredModel`` (``models/base.py``).
"""

from hsd_bench.models.native.args import SUPPORTED_MODEL_TYPES, NativeArgs
from hsd_bench.models.native.convert import from_hf_model, load_native_model
from hsd_bench.models.native.model import NativeLlama

__all__ = ["NativeArgs", "NativeLlama", "SUPPORTED_MODEL_TYPES", "from_hf_model", "load_native_model"]
