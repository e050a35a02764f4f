# Grid call C: what the 2026-11-30 rerun (results/gpu/) left for issue 13. The selector on a
# pool profiled on this GPU with the fixed cost model (continuation forwards from the views'
# cost line, the engine's round overhead), whose prediction.csv now splits predicted against
# measured into acceptance, cost and AR terms; HiSpec at N_i > 4 (its best sat on the N_i = 4
# edge); GSM8K vanilla SD and Spec-Bench, which call B ran out of time for. Fits one call on a
# fresh machine (training ~4 min first). Sourced by scripts/gpu_grid_session.sh.
G8K="dataset=gsm8k dataset.path=${DATA}/gsm8k/test.jsonl dataset.num_fewshot=0 dataset.limit=${SAMPLES}"
run_step 90 python scripts/profile_hierarchy.py --target ${MODEL} --drafter checkpoints/family-2x128 --drafter checkpoints/family-6x128 --drafter target@4 --drafter target@8 --device ${DEVICE} --dtype ${DTYPE} --prompts 4 --new-tokens 96 --out runs/grid_tables/hierarchy_prediction
run_step 45 python run.py -m +experiment=grid_hispec ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=[6,12]' 'method.draft_len=1,2' 'method.period=6,8' 'method.flush_on_mismatch=false'
run_step 25 python run.py -m +experiment=grid_vanilla_sd ${GPU} ${G8K} 'method.draft.path=checkpoints/family-2x128,checkpoints/family-6x128' 'method.draft_len=2,4'
run_step 45 python run.py -m +experiment=method_comparison ${GPU} 'method=layerskip,hispec,vanilla_sd' dataset=spec_bench dataset.path=${DATA}/spec_bench/question.jsonl dataset.per_category=1 results_dir=runs/grid_spec_bench
