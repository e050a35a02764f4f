# One device call of the grid plan (results/grid_plan/plan.md), sourced by
# scripts/gpu_grid_session.sh, which sets GPU, MODEL, DATA, SAMPLES, MAX_NEW.
# 16 jobs, ~4.0 min
run_step 120 python run.py -m +experiment=grid_layerskip ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=8,10,12,16' 'method.draft_len=1,2'
run_step 120 python run.py -m +experiment=grid_layerskip ${GPU} dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'exit=8,10,12,16' 'method.draft_len=1,2'
