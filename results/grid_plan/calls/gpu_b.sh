# Grid call B: the verification rules at T in {0, 0.6, 1}, the Mohri-style selector on a
# pool profiled on this GPU, speedup against batch size (issue 16), then the second prompt set
# (GSM8K test, zero-shot: the models were trained on 256-token sequences, and 5-shot prompts
# are ~800 tokens), Spec-Bench (one prompt per category) and batch size on a 1B Llama. Ordered
# by what the verdicts in docs/reproduction.md need, since the last call of a session is the
# shortest. Sourced by scripts/gpu_grid_session.sh after call A; skipped commands say so in
# session.log.
G8K="dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.num_fewshot=0 dataset.limit=${SAMPLES}"
run_step 60 python run.py -m +experiment=grid_rules ${GPU} exit=8 method.draft_len=3 dataset=humaneval dataset.limit=${SAMPLES} 'verifier=tokenwise,block,hsd' 'decoding.temperature=0.6,1.0'
run_step 15 python run.py -m +experiment=grid_rules ${GPU} exit=8 method.draft_len=3 dataset=humaneval dataset.limit=${SAMPLES} 'verifier=tokenwise' 'decoding.temperature=0.0'
run_step 80 python scripts/profile_hierarchy.py --target ${MODEL} --drafter checkpoints/family-2x128 --drafter checkpoints/family-6x128 --drafter target@4 --drafter target@8 --device ${DEVICE} --dtype ${DTYPE} --prompts 4 --new-tokens 96 --out runs/grid_tables/hierarchy_prediction
run_step 120 python scripts/bench_batch.py --models ${MODEL} --draft checkpoints/family-2x128 --methods autoregressive,layerskip,hispec,vanilla_sd --batches 1,4,16,64 --rows-per-batch 2 --max-new 64 --reps 1 --device ${DEVICE} --dtype ${DTYPE} --exit 8 --out runs/grid_tables/bench_batch_gpu_model --time-limit-s 110
run_step 60 python run.py -m +experiment=grid_layerskip ${GPU} ${G8K} 'exit=8,12,16' 'method.draft_len=1,2'
run_step 40 python run.py -m +experiment=grid_hispec ${GPU} ${G8K} 'exit=[4,12],[6,12]' 'method.draft_len=1' 'method.period=2,4' 'method.flush_on_mismatch=false'
run_step 25 python run.py -m +experiment=grid_vanilla_sd ${GPU} ${G8K} 'method.draft.path=checkpoints/family-2x128' 'method.draft_len=1,2'
run_step 45 python run.py -m +experiment=method_comparison ${GPU} 'method=layerskip,hispec,vanilla_sd' dataset=spec_bench dataset.path=${DATA}/spec_bench/question.jsonl dataset.per_category=1 results_dir=runs/grid_spec_bench
run_step 90 python scripts/bench_batch.py --models random:llama-1b --methods autoregressive,layerskip --batches 1,8,64 --rows-per-batch 2 --max-new 64 --reps 1 --device ${DEVICE} --dtype ${DTYPE} --out runs/grid_tables/bench_batch_llama1b --time-limit-s 80
