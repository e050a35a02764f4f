#!/usr/bin/env bash
# Is hsd-bench still right with the newest releases pyproject.toml allows?
#
#   bash scripts/check_latest.sh            # check only
#   bash scripts/check_latest.sh --update   # ... then run the whole suite and rewrite constraints.txt
#   TRANSFORMERS=5.17.0 bash scripts/check_latest.sh   # one transformers release instead of the newest
#   TORCH=2.15.0 bash scripts/check_latest.sh           # one torch release instead of the CPU wheel 2.13.0
#
# Builds a fresh virtualenv WITHOUT constraints.txt (what a user who installs
# the package into their own environment gets today), prints the versions it
# resolved, then runs the default run offline and the tests that would show
# drift first: the transformers-internals probes, greedy parity against
# transformers' own generate(), and the native backend. With --update it also
# runs the whole suite and, if everything passed, writes the resolved versions
# to constraints.txt -- the file the README's install command and .ci/run use.
# Review the diff and record the transformers release in docs/compatibility.md.
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
[ "${1:-}" = "--update" ] && update=1
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q --upgrade pip >/dev/null
# torch is the one pin kept (see README): the CPU wheel 2.13.0 unless TORCH names another release,
# which comes from the package index as published -- for recent releases a CUDA build, which runs
# the suite on the CPU all the same (docs/compatibility.md, "Verified torch releases").
pip install -q "torch==${TORCH:-2.13.0}"
extra=()
[ -n "${TRANSFORMERS:-}" ] && extra=("transformers==$TRANSFORMERS")
pip install -q -e ".[dev]" "${extra[@]}"
if [ -n "${TORCH:-}" ]; then
    got=$(python -c 'import torch; print(torch.__version__.split("+")[0])')
    if [ "$got" != "$TORCH" ]; then
        echo "== TORCH=$TORCH: pip installed torch $got instead (outside pyproject.toml's range, or capped by" \
             "a pip constraint of this machine -- PIP_CONSTRAINT=/dev/null lifts one): nothing checked" >&2
        exit 1
    fi
fi
pip freeze --exclude-editable | grep -v '^#' | sed 's/+cpu$//' | sort -f > "$venv/resolved.txt"
echo "== resolved (newest allowed by pyproject.toml):"
grep -iE '^(torch|transformers|tokenizers|hydra-core|omegaconf|datasets|lm.eval|wandb|pandas)==' "$venv/resolved.txt"
echo "== changes against constraints.txt:"
diff <(grep -v '^#' constraints.txt | sort -f) "$venv/resolved.txt" || true

results=$(mktemp -d)
echo "== default run"
python run.py results_dir="$results"
echo "== drift tests"
python -m pytest -q -p no:cacheprovider tests/test_hf_compat.py tests/test_engine_greedy.py \
    tests/test_native_backend.py tests/test_native_fused_greedy.py tests/test_gemv.py tests/test_add_norm.py tests/test_decode_attention.py \
    tests/test_tokenizer.py

if [ $update = 1 ] && [ -n "${TORCH:-}" ]; then
    echo "== --update rewrites constraints.txt only with the CPU wheel 2.13.0 (TORCH unset): not rewritten"
    update=0
fi
if [ $update = 1 ]; then
    echo "== the whole suite"
    python -m pytest -q -p no:cacheprovider
    {
        echo "# Exact versions the whole test suite last passed with (scripts/check_latest.sh --update,"
        echo "# $(date -u +%Y-%m-%d), Python $(python -c 'import platform; print(platform.python_version())')). Used by the README's install"
        echo "# command and .ci/run; pyproject.toml keeps wide ranges for other environments."
        cat "$venv/resolved.txt"
    } > constraints.txt
    echo "== constraints.txt rewritten; review 'git diff constraints.txt' and update docs/compatibility.md"
fi
echo "== all checks passed with transformers $(python -c 'import transformers; print(transformers.__version__)')," \
     "torch $(python -c 'import torch; print(torch.__version__)')"
