# One device call of the grid plan (results/grid_plan/plan.md), sourced by
# scripts/gpu_grid_session.sh, which sets GPU, MODEL, DATA, SAMPLES, MAX_NEW.
# 23 jobs, ~7.1 min
run_step 61 python run.py -m +experiment=grid_rules ${GPU} exit=10 method.draft_len=3 dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'verifier=tokenwise' 'decoding.temperature=0.0,0.6,1.0'
run_step 73 python run.py -m +experiment=grid_rules ${GPU} exit=10 method.draft_len=3 dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'verifier=block,hsd' 'decoding.temperature=0.6,1.0'
run_step 73 python run.py -m +experiment=grid_draft_stop ${GPU} exit=16 dataset=humaneval dataset.limit=${SAMPLES} 'method.draft_stop=0.7,null' 'method.draft_len=4,8'
run_step 73 python run.py -m +experiment=grid_draft_stop ${GPU} exit=16 dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'method.draft_stop=0.7,null' 'method.draft_len=4,8'
run_step 74 python run.py -m +experiment=grid_draft_stop ${GPU} method=vanilla_sd method.draft.path=checkpoints/family-2x128 dataset=humaneval dataset.limit=${SAMPLES} 'method.draft_stop=0.3,null' 'method.draft_len=4,8'
run_step 74 python run.py -m +experiment=grid_draft_stop ${GPU} method=vanilla_sd method.draft.path=checkpoints/family-2x128 dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'method.draft_stop=0.3,null' 'method.draft_len=4,8'
