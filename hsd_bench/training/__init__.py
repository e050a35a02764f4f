"""Training of the project's own early-exit models (LayerSkip's recipe).

``config`` (shapes, presets), ``corpus`` (installed Python sources),
``tokenizer`` (byte-level BPE), ``data`` (token streams, batches),
``early_exit`` (loss weights, curriculum, layer dropout), ``trainer`` (the
loop, resume, saving), ``cli`` (argparse front end), ``exit_agreement``
(per-exit agreement report). Imports only torch, transformers, tokenizers,
tqdm, numpy and safetensors, so it runs on a bare GPU machine.
"""
