#!/usr/bin/env bash
# Fifty-sixth run, call 3 (any card): where beside memory copiers the host slows -- its own core or
# the whole machine? Call 1 found the timing thread preempted only 0-30 times a pass beside 16
# unpinned copiers (spinning wait), while a measuring pass ran up to 55 % slower than its timed pass.
# First sibling_probe.py finds vCPU 0's most sensitive neighbour (SIB; an SMT sibling if the host
# has them) and its least (FAR); then fresh processes of the methods part (HiSpec, the hierarchy,
# AR on the shipped 5.6 M target, untraced), the first unpinned and unloaded (a fresh machine
# compiles in it), the rest in LAYOUTS:
#   solo: the benchmark pinned to vCPU 0, no load;   sib / far: one copier pinned to SIB / FAR;
#   rest: copiers on every vCPU but 0 and SIB (vCPU 0's core to itself, the machine loaded);
#   all:  16 copiers and the benchmark unpinned (calls 1 and the fifty-fifth run's load);
#   self: 16 copiers unpinned, the benchmark pinned to vCPU 0 (what a run can do on its own);
#   rest15: copiers on every vCPU but 0 (all vCPUs busy, vCPU 0 the benchmark's alone).
# loads.log gets each process's steal time (/proc/stat: time the hypervisor ran other work on the
# VM's vCPUs), which no count inside the guest sees.
# Every measuring pass now counts its preemptions too. FIRST_LIMIT / REST_LIMIT (default 220 / 140 s)
# and METHODS (default hispec,hierarchy) fit a short call. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=300 DRY=1 LAYOUTS="sib rest" bash results/gpu_run56/call56_3.sh
source scripts/gpu_env.sh
CALL=${CALL:-call3} source scripts/gpu_call.sh
LAYOUTS=${LAYOUTS:-"sib far rest all solo sib rest all"}
N=$(nproc)
lscpu > "$W/lscpu.txt" 2>&1
# PROBE=0: no sibling probe (call 3's read noise: vCPU 0's loop ran 0.97-2.09x its rate alone
# beside every copier, and its two readings alone differed by 13 %)
[[ ${PROBE:-1} == 1 ]] && SECONDS_EACH=${SECONDS_EACH:-1.0} python3 results/gpu_run56/sibling_probe.py > "$W/siblings.txt" 2>&1
[[ -f $W/siblings.txt ]] && cat "$W/siblings.txt"
SIB=$(sed -n 's/^slowest beside: cpu\([0-9]*\).*/\1/p' "$W/siblings.txt"); SIB=${SIB:-1}
FAR=$(awk '/^copier on cpu/ {c=substr($3,4); if ($4 > best) {best=$4; far=c}} END {print far}' "$W/siblings.txt")
FAR=${FAR:-$((N / 2))}
echo "SIB=$SIB FAR=$FAR" | tee -a "$W/loads.log"
Q=("${M_UNTRACED[@]}")
[[ -n ${DRY:-} ]] && Q+=(--prompts 1 --methods-max-new 8 --reps 2 --device cpu --dtype float32)
hogs() {  # hogs CPU...: one copier pinned to each CPU given ("any": unpinned)
  for c in "$@"; do
    if [[ $c == any ]]; then python3 results/gpu_run53/host_load.py mem & else
      taskset -c "$c" python3 results/gpu_run53/host_load.py mem & fi
    PIDS+=($!)
  done
}
i=0
for layout in first $LAYOUTS; do
  i=$((i + 1)); name=$(unused "p${i}_${layout}")
  limit=$(( i == 1 && ${WARM:-0} == 0 ? ${FIRST_LIMIT:-220} : ${REST_LIMIT:-140} ))
  (( $(left) > limit )) || break
  PIDS=(); bench=(taskset -c 0)
  case $layout in
    first) bench=() ;;
    solo) ;;
    sib) hogs "$SIB" ;;
    far) hogs "$FAR" ;;
    rest) hogs $(seq 1 $((N - 1)) | grep -vx "$SIB") ;;
    all) bench=(); hogs $(yes any | head -n "$N") ;;
    self) hogs $(yes any | head -n "$N") ;;
    rest15) hogs $(seq 1 $((N - 1))) ;;
    *) echo "unknown layout $layout"; exit 2 ;;
  esac
  (( ${#PIDS[@]} )) && sleep 3
  echo "$name copiers ${#PIDS[@]} loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >> "$W/loads.log"
  read -r _ u0 n0 s0 i0 w0 q0 sq0 st0 _ < /proc/stat
  step "$name" $limit "${bench[@]}" python3 scripts/bench_gpu.py "${Q[@]}" --methods "${METHODS:-hispec,hierarchy}" \
    --target checkpoints/ee-24x128 --out "$W/$name"
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  echo "$name steal $((st1 - st0)) of $(( (u1+n1+s1+i1+w1+q1+sq1+st1) - (u0+n0+s0+i0+w0+q0+sq0+st0) )) ticks, idle $((i1 - i0))" >> "$W/loads.log"
  (( ${#PIDS[@]} )) && { kill "${PIDS[@]}" 2>/dev/null; wait "${PIDS[@]}" 2>/dev/null; }
done
pack
cat "$W/calls.log" "$W/loads.log"
python3 results/gpu_run56/summary.py "$W"/p*_*/
