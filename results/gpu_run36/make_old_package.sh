#!/usr/bin/env bash
# The engine before a change, importable beside the new one: a commit's hsd_bench/ (by default
# 4922074, before the thirty-sixth session's host cuts; the thirty-seventh run's A/Bs pass 26b50ad)
# as package hsd_bench_old (imports renamed). For ab_views.py; not committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf hsd_bench_old
mkdir hsd_bench_old
OLD=${1:-4922074}
git archive "$OLD" hsd_bench | tar -x -C hsd_bench_old --strip-components=1
grep -rl "hsd_bench" hsd_bench_old --include=*.py | xargs sed -i 's/\bhsd_bench\b/hsd_bench_old/g'
echo "hsd_bench_old from $OLD"
