# One device call of the grid plan (results/grid_plan/plan.md), sourced by
# scripts/gpu_grid_session.sh, which sets GPU, MODEL, DATA, SAMPLES, MAX_NEW.
# 31 jobs, ~8.7 min
run_step 119 python run.py -m +experiment=grid_hispec ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=[4,12],[6,12]' 'method.draft_len=1' 'method.period=2,4' 'method.flush_on_mismatch=false,true'
run_step 119 python run.py -m +experiment=grid_hispec ${GPU} dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'exit=[4,12],[6,12]' 'method.draft_len=1' 'method.period=2,4' 'method.flush_on_mismatch=false,true'
run_step 73 python run.py -m +experiment=grid_vanilla_sd ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'method.draft.path=checkpoints/family-2x128,checkpoints/family-6x128' 'method.draft_len=1,2'
run_step 73 python run.py -m +experiment=grid_vanilla_sd ${GPU} dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.limit=${SAMPLES} 'method.draft.path=checkpoints/family-2x128,checkpoints/family-6x128' 'method.draft_len=1,2'
run_step 61 python run.py -m +experiment=grid_rules ${GPU} exit=10 method.draft_len=3 dataset=humaneval dataset.limit=${SAMPLES} 'verifier=tokenwise' 'decoding.temperature=0.0,0.6,1.0'
run_step 73 python run.py -m +experiment=grid_rules ${GPU} exit=10 method.draft_len=3 dataset=humaneval dataset.limit=${SAMPLES} 'verifier=block,hsd' 'decoding.temperature=0.6,1.0'
