# Sourced by a device session's call script, after scripts/gpu_env.sh, with CALL set (its name,
# e.g. call1): what every such script began with, written once.
# - W, the work folder (/tmp/w_$CALL), W/gpu.txt (the GPU's name and driver) and W/nproc.txt (vCPUs);
# - left: seconds left of the call's CALL_LIMIT (default 585) since this file was sourced (not
#   LIMIT: scripts/gpu_headline.sh reads LIMIT as run.py's dataset.limit, and a call that set one
#   for the other ran every HumanEval prompt -- forty-sixth run);
# - pack: W packed into $OUT/$CALL.tgz (models left out), to call after every step, so a call cut
#   off by its limit still brings back what it finished;
# - step NAME SECONDS CMD...: CMD under `timeout SECONDS`, its output in W/NAME.log, its exit status
#   and duration in W/calls.log, then pack;
# - unused NAME: NAME, or NAME_2, NAME_3, ... where W already holds NAME (a folder or NAME.log): a
#   call script run twice on a warm machine writes into the same W, and its second run's processes
#   overwrote the first's of the same name (fifty-third run);
# - M: the benchmark's methods part on the shipped workload (docs/gpu-runs.md names it `M`);
#   add --target and --out. M_UNTRACED: the same without --device-trace (fresh processes that
#   read the overhead by CUDA events alone, several to a call).
export CI=true
start=$SECONDS
W=/tmp/w_${CALL:?set CALL before sourcing scripts/gpu_call.sh}; mkdir -p "$W"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/gpu.txt" 2>/dev/null || true
nproc > "$W/nproc.txt"  # the host's vCPUs: a host-bound method's rate follows how many it gets
left() { echo $((${CALL_LIMIT:-585} - (SECONDS - start))); }
PACKED="$OUT/$CALL.tgz"  # fixed now: a CALL given as `CALL=x source ...` is gone after the source
pack() { tar czf "$PACKED" -C "$W" --exclude='*.safetensors' --exclude='*.pt' . ; }
step() {
  local name=$1 seconds=$2; shift 2
  local t0=$SECONDS
  timeout "$seconds" "$@" > "$W/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - t0)) s" >> "$W/calls.log"; pack
}
unused() {
  local name=$1 k=2
  while [[ -e $W/$name || -e $W/$name.log ]]; do name=$1_$k; k=$((k + 1)); done
  echo "$name"
}
M_UNTRACED=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128)
M=("${M_UNTRACED[@]}" --device-trace)
