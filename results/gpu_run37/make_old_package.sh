#!/usr/bin/env bash
# The engine before the thirty-seventh session's changes, importable beside the new one: commit
# 26b50ad's hsd_bench/ as package hsd_bench_old (imports renamed). For ab_copies.py and ab_ahead.py; not committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf hsd_bench_old
mkdir hsd_bench_old
git archive 26b50ad hsd_bench | tar -x -C hsd_bench_old --strip-components=1
grep -rl "hsd_bench" hsd_bench_old --include=*.py | xargs sed -i 's/\bhsd_bench\b/hsd_bench_old/g'
echo "hsd_bench_old from 26b50ad"
