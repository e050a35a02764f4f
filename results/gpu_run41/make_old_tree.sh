#!/usr/bin/env bash
# A commit's hsd_bench/ and scripts/ in a folder of the repository root (default old_tree/; untracked:
# delete it before committing), so that `python3 <folder>/scripts/bench_gpu.py ...`, run from the
# repository root, benchmarks that commit's engine on today's checkpoints and models in its own
# process (bench_gpu.py puts its own tree first on sys.path). For call41_2.sh: the hierarchy's 294 M
# rows of the forty-first run's code (889edc9) and of the code before inference mode (b85df48) beside
# today's. (In-process A/Bs use results/gpu_run36/make_old_package.sh's renamed package instead.)
#
#   bash results/gpu_run41/make_old_tree.sh COMMIT [FOLDER]
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=${1:?a commit}
DIR=${2:-old_tree}
case "$DIR" in */*|.*|hsd_bench|scripts|results|tests|docs) echo "folder $DIR: a new name at the root" >&2; exit 2;; esac
rm -rf "$DIR" && mkdir "$DIR"
git archive "$OLD" hsd_bench scripts | tar -x -C "$DIR"
echo "$DIR from $OLD"
