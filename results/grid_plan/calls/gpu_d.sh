# Batch call D (issue 16): speedup over AR against batch size beyond what call B fitted
# (results/gpu/bench_batch_gpu_model/ has B = 1 and 4), and AR at B = 64 on the 1B shape
# against its roofline. Every B > 1 cell runs its stream twice (untimed, then timed: rule 1 of
# docs/performance.md), so each script gets its own time limit. Sourced by
# scripts/gpu_grid_session.sh.
run_step 200 python scripts/bench_batch.py --models random:llama-1b --methods autoregressive,layerskip --batches 1,8,64 --rows-per-batch 2 --max-new 64 --reps 1 --device ${DEVICE} --dtype ${DTYPE} --out runs/grid_tables/bench_batch_llama1b --time-limit-s 190
run_step 150 python scripts/bench_batch.py --models ${MODEL} --draft checkpoints/family-2x128 --methods autoregressive,layerskip,hispec,vanilla_sd --batches 16,64 --rows-per-batch 2 --max-new 64 --reps 1 --device ${DEVICE} --dtype ${DTYPE} --exit 8 --out runs/grid_tables/bench_batch_gpu_model_large --time-limit-s 140
