# Grid call A (HumanEval, the best-vs-best core), pruned by hand from plan.md to one 10-minute
# device call after the headline call (scripts/gpu_headline.sh) trained the model on the same
# machine. Sourced by scripts/gpu_grid_session.sh (GPU, DATA, SAMPLES set there); commands
# run in this order and are skipped once the call's time runs short.
# LayerSkip E x gamma: the plan's box {8,10,12,16} x {1,2} widened to E=6 and gamma=4 (HiSpec's
# and the headline's settings), dropping E=10 (between its neighbours).
run_step 100 python run.py -m +experiment=grid_layerskip ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=6,8,12,16' 'method.draft_len=1,2,4'
# HiSpec (E_d, E_v) x N_d x N_i without flush; flush only at the plan's best pair.
run_step 110 python run.py -m +experiment=grid_hispec ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=[3,6],[4,12],[6,12],[8,16]' 'method.draft_len=1,2' 'method.period=2,4' 'method.flush_on_mismatch=false'
run_step 40 python run.py -m +experiment=grid_hispec ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'exit=[6,12]' 'method.draft_len=1,2' 'method.period=2,4' 'method.flush_on_mismatch=true'
# vanilla SD: both family drafts x gamma.
run_step 60 python run.py -m +experiment=grid_vanilla_sd ${GPU} dataset=humaneval dataset.limit=${SAMPLES} 'method.draft.path=checkpoints/family-2x128,checkpoints/family-6x128' 'method.draft_len=1,2,4'
# adaptive draft length against fixed gamma, LayerSkip at E=12 and vanilla SD with the small draft.
run_step 60 python run.py -m +experiment=grid_draft_stop ${GPU} exit=12 dataset=humaneval dataset.limit=${SAMPLES} 'method.draft_stop=0.5,0.7,null' 'method.draft_len=4,8'
run_step 40 python run.py -m +experiment=grid_draft_stop ${GPU} method=vanilla_sd method.draft.path=checkpoints/family-2x128 dataset=humaneval dataset.limit=${SAMPLES} 'method.draft_stop=0.3,null' 'method.draft_len=4,8'
